"""Offset sets other than -1,0,1 end to end, with a checkpoint the trainer itself wrote (``-2,0,2``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import explorer  # noqa: F401  (before torchvision / smp)
from explorer.analysis import analyze
from explorer.attribution.windows import validate_offsets
from explorer.cli import main
from explorer.errors import InputError
from explorer.models.checkpoints import load_checkpoint
from explorer.spec import RunSpec
from explorer.stats.scan import asymmetry_index, model_summary
from explorer.training.train import Recipe, TrainSpec, train_checkpoint


@pytest.fixture(scope="module")
def crop(sample_crop) -> tuple[Path, Path]:
    """32 axial slices of the sample and its mask: room for the -2,0,2 split (a 6-slice held-out block, 5-slice
    gaps, 16 training slices) at a third of the whole volume's training and analysis time."""
    return sample_crop(28, 60)


@pytest.fixture(scope="module")
def gapped(tmp_path_factory: pytest.TempPathFactory, crop: tuple[Path, Path]) -> Path:
    """One epoch of training with offsets -2,0,2, as ``explorer train --offsets -2,0,2`` runs it."""
    out = tmp_path_factory.mktemp("train") / "gapped.safetensors"
    train_checkpoint(
        *crop,
        out,
        TrainSpec(
            strategy="random",
            offsets=["-2", "0", "2"],
            device="cpu",
            arch_kwargs={"decoder_channels": [16, 16, 8, 8, 8]},
            recipe=Recipe(epochs=1, seed=0),
        ),
    )
    return out


def test_stats_pair_minus_k_with_plus_k_when_the_set_skips_one():
    masses = np.array([[3.0, 1.0, 1.0], [2.0, 2.0, 1.0]])  # offsets -2, 0, 2
    expected = np.array([(0.6 - 0.2) / 0.8, (0.4 - 0.2) / 0.6])
    np.testing.assert_allclose(asymmetry_index(masses / masses.sum(1, keepdims=True), (-2, 0, 2)), expected)
    summary = model_summary(masses, (-2, 0, 2))
    assert summary["asymmetry_index"]["mean"] == pytest.approx(expected.mean())
    assert list(summary["asymmetry_by_pair"]) == ["2"]


def test_trainer_written_gapped_checkpoint_is_analysed_end_to_end(gapped, crop, tmp_path):
    """In process and through the CLI (HTML figures only: the offsets, not the static export, are the subject)."""
    ckpt = load_checkpoint(gapped)
    assert ckpt.meta.offsets == (-2, 0, 2)
    volume, mask = crop
    result = analyze(volume, [ckpt], RunSpec(target="all"), mask=mask, cache=False)
    entry = result.summary["models"]["gapped"]
    assert set(entry["mean_share"]) == {"-2", "0", "2"} and entry["asymmetry_index"]["mean"] is not None
    headline, pair = entry["asymmetry_index"], entry["asymmetry_by_pair"]["2"]
    assert {k: headline[k] for k in ("mean", "ci95", "p")} == {k: pair[k] for k in ("mean", "ci95", "p")}
    assert sorted(result.shares["offset"].unique()) == [-2, 0, 2]
    out = tmp_path / "out"
    argv = ["analyze", str(volume), "--checkpoint", str(gapped), "--target", "all", "--formats", "none"]
    assert main([*argv, "--out", str(out)]) == 0
    assert json.loads((out / "summary.json").read_text())["models"]["gapped"]["mean_share"].keys() == {"-2", "0", "2"}


@pytest.mark.parametrize("offsets", [["-1.5", "0", "1.5"], [-1.5, 0, 1.5], [True, 0, -1], ["a", "0", "a"]])
def test_fractional_or_garbage_offsets_are_refused_not_truncated(offsets):
    with pytest.raises(InputError, match="are not integers"):
        validate_offsets(offsets, source="--offsets")


def test_offsets_as_integral_floats_and_strings_are_accepted_and_bounded():
    assert validate_offsets([-2.0, "0", 2]) == (-2, 0, 2)
    with pytest.raises(InputError, match="offsets reach 17; expected offsets within ±16"):
        validate_offsets([-17, 0, 17])
