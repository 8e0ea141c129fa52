"""Sanity check by cascading randomisation: a model-independent "method" is flagged, saliency changes;
the four diagnostics reach ``explorer analyze``'s outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from explorer.attribution.windows import SliceStack
from explorer.cli import main
from explorer.config import MODELS_DIR
from explorer.diagnostics.sanity import cascade_stages, pick_slices, randomised, registry_attribute, sanity_check
from explorer.io.normalise import normalise
from explorer.io.volume import load_volume
from explorer.models.checkpoints import load_checkpoint
from explorer.spec import RunSpec

CKPT = MODELS_DIR / "unet-mobilenet_v2-imagenet-s0.safetensors"


@pytest.fixture(scope="module")
def setup(sample_volume_path):
    ckpt = load_checkpoint(CKPT)
    volume = load_volume(sample_volume_path)
    return ckpt, volume.stack("axial", normalise(volume.data, ckpt.meta.normalisation))


def test_cascade_goes_block_by_block_from_the_head_to_the_first_conv(setup) -> None:
    ckpt, _ = setup
    stages = cascade_stages(ckpt.build_model("cpu"))
    assert list(stages) == [
        "head",
        "decoder.4",
        "decoder.3",
        "decoder.2",
        "decoder.1",
        "decoder.0",
        "encoder.14-18",
        "encoder.7-13",
        "encoder.4-6",
        "encoder.2-3",
        "encoder.1",
        "first_conv",
    ]
    assert stages["head"] == ("segmentation_head",)
    assert stages["decoder.3"][-2:] == ("decoder.blocks.4", "decoder.blocks.3")  # cumulative
    assert stages["first_conv"][-1] == "encoder.features.0" and len(stages["first_conv"]) == 1 + 5 + 19


def test_randomisation_copies_and_resets_only_the_named_parts(setup) -> None:
    ckpt, _ = setup
    model = ckpt.build_model("cpu").eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    copy = randomised(model, cascade_stages(model)["encoder.1"], seed=0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # original untouched
    new = copy.state_dict()
    assert all(torch.equal(before[k], new[k]) for k in before if k.startswith("encoder.features.0."))
    assert not torch.equal(before["encoder.features.1.conv.0.0.weight"], new["encoder.features.1.conv.0.0.weight"])
    assert any(not torch.equal(before[k], new[k]) for k in before if k.startswith("decoder."))


def test_a_method_independent_of_the_model_is_flagged(setup) -> None:
    ckpt, stack = setup
    summary, corr = sanity_check(
        ckpt.build_model("cpu"),
        SliceStack(stack, ckpt.meta.offsets),
        lambda model, x, selection, slices, padding: x.abs(),
        slices=[30, 40],
    )
    np.testing.assert_allclose(corr, 1.0)
    assert summary["flagged"] is True
    assert list(summary["rank_correlation_signed"].values()) == pytest.approx([1.0] * 12)
    assert len(set(summary["asymmetry_index"].values())) == 1  # the same maps at every stage


def test_stage_shares_and_asymmetry_follow_the_first_conv(setup) -> None:
    """Input × weight of the first conv alone: the shares move only when the first conv is randomised."""
    ckpt, stack = setup

    def first_conv_only(model, x, selection, slices, padding):
        w = dict(model.named_modules())["encoder.features.0.0"].weight  # (32, C, 3, 3)
        return x.abs() * w.abs().sum(dim=(0, 2, 3)).view(1, -1, 1, 1)

    summary, _ = sanity_check(
        ckpt.build_model("cpu"), SliceStack(stack, ckpt.meta.offsets), first_conv_only, slices=[30, 40]
    )
    ai = summary["asymmetry_index"]
    assert ai["encoder.1"] == pytest.approx(ai["original"]) and ai["head"] == pytest.approx(ai["original"])
    assert ai["first_conv"] != pytest.approx(ai["original"], abs=1e-3)
    assert sum(summary["shares"]["original"].values()) == pytest.approx(1.0)


def test_saliency_changes_when_the_weights_are_randomised(setup) -> None:
    ckpt, stack = setup
    summary, corr = sanity_check(
        ckpt.build_model("cpu"),
        SliceStack(stack, ckpt.meta.offsets),
        registry_attribute(RunSpec(method="saliency")),
        slices=[30, 40],
    )
    assert corr.shape == (2, 12) and np.isfinite(corr).all()
    assert (corr[:, -1] < 0.9).all() and corr[:, 0].mean() > corr[:, -1].mean()
    assert summary["flagged"] == (summary["rank_correlation"]["first_conv"] >= summary["threshold"])
    assert summary["rank_correlation"] == summary["rank_correlation_signed"]  # saliency is |gradient| already
    assert set(summary["asymmetry_index"]) == {"original", *summary["stages"]}


def test_pick_slices_spreads_over_nonempty_targets() -> None:
    sizes = np.array([0, 5, 5, 0, 5, 5, 5, 0])
    assert pick_slices(sizes, 3) == [1, 4, 6]
    assert pick_slices(sizes, 10) == [1, 2, 4, 5, 6]


@pytest.fixture(scope="module")
def crop(sample_crop) -> tuple[Path, Path]:
    """16 axial slices of the sample and its mask, through the middle of the brain: every diagnostic has
    foreground, background and both kinds of error there, and the per-slice work (the attribution, the z-flip
    pass, Grad-CAM of every slice) is a fifth of the whole volume's."""
    return sample_crop(28, 44)


@pytest.mark.slow
def test_analyze_writes_all_four_diagnostics(tmp_path, crop, capsys) -> None:
    """The four diagnostics reach the CLI's printed lines, summary.json, the tables and the HTML figures (the
    static formats are left out: rendering them is the export tests' subject, not this one's)."""
    out = tmp_path / "out"
    code = main(
        [
            "analyze",
            str(crop[0]),
            "--mask",
            str(crop[1]),
            "--checkpoint",
            str(CKPT),
            "--cam",
            "--sanity",
            "--sanity-slices",
            "2",
            "--dilation",
            "1",
            "--formats",
            "none",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "background" in printed and "fg logit shift" in printed and "Grad-CAM" in printed and "sanity" in printed
    entry = json.loads((out / "summary.json").read_text())["models"]["unet-mobilenet_v2-imagenet-s0"]
    assert entry["background"]["dilation"] == 1 and 0 < entry["background"]["mean_fraction"]["total"] < 1
    assert entry["logits"]["shift"] is None and "whole subjects" in entry["logits"]["shift_skipped"]
    assert entry["cam"]["layer"] == "encoder.features.18" and len(entry["sanity"]["slices"]) == 2
    table = pd.read_csv(out / "diagnostics.csv")
    assert {"background_-1", "background_total", "cam_background_abs", "sanity_first_conv"} <= set(table.columns)
    groups = set(pd.read_csv(out / "logit_histograms.csv")["group"])
    assert groups >= {"tp", "fn", "fp"} and "foreground_heldout" not in groups  # trained on other subjects
    assert "unet-mobilenet_v2-imagenet-s0" in json.loads((out / "sanity.json").read_text())
    for stem in ("background_attention", "logit_histograms", "cam_background", "sanity_check"):
        assert (out / "figures" / f"{stem}.html").exists()
