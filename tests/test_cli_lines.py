"""The CLI's stderr on bad input is exactly one line: bad environment values, newlines in names, hub ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from explorer.cli import main
from explorer.config import SAMPLE_DIR
from explorer.models.checkpoints import list_zoo

VOLUME = str(SAMPLE_DIR / "mni152_t1_2mm.nii.gz")


def _one_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("EXPLORER_MAX_VOXELS", "lots"),
        ("EXPLORER_MAX_UPLOAD_MB", "-1"),
        ("EXPLORER_MAX_RUN_MINUTES", "inf"),
        ("EXPLORER_MAX_SLICES", "2.5"),
    ],
)
def test_invalid_environment_values_are_one_line(variable, value, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv(variable, value)
    argv = ["analyze", VOLUME, "--checkpoint", str(list_zoo()[0]), "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    assert f"{variable}: environment variable is '{value}'" in _one_line(capsys)
    assert not (tmp_path / "out").exists()


def test_a_newline_in_a_file_name_stays_one_line(tmp_path: Path, capsys):
    bad = tmp_path / "two\nlines.nii.gz"
    bad.write_bytes(b"not a volume at all, but long enough to be looked at" * 10)
    assert main(["analyze", str(bad), "--checkpoint", str(list_zoo()[0]), "--out", str(tmp_path / "o")]) == 2
    assert "two\\nlines.nii.gz" in _one_line(capsys)


def test_an_uncached_hub_id_offline_is_one_line(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert main(["analyze", VOLUME, "--checkpoint", "hf:alice/absent", "--out", str(tmp_path / "o")]) == 2
    line = _one_line(capsys)
    assert "hf:alice/absent: not in the local Hugging Face cache" in line and "hf download alice/absent" in line
