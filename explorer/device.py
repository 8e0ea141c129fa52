"""The one place that chooses the compute device (CUDA, then MPS, then CPU) and the arithmetic precision."""

from __future__ import annotations

import torch

from . import choices
from .errors import InputError

__all__ = ["DEVICE_CHOICES", "PRECISIONS", "resolve_precision", "autocast", "select_device", "describe_device"]


DEVICE_CHOICES = choices.DEVICE_CHOICES
#: Precisions of the attribution passes (autocast); ``auto`` resolves per device (:func:`resolve_precision`).
PRECISIONS: dict[str, torch.dtype | None] = {
    "auto": None,
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


def resolve_precision(name: str, device: torch.device) -> str:
    """The precision a run uses on ``device``.

    ``auto`` may pick reduced precision only where it was checked to keep the mean shares and the asymmetry
    index within 1e-3 of float32. On this project's reference CPU (AVX512-BF16/AMX, native bfloat16 kernels)
    bfloat16 autocast misses that by a little (mean share 1.0e-3, AI 1.1e-3 on the sample;
    tests/test_precision.py); on an H200 (``bench/bench_gpu.py``) bfloat16 misses it on both volumes and float16
    on the 1 mm MNI152 (AI 1.1e-3), so ``auto`` is float32 everywhere; ``bfloat16``/``float16`` are there to be
    asked for (docs/performance.md has the speed-ups and the differences).

    Raises:
        InputError: an unknown name, or float16 on a CPU (no fast kernels there).
    """
    if name not in PRECISIONS:
        raise InputError("--precision", f"unknown precision {name!r}", "one of " + ", ".join(PRECISIONS))
    if name == "float16" and device.type == "cpu":
        raise InputError("--precision", "float16 on the CPU", "auto, float32 or bfloat16 on a CPU")
    if name == "bfloat16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise InputError("--precision", "bfloat16 on a GPU without bfloat16 support", "float16 or float32")
    return "float32" if name == "auto" else name


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """The autocast context of a resolved ``precision`` on ``device`` (disabled for float32)."""
    dtype = PRECISIONS[precision]
    return torch.autocast(
        device_type=device.type, dtype=dtype or torch.float32, enabled=dtype not in (None, torch.float32)
    )


def select_device(preference: str = "auto") -> torch.device:
    """Return the device to compute on.

    Args:
        preference: ``auto`` (CUDA, then MPS, then CPU), or ``cpu``, ``cuda``, ``mps``.

    Raises:
        InputError: unknown preference, or an explicitly requested device that is not available.
    """
    if preference not in DEVICE_CHOICES:
        raise InputError("--device", f"unknown device {preference!r}", "one of " + ", ".join(DEVICE_CHOICES))
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if preference == "cuda" and not torch.cuda.is_available():
        raise InputError("--device", "CUDA was requested but no CUDA device is available", "auto or cpu")
    if preference == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError("--device", "MPS was requested but is not available", "auto or cpu")
    return torch.device(preference)


def describe_device(device: torch.device) -> str:
    """A short human-readable name, e.g. ``cuda (NVIDIA H100)`` or ``cpu (2 threads)``."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        n = torch.get_num_threads()
        return f"cpu ({n} thread{'s' if n != 1 else ''})"
    return device.type
