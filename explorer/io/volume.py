"""Scans and masks: load any supported format (:mod:`explorer.io.readers`) into a canonical :class:`Volume`.

Axis order: every array here is ``(X, Y, Z)`` in the closest canonical (RAS+) voxel order, so axis 0 runs
left→right, axis 1 posterior→anterior and axis 2 inferior→superior. Slicing along an axis gives a stack
``(S, H, W)`` with ``S`` the slice index (see :meth:`Volume.stack`). A TIFF or HDF5 stack's pages are axis 2.

Checks run cheapest first (size, emptiness, magic, header, declared shape) and every failure is an
:class:`InputError` that names the file. Intensity normalisation presets live in :mod:`explorer.io.normalise`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from ..config import Limits
from ..errors import InputError, unknown_name
from .files import sha256_bytes
from .readers import ReadParams, read_source
from .readers.source import Files

__all__ = ["AXES", "Volume", "Mask", "axis_index", "load_volume", "load_mask"]


#: Slicing axis names and their index in canonical (RAS+) voxel order.
AXES: dict[str, int] = {"sagittal": 0, "coronal": 1, "axial": 2}

#: Formats without world geometry: a mask in one of them lies on the volume's grid when its shape fits.
_NO_GEOMETRY = ("tiff", "hdf5")


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D scan in canonical voxel order.

    Attributes:
        data: float32 ``(X, Y, Z)``, raw intensities; non-finite voxels already replaced (see ``nonfinite``).
        affine: 4×4 voxel→world matrix of ``data``.
        source: the file name shown to users.
        sha256: hex digest of the content (a file's bytes; a series' sorted file digests), hashed again with the
            reading parameters when any was set (volume_index, series, dataset, spacing): identifies the input
            in caches and outputs.
        source_affine: the file's own affine; with ``source_ornt`` it writes results back in file order.
        source_ornt: nibabel orientation of the file's voxel axes (``io_orientation`` of ``source_affine``).
        nonfinite: how many NaN/Inf voxels were replaced (NaN and -Inf by the finite minimum, +Inf by the
            finite maximum).
    """

    data: np.ndarray
    affine: np.ndarray
    source: str
    sha256: str
    source_affine: np.ndarray
    source_ornt: np.ndarray
    nonfinite: int = 0
    header: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in world units (mm) along the canonical axes."""
        return tuple(float(v) for v in nib.affines.voxel_sizes(self.affine))  # type: ignore[return-value]

    def stack(self, axis: str | int = "axial", data: np.ndarray | None = None) -> np.ndarray:
        """Slices along ``axis`` as a view ``(S, H, W)``; ``data`` defaults to :attr:`data`."""
        return np.moveaxis(self.data if data is None else data, axis_index(axis), 0)

    def unstack(self, stack: np.ndarray, axis: str | int = "axial") -> np.ndarray:
        """Inverse of :meth:`stack`: ``(S, H, W, ...)`` back to canonical ``(X, Y, Z, ...)``."""
        return np.moveaxis(stack, 0, axis_index(axis))

    def to_source_order(self, array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Reorder a canonical ``(X, Y, Z, ...)`` array into the file's voxel order.

        Returns:
            The reordered array and the file's affine, ready for ``nib.Nifti1Image(array, affine)``.
        """
        canonical = nib.orientations.axcodes2ornt(("R", "A", "S"))
        back = nib.orientations.ornt_transform(canonical, self.source_ornt)
        return nib.orientations.apply_orientation(array, back), self.source_affine


@dataclass(frozen=True, eq=False)
class Mask:
    """A binary mask on the grid of a :class:`Volume` (canonical order, bool ``(X, Y, Z)``)."""

    data: np.ndarray
    source: str
    sha256: str

    def stack(self, axis: str | int = "axial") -> np.ndarray:
        return np.moveaxis(self.data, axis_index(axis), 0)


def axis_index(axis: str | int) -> int:
    """Canonical axis index of ``sagittal``/``coronal``/``axial`` (or 0/1/2)."""
    if isinstance(axis, (int, np.integer)) and int(axis) in (0, 1, 2):
        return int(axis)
    if isinstance(axis, str) and axis in AXES:
        return AXES[axis]
    raise unknown_name("slicing axis", str(axis), list(AXES))


def load_volume(
    source: str | Path | bytes | Files,
    *,
    name: str | None = None,
    volume_index: int | None = None,
    spacing: tuple[float, float, float] | None = None,
    series: str | None = None,
    dataset: str | None = None,
    limits: Limits | None = None,
) -> Volume:
    """Load a 3D scan in any format of :data:`explorer.io.readers.READERS` and reorient it to canonical RAS+.

    Args:
        source: a path (a file, or a folder holding a DICOM series), the bytes of an upload, or several
            uploads ``[(name, bytes), ...]`` (a DICOM series).
        name: the name shown in messages (defaults to the path's name, or ``upload``).
        volume_index: which volume of a 4D image to take (a 4D image with one volume needs none).
        spacing: voxel size along axes 0, 1, 2 for formats without geometry (TIFF, HDF5); overrides their
            metadata; formats with an affine ignore it.
        series: the DICOM SeriesInstanceUID to read when the source holds several.
        dataset: the HDF5 dataset to read when the file holds several 3D datasets.
        limits: size and voxel limits (default: :meth:`Limits.from_env`).

    Returns:
        The :class:`Volume`; its ``sha256`` covers the content and the reading parameters that were set.

    Raises:
        InputError: the file is missing, empty, too large, truncated, of an unknown format, not 3D,
            complex-valued, empty along an axis, entirely non-finite, constant, beyond float32's range, or
            has a non-finite or singular affine; format-specific problems (see :mod:`explorer.io.readers`).
    """
    limits = limits or Limits.from_env()
    params = ReadParams(
        volume_index=volume_index,
        series=series,
        dataset=dataset,
        spacing=None if spacing is None else tuple(float(v) for v in spacing),
    )
    raw, src = read_source(source, params, limits, name)
    label, kind, info = src.label, raw.kind, raw.info
    affine = _checked_affine(raw.affine, label)
    array = _as_3d(raw.array, label, volume_index)
    del raw  # the file-order voxels are reoriented as views and copied once, into float32
    ornt = nib.orientations.io_orientation(affine)
    data, nonfinite = _finite_float32(nib.orientations.apply_orientation(array, ornt), label)
    key = params.key()
    return Volume(
        data=data,
        affine=affine @ nib.orientations.inv_ornt_aff(ornt, array.shape),
        source=label,
        sha256=sha256_bytes(f"{src.sha256}|{key}".encode()) if key else src.sha256,
        source_affine=affine,
        source_ornt=ornt,
        nonfinite=nonfinite,
        header={"format": kind, "shape": list(array.shape), **info, **({"read": key} if key else {})},
    )


def load_mask(
    source: str | Path | bytes | Files, volume: Volume, *, name: str | None = None, limits: Limits | None = None
) -> Mask:
    """Load a mask that lies on ``volume``'s grid (any volume format); voxels > 0 are foreground.

    Formats without geometry (TIFF, HDF5) lie on the volume's grid when their shape fits.

    Raises:
        InputError: unreadable file (as :func:`load_volume`), or a shape or affine unlike the volume's.
    """
    limits = limits or Limits.from_env()
    raw, src = read_source(source, ReadParams(), limits, name)
    label = src.label
    values = _as_3d(raw.array, label, None)
    affine = volume.source_affine if raw.kind in _NO_GEOMETRY else _checked_affine(raw.affine, label)
    del raw  # the foreground is taken in file order (one byte a voxel) and reoriented as a view
    source_shape = tuple(volume.header.get("shape", volume.shape))
    if tuple(values.shape) != source_shape:
        raise InputError(
            label,
            f"mask has shape {tuple(values.shape)} but the volume has {source_shape}",
            "a mask on the volume's voxel grid",
        )
    if not np.allclose(affine, volume.source_affine, atol=1e-3):
        raise InputError(
            label, "mask affine differs from the volume's affine", "a mask on the volume's voxel grid (same affine)"
        )
    foreground = values > 0  # NaN compares False: background
    ornt = nib.orientations.io_orientation(affine)
    return Mask(
        data=np.ascontiguousarray(nib.orientations.apply_orientation(foreground, ornt)), source=label, sha256=src.sha256
    )


# --------------------------------------------------------------------------------------------- helpers


def _checked_affine(affine: np.ndarray, label: str) -> np.ndarray:
    """A finite, invertible voxel→world matrix, or an :class:`InputError` naming what is wrong."""
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise InputError(
            label,
            "the voxel-to-world affine holds NaN or infinite values",
            "a finite affine (check the header's sform/qform, origin and spacing)",
        )
    det = float(np.linalg.det(affine[:3, :3]))
    if not abs(det) > 1e-12:
        raise InputError(
            label,
            f"the voxel-to-world affine is singular (determinant {det:g})",
            "an invertible affine (non-zero voxel sizes, independent axis directions)",
        )
    return affine


def _as_3d(array: np.ndarray, label: str, volume_index: int | None) -> np.ndarray:
    """Squeeze trailing singleton axes and pick one volume of 4D data."""
    if any(n == 0 for n in array.shape):
        raise InputError(label, f"image has a zero-length axis (shape {array.shape})", "a non-empty 3D volume")
    while array.ndim > 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 4:
        if volume_index is None:
            raise InputError(
                label,
                f"4D image with {array.shape[3]} volumes (shape {array.shape})",
                "a 3D volume, or choose one with volume_index / --volume-index",
            )
        if not 0 <= volume_index < array.shape[3]:
            raise InputError(
                label,
                f"volume index {volume_index} out of range for {array.shape[3]} volumes",
                f"an index from 0 to {array.shape[3] - 1}",
            )
        array = array[..., volume_index]
    if array.ndim != 3:
        raise InputError(label, f"{array.ndim}D image (shape {array.shape})", "a 3D volume")
    if np.iscomplexobj(array):
        raise InputError(label, f"complex-valued voxels ({array.dtype})", "real intensities")
    if array.dtype.kind not in "biuf":
        raise InputError(label, f"unsupported voxel type {array.dtype}", "integer or floating-point intensities")
    return array


def _finite_float32(array: np.ndarray, label: str) -> tuple[np.ndarray, int]:
    """``array`` as contiguous float32 with NaN and -Inf replaced by the finite minimum, +Inf by the maximum.

    Computed with reductions over a finiteness mask rather than copies of the finite values: the float32
    result is the one copy of the volume this makes (one byte per voxel more for the mask). A volume refused
    (all non-finite, beyond float32, or constant) is refused before that copy: for a file at the size limit
    (a reoriented, byte-swapped 512³ MGZ) the copy took 4 of the 8 s spent refusing it.

    Raises:
        InputError: every voxel non-finite, intensities beyond float32's range, or one value everywhere.
    """
    finite = np.isfinite(array)
    bad = int(array.size - np.count_nonzero(finite))
    if bad == array.size:
        raise InputError(label, "every voxel is NaN or infinite", "finite intensities")
    if array.dtype.kind == "f":
        lo, hi = np.min(array, where=finite, initial=np.inf), np.max(array, where=finite, initial=-np.inf)
    else:  # integers and booleans are all finite
        lo, hi = array.min(), array.max()
    peak = max(abs(float(lo)), abs(float(hi)))
    if peak > float(np.finfo(np.float32).max):
        raise InputError(
            label,
            f"intensities reach {peak:.3g}, beyond float32's range (3.4e38)",
            "values within float32's range (check the data type and scl_slope)",
        )
    # the cast is monotonic: the copy's extremes are these two, cast (NaN and ±Inf are set to them below)
    lo, hi = float(np.float32(lo)), float(np.float32(hi))
    if lo == hi:
        raise InputError(label, f"every voxel has the value {lo:g}", "an image with some contrast")
    data = np.ascontiguousarray(array, dtype=np.float32)
    if bad:
        data[np.isnan(data) | (data == -np.inf)] = lo
        data[data == np.inf] = hi
    return data, bad
