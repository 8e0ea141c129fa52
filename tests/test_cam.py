"""Grad-CAM with the standard and the |logit| target: known answers on toy models, layer names on the zoo."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from explorer.diagnostics.cam import cam_layers, cam_summary, default_cam_layer, gradcam_stack
from explorer.errors import InputError
from explorer.models.checkpoints import list_zoo, load_checkpoint


class Toy(nn.Module):
    """conv → ReLU → 1×1 conv, plus a constant ``shift`` on every logit."""

    def __init__(self, shift: float) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Conv2d(3, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.head = nn.Conv2d(4, 1, 1)
        self.shift = shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.body(x))) + self.shift


@pytest.fixture()
def stack() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(3, 32, 32)).astype(np.float32)


def test_abs_cam_equals_standard_cam_where_every_logit_is_positive(stack: np.ndarray) -> None:
    model = Toy(shift=100.0).eval()
    with torch.no_grad():
        assert (model(torch.from_numpy(stack[None].repeat(3, 0)[:, :3])) > 0).all()
    cams = gradcam_stack(model, stack, (-1, 0, 1), layer="body")
    assert cams.shape == (3, 2, 32, 32)
    assert cams[:, 0].max() > 0
    np.testing.assert_allclose(cams[:, 0], cams[:, 1], rtol=1e-5, atol=1e-6)


def test_where_nothing_is_predicted_only_the_abs_cam_shows_evidence(stack: np.ndarray) -> None:
    cams = gradcam_stack(Toy(shift=-100.0).eval(), stack, (-1, 0, 1), layer="body")
    assert (cams[:, 0] == 0).all()  # standard target is empty: no predicted foreground
    assert cams[:, 1].max() > 0  # |logit| explains the background decision


def test_identical_maps_have_rank_correlation_one_and_background_is_measured() -> None:
    cams = np.zeros((1, 2, 8, 8), dtype=np.float32)
    cams[0, :, :4] = np.arange(32).reshape(4, 8)
    fg = np.zeros((1, 8, 8), dtype=bool)
    fg[0, :2] = True
    summary, per_slice = cam_summary(cams, fg, layer="body", dilation=0)
    assert per_slice[0, 2] == pytest.approx(1.0)
    inside = np.arange(16).sum()
    assert per_slice[0, 0] == pytest.approx(1 - inside / np.arange(32).sum())
    assert summary["layer"] == "body" and summary["target_rank_correlation"] == pytest.approx(1.0)


def test_zoo_layer_names_and_unknown_layer() -> None:
    model = load_checkpoint(list_zoo()[0]).build_model("cpu")
    names = cam_layers(model)
    assert names[0] == "encoder.features.1" and "encoder.features.18" in names
    assert default_cam_layer(model) == "encoder.features.18"  # the bottleneck, as Seg-Grad-CAM
    with pytest.raises(InputError, match="decoder.blocks.4"):
        gradcam_stack(model, np.zeros((1, 32, 32), np.float32), (-1, 0, 1), layer="decoder.nope")


def test_toy_layers_are_its_children() -> None:
    assert cam_layers(Toy(0.0)) == ["body", "act", "head"]
