"""Training losses (registry): the default Dice + BCE, and the asymmetric losses of Li, Kamnitsas, Glocker
("Analyzing overfitting under class imbalance in neural networks for image segmentation", IEEE TMI 2021,
arXiv 2102.10365), which counter the shift of the rare (foreground) class' logits toward the boundary.

Shapes: logits and targets ``(B, 1, H, W)`` (single foreground logit ``z``; ``p = σ(z)``; target in {0, 1}).
A single logit is the two-class softmax with ``z = z_fg − z_bg``, so a margin on the foreground class'
logit is a shift of ``z``. Per pixel (``y`` = 1 foreground, the rare class):

- **asymmetric focal**: the focal factor is kept only for the frequent class, the rare class gets plain
  cross-entropy: ``−y log p − (1 − y) p^γ log(1 − p)``. ``γ = 0`` is binary cross-entropy; the symmetric
  parent (focal loss, Lin et al. 2017) is ``−y (1 − p)^γ log p − (1 − y) p^γ log(1 − p)``.
- **asymmetric large margin**: a margin ``m`` is subtracted from the rare class' logit only:
  ``−y log σ(z − m) − (1 − y) log σ(−z)``. ``m = 0`` is binary cross-entropy; the symmetric parent (large
  margin on every class) is ``−y log σ(z − m) − (1 − y) log σ(−z − m)``.

Each recipe loss is the Dice loss plus one of these cross-entropy terms (the default's BCE replaced), so a
checkpoint trained with an asymmetric loss differs from the zoo's recipe in that term only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ..attribution.params import merge_params
from ..errors import InputError, unknown_name

__all__ = ["LossFn", "focal", "large_margin", "dice_loss", "Loss", "LOSSES", "build_loss"]


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def focal(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, *, asymmetric: bool = True) -> torch.Tensor:
    """Mean (asymmetric) focal loss over pixels (see the module docstring)."""
    log_p, log_q = F.logsigmoid(logits), F.logsigmoid(-logits)  # log p, log(1 − p), numerically stable
    fg_weight = 1.0 if asymmetric else torch.exp(log_q) ** gamma
    loss = -target * fg_weight * log_p - (1 - target) * torch.exp(log_p) ** gamma * log_q
    return loss.mean()


def large_margin(
    logits: torch.Tensor, target: torch.Tensor, margin: float = 1.0, *, asymmetric: bool = True
) -> torch.Tensor:
    """Mean (asymmetric) large-margin cross-entropy over pixels (see the module docstring)."""
    bg_margin = 0.0 if asymmetric else margin
    loss = -target * F.logsigmoid(logits - margin) - (1 - target) * F.logsigmoid(-logits - bg_margin)
    return loss.mean()


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """smp's binary soft Dice loss on logits."""
    import segmentation_models_pytorch as smp

    return smp.losses.DiceLoss(mode="binary", from_logits=True)(logits, target)


@dataclass(frozen=True)
class Loss:
    """A training loss: registry key, one-line definition, parameters and their defaults, and its builder."""

    name: str
    description: str
    defaults: dict[str, float]
    build: Callable[[dict[str, float]], LossFn] = field(repr=False)


LOSSES: dict[str, Loss] = {
    loss.name: loss
    for loss in (
        Loss(
            "bce-dice",
            "Dice + binary cross-entropy (the zoo's recipe)",
            {},
            lambda p: lambda z, y: dice_loss(z, y) + F.binary_cross_entropy_with_logits(z, y),
        ),
        Loss(
            "asymmetric-focal",
            "Dice + asymmetric focal loss: focal down-weighting of the background only (Li, Kamnitsas, Glocker 2021)",
            {"gamma": 2.0},
            lambda p: lambda z, y: dice_loss(z, y) + focal(z, y, p["gamma"]),
        ),
        Loss(
            "asymmetric-margin",
            "Dice + asymmetric large-margin loss: margin on the foreground logit only (Li, Kamnitsas, Glocker 2021)",
            {"margin": 1.0},
            lambda p: lambda z, y: dice_loss(z, y) + large_margin(z, y, p["margin"]),
        ),
    )
}


def build_loss(name: str, params: dict[str, Any] | None = None) -> tuple[LossFn, dict[str, float]]:
    """The loss function ``(logits, target) -> scalar`` and its resolved parameters.

    Raises:
        InputError: an unknown loss (the valid names are listed), parameter or value.
    """
    if name not in LOSSES:
        raise unknown_name("loss", name, LOSSES)
    spec = LOSSES[name]
    resolved = merge_params(spec.defaults, params, owner=f"loss {name!r}", source="--loss-param")
    for key, value in resolved.items():
        if value < 0:
            raise InputError("--loss-param", f"{key}={value!r} for loss {name!r}", "a number ≥ 0")
    return spec.build(resolved), resolved
