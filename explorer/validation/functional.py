"""Functional ground truths of a trained network: what its Dice becomes when an input slice is taken away.

Shapes: windows are ``(B, C, H', W')`` (:func:`explorer.attribution.windows.iter_windows`); predictions and the
truth are ``(S, H, W)`` bool over the slices of the stack.

Two perturbations, both forward passes only (no gradients), every variant of a batch in one forward:

- *channel ablation*: channel ``c`` of every window is replaced by its own mean over the slice (the unpadded
  pixels), which removes that slice's content and keeps its intensity level; a network that needs slice
  ``z + offsets[c]`` loses its Dice, one that ignores it keeps it;
- *z-flip*: the channel order is reversed (slice ``z - k`` and ``z + k`` swap places).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..attribution.fastpath import prepared_checkpoint
from ..attribution.windows import iter_windows
from ..device import select_device
from ..errors import InputError
from ..io.normalise import channel_stats_for
from ..models.checkpoints import Checkpoint
from ..stats.scan import dice
from ..study import Study

__all__ = ["FunctionalDice", "functional_dice"]


@dataclass(frozen=True)
class FunctionalDice:
    """Dice against the truth: unperturbed, with one channel ablated (offset → Dice), on reversed windows."""

    dice: float
    ablated: dict[int, float]
    zflip: float

    def columns(self) -> dict[str, float]:
        """Flat ``{"dice_intact", "dice_ablate_-1", ..., "dice_zflip"}`` (the CSV columns)."""
        return {
            "dice_intact": self.dice,
            **{f"dice_ablate_{o:+d}" if o else "dice_ablate_0": v for o, v in self.ablated.items()},
            "dice_zflip": self.zflip,
        }


@torch.no_grad()
def functional_dice(
    checkpoint: Checkpoint, study: Study, *, device: str = "auto", batch_size: int = 8
) -> FunctionalDice:
    """Dice of ``checkpoint`` on ``study`` (its mask is the truth) intact, per ablated channel and z-flipped.

    Args:
        checkpoint: a single-logit 2D+ checkpoint.
        study: a volume with its ground-truth mask, sliced along the checkpoint's axis.
        device: as :func:`explorer.device.select_device`.
        batch_size: windows per forward (each forward holds ``C + 2`` variants of them).

    Raises:
        InputError: a study without a mask, or an unknown device.
    """
    if study.mask is None:
        raise InputError(study.volume.source, "no ground-truth mask", "a study with a mask")
    meta, dev = checkpoint.meta, select_device(device)
    offsets = tuple(meta.offsets)
    model = prepared_checkpoint(checkpoint, dev)
    stack, truth = study.slices(meta.axis, meta.normalisation), study.mask_slices(meta.axis)
    variants: list[list[np.ndarray]] = [[] for _ in range(len(offsets) + 2)]
    for batch in iter_windows(
        stack, offsets, batch_size=batch_size, channel_stats=channel_stats_for(meta.normalisation, len(offsets))
    ):
        x = batch.x.to(dev)
        level = batch.padding.crop(x).mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1) over the unpadded slice
        ablated = []
        for c in range(len(offsets)):
            copy = x.clone()
            copy[:, c] = level[:, c]
            ablated.append(copy)
        logits = model(torch.cat([x, *ablated, x.flip(1)]))[:, 0]
        for i, part in enumerate(logits.split(len(x))):
            variants[i].append(batch.padding.crop(part).cpu().numpy() > 0)
    preds = [np.concatenate(v) for v in variants]
    return FunctionalDice(
        dice=dice(preds[0], truth),
        ablated={o: dice(p, truth) for o, p in zip(offsets, preds[1:-1], strict=True)},
        zflip=dice(preds[-1], truth),
    )
