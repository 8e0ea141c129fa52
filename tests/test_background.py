"""Background attention: known answers on hand-made maps and on toy models run through the real engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from enginetools import attribute
from torch import nn

from explorer.diagnostics.background import background_fractions, background_summary, dilate
from explorer.errors import InputError


def _square(shape=(2, 32, 32), lo=8, hi=24) -> np.ndarray:
    fg = np.zeros(shape, dtype=bool)
    fg[:, lo:hi, lo:hi] = True
    return fg


class RegionModel(nn.Module):
    """Every pixel's logit is +1 plus the mean of the input over ``region`` (all channels): the output
    depends only on the pixels of ``region``."""

    def __init__(self, region: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("region", torch.from_numpy(region.astype(np.float32)))
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        region = nn.functional.pad(
            self.region, (0, x.shape[3] - self.region.shape[1], 0, x.shape[2] - self.region.shape[0])
        )
        value = (x * region).sum(dim=(1, 2, 3)) / region.sum() * self.scale + 1.0
        return value.view(-1, 1, 1, 1).expand(-1, 1, *x.shape[2:])


def test_hand_made_fractions_per_channel_and_total() -> None:
    fg = _square((1, 4, 4), 0, 2)  # top-left 2x2 is the object
    maps = np.zeros((1, 3, 4, 4))
    maps[0, 0] = 1.0  # channel 0: uniform -> 12 of 16 outside
    maps[0, 1, :2, :2] = -2.0  # channel 1: all inside (sign ignored)
    maps[0, 2, 3, 3] = 5.0  # channel 2: all outside
    frac = background_fractions(maps, fg)
    np.testing.assert_allclose(frac[0], [0.75, 0.0, 1.0, (12 + 5) / (16 + 8 + 5)])


def test_dilation_grows_the_object_in_plane_only() -> None:
    fg = np.zeros((3, 7, 7), dtype=bool)
    fg[1, 3, 3] = True
    grown = dilate(fg, 2)
    assert grown[1].sum() == 13  # a diamond of radius 2
    assert not grown[0].any() and not grown[2].any()
    with pytest.raises(InputError, match="--dilation"):
        dilate(fg, -1)


def test_empty_foreground_or_zero_mass_is_nan() -> None:
    fg = _square()
    fg[1] = False
    maps = np.ones((2, 3, 32, 32))
    maps[0, 1] = 0.0
    frac = background_fractions(maps, fg)
    assert np.isnan(frac[1]).all()
    assert np.isnan(frac[0, 1]) and np.isfinite(frac[0, [0, 2]]).all()
    summary = background_summary(frac, (-1, 0, 1), source="mask", dilation=0)
    assert summary["slices"] == 0 and summary["foreground"] == "mask"


@pytest.mark.parametrize("depends_on_background, expected", [(True, 1.0), (False, 0.0)])
def test_model_that_sees_only_the_background_has_fraction_one(depends_on_background: bool, expected: float) -> None:
    fg = _square((4, 32, 32))
    region = ~fg[0] if depends_on_background else fg[0]
    stack = np.random.default_rng(0).normal(size=(4, 32, 32)).astype(np.float32)
    result = attribute(RegionModel(region).eval(), stack, (-1, 0, 1), keep_maps=True, target="all")
    frac = background_fractions(result.maps, fg)
    np.testing.assert_allclose(frac, expected, atol=1e-6)


def test_dilation_lowers_the_background_fraction_of_edge_attribution() -> None:
    fg = _square((1, 32, 32))
    maps = np.zeros((1, 3, 32, 32))
    maps[:, :, 7, 8:24] = 1.0  # a row just outside the object's top edge
    assert background_fractions(maps, fg)[0, -1] == 1.0
    assert background_fractions(maps, fg, dilation=1)[0, -1] == 0.0


def test_shape_mismatch_is_an_input_error() -> None:
    with pytest.raises(InputError, match="foreground"):
        background_fractions(np.zeros((2, 3, 8, 8)), np.zeros((2, 8, 9), dtype=bool))
