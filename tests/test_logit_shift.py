"""Logit histograms and the train → held-out logit shift: known counts, and the split read from metadata."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from explorer.config import MODELS_DIR
from explorer.diagnostics.logits import GROUPS, logit_histograms, logit_summary, split_from_meta
from explorer.io.volume import load_mask, load_volume
from explorer.models.checkpoints import CheckpointMeta, load_checkpoint
from explorer.training.train import split_slices


@pytest.fixture()
def toy() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """4 slices of 2×2: mask = left column; logits +3 on slices 0-1 foreground, +1 on slices 2-3."""
    mask = np.zeros((4, 2, 2), dtype=bool)
    mask[:, :, 0] = True
    logits = np.full((4, 2, 2), -2.0, dtype=np.float32)
    logits[:2, :, 0] = 3.0
    logits[2:, :, 0] = 1.0
    logits[3, 0, 0] = -1.0  # one false negative
    logits[0, 0, 1] = 0.5  # one false positive
    return logits, logits > 0, mask


def test_histogram_counts_per_group(toy) -> None:
    logits, pred, mask = toy
    edges, counts = logit_histograms(logits, pred, mask, (np.array([0, 1]), np.array([2, 3])), bins=10)
    got = dict(zip(GROUPS, counts.sum(axis=1), strict=False))
    assert got == {
        "foreground": 8,
        "background": 8,
        "tp": 7,
        "fn": 1,
        "fp": 1,
        "foreground_train": 4,
        "foreground_heldout": 4,
    }
    assert edges[0] == -2.0 and edges[-1] == 3.0


def test_without_mask_or_split_those_groups_are_empty(toy) -> None:
    logits, pred, _ = toy
    _, counts = logit_histograms(logits, pred, None, None)
    got = dict(zip(GROUPS, counts.sum(axis=1), strict=False))
    assert got["foreground"] == int(pred.sum()) and got["tp"] == got["fn"] == got["foreground_heldout"] == 0


def test_shift_is_heldout_minus_training_foreground_mean(toy) -> None:
    logits, pred, mask = toy
    out = logit_summary(logits, pred, mask, (np.array([0, 1]), np.array([2, 3])))
    assert out["shift"]["train_mean"] == pytest.approx(3.0)
    assert out["shift"]["heldout_mean"] == pytest.approx((1 + 1 + 1 - 1) / 4)
    assert out["shift"]["shift"] == pytest.approx(0.5 - 3.0)
    assert out["shift"]["train_fn_rate"] == 0.0 and out["shift"]["heldout_fn_rate"] == pytest.approx(0.25)
    assert out["mean"]["fn"] == pytest.approx(-1.0)
    # background: -2 everywhere except the false positive (+0.5) on training slice 0
    assert out["background_shift"]["train_mean"] == pytest.approx((-2 * 3 + 0.5) / 4)
    assert out["background_shift"]["shift"] == pytest.approx(-2.0 - (-5.5 / 4))
    skipped = logit_summary(logits, pred, mask, "no split")
    assert skipped["shift"] is None and skipped["shift_skipped"] == "no split"


def test_without_a_mask_the_shift_is_skipped_not_computed_on_the_prediction(toy) -> None:
    logits, pred, _ = toy
    out = logit_summary(logits, pred, None, (np.array([0, 1]), np.array([2, 3])))
    assert out["shift"] is None and out["background_shift"] is None
    assert "no ground-truth mask" in out["shift_skipped"] and "false negatives" in out["shift_skipped"]


def _single_volume_meta(volume, labels) -> CheckpointMeta:
    """Metadata as ``explorer train --volume`` records it (the shipped zoo is trained on whole subjects)."""
    split = split_slices(labels, (-1, 0, 1), 0.2)
    return CheckpointMeta(
        arch="Unet",
        encoder="mobilenet_v2",
        classes=1,
        offsets=(-1, 0, 1),
        strategy="imagenet",
        recipe={"val_fraction": 0.2},
        training={
            "volume": {"sha256": volume.sha256},
            "split": {
                "train_slices": len(split.train),
                "gap": split.gap,
                "val_slices": [int(split.val[0]), int(split.val[-1])],
            },
        },
    )


def test_split_from_metadata_matches_the_training_rule(sample_volume_path, sample_mask_path) -> None:
    volume = load_volume(sample_volume_path)
    labels = load_mask(sample_mask_path, volume).stack("axial")
    meta = _single_volume_meta(volume, labels)
    train, heldout = split_from_meta(meta, volume.sha256, "axial", labels.shape[0])
    expected = split_slices(labels, meta.offsets, meta.recipe["val_fraction"])
    np.testing.assert_array_equal(train, expected.train)
    np.testing.assert_array_equal(heldout, expected.val)


def test_split_is_skipped_with_a_reason(sample_volume_path, sample_mask_path) -> None:
    volume = load_volume(sample_volume_path)
    meta = _single_volume_meta(volume, load_mask(sample_mask_path, volume).stack("axial"))
    sha = volume.sha256
    assert "another volume" in split_from_meta(meta, "0" * 64, "axial", 80)
    assert "coronal" in split_from_meta(meta, sha, "coronal", 80)
    bare = replace(meta, training={})
    assert "no training/held-out split" in split_from_meta(bare, sha, "axial", 80)
    shipped = load_checkpoint(MODELS_DIR / "unet-mobilenet_v2-imagenet-s0.safetensors").meta
    assert "whole subjects" in split_from_meta(shipped, sha, "axial", 80)
