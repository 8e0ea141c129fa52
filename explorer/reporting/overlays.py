"""NIfTI bytes of the scan and its overlays for the 3D viewer (no ``streamlit`` import: plain functions).

Everything is written on the volume's canonical grid with its affine (``Volume.data`` / ``Volume.affine``), so
the viewer lines the overlays up with the scan and labels the orientation from the affine. Shapes: stacks are
``(S, H, W)`` along the analysis axis, attribution maps ``(S, C, H, W)``; ``Volume.unstack`` puts a stack
back on the ``(X, Y, Z)`` grid (as :mod:`explorer.reporting.outputs` does for its exported maps).
"""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np

from explorer.analysis import Analysis
from explorer.io.volume import Volume

__all__ = ["scan_nifti", "mask_nifti", "prediction_nifti", "attribution_volume", "attribution_nifti"]


def _nifti(data: np.ndarray, affine: np.ndarray, *, cal: tuple[float, float] | None = None) -> bytes:
    image = nib.Nifti1Image(np.ascontiguousarray(data), affine)
    if cal is not None:  # the display range NiiVue starts from (the threshold for attribution overlays)
        image.header["cal_min"], image.header["cal_max"] = cal
    # mtime=0: the same data give the same bytes, so the viewer sees an unchanged scan and keeps its panel
    return gzip.compress(image.to_bytes(), compresslevel=1, mtime=0)


def scan_nifti(volume: Volume) -> bytes:
    """The scan (float32, canonical grid) as ``.nii.gz`` bytes."""
    return _nifti(np.asarray(volume.data, dtype=np.float32), volume.affine)


def mask_nifti(analysis: Analysis) -> bytes | None:
    """The analysis' mask as a uint8 label volume, or None without a mask."""
    if analysis.mask is None:
        return None
    return _nifti(np.asarray(analysis.mask.data, dtype=np.uint8), analysis.volume.affine, cal=(0.0, 1.0))


def prediction_nifti(analysis: Analysis, name: str) -> bytes:
    """Checkpoint ``name``'s prediction (1 = foreground) as a uint8 volume."""
    stack = np.asarray(analysis.models[name].prediction, dtype=np.uint8)
    return _nifti(analysis.volume.unstack(stack, analysis.axis), analysis.volume.affine, cal=(0.0, 1.0))


def attribution_volume(analysis: Analysis, name: str, channel: int, threshold: float) -> tuple[np.ndarray, float]:
    """|attribution| of checkpoint ``name`` for input channel ``channel`` on the ``(X, Y, Z)`` grid, with values
    below ``threshold`` × its maximum set to 0.

    Args:
        analysis: an analysis that kept its maps.
        name: the checkpoint.
        channel: index into the checkpoint's offsets.
        threshold: fraction in ``[0, 1)`` of the largest |value| (over the volume) below which nothing is shown.

    Returns:
        ``(volume, top)``: float32 ``(X, Y, Z)`` (NaN, i.e. skipped slices, as 0) and the largest value.

    Raises:
        ValueError: the analysis kept no maps.
    """
    maps = analysis.models[name].maps
    if maps is None:
        raise ValueError("this analysis kept no attribution maps")
    stack = np.nan_to_num(np.abs(np.asarray(maps[:, channel], dtype=np.float32)), nan=0.0)
    top = float(stack.max()) or 1.0
    stack[stack < threshold * top] = 0.0
    return analysis.volume.unstack(stack, analysis.axis), top


def attribution_nifti(analysis: Analysis, name: str, channel: int, threshold: float) -> bytes:
    """:func:`attribution_volume` as ``.nii.gz`` bytes whose display range starts at the threshold."""
    data, top = attribution_volume(analysis, name, channel, threshold)
    return _nifti(data, analysis.volume.affine, cal=(max(threshold * top, 1e-12 * top), top))
