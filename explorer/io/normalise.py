"""Intensity normalisation presets (a registry).

By default one transform is applied to the whole volume, so every input channel of a window sees the same
intensity mapping. Per-channel ImageNet mean/std is offered only as an explicit preset: it is itself a
source of channel bias (channel ``i`` is shifted and scaled unlike channel ``j``), so a checkpoint records
which preset it was trained with and analysis reuses it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import InputError, unknown_name

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Normalisation",
    "NORMALISATIONS",
    "DEFAULT_NORMALISATION",
    "get_normalisation",
    "normalise",
    "channel_stats_for",
]


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Normalisation:
    """A named intensity transform.

    Attributes:
        name: registry key.
        description: one line for the UI and ``--help``.
        volume_fn: float32 volume → float32 volume, applied once to the whole volume.
        channel_stats: per-channel (mean, std) applied to each window after ``volume_fn``, or None.
    """

    name: str
    description: str
    volume_fn: Callable[[np.ndarray], np.ndarray]
    channel_stats: tuple[tuple[float, ...], tuple[float, ...]] | None = None


def _percentile_zscore(data: np.ndarray, lo: float = 0.5, hi: float = 99.5) -> np.ndarray:
    p_lo, p_hi = np.percentile(data, [lo, hi])
    clipped = np.clip(data, p_lo, p_hi)
    std = float(clipped.std())
    return ((clipped - float(clipped.mean())) / (std if std > 0 else 1.0)).astype(np.float32)


def _minmax(data: np.ndarray) -> np.ndarray:
    lo, hi = float(data.min()), float(data.max())
    return ((data - lo) / (hi - lo if hi > lo else 1.0)).astype(np.float32)


def _ct_window(level: float, width: float) -> Callable[[np.ndarray], np.ndarray]:
    def apply(data: np.ndarray) -> np.ndarray:
        lo = level - width / 2
        return ((np.clip(data, lo, lo + width) - lo) / width).astype(np.float32)

    return apply


NORMALISATIONS: dict[str, Normalisation] = {
    n.name: n
    for n in (
        Normalisation(
            "zscore", "clip to the 0.5-99.5th percentile, then z-score over the volume (default)", _percentile_zscore
        ),
        Normalisation("minmax", "scale the volume's minimum..maximum to 0..1", _minmax),
        Normalisation("ct-brain", "CT window level 40 HU, width 80 HU, to 0..1", _ct_window(40, 80)),
        Normalisation("ct-soft-tissue", "CT window level 40 HU, width 400 HU, to 0..1", _ct_window(40, 400)),
        Normalisation("ct-lung", "CT window level -600 HU, width 1500 HU, to 0..1", _ct_window(-600, 1500)),
        Normalisation("ct-bone", "CT window level 400 HU, width 1800 HU, to 0..1", _ct_window(400, 1800)),
        Normalisation(
            "imagenet",
            "min-max to 0..1, then per-channel ImageNet mean/std (3-slice windows only; "
            "itself a source of channel bias)",
            _minmax,
            (IMAGENET_MEAN, IMAGENET_STD),
        ),
    )
}
DEFAULT_NORMALISATION = "zscore"


def get_normalisation(name: str) -> Normalisation:
    """Look a preset up by name; an unknown name lists the valid ones."""
    if name not in NORMALISATIONS:
        raise unknown_name("normalisation", name, NORMALISATIONS)
    return NORMALISATIONS[name]


def normalise(data: np.ndarray, name: str = DEFAULT_NORMALISATION) -> np.ndarray:
    """Apply preset ``name``'s volume-level transform; returns a new float32 array."""
    return get_normalisation(name).volume_fn(np.asarray(data, dtype=np.float32))


def channel_stats_for(name: str, channels: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-channel (mean, std) arrays for ``channels`` input channels, or None for volume-level presets.

    Raises:
        InputError: a per-channel preset used with a window whose width it does not define.
    """
    stats = get_normalisation(name).channel_stats
    if stats is None:
        return None
    if channels != len(stats[0]):
        raise InputError(
            None,
            f"normalisation {name!r} defines {len(stats[0])} channels, the window has {channels}",
            "a volume-level preset such as 'zscore' for this window",
        )
    return np.asarray(stats[0], np.float32), np.asarray(stats[1], np.float32)
