"""Model factory over smp architectures, and the encoder's first convolution.

Shapes: a model maps windows ``(B, C, H, W)`` (``C = len(offsets)``, ``H, W`` multiples of 32) to logits
``(B, classes, H, W)``. The first convolution's weight is ``(out, C, kh, kw)``; input channel ``i`` holds
slice ``z + offsets[i]``.

Models are always built with ``encoder_weights=None``: pretrained weights are put in by an initialisation
strategy (:mod:`explorer.strategies`), which decides what each input channel's kernel is.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import segmentation_models_pytorch as smp
import timm
import torch

from .errors import InputError, unknown_name

#: Architectures a checkpoint may use: every class ``smp.create_model`` builds, by class name (``Unet``, ...).
ARCHS: dict[str, type[torch.nn.Module]] = {cls.__name__: cls for cls in smp.MODEL_ARCHITECTURES_MAPPING.values()}

#: Lighter decoders used by ``explorer train`` unless told otherwise (small files, fast CPU training).
DEFAULT_ARCH_KWARGS: dict[str, dict[str, Any]] = {
    "Unet": {"decoder_channels": [128, 64, 32, 16, 8]},
    "UnetPlusPlus": {"decoder_channels": [128, 64, 32, 16, 8]},
}
_TIMM_PREFIX = "tu-"


@lru_cache(maxsize=1)
def encoder_names() -> frozenset[str]:
    """The encoder allow-list: smp's registry (``smp.encoders.encoders``) and ``tu-`` + every model name in
    timm's registry. Names that make timm reach outside (``tu-hf-hub:...``, ``tu-local-dir:...``) are not
    registry names, so an upload or a file's metadata can never make the server contact a hub or read a folder.
    """
    timm_names = {_TIMM_PREFIX + n for n in timm.list_models() if n.replace("_", "").replace(".", "").isalnum()}
    return frozenset(smp.encoders.encoders) | frozenset(timm_names)


def resolve_arch(arch: str) -> str:
    """The canonical class name of an smp architecture, case-insensitively (``unet`` → ``Unet``).

    Raises:
        InputError: not an architecture smp builds (the valid names are listed).
    """
    if isinstance(arch, str):
        if arch in ARCHS:
            return arch
        by_lower = {name.lower(): name for name in ARCHS}
        if arch.lower() in by_lower:
            return by_lower[arch.lower()]
    raise unknown_name("architecture", arch, ARCHS)


def check_encoder(encoder: str) -> str:
    """``encoder`` when it is on the allow-list (:func:`encoder_names`).

    Raises:
        InputError: anything else; smp's own encoder names are listed (timm's are too many to print).
    """
    if not isinstance(encoder, str) or encoder not in encoder_names():
        raise unknown_name("encoder", encoder, [*smp.encoders.encoders, "tu-<a timm model name>"])
    return encoder


def build_model(*, arch: str = "Unet", encoder: str = "mobilenet_v2", in_channels: int = 3, classes: int = 1,
                device: torch.device | str | None = None, **arch_kwargs: Any) -> torch.nn.Module:
    """Build an smp segmentation model with randomly initialised weights.

    Args:
        arch: one of :data:`ARCHS` (case-insensitive).
        encoder: a name on the allow-list :func:`encoder_names`.
        in_channels: input channels, i.e. the number of window offsets.
        classes: output channels (1 for a binary mask).
        device: where parameters are made; ``"meta"`` gives their shapes without allocating anything.
        **arch_kwargs: passed to the smp class (e.g. ``decoder_channels``); lists are accepted for tuples.

    Returns:
        The model, in training mode, on the CPU (or ``device``).

    Raises:
        InputError: unknown architecture or encoder, non-positive channel counts, or arguments the smp class
            rejects.
    """
    arch = resolve_arch(arch)
    check_encoder(encoder)
    if in_channels < 1 or classes < 1:
        raise InputError("model", f"in_channels={in_channels}, classes={classes}", "positive integers")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in arch_kwargs.items()}
    for reserved in ("encoder_name", "encoder_weights", "in_channels", "classes"):
        if reserved in kwargs:
            raise InputError("arch_kwargs", f"{reserved!r} given in arch_kwargs", "it as its own argument")
    try:
        with torch.device(device or "cpu"):
            return ARCHS[arch](encoder_name=encoder, encoder_weights=None, in_channels=in_channels, classes=classes,
                               **kwargs)
    except Exception as exc:  # smp raises TypeError, ValueError, KeyError, AssertionError, RuntimeError, ...
        raise InputError("model", f"smp {arch} with encoder {encoder!r} and {kwargs} failed: "
                         f"{' '.join(str(exc).split())[:200]}", "arguments the smp architecture accepts") from exc


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


@lru_cache(maxsize=32)
def meta_model(arch: str, encoder: str, in_channels: int, classes: int, kwargs_json: str = "{}") -> torch.nn.Module:
    """An architecture built once on the ``meta`` device (shapes and structure, no memory, no initialisation
    kept), cached: loading a zoo compares every checkpoint's shapes against one build per architecture.

    Treat it as read-only. Raises as :func:`build_model`.
    """
    return build_model(arch=arch, encoder=encoder, in_channels=in_channels, classes=classes, device="meta",
                       **json.loads(kwargs_json))


def first_conv_key(arch: str, encoder: str, in_channels: int, classes: int, kwargs_json: str = "{}") -> str:
    """The state-dict key of :func:`first_conv`'s weight for an architecture (from :func:`meta_model`), so that a
    checkpoint's first-conv shares are read from its state dict without building it."""
    model = meta_model(arch, encoder, in_channels, classes, kwargs_json)
    conv = first_conv(model)
    return next(f"{name}.weight" for name, module in model.named_modules() if module is conv)


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
