"""Planted-dependency volumes: the label of slice ``z`` is computed from slice ``z + d`` only.

Shapes: a planted volume is ``(X, Y, Z)`` float32 in canonical order with axial slices along ``Z`` (the slice
stack is ``(Z, X, Y)``); its label is ``(X, Y, Z)`` bool on the same grid.

Each slice is a smooth in-plane noise texture: white noise, Gaussian-smoothed in-plane, standardised per
slice. In the ``independent`` regime the white noise of every slice is drawn afresh, so no slice carries
information about another; in the ``correlated`` regime it follows an AR(1) process along ``z`` with
coefficient ``rho`` (smoothing is linear and per slice, so the textures of neighbours correlate at about
``rho``), so a neighbour's content is partly present in the centre slice, as in real anatomy. The label of
slice ``z`` thresholds a further-smoothed copy of the texture of slice ``clip(z + d)``: the slice a 2D+
window's channel ``d`` holds (windows repeat the edge slices), so a network that segments it must use that
channel. Everything is drawn from one seeded generator; :data:`GENERATOR_VERSION` changes with any change
to the numbers produced, so cached networks trained on older data are not reused.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from scipy import ndimage

from .. import choices
from ..errors import InputError, unknown_name
from ..io.files import write_atomic

__all__ = [
    "GENERATOR_VERSION",
    "REGIMES",
    "SPACING",
    "PlantedParams",
    "check_regime",
    "textures",
    "planted_label",
    "make_planted",
    "write_planted",
]


#: Bumped whenever the generator's output for given parameters changes (part of every cache key).
GENERATOR_VERSION = 1
#: Slice-to-slice structure of the textures: name -> AR(1) coefficient along z is used or not.
REGIMES = choices.REGIMES
#: Voxel size of the written volumes (mm).
SPACING = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class PlantedParams:
    """How planted volumes are drawn (recorded whole in ``validation.json`` and in cache keys).

    Attributes:
        shape: ``(X, Y, Z)``; slices are axial (``Z`` of them).
        texture_sigma: in-plane Gaussian smoothing of the white noise, in pixels.
        label_sigma: further in-plane smoothing of the texture before the threshold, in pixels.
        threshold: label = smoothed texture (standardised per slice) above this; 0.25 → about 40 % foreground.
        rho: AR(1) coefficient along ``z`` of the white noise in the ``correlated`` regime.
    """

    shape: tuple[int, int, int] = (64, 64, 48)
    texture_sigma: float = 2.0
    label_sigma: float = 2.0
    threshold: float = 0.25
    rho: float = 0.6

    def __post_init__(self) -> None:
        if len(self.shape) != 3 or min(self.shape) < 8:
            raise InputError("--size", f"volume shape {self.shape}", "three sides of at least 8 voxels")
        if not 0 <= self.rho < 1:
            raise InputError("rho", f"{self.rho}", "an AR(1) coefficient in [0, 1)")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the generator version."""
        return {**asdict(self), "shape": list(self.shape), "generator_version": GENERATOR_VERSION}


def check_regime(regime: str) -> str:
    """``regime`` if it is one of :data:`REGIMES`.

    Raises:
        InputError: another name (the message lists the regimes).
    """
    if regime not in REGIMES:
        raise unknown_name("regime", regime, REGIMES)
    return regime


def textures(params: PlantedParams, regime: str, rng: np.random.Generator) -> np.ndarray:
    """Slice textures ``(Z, X, Y)`` float64, each slice smoothed in-plane and standardised (mean 0, std 1)."""
    check_regime(regime)
    x, y, z = params.shape
    white = rng.standard_normal((z, x, y))
    if regime == "correlated":
        scale = np.sqrt(1.0 - params.rho**2)  # keeps every slice's variance at 1
        for i in range(1, z):
            white[i] = params.rho * white[i - 1] + scale * white[i]
    smooth = ndimage.gaussian_filter(white, sigma=(0, params.texture_sigma, params.texture_sigma), mode="wrap")
    return _standardise(smooth)


def planted_label(stack: np.ndarray, direction: int, params: PlantedParams) -> np.ndarray:
    """Label stack ``(Z, X, Y)`` bool: slice ``z`` from texture slice ``clip(z + direction, 0, Z - 1)`` only."""
    source = np.clip(np.arange(stack.shape[0]) + int(direction), 0, stack.shape[0] - 1)
    smooth = ndimage.gaussian_filter(stack, sigma=(0, params.label_sigma, params.label_sigma), mode="wrap")
    return _standardise(smooth)[source] > params.threshold


def make_planted(params: PlantedParams, regime: str, direction: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One planted volume and its label, canonical ``(X, Y, Z)`` (float32, bool), drawn from ``seed``.

    Args:
        params: sizes and smoothing.
        regime: one of :data:`REGIMES`.
        direction: the planted offset ``d``: the label of slice ``z`` comes from slice ``z + d``.
        seed: any non-negative integer (the generator is seeded with it, the regime and the direction).

    Raises:
        InputError: an unknown regime.
    """
    rng = np.random.default_rng(
        [GENERATOR_VERSION, REGIMES.index(check_regime(regime)), int(direction) + 64, int(seed)]
    )
    stack = textures(params, regime, rng)
    label = planted_label(stack, direction, params)
    return np.moveaxis(stack, 0, -1).astype(np.float32), np.moveaxis(label, 0, -1)


def write_planted(volume: np.ndarray, label: np.ndarray, folder: Path) -> tuple[Path, Path]:
    """Write ``volume.nii`` (float32) and ``label.nii`` (uint8) into ``folder``, uncompressed: the bytes, and
    so the content hashes that key explorer's result cache, depend only on the arrays."""
    folder.mkdir(parents=True, exist_ok=True)
    affine = np.diag([*SPACING, 1.0])
    return (
        write_atomic(folder / "volume.nii", nib.Nifti1Image(volume, affine).to_bytes()),
        write_atomic(folder / "label.nii", nib.Nifti1Image(label.astype(np.uint8), affine).to_bytes()),
    )


def _standardise(stack: np.ndarray) -> np.ndarray:
    mean = stack.mean(axis=(1, 2), keepdims=True)
    std = stack.std(axis=(1, 2), keepdims=True)
    return (stack - mean) / np.where(std > 0, std, 1.0)
