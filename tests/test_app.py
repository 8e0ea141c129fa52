"""The app through ``streamlit.testing.v1.AppTest``: sample, analyse, toggle, slice, export, uploads, errors."""

from __future__ import annotations

import gzip
import json
import time

import nibabel as nib
import numpy as np
import pytest
from apptools import settle, upload_scan
from streamlit.testing.v1 import AppTest

from explorer.app.sidebar import chip_labels
from explorer.config import REPO_ROOT
from explorer.models.checkpoints import list_zoo

APP = str(REPO_ROOT / "explorer" / "app" / "main.py")
TIMEOUT = 600

pytestmark = pytest.mark.slow


def _trace_names(at: AppTest, index: int = 0) -> set[str]:
    spec = json.loads(at.get("plotly_chart")[index].proto.spec)
    return {t.get("legendgroup") or t.get("name") for t in spec["data"]}


def _chart_models(at: AppTest) -> set[str]:
    """The checkpoints the first chart draws (not its reference lines)."""
    return {n for n in _trace_names(at) if n and not n.startswith("equal share")}


def _fresh(zoo_choice: list[str] | None = None) -> AppTest:
    """A new session on its first visit; ``zoo_choice``: with these zoo checkpoints instead of the whole zoo (the
    warm cache holds each one's first-visit result, so the visit is read back either way)."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    if zoo_choice is not None:
        at.session_state["zoo_choice"] = zoo_choice
    at.run()
    assert not at.exception, at.exception
    return settle(at)


def _labels(names: list[str]) -> list[str]:
    """The picker's chips for these checkpoints: strategy and seed (the full names are its values)."""
    return list(chip_labels(names).values())


def _shown(at: AppTest):
    """The "Show checkpoints" widget of the current analysis."""
    return at.multiselect(key=f"shown_models-{at.session_state['analysis_id']}")


@pytest.fixture(autouse=True)
def _shared_cache(warm_cache, monkeypatch):
    """The app tests share the session's warm cache: the first visit's analysis is computed once per test run."""
    warm_cache.use(monkeypatch)


@pytest.fixture(scope="module")
def analysed(warm_cache) -> AppTest:
    """One app session showing the sample with the whole zoo on its first run (no click)."""
    with pytest.MonkeyPatch.context() as mp:
        warm_cache.use(mp)
        yield _fresh()


def test_first_visit_shows_results_for_the_whole_zoo(analysed):
    at = analysed
    zoo = [p.stem for p in list_zoo()]
    assert len(zoo) >= 2
    assert _shown(at).value == zoo
    assert at.radio(key="view").options == [
        "Distributions",
        "Along the axis",
        "Slice viewer",
        "3D viewer",
        "First conv",
        "Statistics",
        "Diagnostics",
        "Export",
        "Debias",
    ]
    assert not at.error
    assert set(zoo) <= _trace_names(at)  # the distribution figure has every checkpoint


def test_toggling_checkpoints_never_recomputes(analysed):
    at = analysed
    before = at.session_state["analysis"]
    keep = _shown(at).value[:2]
    start = time.perf_counter()
    _shown(at).set_value(keep).run()
    elapsed = time.perf_counter() - start
    assert not at.exception
    assert at.session_state["analysis"] is before
    assert _chart_models(at) == set(keep)
    print(f"toggle rerun took {elapsed * 1000:.0f} ms")


def test_slice_slider_reruns_the_viewer(analysed):
    at = analysed
    at.radio(key="view").set_value("Slice viewer").run()
    at.slider(key="viewer_slice").set_value(10).run()
    assert not at.exception
    assert at.slider(key="viewer_slice").value == 10
    assert any("Slice 10" in json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart"))


def test_one_click_between_the_validated_measure_and_saliency():
    """The default is the validated method; the Distributions view switches to the paper's saliency and back in
    one click each, on the same checkpoints (the way back comes from the cache). Two checkpoints: the saliency
    run is computed, so the whole zoo would cost two and a half times as much for the same clicks."""
    at = _fresh([p.stem for p in list_zoo()[:2]])
    at.radio(key="view").set_value("Distributions").run()
    assert at.session_state["analysis"].spec.method == "occlusion"
    models = list(at.session_state["analysis"].models)
    at.button(key="switch_measure").click().run()
    settle(at)
    assert at.session_state["analysis"].spec.method == "saliency"
    assert at.selectbox(key="method").value == "saliency"
    assert list(at.session_state["analysis"].models) == models and len(models) == 2
    assert any("first convolution's per-channel weighting" in c.value for c in at.caption)
    at.button(key="switch_measure").click().run()
    settle(at)
    assert at.session_state["analysis"].spec.method == "occlusion"
    assert at.session_state["run_note"][1].startswith("Found in the cache")


def _download_keys(at: AppTest) -> set[str]:
    return {b.proto.id for b in at.get("download_button")}


def test_export_buttons_are_offered(analysed):
    at = analysed
    at.radio(key="view").set_value("Distributions").run()
    assert any("dl-share_distribution_box-html" in k for k in _download_keys(at))
    at.radio(key="view").set_value("Export").run()
    assert not at.exception
    assert any("dl-report" in k for k in _download_keys(at))
    at.radio(key="view").set_value("Statistics").run()
    assert not at.exception
    assert any("dl-statistics-csv" in k for k in _download_keys(at))
    assert any("dl-edge_sensitivity-html" in k for k in _download_keys(at))  # the edge-sensitivity figure
    frames = [d.value for d in at.dataframe]  # narrow tables by short label; the test is named once, not per row
    assert len(frames) >= 5 and all("model" not in f and "test" not in f for f in frames)
    assert all(len(f.columns) <= 9 for f in frames) and frames[-1]["statistic"].str.len().min() > 0
    assert any("test: block sign-flip test" in c.value for c in at.caption)


def _nifti_upload(path, dtype: type | None = np.float32) -> bytes:
    """``path`` cut to axial slices 30:46, gzipped NIfTI bytes (as ``dtype``; None keeps the file's)."""
    crop = nib.load(path).slicer[:, :, 30:46]
    data = np.asanyarray(crop.dataobj)
    return gzip.compress(nib.Nifti1Image(data.astype(dtype) if dtype else data, crop.affine).to_bytes())


def _upload_scan(at: AppTest, sample_volume_path) -> None:
    """Switch the session to an uploaded scan: the sample's 16 slices 30:46 in float32, as ``scan.nii.gz``."""
    upload_scan(at, ("scan.nii.gz", _nifti_upload(sample_volume_path), "application/gzip"))


def test_upload_a_nifti_and_a_checkpoint(sample_volume_path):
    at = _fresh()
    _upload_scan(at, sample_volume_path)
    zoo = list_zoo()
    at.multiselect(key="zoo_choice").set_value([zoo[0].stem]).run()
    at.file_uploader(key="checkpoint_upload").set_value(
        [("uploaded.safetensors", zoo[1].read_bytes(), "application/octet-stream")]
    ).run()
    assert not at.error, [e.value for e in at.error]
    added = [c.value for c in at.sidebar.caption if "added" in c.value]
    assert added == ["**uploaded** added: Unet / mobilenet_v2, strategy imagenet-symmetric, offsets −1, 0, +1."]
    at.button(key="analyse").click().run()
    settle(at)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert set(_shown(at).value) == {zoo[0].stem, "uploaded"}
    assert any("Analysed: scan.nii.gz" in c.value for c in at.caption)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "file is empty"),
        (b"this is not a scan" * 30, "not a NIfTI or TIFF file"),
        (gzip.compress(bytes(range(256)) * 40)[:200], "gzip data is truncated"),
    ],
    ids=["empty", "not-a-scan", "truncated-gzip"],
)
def test_a_bad_upload_shows_a_message_not_a_traceback(payload, message):
    at = _fresh()
    upload_scan(at, ("bad.nii.gz", payload, "application/gzip"))
    assert not at.exception
    assert any(message in e.value and "bad.nii.gz" in e.value for e in at.error), [e.value for e in at.error]


def test_a_bad_checkpoint_upload_shows_a_message():
    at = _fresh()
    at.file_uploader(key="checkpoint_upload").set_value(
        [("broken.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}", "application/octet-stream")]
    ).run()
    assert not at.exception
    assert any("broken.safetensors" in e.value for e in at.error), [e.value for e in at.error]


# ------------------------------------------------------------------------------------- state that never lies


def test_first_visit_after_a_reload_is_a_cache_hit(analysed):
    at = _fresh()  # a new session (a page reload) with the same inputs as `analysed`
    assert any("Found in the cache" in s.value for s in at.success), [s.value for s in at.success]


def test_adding_a_checkpoint_and_removing_a_tag(sample_volume_path):
    at = _fresh()
    zoo = [p.stem for p in list_zoo()]
    at.multiselect(key="zoo_choice").set_value(zoo[:2]).run()
    at.button(key="analyse").click().run()
    settle(at)
    assert _shown(at).value == zoo[:2] and _shown(at).options == _labels(zoo[:2])
    at.multiselect(key="zoo_choice").set_value(zoo[:3]).run()  # add a checkpoint, analyse again
    at.button(key="analyse").click().run()
    settle(at)
    assert _shown(at).options == _labels(zoo[:3]) and _shown(at).value == zoo[:3]
    assert _chart_models(at) == set(zoo[:3])
    _shown(at).unselect(zoo[1]).run()  # removing one tag keeps exactly the others
    assert _shown(at).value == [zoo[0], zoo[2]]
    assert _chart_models(at) == {zoo[0], zoo[2]}


def test_a_rejected_mask_blocks_analyse(sample_volume_path):
    at = _fresh()
    _upload_scan(at, sample_volume_path)
    wrong_grid = gzip.compress(nib.Nifti1Image(np.ones((5, 5, 5), np.uint8), np.eye(4)).to_bytes())
    at.file_uploader(key="mask_upload").set_value(("mask.nii.gz", wrong_grid, "application/gzip")).run()
    assert not at.exception
    assert at.button(key="analyse").disabled
    assert any("mask.nii.gz was rejected" in w.value for w in at.warning), [w.value for w in at.warning]
    # the results on the page are the sample's: not "Found in the cache" for the rejected inputs
    assert not any("Found in the cache" in m.value for m in at.success)
    assert any("Showing the previous results" in m.value for m in at.info), [m.value for m in at.info]


def test_an_accepted_mask_says_what_was_read(sample_volume_path, sample_mask_path):
    """The server's own line for a mask it read (the uploader's file name is the browser's), with its count."""
    at = _fresh()
    _upload_scan(at, sample_volume_path)
    mask = _nifti_upload(sample_mask_path, dtype=None)  # the scan's grid
    at.file_uploader(key="mask_upload").set_value(("gm.nii.gz", mask, "application/gzip")).run()
    assert not at.exception
    foreground = np.count_nonzero(np.asanyarray(nib.load(sample_mask_path).dataobj)[:, :, 30:46])
    assert f"gm.nii.gz: mask with {foreground:,} foreground voxels" in [c.value for c in at.caption]
    assert not at.button(key="analyse").disabled


def test_the_same_files_uploaded_twice_keep_checkpoints_and_analyse(sample_volume_path):
    """Twin uploads (two scans, two checkpoints, the checkpoints a twin of a chosen zoo one) count once. Two zoo
    checkpoints, zoo[1] the uploads' twin and zoo[0] not: each checkpoint is analysed on the upload."""
    zoo = list_zoo()
    chosen = [p.stem for p in zoo[:2]]
    at = _fresh(chosen)
    scan = _nifti_upload(sample_volume_path)
    upload_scan(at, [("scan.nii.gz", scan, "application/gzip"), ("scan.nii.gz", scan, "application/gzip")])
    weights = zoo[1].read_bytes()
    at.file_uploader(key="checkpoint_upload").set_value(
        [
            ("mine.safetensors", weights, "application/octet-stream"),
            ("mine.safetensors", weights, "application/octet-stream"),
        ]
    ).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert not at.button(key="analyse").disabled
    assert any("counted once" in c.value for c in at.sidebar.caption)
    at.button(key="analyse").click().run()
    settle(at)
    assert any("Analysed: scan.nii.gz" in c.value for c in at.caption)
    assert len(_shown(at).options) == len(chosen)  # the chosen zoo; the twins of zoo[1] counted once


def test_clicking_views_during_a_run_keeps_the_run(sample_volume_path):
    """Views clicked while an analysis runs leave it running and its result arrives. Two checkpoints (a run of
    seconds, computed: the method is not the first visit's) rather than the whole zoo."""
    at = _fresh([p.stem for p in list_zoo()[:2]])
    previous = at.session_state["analysis"]
    at.selectbox(key="method").set_value("input_x_gradient").run()
    at.button(key="analyse").click().run()
    assert "job" in at.session_state
    for view in ["Along the axis", "Statistics", "Distributions"]:
        at.radio(key="view").set_value(view).run()  # the previous results stay on screen meanwhile
        assert not at.exception
    settle(at)
    assert at.session_state["analysis"] is not previous
    assert at.session_state["analysis"].spec.method == "input_x_gradient"
    assert any("input_x_gradient" in c.value for c in at.caption)


def test_a_state_dict_form_describes_the_zoo_architecture(sample_volume_path):
    import io

    import torch

    from explorer.models.checkpoints import load_checkpoint

    zoo = list_zoo()
    buffer = io.BytesIO()
    torch.save(dict(load_checkpoint(zoo[0]).state_dict), buffer)
    at = _fresh()
    # analysed alone on the 16-slice upload (a new file: computed, not in the cache), not beside the zoo on the sample
    at.multiselect(key="zoo_choice").set_value([]).run()
    _upload_scan(at, sample_volume_path)
    at.file_uploader(key="checkpoint_upload").set_value(
        [("plain.pt", buffer.getvalue(), "application/octet-stream")]
    ).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "decoder_channels" in at.text_input(key="kwargs-plain.pt").value
    assert at.selectbox(key="strategy-plain.pt").options[0]  # from the registry, not free text
    at.button(key="analyse").click().run()
    settle(at)
    assert "plain" in _shown(at).value and any("Analysed: scan.nii.gz" in c.value for c in at.caption)


# ------------------------------------------------------------------------------------- views and explanations


def test_every_view_has_a_how_to_read_text(analysed):
    at = analysed
    for view in at.radio(key="view").options:
        at.radio(key="view").set_value(view).run()
        assert not at.exception, (view, at.exception)
        assert any(e.label == "How to read this" for e in at.expander), view
    at.radio(key="view").set_value("Distributions").run()
    text = " ".join(m.value for m in at.markdown)
    assert "by construction" in text and "Cohort" in text and "z-flip" in text


def test_slice_viewer_options(analysed):
    at = analysed
    at.radio(key="view").set_value("Slice viewer").run()
    at.checkbox(key="viewer_per_row").check().run()
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    tops = {
        t["zmax"]
        for t in spec["data"]
        if t["type"] == "heatmap"
        and "zmax" in t
        and t.get("name") not in {"image", "anatomy"}
        and not t.get("name", "").startswith("prediction")
    }
    assert len(tops) > 1  # one scale per row
    letters = {a["text"] for a in spec["layout"]["annotations"]}
    assert {"<b>L</b>", "<b>R</b>", "<b>A</b>", "<b>P</b>"} <= letters
