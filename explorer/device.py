"""The one place that chooses the compute device: CUDA, then MPS, then CPU."""

from __future__ import annotations

import torch

from .errors import InputError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


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
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type
