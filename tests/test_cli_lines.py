"""The CLI's stderr on bad input is exactly one line: bad environment values, newlines in names, hub ids; and the
parser and bad input are answered without importing torch (the registries' names come from explorer.choices)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from explorer.cli import main
from explorer.config import REPO_ROOT, SAMPLE_DIR
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


def test_the_light_names_equal_the_registries():
    """explorer.choices (what the parser offers without importing torch) names exactly the registries' keys, in
    their order, with their descriptions; every method's defaults build a spec (explorer.cli._plain_analysis)."""
    from explorer import choices
    from explorer.attribution.methods import DEFAULT_METHOD, METHODS, TARGETS
    from explorer.cohort import EXECUTORS
    from explorer.cohort.summary import DEFAULT_MARGIN
    from explorer.debias import MODES, VARIANTS
    from explorer.device import DEVICE_CHOICES, PRECISIONS
    from explorer.io.normalise import NORMALISATIONS
    from explorer.io.volume import AXES
    from explorer.models.build import ARCHS
    from explorer.models.strategies import STRATEGIES
    from explorer.reporting.export import PRESETS
    from explorer.spec import RunSpec
    from explorer.training.losses import LOSSES
    from explorer.validation.planted import REGIMES
    from explorer.validation.spec import DEFAULT_METHODS, DEFAULT_STRATEGIES

    names = {
        "DEVICE_CHOICES": DEVICE_CHOICES,
        "PRECISIONS": PRECISIONS,
        "NORMALISATIONS": NORMALISATIONS,
        "AXES": AXES,
        "ARCHS": ARCHS,
        "STRATEGIES": STRATEGIES,
        "LOSSES": LOSSES,
        "PRESETS": PRESETS,
        "EXECUTORS": EXECUTORS,
        "REGIMES": REGIMES,
        "VALIDATION_METHODS": DEFAULT_METHODS,
        "VALIDATION_STRATEGIES": DEFAULT_STRATEGIES,
    }
    for attribute, registry in names.items():
        assert getattr(choices, attribute) == tuple(registry), attribute
    assert choices.METHODS == {k: m.description for k, m in METHODS.items()}
    assert all(k == m.name for k, m in METHODS.items())
    assert choices.TARGETS == {k: t.description for k, t in TARGETS.items()}
    assert (choices.DEBIAS_MODES, choices.DEBIAS_VARIANTS) == (MODES, VARIANTS)
    assert (choices.DEFAULT_METHOD, choices.DEFAULT_MARGIN) == (DEFAULT_METHOD, DEFAULT_MARGIN)
    for method in METHODS:
        RunSpec(method=method)  # no --param: the defaults are never refused


def test_help_and_bad_input_import_no_torch(tmp_path: Path):
    """A fresh interpreter: building the parser, --help, a misspelt choice, a missing volume and a file that is
    not a volume are all answered (exit 0 or 2, one stderr line) without importing torch, smp or timm."""
    garbage = tmp_path / "scan.nii.gz"
    garbage.write_bytes(b"not a volume at all, but long enough to be looked at" * 10)
    script = f"""
import contextlib, io, json, sys
from explorer.cli import build_parser, main
build_parser()
codes, errors = [], []
for argv in (
    ["--help"],
    ["analyze", "v.nii.gz", "--checkpoint", "c", "--method", "nope"],
    ["analyze", {str(tmp_path / "missing.nii.gz")!r}, "--checkpoint", "c", "--out", {str(tmp_path / "o1")!r}],
    ["analyze", {str(garbage)!r}, "--checkpoint", "c", "--out", {str(tmp_path / "o2")!r}],
    ["train", "--volume", "v", "--strategy", "nope", "--out", "o"],
):
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        codes.append(main(argv))
    errors.append(err.getvalue())
heavy = ("torch", "segmentation_models_pytorch", "timm", "torchvision", "captum", "ray")
print(json.dumps({{"codes": codes, "errors": errors, "heavy": sorted(set(heavy) & set(sys.modules))}}))
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    result = json.loads(done.stdout)
    assert result["codes"] == [0, 2, 2, 2, 2], result
    assert result["heavy"] == [], result
    assert [e.count("\n") for e in result["errors"]] == [0, 1, 1, 1, 1], result["errors"]
    assert "unknown attribution method 'nope'" in result["errors"][1]
    assert "missing.nii.gz: no such file" in result["errors"][2]
    assert result["errors"][3].startswith("explorer analyze: error: scan.nii.gz: not a NIfTI or TIFF file")
    assert "unknown strategy 'nope'" in result["errors"][4]
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()
