"""Asymmetric losses (Li, Kamnitsas, Glocker 2021): known values, reduction to their parents, registry."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from explorer.errors import InputError
from explorer.losses import LOSSES, build_loss, dice_loss, focal, large_margin


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


@pytest.mark.parametrize("name, params, message", [
    ("focal", None, "asymmetric-focal"),
    ("asymmetric-focal", {"margin": 1}, "unknown parameter"),
    ("asymmetric-margin", {"margin": "wide"}, "a number"),
    ("asymmetric-margin", {"margin": -1}, "≥ 0"),
])
def test_bad_loss_input(name, params, message) -> None:
    with pytest.raises(InputError, match=message):
        build_loss(name, params)
