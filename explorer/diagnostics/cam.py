"""Grad-CAM for a segmentation output, with captum's LayerGradCam.

As Seg-Grad-CAM (Vinogradova, Dibrov, Myers, AAAI 2020, arXiv 2002.11434) the explained scalar is a region
target ``Σ_{p∈R} sign(z_p)·z_p`` of the logits ``z`` and the default layer is the bottleneck (the deepest
encoder stage), where a channel's spatial map still means something about the whole slice. Two regions per
slice (docs/definitions.md, "Diagnostics"): ``standard`` — R = the predicted foreground, where
``sign(z) = +1``, i.e. the sum of the foreground logits (target ``predicted``); and ``abs`` — R = the whole
unpadded slice, i.e. ``Σ |z|`` (evidence for whichever side each pixel was predicted, as binary CAMs of
Zhang, Bieri, Günther, arXiv 2403.14435). Padded pixels never enter either region. Where every logit is
positive both targets are the same scalar, so both CAMs are equal.

Shapes: windows ``(B, C, H, W)``; a CAM is ``(S, H, W)`` (the layer's map upsampled bilinearly to the
slice, ReLU applied, unpadded).

Hooks are only ever placed on a private model built for the call (never on a shared module).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn

from ..attribution.methods import get_target, target_forward, target_selection
from ..attribution.windows import iter_windows
from ..errors import InputError
from .background import background_fractions

__all__ = ["CAM_TARGETS", "cam_layers", "default_cam_layer", "gradcam_stack", "cam_summary"]


CAM_TARGETS = ("standard", "abs")


def cam_layers(model: nn.Module) -> list[str]:
    """Names of the layers Grad-CAM can use: the encoder's stages (shallow to deep), then the decoder's blocks.

    smp models: the encoder's output stages (``encoder.features.<i>`` for torchvision-style encoders, else
    the encoder's children) and the decoder's blocks; other models: their top-level children.
    """
    modules = dict(model.named_modules())
    names: list[str] = []
    encoder = modules.get("encoder")
    if encoder is not None:
        stages = getattr(encoder, "_out_indexes", None)
        if stages is not None and "encoder.features" in modules:
            names += [f"encoder.features.{i}" for i in stages if f"encoder.features.{i}" in modules]
        else:
            names += [f"encoder.{n}" for n, _ in encoder.named_children()]
    names += [n for n in modules if n.startswith("decoder.blocks.") and n.count(".") == 2]
    return names or [n for n, _ in model.named_children()]


def default_cam_layer(model: nn.Module) -> str:
    """The default Grad-CAM layer: the bottleneck (deepest encoder stage, as Seg-Grad-CAM), else the last listed."""
    names = cam_layers(model)
    encoder = [n for n in names if n.startswith("encoder.")]
    return encoder[-1] if encoder else names[-1]


def _layer(model: nn.Module, name: str) -> nn.Module:
    choices = cam_layers(model)
    modules = dict(model.named_modules())
    if name not in modules or not name:
        raise InputError("--cam-layer", f"no layer named {name!r}", "one of: " + ", ".join(choices))
    return modules[name]


def gradcam_stack(
    model: nn.Module,
    stack: np.ndarray,
    offsets: Sequence[int],
    *,
    layer: str,
    slices: Sequence[int] | None = None,
    device: torch.device | None = None,
    channel_stats: tuple[np.ndarray, np.ndarray] | None = None,
    batch_size: int = 8,
) -> np.ndarray:
    """Grad-CAM of ``slices`` of ``stack`` for both targets.

    Args:
        model: a private eval-mode single-logit model (hooks are added to it while this runs).
        stack: normalised slices ``(S, H, W)``.
        offsets: the model's window offsets.
        layer: a name from :func:`cam_layers`.
        slices: which slices (default all).
        device: where to compute (default the model's).
        channel_stats: per-channel normalisation, or None.
        batch_size: slices per batch.

    Returns:
        ``(len(slices), 2, H, W)`` float32: channel 0 the ``standard`` CAM, channel 1 the ``abs`` CAM; a
        slice without predicted foreground has an all-zero ``standard`` CAM.

    Raises:
        InputError: an unknown layer, or a model with more than one output logit.
    """
    from captum.attr import LayerAttribution, LayerGradCam  # here: only --cam needs captum (~0.8 s to import)

    module = _layer(model, layer)
    device = device or next(model.parameters()).device
    model = model.eval().to(device)
    slices = list(range(stack.shape[0]) if slices is None else slices)
    out = []
    for batch in iter_windows(stack, offsets, batch_size=batch_size, slices=slices, channel_stats=channel_stats):
        x = batch.x.to(device)
        maps = []
        for target in ("predicted", "abs"):  # the standard and the |logit| target (CAM_TARGETS)
            selection = target_selection(model, x, target, padding=batch.padding)
            cam = LayerGradCam(target_forward(model, get_target(target).absolute), module)
            raw = cam.attribute(x, additional_forward_args=(selection,), relu_attributions=True)
            maps.append(LayerAttribution.interpolate(raw.detach(), tuple(x.shape[2:]), "bilinear").clamp_min(0))
        out.append(batch.padding.crop(torch.cat(maps, dim=1)).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 2, *stack.shape[1:]), dtype=np.float32)


def cam_summary(cams: np.ndarray, foreground: np.ndarray, *, layer: str, dilation: int) -> tuple[dict, np.ndarray]:
    """Per-slice background fraction of each CAM and the rank agreement of the two targets.

    Args:
        cams: ``(S, 2, H, W)`` from :func:`gradcam_stack` over all slices.
        foreground: ``(S, H, W)`` object pixels (mask, else prediction).
        layer: the layer name (recorded).
        dilation: foreground dilation in pixels.

    Returns:
        ``(summary, per_slice (S, 3))``: per-slice columns background fraction of the ``standard`` CAM, of
        the ``abs`` CAM, and the Spearman correlation between the two CAMs (NaN where undefined).
    """
    fractions = background_fractions(cams, foreground, dilation=dilation)[:, :2]
    corr = np.full(len(cams), np.nan)
    for z, (a, b) in enumerate(cams):
        if a.std() > 0 and b.std() > 0:
            corr[z] = spearmanr(a.ravel(), b.ravel())[0]
    per_slice = np.column_stack([fractions, corr])

    def mean(column: np.ndarray) -> float | None:
        finite = column[np.isfinite(column)]
        return float(finite.mean()) if finite.size else None

    summary = {
        "layer": layer,
        "dilation": int(dilation),
        "background_fraction": {"standard": mean(per_slice[:, 0]), "abs": mean(per_slice[:, 1])},
        "target_rank_correlation": mean(per_slice[:, 2]),
    }
    return summary, per_slice
