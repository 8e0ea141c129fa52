"""Sanity check by cascading parameter randomisation (Adebayo et al., NeurIPS 2018, arXiv 1810.03292).

The attribution of a few slices is recomputed on private copies of the model whose weights are destroyed
block by block from the head: the segmentation head, the decoder blocks from the last, then the encoder
stages from the deepest, the first convolution last (:func:`cascade_stages`; each stage keeps the previous
ones randomised). Each stage is compared with the original maps by the Spearman rank correlation over all
channels and pixels of a slice, of ``|A|`` and of the signed ``A``; and — the question this project asks — the
channel shares and the asymmetry index are recomputed at each stage: if the asymmetry survives until only
the first convolution is left trained and vanishes with it, it lives in the first convolution. The pixels
that make up the target stay those of the *original* prediction, so every stage explains the same quantity.
A method whose maps hardly change when the learned weights are destroyed (mean ``|A|`` correlation after
the last stage ≥ :data:`THRESHOLD`) is explaining the input rather than the model: it is flagged.

Shapes: windows ``(B, C, H, W)``; maps ``(B, C, H, W)``; per-slice correlations ``(n_slices, n_stages)``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn

from ..attribution.methods import explain_batch, require_truth, target_selection
from ..attribution.windows import Padding, SliceStack, mask_batch
from ..stats.scan import asymmetry_index, shares_from_masses

if TYPE_CHECKING:
    from ..spec import RunSpec

__all__ = [
    "THRESHOLD",
    "Attribute",
    "cascade_stages",
    "registry_attribute",
    "randomised",
    "pick_slices",
    "sanity_check",
]

#: Mean rank correlation at or above which a method is flagged as insensitive to the model.
THRESHOLD = 0.5

#: ``(model, x, selection, slices, padding) -> A``: how a stage's maps are computed (:func:`registry_attribute`).
Attribute = Callable[[nn.Module, torch.Tensor, torch.Tensor, tuple[int, ...], Padding], torch.Tensor]


def cascade_stages(model: nn.Module) -> dict[str, tuple[str, ...]]:
    """Cumulative randomisation stages, head first: name -> the module names re-initialised up to that stage.

    smp models: ``head``, ``decoder.<i>`` (last block first), the encoder's stages deepest first
    (``encoder.<a>-<b>``: ``encoder.features`` blocks between the encoder's output indices) and
    ``first_conv`` (``encoder.features.0``) last; other models: their top-level children, last first.
    """
    modules = dict(model.named_modules())
    steps: list[tuple[str, list[str]]] = []
    if "segmentation_head" in modules and "decoder.blocks" in modules:
        steps.append(("head", ["segmentation_head"]))
        blocks = sorted(
            (int(n.rsplit(".", 1)[1]) for n in modules if n.startswith("decoder.blocks.") and n.count(".") == 2),
            reverse=True,
        )
        steps += [(f"decoder.{i}", [f"decoder.blocks.{i}"]) for i in blocks]
        bounds = getattr(modules.get("encoder"), "_out_indexes", None)
        if bounds is not None and "encoder.features.0" in modules:
            edges = [0, *sorted(int(b) for b in bounds)]
            for lo, hi in reversed(list(zip(edges[:-1], edges[1:], strict=True))):
                steps.append(
                    (
                        f"encoder.{lo + 1}-{hi}" if hi > lo + 1 else f"encoder.{hi}",
                        [f"encoder.features.{i}" for i in range(lo + 1, hi + 1)],
                    )
                )
            steps.append(("first_conv", ["encoder.features.0"]))
        else:
            steps.append(("encoder", ["encoder"]))
    else:
        steps = [(name, [name]) for name, _ in reversed(list(model.named_children()))]
    stages, done = {}, []
    for name, parts in steps:
        done = done + parts
        stages[name] = tuple(done)
    return stages


def registry_attribute(spec: RunSpec) -> Attribute:
    """An :data:`Attribute` for the method, parameters and target of ``spec``, through
    :func:`explorer.attribution.methods.explain_batch` with the selection held fixed."""

    def attribute(
        model: nn.Module, x: torch.Tensor, selection: torch.Tensor, slices: tuple[int, ...], padding: Padding
    ) -> torch.Tensor:
        return explain_batch(model, x, spec, slices=slices, padding=padding, selection=selection).attr

    return attribute


def randomised(model: nn.Module, parts: Sequence[str], *, seed: int = 0) -> nn.Module:
    """A copy of ``model`` whose submodules ``parts`` (dotted names) are re-initialised (``reset_parameters``),
    seeded."""
    copied = copy.deepcopy(model).eval()
    modules = dict(copied.named_modules())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for part in parts:
            for module in modules[part].modules():
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


def sanity_check(
    model: nn.Module,
    data: SliceStack,
    attribute: Attribute,
    *,
    target: str = "predicted",
    slices: Sequence[int] | int = 12,
    stages: dict[str, tuple[str, ...]] | None = None,
    device: torch.device | None = None,
    seed: int = 0,
) -> tuple[dict, np.ndarray]:
    """Rank correlation, channel shares and asymmetry index of the maps along cascading randomisation.

    Args:
        model: the trained eval-mode model (not modified: each stage randomises a copy).
        data: the normalised slices, the model's offsets and channel statistics, and the mask (target ``mask``).
        attribute: ``(model, x, selection, slices, padding) -> A``, e.g. :func:`registry_attribute`.
        target: target name (fixes the explained pixels from the original model's prediction).
        slices: which slices, or how many (:func:`pick_slices` spreads them over the non-empty targets).
        stages: cumulative stages (default :func:`cascade_stages`).
        device: where to compute (default the model's).
        seed: re-initialisation seed.

    Returns:
        ``(summary, correlations (len(slices), len(stages)))`` of ``|A|``; summary ``{"stages", "slices",
        "rank_correlation": {stage: mean over slices of Spearman(|A|)}, "rank_correlation_signed": {stage: mean
        Spearman(A)}, "shares": {"original" | stage: {offset: mean share}}, "asymmetry_index": {"original" |
        stage: mean AI_1}, "threshold", "seed", "flagged"}``; flagged when the last stage's mean ``|A|``
        correlation reaches :data:`THRESHOLD`.

    Raises:
        InputError: an unknown target, a target ``mask`` without a mask, or a multi-logit model.
    """
    device = device or next(model.parameters()).device
    require_truth(target, data.mask is not None)
    offsets, threshold = data.offsets, THRESHOLD
    stages = cascade_stages(model) if stages is None else stages
    models = {"original": model.eval().to(device)}
    models.update({name: randomised(model, parts, seed=seed).to(device) for name, parts in stages.items()})
    if isinstance(slices, int):
        slices = pick_slices(_selection_sizes(models["original"], data, target, device), slices)
    corr = np.full((2, len(slices), len(stages)), np.nan)  # |A|, then signed A
    masses = {name: np.full((len(slices), len(offsets)), np.nan) for name in models}
    row = 0
    for batch in data.windows(batch_size=4, slices=list(slices)):
        x = batch.x.to(device)
        selection = target_selection(
            models["original"], x, target, mask_batch(data.mask, batch.slices, device), batch.padding
        )
        chunk = tuple(int(z) for z in batch.slices)
        maps = {
            name: batch.padding.crop(attribute(m, x, selection, chunk, batch.padding)).detach().cpu().float().numpy()
            for name, m in models.items()
        }
        for name, a in maps.items():
            masses[name][row : row + len(chunk)] = np.abs(a).sum(axis=(2, 3))
        for j, name in enumerate(stages):
            for i in range(len(chunk)):
                for k, (a, b) in enumerate(
                    ((np.abs(maps["original"][i]), np.abs(maps[name][i])), (maps["original"][i], maps[name][i]))
                ):
                    if a.std() > 0 and b.std() > 0:
                        corr[k, row + i, j] = spearmanr(a.ravel(), b.ravel())[0]
        row += len(chunk)
    means = [{name: _mean(corr[k, :, j]) for j, name in enumerate(stages)} for k in range(2)]
    shares = {name: shares_from_masses(m) for name, m in masses.items()}
    last = means[0][list(stages)[-1]] if stages else None
    summary = {
        "stages": {name: list(parts) for name, parts in stages.items()},
        "slices": [int(z) for z in slices],
        "rank_correlation": means[0],
        "rank_correlation_signed": means[1],
        "shares": {name: {str(o): _mean(sh[:, i]) for i, o in enumerate(offsets)} for name, sh in shares.items()},
        "asymmetry_index": {name: _mean(asymmetry_index(sh, offsets)) for name, sh in shares.items()},
        "threshold": threshold,
        "seed": seed,
        "flagged": bool(last is not None and last >= threshold),
    }
    return summary, corr[0]


def _mean(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None


def _selection_sizes(model: nn.Module, data: SliceStack, target: str, device: torch.device) -> np.ndarray:
    sizes = []
    for batch in data.windows(batch_size=8):
        truth = mask_batch(data.mask, batch.slices, device)
        selection = target_selection(model, batch.x.to(device), target, truth, batch.padding)
        sizes.append(selection.flatten(1).sum(1).cpu())
    return torch.cat(sizes).numpy()
