"""Model factory over smp architectures, and the encoder's first convolution.

Shapes: a model maps windows ``(B, C, H, W)`` (``C = len(offsets)``, ``H, W`` multiples of 32) to logits
``(B, classes, H, W)``. The first convolution's weight is ``(out, C, kh, kw)``; input channel ``i`` holds
slice ``z + offsets[i]``.

Models are always built with ``encoder_weights=None``: pretrained weights are put in by an initialisation
strategy (:mod:`explorer.strategies`), which decides what each input channel's kernel is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import segmentation_models_pytorch as smp
import torch

from .errors import InputError, unknown_name

#: Architectures a checkpoint may use (smp class per name).
ARCHS: dict[str, type[torch.nn.Module]] = {
    "Unet": smp.Unet,
    "FPN": smp.FPN,
    "UnetPlusPlus": smp.UnetPlusPlus,
    "DeepLabV3Plus": smp.DeepLabV3Plus,
}

#: Lighter decoders used by ``explorer train`` unless told otherwise (small files, fast CPU training).
DEFAULT_ARCH_KWARGS: dict[str, dict[str, Any]] = {
    "Unet": {"decoder_channels": [128, 64, 32, 16, 8]},
    "UnetPlusPlus": {"decoder_channels": [128, 64, 32, 16, 8]},
    "FPN": {},
    "DeepLabV3Plus": {},
}


def build_model(*, arch: str = "Unet", encoder: str = "mobilenet_v2", in_channels: int = 3, classes: int = 1,
                **arch_kwargs: Any) -> torch.nn.Module:
    """Build an smp segmentation model with randomly initialised weights.

    Args:
        arch: one of :data:`ARCHS`.
        encoder: an smp encoder name (``smp.encoders.get_encoder_names()``).
        in_channels: input channels, i.e. the number of window offsets.
        classes: output channels (1 for a binary mask).
        **arch_kwargs: passed to the smp class (e.g. ``decoder_channels``); lists are accepted for tuples.

    Returns:
        The model, in training mode, on the CPU.

    Raises:
        InputError: unknown architecture or encoder, non-positive channel counts, or arguments the smp class
            rejects.
    """
    if arch not in ARCHS:
        raise unknown_name("architecture", arch, ARCHS)
    if encoder not in smp.encoders.get_encoder_names() and not encoder.startswith("tu-"):
        raise unknown_name("encoder", encoder, smp.encoders.get_encoder_names())
    if in_channels < 1 or classes < 1:
        raise InputError("model", f"in_channels={in_channels}, classes={classes}", "positive integers")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in arch_kwargs.items()}
    for reserved in ("encoder_name", "encoder_weights", "in_channels", "classes"):
        if reserved in kwargs:
            raise InputError("arch_kwargs", f"{reserved!r} given in arch_kwargs", "it as its own argument")
    try:
        return ARCHS[arch](encoder_name=encoder, encoder_weights=None, in_channels=in_channels, classes=classes,
                           **kwargs)
    except (TypeError, ValueError, KeyError) as exc:
        raise InputError("model", f"smp {arch} with encoder {encoder!r} and {kwargs} failed: {exc}",
                         "arguments the smp architecture accepts") from exc


def first_conv(model: torch.nn.Module) -> torch.nn.Conv2d:
    """The encoder's first convolution (the first ``Conv2d`` of ``model.encoder``, or of ``model``).

    Raises:
        InputError: the model has no convolution.
    """
    root = getattr(model, "encoder", model)
    for module in root.modules():
        if isinstance(module, torch.nn.Conv2d):
            return module
    raise InputError("model", f"{type(model).__name__} has no Conv2d layer", "a convolutional encoder")


def first_conv_shares(model_or_conv: torch.nn.Module | torch.Tensor, offsets: Sequence[int]) -> dict[int, float]:
    """L1 norm of the first convolution's kernels per input channel, normalised to sum 1, keyed by offset.

    Args:
        model_or_conv: a model, its first ``Conv2d``, or a weight tensor ``(out, C, kh, kw)``.
        offsets: the window offsets, one per input channel.

    Raises:
        InputError: the number of offsets differs from the convolution's input channels.
    """
    if isinstance(model_or_conv, torch.Tensor):
        weight = model_or_conv
    elif isinstance(model_or_conv, torch.nn.Conv2d):
        weight = model_or_conv.weight
    else:
        weight = first_conv(model_or_conv).weight
    mass = weight.detach().abs().double().sum(dim=(0, 2, 3))
    if mass.numel() != len(offsets):
        raise InputError("offsets", f"{len(offsets)} offsets for a first convolution with {mass.numel()} input "
                         "channels", "one offset per input channel")
    shares = mass / mass.sum()
    return {int(o): float(s) for o, s in zip(offsets, shares, strict=False)}
