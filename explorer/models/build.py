"""Model factory over smp architectures, and the encoder's first convolution.

Shapes: a model maps windows ``(B, C, H, W)`` (``C = len(offsets)``, ``H, W`` multiples of 32) to logits
``(B, classes, H, W)``. The first convolution's weight is ``(out, C, kh, kw)``; input channel ``i`` holds
slice ``z + offsets[i]``.

Models are always built with ``encoder_weights=None``: pretrained weights are put in by an initialisation
strategy (:mod:`explorer.models.strategies`), which decides what each input channel's kernel is.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Mapping, Sequence
from functools import cache, lru_cache
from typing import Any

import segmentation_models_pytorch as smp
import timm
import torch

from ..errors import InputError, unknown_name

__all__ = [
    "ARCHS",
    "DEFAULT_ARCH_KWARGS",
    "RESERVED_ARGS",
    "PROBE",
    "encoder_names",
    "resolve_arch",
    "check_encoder",
    "arch_arguments",
    "check_arch_kwargs",
    "build_model",
    "first_conv",
    "meta_model",
    "meta_probe",
    "first_conv_key",
    "first_conv_shares",
]


#: Architectures a checkpoint may use: every class ``smp.create_model`` builds, by class name (``Unet``, ...).
ARCHS: dict[str, type[torch.nn.Module]] = {cls.__name__: cls for cls in smp.MODEL_ARCHITECTURES_MAPPING.values()}

#: Lighter decoders used by ``explorer train`` unless told otherwise (small files, fast CPU training).
DEFAULT_ARCH_KWARGS: dict[str, dict[str, Any]] = {
    "Unet": {"decoder_channels": [128, 64, 32, 16, 8]},
    "UnetPlusPlus": {"decoder_channels": [128, 64, 32, 16, 8]},
}
_TIMM_PREFIX = "tu-"
#: Arguments of every architecture that explorer sets itself: metadata never gives them.
RESERVED_ARGS = frozenset({"encoder_name", "encoder_weights", "in_channels", "classes"})
#: Deprecated names smp still takes through ``**kwargs`` and removes before they reach an encoder; older
#: ``save_pretrained`` configs (smp 0.3, 0.4) hold them.
_DEPRECATED_ARGS = {
    "Unet": {"decoder_use_batchnorm"},
    "UnetPlusPlus": {"decoder_use_batchnorm"},
    "MAnet": {"decoder_use_batchnorm"},
    "Linknet": {"decoder_use_batchnorm"},
    "PSPNet": {"psp_use_batchnorm"},
    "PAN": {"upscale_mode"},
}
#: Side of the square input an architecture is probed with on the meta device (:func:`meta_probe`): the
#: smallest every convolutional architecture takes (PAN pools its input five times, then once more).
PROBE = 128

# timm reports some failures through its logger before raising (e.g. "No checkpoint found at ..."); without a
# handler Python's last-resort handler prints them to stderr, a second line beside the one error the CLI prints.
logging.getLogger("timm").addHandler(logging.NullHandler())


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


@cache
def arch_arguments(arch: str) -> frozenset[str]:
    """The keyword arguments metadata may give architecture ``arch`` (a key of :data:`ARCHS`): the named
    parameters of its smp class and their deprecated names, less :data:`RESERVED_ARGS`.

    Anything else would land in the class's ``**kwargs``, which smp hands to ``timm.create_model`` for a ``tu-``
    encoder, where ``checkpoint_path``, ``pretrained_cfg`` or ``pretrained_cfg_overlay`` open local files.
    """
    params = inspect.signature(ARCHS[arch].__init__).parameters.values()
    named = {p.name for p in params if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and p.name != "self"}
    return frozenset(named - RESERVED_ARGS | _DEPRECATED_ARGS.get(arch, set()))


def check_arch_kwargs(arch: str, kwargs: Mapping[str, Any], *, source: str, where: str = "arch_kwargs") -> None:
    """Refuse any key of ``kwargs`` that is not in :func:`arch_arguments` (``arch``: a key of :data:`ARCHS`).

    The message names the key, never its value, so that a refused path reads the same whether it exists or not.

    Args:
        arch: the canonical architecture name.
        kwargs: the arguments metadata gives the architecture.
        source: the file named in errors.
        where: where the arguments were found (``field 'arch_kwargs'`` of explorer's metadata, ``config.json``).

    Raises:
        InputError: the first key not allowed, listing the allowed ones.
    """
    allowed = arch_arguments(arch)
    for key in kwargs:
        if key not in allowed:
            raise InputError(
                source,
                f"{where} sets {str(key)[:128]!r}, which is not an argument explorer passes to smp {arch}",
                "only: " + ", ".join(sorted(allowed)),
            )


def build_model(
    *,
    arch: str = "Unet",
    encoder: str = "mobilenet_v2",
    in_channels: int = 3,
    classes: int = 1,
    device: torch.device | str | None = None,
    **arch_kwargs: Any,
) -> torch.nn.Module:
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
        InputError: unknown architecture or encoder, non-positive channel counts, an argument outside
            :func:`arch_arguments`, or arguments the smp class rejects.
    """
    arch = resolve_arch(arch)
    check_encoder(encoder)
    if in_channels < 1 or classes < 1:
        raise InputError("model", f"in_channels={in_channels}, classes={classes}", "positive integers")
    check_arch_kwargs(arch, arch_kwargs, source="model")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in arch_kwargs.items()}
    try:
        with torch.device(device or "cpu"):
            return ARCHS[arch](
                encoder_name=encoder, encoder_weights=None, in_channels=in_channels, classes=classes, **kwargs
            )
    except Exception as exc:  # smp raises TypeError, ValueError, KeyError, AssertionError, RuntimeError, ...
        raise InputError(
            "model",
            f"smp {arch} with encoder {encoder!r} and {kwargs} failed: {' '.join(str(exc).split())[:200]}",
            "arguments the smp architecture accepts",
        ) from exc


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


@lru_cache(maxsize=2)
def blank_model(arch: str, encoder: str, in_channels: int, classes: int, kwargs_json: str = "{}") -> torch.nn.Module:
    """An architecture built once on the CPU, its random weights never used, cached: a copy of it given a
    checkpoint's weights is a checkpoint's model (:meth:`explorer.models.checkpoints.Checkpoint.build_model`).
    Copying took 40 ms for the zoo's U-Net, building 170 ms (most of it drawing initial weights that the
    checkpoint's replace). Only training builds afresh: its initial weights are drawn from its seed.

    Never modify it: copy it (``copy.deepcopy``). Raises as :func:`build_model`.
    """
    return build_model(arch=arch, encoder=encoder, in_channels=in_channels, classes=classes, **json.loads(kwargs_json))


@lru_cache(maxsize=32)
def meta_model(arch: str, encoder: str, in_channels: int, classes: int, kwargs_json: str = "{}") -> torch.nn.Module:
    """An architecture built once on the ``meta`` device (shapes and structure, no memory, no initialisation
    kept), cached: loading a zoo compares every checkpoint's shapes against one build per architecture.

    Treat it as read-only. Raises as :func:`build_model`.
    """
    return build_model(
        arch=arch, encoder=encoder, in_channels=in_channels, classes=classes, device="meta", **json.loads(kwargs_json)
    )


def meta_probe(arch: str, encoder: str, in_channels: int, classes: int, kwargs_json: str = "{}") -> tuple[float, int]:
    """One forward of an architecture on the ``meta`` device, so nothing is allocated or computed whatever
    size the metadata asks for: the activations it keeps per input pixel, its float32 weights' bytes, and a
    check that its logits have the input's height and width.

    The model is built afresh rather than taken from :func:`meta_model`: the counting hooks must not see
    another thread's forward.

    Returns:
        ``(activation floats per input pixel, bytes of float32 weights)``; cached per architecture.

    Raises:
        InputError: as :func:`build_model`; a forward that fails on a :data:`PROBE` × :data:`PROBE` input;
            an output that is not one logits tensor ``(1, classes, PROBE, PROBE)`` (e.g. an FPN whose
            ``upsampling`` is not 4, or ``aux_params`` adding a classification head). Refusals are cached
            too: a probe takes up to a second on the meta device, and a refused file tends to come back.
    """
    outcome = _meta_probe(arch, encoder, in_channels, classes, kwargs_json)
    if isinstance(outcome, InputError):
        raise InputError(outcome.source, outcome.problem, outcome.expected)
    return outcome


@lru_cache(maxsize=32)
def _meta_probe(
    arch: str, encoder: str, in_channels: int, classes: int, kwargs_json: str
) -> tuple[float, int] | InputError:
    """:func:`meta_probe`'s result, or its refusal (without its traceback, which holds the model)."""
    try:
        return _probe_forward(arch, encoder, in_channels, classes, kwargs_json)
    except InputError as exc:
        return InputError(exc.source, exc.problem, exc.expected)


def _probe_forward(arch: str, encoder: str, in_channels: int, classes: int, kwargs_json: str) -> tuple[float, int]:
    kwargs = json.loads(kwargs_json)
    model = build_model(
        arch=arch, encoder=encoder, in_channels=in_channels, classes=classes, device="meta", **kwargs
    ).eval()
    total = [0]

    def count(module: torch.nn.Module, inputs: object, output: object) -> None:
        if isinstance(output, torch.Tensor) and not list(module.children()):
            total[0] += output.numel()

    handles = [m.register_forward_hook(count) for m in model.modules()]
    try:
        with torch.no_grad():
            out = model(torch.empty(1, in_channels, PROBE, PROBE, device="meta"))
    except Exception as exc:  # smp and timm raise RuntimeError, ValueError, AssertionError, ...
        raise InputError(
            "model",
            f"smp {arch} with encoder {encoder!r} fails on a {PROBE} × {PROBE} input: "
            f"{' '.join(str(exc).split())[:160]}",
            "an architecture that segments any slice padded to a multiple of 32",
        ) from exc
    finally:
        for handle in handles:
            handle.remove()
    expected = (1, classes, PROBE, PROBE)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
        found = f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else f"a {type(out).__name__}"
        raise InputError(
            "model",
            f"smp {arch} maps a {PROBE} × {PROBE} input to {found}",
            f"one logits tensor of the input's size {expected}{_upsampling_hint(arch, kwargs, out)}",
        )
    return total[0] / PROBE**2, sum(p.numel() for p in model.parameters()) * 4


def _upsampling_hint(arch: str, kwargs: dict[str, Any], out: object) -> str:
    """For an architecture with an ``upsampling`` argument, the value that would give logits of the input's size."""
    param = inspect.signature(ARCHS[arch].__init__).parameters.get("upsampling")
    value = kwargs.get("upsampling", param.default if param else None)
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not isinstance(out, torch.Tensor)
        or out.ndim != 4
        or not out.shape[-1]
    ):
        return ""
    right = value * PROBE / out.shape[-1]
    return f"; for smp {arch} that is upsampling {int(right)}" if right >= 1 and float(right).is_integer() else ""


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
        raise InputError(
            "offsets",
            f"{len(offsets)} offsets for a first convolution with {mass.numel()} input channels",
            "one offset per input channel",
        )
    shares = mass / mass.sum()
    return {int(o): float(s) for o, s in zip(offsets, shares, strict=False)}
