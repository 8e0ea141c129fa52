"""The Cohort view through ``streamlit.testing.v1.AppTest``: pick the sample manifest, run, show; safe zip upload."""

from __future__ import annotations

import io
import shutil
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from apptools import settle
from streamlit.testing.v1 import AppTest

from explorer.app import jobs
from explorer.app.cohort import extract_zip, find_manifests
from explorer.config import REPO_ROOT, SAMPLE_DIR, Limits
from explorer.errors import InputError

APP = str(REPO_ROOT / "explorer" / "app" / "main.py")


def _cohort_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=600)
    at.session_state["mode"] = "Cohort"  # straight to the Cohort page: no single-volume analysis runs
    at.run()
    assert not at.exception, at.exception
    return at


def _progress_texts(at: AppTest) -> list[str]:
    return [element.proto.text for element in at.get("progress")]


@pytest.fixture()
def cropped_data_root(small_cohort: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data root laid out as ``sample_data/`` (``cohort/manifest.csv``) holding the sample manifest's first two
    rows, sub-01 and sub-02 cropped to 20 axial slices (conftest's ``small_cohort``): the page, the job and the
    results are what the test is about, and a crop's pair costs about a quarter of a full volume's."""
    folder = tmp_path / "cohort"
    folder.mkdir()
    rows = (SAMPLE_DIR / "cohort" / "manifest.csv").read_text().splitlines()[:3]  # header, sub-01, sub-02
    for row in rows[1:]:
        for name in row.split(",")[1:3]:
            shutil.copy(small_cohort.parent / name, folder / name)
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    monkeypatch.setenv("EXPLORER_DATA_ROOT", str(tmp_path))
    return tmp_path


@pytest.mark.slow
def test_cohort_view_runs_the_sample_cohort_in_the_background_and_shows_the_results(
    cropped_data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate, real = threading.Event(), jobs.run_cohort

    def held(entries, checkpoints, spec, *, margin, progress):
        """The real cohort, started only once the test has seen the page return while the job runs."""
        progress(0, len(entries) * len(checkpoints), "waiting")
        assert gate.wait(60)
        return real(entries, checkpoints, spec, margin=margin, progress=progress)

    monkeypatch.setattr(jobs, "run_cohort", held)
    at = _cohort_page()
    assert at.selectbox(key="cohort_manifest").value == "cohort/manifest.csv"
    at.multiselect(key="cohort_checkpoints").set_value(
        ["unet-mobilenet_v2-imagenet-s0", "unet-mobilenet_v2-imagenet-uniform-s0"]
    )
    at.number_input(key="cohort_count").set_value(2)
    at.button(key="cohort_run").click().run()
    # the script returned while the cohort runs: a progress line and Cancel, the Run button disabled
    job = at.session_state["cohort_job"]
    assert job.running and (job.steps, job.unit) == (2, "Volume")
    assert _progress_texts(at) == [job.status()] and job.status().startswith("Volume 1 of 2 — 0 of 4 pairs done")
    assert at.button(key="cohort_run").disabled and at.button(key="cohort_cancel")
    gate.set()
    settle(at)
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    assert not at.get("progress") and not at.button(key="cohort_run").disabled
    assert len(at.get("plotly_chart")) == 3
    groups = at.dataframe[0].value
    assert list(groups["group"]) == ["imagenet", "imagenet-uniform"] and set(groups["volumes"]) == {2}
    assert "mean |value| < 0.05 (magnitude equivalence)" in groups  # the test on per-model |endpoint|, named so
    # the validated default with the reversed windows: the primary endpoint is the channel asymmetry
    assert np.isfinite(groups.set_index("group")["channel_asymmetry"]).all()
    assert at.session_state["cohort"].summary["endpoint"] == "channel_asymmetry"
    assert "2 volume(s) × 2 checkpoint(s)" in " ".join(c.value for c in at.caption)


def test_cancel_stops_the_cohort_and_keeps_the_page_usable(monkeypatch) -> None:
    reports = []

    def endless(entries, checkpoints, spec, *, margin, progress):
        while len(reports) < 10_000:  # a cohort that would run for minutes
            reports.append(len(reports))
            progress(1, 4, "sub-01")
            threading.Event().wait(0.01)
        return None

    monkeypatch.setattr(jobs, "run_cohort", endless)
    at = _cohort_page()
    at.number_input(key="cohort_count").set_value(2)
    at.button(key="cohort_run").click().run()
    assert at.session_state["cohort_job"].running
    at.button(key="cohort_cancel").click().run()
    settle(at)
    assert [w.value for w in at.warning] == ["The cohort run was cancelled: the results shown are the previous ones."]
    assert len(reports) < 10_000 and "cohort" not in at.session_state and not at.error


def test_a_failing_cohort_shows_one_message(monkeypatch) -> None:
    def bad(entries, checkpoints, spec, *, margin, progress):
        raise InputError("manifest.csv", "no volume could be analysed (sub-01: corrupt)", "readable volumes")

    monkeypatch.setattr(jobs, "run_cohort", bad)
    at = _cohort_page()
    at.button(key="cohort_run").click().run()
    settle(at)
    assert [e.value for e in at.error] == [
        "manifest.csv: no volume could be analysed (sub-01: corrupt); expected readable volumes"
    ]
    assert at.session_state["cohort"] is None and not at.exception


def test_manifests_under_the_data_root_are_found() -> None:
    assert SAMPLE_DIR / "cohort" / "manifest.csv" in find_manifests(SAMPLE_DIR)


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_zip_upload_is_extracted_safely(tmp_path: Path) -> None:
    volume = (SAMPLE_DIR / "cohort" / "sub-01_T1w.nii.gz").read_bytes()
    manifest = extract_zip(
        _zip({"study/manifest.csv": b"volume\nsub-01.nii.gz\n", "study/sub-01.nii.gz": volume}), tmp_path / "a"
    )
    assert manifest == (tmp_path / "a" / "study" / "manifest.csv").resolve()
    assert (tmp_path / "a" / "study" / "sub-01.nii.gz").read_bytes() == volume
    with pytest.raises(InputError, match="outside the archive"):
        extract_zip(_zip({"../evil.csv": b"volume\n"}), tmp_path / "b")
    assert not (tmp_path / "evil.csv").exists()
    with pytest.raises(InputError, match="upload limit"):
        extract_zip(_zip({"big.nii": b"\0" * 5000}), tmp_path / "c", Limits(max_bytes=1000))
    with pytest.raises(InputError, match="not a zip"):
        extract_zip(b"plain bytes", tmp_path / "d")
