"""Sanity check by cascading parameter randomisation (Adebayo et al., NeurIPS 2018, arXiv 1810.03292).

The attribution of a few slices is recomputed after re-initialising the decoder (and segmentation head),
then additionally the encoder, on private copies of the model; each stage is compared with the original
maps by the Spearman rank correlation of ``|A|`` over all channels and pixels of a slice. The pixels that
make up the target stay those of the *original* prediction, so every stage explains the same quantity.
A method whose maps hardly change when the learned weights are destroyed (mean correlation after the
last stage ≥ ``threshold``) is explaining the input rather than the model: it is flagged.

Shapes: windows ``(B, C, H, W)``; maps ``(B, C, H, W)``; per-slice correlations ``(n_slices, n_stages)``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn

from ..attribution import explain_batch, get_target, resolve_params, target_selection
from ..windows import iter_windows, mask_batch

#: Cascading stages: name → the top-level submodules re-initialised (cumulative, top of the network first).
SMP_STAGES: dict[str, tuple[str, ...]] = {
    "decoder": ("segmentation_head", "decoder"),
    "encoder": ("segmentation_head", "decoder", "encoder"),
}
#: Mean rank correlation at or above which a method is flagged as insensitive to the model.
THRESHOLD = 0.5

#: ``(model, x, selection, slices, pixels) -> A``: how a stage's maps are computed (see :func:`registry_attribute`).
Attribute = Callable[[nn.Module, torch.Tensor, torch.Tensor, tuple[int, ...], int], torch.Tensor]


def registry_attribute(method: str, target: str, params: dict[str, Any]) -> Attribute:
    """An :data:`Attribute` for a method and target of the registries, through
    :func:`explorer.attribution.explain_batch` with the selection held fixed.

    Raises:
        InputError: an unknown method or target, or a bad parameter.
    """
    get_target(target)
    resolved = resolve_params(method, params)

    def attribute(model: nn.Module, x: torch.Tensor, selection: torch.Tensor, slices: tuple[int, ...],
                  pixels: int) -> torch.Tensor:
        return explain_batch(model, x, method=method, target=target, params=resolved, slices=slices, pixels=pixels,
                             selection=selection).attr

    return attribute


def randomised(model: nn.Module, parts: Sequence[str], *, seed: int = 0) -> nn.Module:
    """A copy of ``model`` whose submodules ``parts`` are re-initialised (``reset_parameters``), seeded."""
    copied = copy.deepcopy(model).eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for part in parts:
            for module in getattr(copied, part).modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
                if hasattr(module, "reset_running_stats"):
                    module.reset_running_stats()
    return copied


def pick_slices(selection_sizes: np.ndarray, n: int) -> list[int]:
    """Up to ``n`` slices evenly spread over those whose target is not empty."""
    candidates = np.flatnonzero(selection_sizes > 0)
    if candidates.size <= n:
        return candidates.tolist()
    return candidates[np.linspace(0, candidates.size - 1, n).round().astype(int)].tolist()


def sanity_check(model: nn.Module, stack: np.ndarray, offsets: Sequence[int], *, attribute: Attribute,
                 target: str = "predicted", mask: np.ndarray | None = None, slices: Sequence[int] | None = None,
                 n_slices: int = 12, stages: dict[str, tuple[str, ...]] = SMP_STAGES,
                 channel_stats: tuple[np.ndarray, np.ndarray] | None = None, device: torch.device | None = None,
                 seed: int = 0, threshold: float = THRESHOLD) -> tuple[dict, np.ndarray]:
    """Rank correlation of the attribution maps before and after cascading randomisation.

    Args:
        model: the trained eval-mode model (not modified: each stage randomises a copy).
        stack: normalised slices ``(S, H, W)``.
        offsets: the model's window offsets.
        attribute: ``(model, x, selection, slices, pixels) -> A``, e.g. :func:`registry_attribute`.
        target: target name (fixes the explained pixels from the original model's prediction).
        mask: ground truth ``(S, H, W)`` for target ``mask``.
        slices: which slices (default: :func:`pick_slices` of ``n_slices``).
        n_slices: how many slices when ``slices`` is None.
        stages: cascading stages (see :data:`SMP_STAGES`).
        channel_stats: per-channel normalisation, or None.
        device: where to compute (default the model's).
        seed: re-initialisation seed.
        threshold: flag level for the last stage's mean correlation.

    Returns:
        ``(summary, correlations (len(slices), len(stages)))``; summary ``{"stages", "slices",
        "rank_correlation": {stage: mean}, "threshold", "flagged"}``.

    Raises:
        InputError: an unknown target, a target ``mask`` without a mask, or a multi-logit model.
    """
    device = device or next(model.parameters()).device
    get_target(target)
    models = {"original": model.eval().to(device)}
    models.update({name: randomised(model, parts, seed=seed).to(device) for name, parts in stages.items()})
    if slices is None:
        sizes = _selection_sizes(models["original"], stack, offsets, target, mask, channel_stats, device)
        slices = pick_slices(sizes, n_slices)
    corr = np.full((len(slices), len(stages)), np.nan)
    row = 0
    for batch in iter_windows(stack, offsets, batch_size=4, slices=list(slices), channel_stats=channel_stats):
        x = batch.x.to(device)
        selection = target_selection(models["original"], x, target, mask_batch(mask, batch.slices, device))
        chunk = tuple(int(z) for z in batch.slices)
        maps = {name: batch.padding.crop(attribute(m, x, selection, chunk, batch.pixels)).abs().flatten(1).cpu().numpy()
                for name, m in models.items()}
        for j, name in enumerate(stages):
            for i in range(len(chunk)):
                a, b = maps["original"][i], maps[name][i]
                if a.std() > 0 and b.std() > 0:
                    corr[row + i, j] = spearmanr(a, b)[0]
        row += len(chunk)
    means = {name: (float(np.nanmean(corr[:, j])) if np.isfinite(corr[:, j]).any() else None)
             for j, name in enumerate(stages)}
    last = means[list(stages)[-1]] if stages else None
    summary = {"stages": {name: list(parts) for name, parts in stages.items()}, "slices": [int(z) for z in slices],
               "rank_correlation": means, "threshold": threshold, "seed": seed,
               "flagged": bool(last is not None and last >= threshold)}
    return summary, corr


def _selection_sizes(model: nn.Module, stack: np.ndarray, offsets: Sequence[int], target: str,
                     mask: np.ndarray | None, channel_stats: Any, device: torch.device) -> np.ndarray:
    sizes = []
    for batch in iter_windows(stack, offsets, batch_size=8, channel_stats=channel_stats):
        truth = mask_batch(mask, batch.slices, device)
        sizes.append(target_selection(model, batch.x.to(device), target, truth).flatten(1).sum(1).cpu())
    return torch.cat(sizes).numpy()
