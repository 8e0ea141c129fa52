"""The app through ``streamlit.testing.v1.AppTest``: sample, analyse, toggle, slice, export, uploads, errors."""

from __future__ import annotations

import gzip
import json
import time

import nibabel as nib
import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from explorer.checkpoints import list_zoo
from explorer.config import REPO_ROOT

APP = str(REPO_ROOT / "explorer" / "app" / "main.py")
TIMEOUT = 600

pytestmark = pytest.mark.slow


def _trace_names(at: AppTest, index: int = 0) -> set[str]:
    spec = json.loads(at.get("plotly_chart")[index].proto.spec)
    return {t.get("legendgroup") or t.get("name") for t in spec["data"]}


def _fresh() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.fixture(scope="module")
def app_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("app-cache")


@pytest.fixture(autouse=True)
def _shared_cache(app_cache, monkeypatch):
    """The app tests share one result cache: only the first session computes the sample analysis."""
    monkeypatch.setenv("EXPLORER_CACHE_DIR", str(app_cache))


@pytest.fixture(scope="module")
def analysed(app_cache) -> AppTest:
    """One app session that analysed the sample with the whole zoo on its first run (no click)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("EXPLORER_CACHE_DIR", str(app_cache))
    try:
        yield _fresh()
    finally:
        mp.undo()


def test_first_visit_shows_results_for_the_whole_zoo(analysed):
    at = analysed
    zoo = [p.stem for p in list_zoo()]
    assert len(zoo) >= 2
    assert at.multiselect(key="shown_models").value == zoo
    assert at.radio(key="view").options == ["Distributions", "Along the axis", "Slice viewer", "First conv",
                                            "Statistics", "Diagnostics", "Export"]
    assert not at.error
    assert set(zoo) <= _trace_names(at)  # the distribution figure has every checkpoint


def test_toggling_checkpoints_never_recomputes(analysed):
    at = analysed
    before = at.session_state["analysis"]
    keep = at.multiselect(key="shown_models").value[:2]
    start = time.perf_counter()
    at.multiselect(key="shown_models").set_value(keep).run()
    elapsed = time.perf_counter() - start
    assert not at.exception
    assert at.session_state["analysis"] is before
    extra = _trace_names(at) - set(keep) - {None, "equal share", "equal share (1/3)"}
    assert _trace_names(at) >= set(keep) and not extra
    print(f"toggle rerun took {elapsed * 1000:.0f} ms")


def test_slice_slider_reruns_the_viewer(analysed):
    at = analysed
    at.radio(key="view").set_value("Slice viewer").run()
    at.slider(key="viewer_slice").set_value(10).run()
    assert not at.exception
    assert at.slider(key="viewer_slice").value == 10
    assert any("Slice 10" in json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart"))


def _download_keys(at: AppTest) -> set[str]:
    return {b.proto.id for b in at.get("download_button")}


def test_export_buttons_are_offered(analysed):
    at = analysed
    at.radio(key="view").set_value("Distributions").run()
    assert any("dl-distribution-html" in k for k in _download_keys(at))
    at.radio(key="view").set_value("Export").run()
    assert not at.exception
    assert any("dl-report" in k for k in _download_keys(at))
    at.radio(key="view").set_value("Statistics").run()
    assert any("dl-statistics-csv" in k for k in _download_keys(at))


def _nifti_upload(sample_volume_path) -> bytes:
    img = nib.load(sample_volume_path)
    crop = img.slicer[:, :, 30:46]
    return gzip.compress(nib.Nifti1Image(np.asanyarray(crop.dataobj).astype(np.float32), crop.affine).to_bytes())


def test_upload_a_nifti_and_a_checkpoint(sample_volume_path):
    at = _fresh()
    at.radio(key="volume_source").set_value("Upload a scan").run()
    at.file_uploader(key="volume_upload").set_value(("scan.nii.gz", _nifti_upload(sample_volume_path),
                                                     "application/gzip")).run()
    zoo = list_zoo()
    at.multiselect(key="zoo_choice").set_value([zoo[0].stem]).run()
    at.file_uploader(key="checkpoint_upload").set_value(
        [("uploaded.safetensors", zoo[1].read_bytes(), "application/octet-stream")]).run()
    assert not at.error, [e.value for e in at.error]
    at.button(key="analyse").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert set(at.multiselect(key="shown_models").value) == {zoo[0].stem, "uploaded"}
    assert any("Analysed: scan.nii.gz" in c.value for c in at.caption)


@pytest.mark.parametrize(("payload", "message"), [
    (b"", "file is empty"),
    (b"this is not a scan" * 30, "not a NIfTI or TIFF file"),
    (gzip.compress(bytes(range(256)) * 40)[:200], "gzip data is truncated"),
], ids=["empty", "not-a-scan", "truncated-gzip"])
def test_a_bad_upload_shows_a_message_not_a_traceback(payload, message):
    at = _fresh()
    at.radio(key="volume_source").set_value("Upload a scan").run()
    at.file_uploader(key="volume_upload").set_value(("bad.nii.gz", payload, "application/gzip")).run()
    assert not at.exception
    assert any(message in e.value and "bad.nii.gz" in e.value for e in at.error), [e.value for e in at.error]


def test_a_bad_checkpoint_upload_shows_a_message():
    at = _fresh()
    at.file_uploader(key="checkpoint_upload").set_value(
        [("broken.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}", "application/octet-stream")]).run()
    assert not at.exception
    assert any("broken.safetensors" in e.value for e in at.error), [e.value for e in at.error]
