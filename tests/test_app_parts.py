"""The app's plain-Python parts: the background job, the 3D viewer's overlays, the report, TIFF display."""

from __future__ import annotations

import gzip
import io
import json
import re
import threading
import time
import zipfile
from dataclasses import replace

import nibabel as nib
import numpy as np
import pytest

from explorer.analysis import analyze
from explorer.app import jobs
from explorer.io.volume import Mask, load_mask, load_volume
from explorer.models.checkpoints import list_zoo, load_checkpoint
from explorer.reporting import overlays
from explorer.spec import RunSpec
from tests.apptools import plotly_json


def _wait(job: jobs.Job) -> jobs.Job:
    deadline = time.monotonic() + 60
    while job.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not job.running
    return job


def _job(run) -> jobs.Job:
    job = jobs.Job(key=("k",), steps=4)
    job._thread = threading.Thread(target=job._run, args=(run, None), daemon=True)
    job._thread.start()
    return job


def test_a_job_reports_checkpoint_k_of_n_and_its_time_left():
    gate = threading.Event()

    def run(progress):
        progress(0.0, "a: from cache")
        progress(0.6, "c: batch 3 of 5")
        gate.wait(10)
        return "result"

    job = _job(run)
    deadline = time.monotonic() + 10
    while job.fraction < 0.6 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job.step == 3 and "Checkpoint 3 of 4 — c: batch 3 of 5" in job.status()
    assert "s left" in job.status()
    gate.set()
    assert _wait(job).result == "result" and job.error is None and not job.cancelled


def test_with_several_checkpoints_the_first_is_shown_early_and_not_recomputed(sample_volume_path):
    """The first checkpoint is analysed alone and published as ``preview`` (the page's first chart); the full
    run then reads it back from the cache and computes only the others."""
    volume = load_volume(sample_volume_path)
    volume = replace(volume, data=volume.data[:, :, 30:42], sha256=volume.sha256 + "-z30-42")
    zoo = [load_checkpoint(p) for p in list_zoo()[:2]]
    job = _wait(jobs.start(("k",), volume, zoo, RunSpec(zflip=False)))
    assert job.error is None and list(job.preview.models) == [zoo[0].name]
    # the preview's own result, read back: not "from the cache" in the page's note
    assert list(job.result.models) == [zoo[0].name, zoo[1].name] and job.cached == set()
    np.testing.assert_array_equal(job.preview.models[zoo[0].name].masses, job.result.models[zoo[0].name].masses)
    assert job.fraction == 1.0


def test_cancel_stops_the_job_at_the_next_progress_report():
    steps = []

    def run(progress):
        for i in range(10_000):
            progress(i / 10_000, f"m: step {i}")
            steps.append(i)
            time.sleep(0.001)
        return "finished"

    job = _job(run)
    while not steps:
        time.sleep(0.01)
    job.cancel()
    _wait(job)
    assert job.cancelled and job.result is None and len(steps) < 10_000


def test_a_failing_job_keeps_one_line_not_a_traceback():
    def run(progress):
        raise ValueError("boom")

    job = _wait(_job(run))
    assert job.error == "The analysis failed: ValueError: boom" and job.result is None


@pytest.fixture(scope="module")
def small_analysis(tmp_path_factory):
    """The sample's 12 central axial slices, one checkpoint, maps kept."""
    from explorer.config import SAMPLE_DIR

    full = load_volume(SAMPLE_DIR / "mni152_t1_2mm.nii.gz")
    mask = load_mask(SAMPLE_DIR / "mni152_gm_mask_2mm.nii.gz", full)
    crop = replace(full, data=np.ascontiguousarray(full.data[:, :, 34:46]), sha256="crop-34-46")
    crop_mask = Mask(data=np.ascontiguousarray(mask.data[:, :, 34:46]), source="crop-mask", sha256="crop-mask-34")
    ckpt = load_checkpoint(list_zoo()[0])
    return analyze(crop, [ckpt], RunSpec(keep_maps=True, zflip=False), mask=crop_mask, cache=False)


def _image(data: bytes) -> nib.Nifti1Image:
    return nib.Nifti1Image.from_bytes(gzip.decompress(data))


def test_overlays_lie_on_the_scan_grid(small_analysis):
    a = small_analysis
    name = next(iter(a.models))
    scan, pred = _image(overlays.scan_nifti(a.volume)), _image(overlays.prediction_nifti(a, name))
    assert scan.shape == pred.shape == a.volume.shape
    np.testing.assert_allclose(pred.affine, a.volume.affine)
    # axial stack slice z is the volume's z-th slice along the third axis
    np.testing.assert_array_equal(np.asarray(pred.dataobj)[:, :, 5], a.models[name].prediction[5].astype(np.uint8))
    mask = _image(overlays.mask_nifti(a))
    np.testing.assert_array_equal(np.asarray(mask.dataobj).astype(bool), a.mask.data)


def test_the_attribution_threshold_hides_values_below_it(small_analysis):
    a = small_analysis
    name = next(iter(a.models))
    raw = np.nan_to_num(np.abs(np.asarray(a.models[name].maps[:, 0], dtype=np.float32)))
    full, top = overlays.attribution_volume(a, name, 0, 0.0)
    cut, _ = overlays.attribution_volume(a, name, 0, 0.5)
    assert top == pytest.approx(raw.max())
    assert np.count_nonzero(cut) == np.count_nonzero(raw >= 0.5 * top) < np.count_nonzero(full)
    image = _image(overlays.attribution_nifti(a, name, 0, 0.5))
    assert float(image.header["cal_min"]) == pytest.approx(0.5 * top, rel=1e-5)


#: The slice viewer's settings the report is drawn with (not the defaults: the report must follow the screen's).
REPORT_VIEW_STATE = {"viewer_opacity": 0.4, "viewer_per_row": True}
REPORT_WINDOW = (12.5, 80.25)


@pytest.fixture(scope="module")
def report(small_analysis) -> tuple[dict, zipfile.ZipFile]:
    """One report zip of slice 6 drawn with non-default viewer settings, and those settings: the two report
    tests read the same zip (each build exports every figure and the PDF, the costliest step of these tests)."""
    from explorer.app.exports import report_bytes
    from explorer.app.viewer import settings, window_key

    a = small_analysis
    view = settings(a, {window_key(a): REPORT_WINDOW, **REPORT_VIEW_STATE})
    return view, zipfile.ZipFile(io.BytesIO(report_bytes(a, list(a.models), 6, view=view)))


def test_the_report_holds_the_slice_figure_the_pdf_summary_and_the_maps(report):
    _, bundle = report
    files = set(bundle.namelist())
    pdf = bundle.read("report/summary.pdf")
    parameters = json.loads(bundle.read("report/parameters.json"))
    assert pdf.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page(?!s)", pdf)) == 1  # one page
    assert "report/figures/slice_006.html" in files
    assert any(f.startswith("report/maps/") and f.endswith("_label.nii.gz") for f in files)
    assert parameters["parameters"]["slice_viewer_slice"] == 6


def test_a_tiff_stack_is_shown_as_fiji_shows_it(tmp_path):
    import tifffile

    from explorer.app.viewer import as_stored

    pages = np.arange(4 * 6 * 5, dtype=np.float32).reshape(4, 6, 5)  # (Z, rows, columns) as in Fiji
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, pages, photometric="minisblack")
    volume = load_volume(path, spacing=(0.5, 0.5, 2.0))
    assert volume.spacing == pytest.approx((0.5, 0.5, 2.0))

    class Shown:  # the two attributes as_stored reads
        axis = "axial"

    Shown.volume = volume
    assert as_stored(Shown)
    np.testing.assert_array_equal(volume.stack("axial")[2], pages[2])  # shown as stored: page 2 as Fiji shows it


def test_the_reports_slice_figure_is_the_one_on_screen(small_analysis, report):
    """The report draws slice z with the viewer's function and settings: the same traces (anatomy under the maps,
    the chosen window) and layout as the screen."""
    from explorer.app.viewer import SAVED, remembered, settings, slice_figure, window_key

    a = small_analysis
    names = list(a.models)
    defaults = settings(a, {})
    assert defaults["opacity"] == 0.7 and defaults["show_mask"]  # the anatomy is under the maps by default
    state = {window_key(a): REPORT_WINDOW, **REPORT_VIEW_STATE}
    view = settings(a, state)
    assert view == report[0]  # the settings the shared report was drawn with
    assert remembered(a, {SAVED: {"volume": a.volume.sha256, "slice": 6, "view": view}}) == (6, view)
    assert remembered(a, {SAVED: {"volume": "another scan", "slice": 6, "view": view}}) == (None, defaults)
    screen = json.loads(slice_figure(a, names, 6, **view).to_json())
    data, layout = plotly_json(report[1].read("report/figures/slice_006.html").decode())
    assert data == screen["data"]
    assert {k: v for k, v in layout.items() if k != "template"} == {
        k: v for k, v in screen["layout"].items() if k != "template"
    }
    images = [t for t in data if t["name"] in ("image", "anatomy")]
    assert {(t["zmin"], t["zmax"]) for t in images} == {REPORT_WINDOW}
    assert sum(t["name"] == "anatomy" for t in data) == 3  # under each channel map
    assert {t["opacity"] for t in data if t["name"].startswith(names[0] + " ")} == {0.4}


def _viewer_page(analysis):
    import streamlit as st

    from explorer.app import viewer3d

    if st.session_state.get("show_3d", True):
        viewer3d.show(analysis, list(analysis.models))


def test_the_3d_viewer_keeps_one_scan_and_its_settings_across_views(small_analysis):
    """The scan's bytes are the same on every encoding (the viewer adds a panel when they change), and the
    controls' values survive a run that does not draw the view (leaving it and coming back)."""
    from streamlit.testing.v1 import AppTest

    from explorer.app.viewer3d import channel_label, prediction_colormap

    assert overlays.scan_nifti(small_analysis.volume) == overlays.scan_nifti(small_analysis.volume)
    at = AppTest.from_function(_viewer_page, args=(small_analysis,), default_timeout=60).run()
    assert not at.exception, at.exception
    at.slider(key="v3d_opacity").set_value(0.3).run()
    at.selectbox(key="v3d_cmap").set_value("viridis").run()
    at.session_state["show_3d"] = False
    at.run()
    assert "v3d_opacity" not in at.session_state or at.session_state["v3d_opacity"] == 0.3
    at.session_state["show_3d"] = True
    at.run()
    assert not at.exception, at.exception
    assert at.slider(key="v3d_opacity").value == 0.3 and at.selectbox(key="v3d_cmap").value == "viridis"
    assert channel_label(-1) == "offset −1 (slice z−1)" and channel_label(0) == "offset 0 (slice z)"
    assert prediction_colormap("#D55E00") == "red" and prediction_colormap("#0072B2") == "blue"


def test_the_summary_pdf_prints_every_value_inside_the_page_without_overlaps(small_analysis):
    """Every cell of the statistics table (AI with its CI, p, ...), every input hash and the full parameter
    list are printed, and no word crosses the page edge or another word (pdfplumber's word boxes)."""
    from explorer.reporting.figures.tables import format_table, stats_table
    from explorer.reporting.summary_pdf import summary_pdf
    from tests.pdfcheck import pdf_problems

    a = small_analysis
    parameters = {
        **a.spec.record(),
        "checkpoints": list(a.models),
        "volume": a.volume.source,
        "a_long_parameter_list": [f"item{i}" for i in range(60)],
    }
    pdf = summary_pdf(a, {}, parameters=parameters)
    table = format_table(stats_table(a.summary))
    assert {"AI [95% CI]", "p"} <= set(table.columns)
    expected = [v for v in table.drop(columns="model").to_numpy().ravel() if isinstance(v, str)]
    expected += [
        a.volume.sha256,
        *(e["checkpoint_sha256"] for e in a.summary["models"].values()),
        *a.models,
        "parameter a_long_parameter_list",
        ", ".join(parameters["a_long_parameter_list"]),
    ]
    assert pdf_problems(pdf, expected) == []


def test_the_pdf_check_finds_a_missing_value_and_a_word_off_the_page():
    """The checker itself fails when it should: a value not printed, text past the right edge, two words on
    top of each other."""
    from reportlab.pdfgen import canvas

    from tests.pdfcheck import pdf_problems

    buffer = io.BytesIO()
    page = canvas.Canvas(buffer, pagesize=(200, 200))
    page.drawString(150, 100, "overflowing-the-right-edge")
    page.drawString(20, 50, "first")
    page.drawString(22, 50, "second")
    page.save()
    problems = pdf_problems(buffer.getvalue(), ["first", "0.123 [0.1, 0.2]"])
    assert any("crosses the page edge" in p for p in problems)
    assert any("overlaps" in p for p in problems)
    assert any("'0.123' missing" in p for p in problems)


def test_the_step_is_the_checkpoint_named():
    """While the first checkpoint finishes (fraction at 1/n) the status still says "Checkpoint 1"."""
    job = jobs.Job(key=("k",), steps=3, names=("a", "b", "c"))
    job._progress(0.1, "a: batch 1 of 2")
    job._progress(1 / 3, "a: done")
    assert job.step == 1 and "Checkpoint 1 of 3 — a: done" in job.status()
    job._progress(0.7, "c: batch 1 of 2")
    assert job.step == 3


def _sidebar_page():
    import streamlit as st

    from explorer.app import sidebar, warm

    settings = sidebar.show()
    st.session_state["identity"] = warm.identity(settings.study, settings.spec)
    st.session_state["checkpoints"] = [c.sha256 for c in settings.checkpoints]


def test_the_server_warm_up_analyses_what_a_first_visit_asks_for():
    """``explorer app`` warms exactly the sidebar's first-visit inputs (else the first visitor computes anyway)."""
    from streamlit.testing.v1 import AppTest

    from explorer.app import warm

    at = AppTest.from_function(_sidebar_page, default_timeout=120).run()
    assert not at.exception, at.exception
    study, checkpoints, spec = warm.first_visit()
    assert at.session_state["identity"] == warm.identity(study, spec)
    assert at.session_state["checkpoints"] == [c.sha256 for c in checkpoints]
    # the zoo's chips say strategy and seed (not the shared "unet-mobilenet_v2-…" prefix), none twice
    chips = at.multiselect(key="zoo_choice").options
    assert len(set(chips)) == len(chips) and "imagenet, seed 0" in chips and "imagenet-zflip, seed 0" in chips
    # the method and target boxes fit the sidebar (the descriptions are in their help)
    assert max(map(len, at.selectbox(key="method").options + at.selectbox(key="target").options)) <= 32


def test_a_job_for_the_inputs_being_warmed_waits_and_reads_them_from_the_cache(sample_volume_path, monkeypatch):
    """``explorer app``'s warm-up and a first visitor's job ask for the same results: the job waits for the
    warm-up and finds them in the cache instead of computing them alongside it."""
    from explorer.app import warm
    from explorer.study import Study

    monkeypatch.setattr(warm, "_ident", None)
    monkeypatch.setattr(warm, "_done", {})
    volume = load_volume(sample_volume_path)
    study = Study(replace(volume, data=volume.data[:, :, 30:36], sha256=volume.sha256 + "-warm-z30-36"))
    zoo, spec = [load_checkpoint(list_zoo()[0])], RunSpec(zflip=False)
    worker = warm.start(lambda: (study, zoo, spec))
    job = _wait(jobs.start(("k",), study, zoo, spec))
    worker.join(60)
    assert job.error is None and job.cached == {zoo[0].name}
