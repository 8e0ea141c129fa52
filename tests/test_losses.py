"""Asymmetric losses (Li, Kamnitsas, Glocker 2021): known values, reduction to their parents, registry."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from explorer.errors import InputError
from explorer.training.losses import LOSSES, build_loss, dice_loss, focal, large_margin


@pytest.fixture()
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 1, 8, 8, generator=gen) * 3
    target = (torch.rand(2, 1, 8, 8, generator=gen) < 0.2).float()
    return logits, target


def test_focal_with_gamma_zero_is_bce(batch) -> None:
    logits, target = batch
    bce = F.binary_cross_entropy_with_logits(logits, target)
    for asymmetric in (True, False):
        torch.testing.assert_close(focal(logits, target, 0.0, asymmetric=asymmetric), bce)


def test_margin_zero_is_bce(batch) -> None:
    logits, target = batch
    bce = F.binary_cross_entropy_with_logits(logits, target)
    for asymmetric in (True, False):
        torch.testing.assert_close(large_margin(logits, target, 0.0, asymmetric=asymmetric), bce)


def test_asymmetric_focal_keeps_plain_ce_on_the_foreground_and_focal_on_the_background(batch) -> None:
    logits, target = batch
    fg, bg = target.clone(), torch.zeros_like(target)
    # on foreground-only targets the asymmetric focal loss is plain BCE; the symmetric one is smaller
    ones = torch.ones_like(target)
    torch.testing.assert_close(focal(logits, ones, 2.0), F.binary_cross_entropy_with_logits(logits, ones))
    assert focal(logits, ones, 2.0, asymmetric=False) < focal(logits, ones, 2.0)
    # on background-only targets both are the focal loss
    torch.testing.assert_close(focal(logits, bg, 2.0), focal(logits, bg, 2.0, asymmetric=False))
    assert fg.sum() > 0


def test_single_pixel_values_by_hand() -> None:
    z, one, zero = torch.tensor([[[[0.0]]]]), torch.ones(1, 1, 1, 1), torch.zeros(1, 1, 1, 1)
    # p = 0.5: background term of the focal loss is 0.5^2 * log 2
    assert math.isclose(float(focal(z, zero, 2.0)), 0.25 * math.log(2), rel_tol=1e-6)
    # margin 1 on a foreground pixel with z = 0: -log σ(-1) = log(1 + e)
    assert math.isclose(float(large_margin(z, one, 1.0)), math.log(1 + math.e), rel_tol=1e-6)
    # the asymmetric margin leaves background pixels alone; the symmetric one penalises them more
    assert math.isclose(float(large_margin(z, zero, 1.0)), math.log(2), rel_tol=1e-6)
    assert float(large_margin(z, zero, 1.0, asymmetric=False)) > math.log(2)


def test_margin_pushes_foreground_logits_up(batch) -> None:
    logits, target = batch
    logits = logits.clone().requires_grad_(True)
    (g_margin,) = torch.autograd.grad(large_margin(logits, target, 2.0), logits)
    (g_bce,) = torch.autograd.grad(F.binary_cross_entropy_with_logits(logits, target), logits)
    fg = target.bool()
    assert (g_margin[fg] <= g_bce[fg] + 1e-9).all() and (g_margin[fg] < g_bce[fg]).any()
    torch.testing.assert_close(g_margin[~fg], g_bce[~fg])


def test_registry_builds_dice_plus_term(batch) -> None:
    logits, target = batch
    fn, params = build_loss("asymmetric-focal", {"gamma": 0})
    assert params == {"gamma": 0.0}
    torch.testing.assert_close(fn(logits, target), build_loss("bce-dice")[0](logits, target))
    fn, _ = build_loss("asymmetric-margin")
    torch.testing.assert_close(fn(logits, target), dice_loss(logits, target) + large_margin(logits, target, 1.0))
    assert set(LOSSES) == {"bce-dice", "asymmetric-focal", "asymmetric-margin"}


@pytest.mark.parametrize(
    "name, params, message",
    [
        ("focal", None, "asymmetric-focal"),
        ("asymmetric-focal", {"margin": 1}, "unknown parameter"),
        ("asymmetric-margin", {"margin": "wide"}, "a number"),
        ("asymmetric-margin", {"margin": -1}, "≥ 0"),
    ],
)
def test_bad_loss_input(name, params, message) -> None:
    with pytest.raises(InputError, match=message):
        build_loss(name, params)


@pytest.mark.slow  # one tiny training run through the CLI
def test_cli_train_records_the_asymmetric_loss(tmp_path, capsys) -> None:
    import nibabel as nib
    import numpy as np

    from explorer.cli import main
    from explorer.config import SAMPLE_DIR
    from explorer.models.checkpoints import load_checkpoint

    paths = []
    for name in ("mni152_t1_2mm.nii.gz", "mni152_gm_mask_2mm.nii.gz"):
        small = nib.load(SAMPLE_DIR / name).slicer[6:70, 15:79, 24:48]
        nib.save(nib.Nifti1Image(np.asanyarray(small.dataobj), small.affine), tmp_path / name)
        paths.append(tmp_path / name)
    out = tmp_path / "margin.safetensors"
    code = main(
        [
            "train",
            "--volume",
            str(paths[0]),
            "--mask",
            str(paths[1]),
            "--strategy",
            "random",
            "--epochs",
            "1",
            "--loss",
            "asymmetric-margin",
            "--loss-param",
            "margin=2",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    meta = load_checkpoint(out).meta
    assert meta.recipe["loss"] == "asymmetric-margin" and meta.recipe["loss_params"] == {"margin": 2.0}
    assert "--loss asymmetric-margin --loss-param margin=2" in meta.training["command"]


def test_cli_train_rejects_a_malformed_loss_param(tmp_path, capsys) -> None:
    from explorer.cli import main
    from explorer.config import SAMPLE_DIR

    code = main(
        [
            "train",
            "--volume",
            str(SAMPLE_DIR / "mni152_t1_2mm.nii.gz"),
            "--mask",
            str(SAMPLE_DIR / "mni152_gm_mask_2mm.nii.gz"),
            "--strategy",
            "random",
            "--loss",
            "asymmetric-focal",
            "--loss-param",
            "gamma",
            "--out",
            str(tmp_path / "m.safetensors"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--loss-param" in err[0] and "KEY=VALUE" in err[0]
