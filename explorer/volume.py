"""Reading scans: NIfTI (``.nii``, ``.nii.gz``) and multi-page TIFF stacks, from a path or from bytes.

Axis order: every array here is ``(X, Y, Z)`` in the closest canonical (RAS+) voxel order, so axis 0 runs
left→right, axis 1 posterior→anterior and axis 2 inferior→superior. Slicing along an axis gives a stack
``(S, H, W)`` with ``S`` the slice index (see :meth:`Volume.stack`). A TIFF stack's pages are axis 2.

Checks run cheapest first (size, emptiness, magic, header) and every failure is an :class:`InputError`
that names the file. Intensity normalisation presets live in :mod:`explorer.normalise`.
"""

from __future__ import annotations

import gzip
import io
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from .config import Limits
from .errors import InputError, unknown_name
from .fileio import read_bounded, sha256_bytes

#: Slicing axis names and their index in canonical (RAS+) voxel order.
AXES: dict[str, int] = {"sagittal": 0, "coronal": 1, "axial": 2}

_GZIP_MAGIC = b"\x1f\x8b"
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_NIFTI1_MAGICS = (b"n+1\x00", b"ni1\x00")
_NIFTI2_MAGICS = (b"n+2\x00", b"ni2\x00")


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D scan in canonical voxel order.

    Attributes:
        data: float32 ``(X, Y, Z)``, raw intensities; non-finite voxels already replaced (see ``nonfinite``).
        affine: 4×4 voxel→world matrix of ``data``.
        source: the file name shown to users.
        sha256: hex digest of the file's bytes (identifies the input in caches and outputs).
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
    source: str | Path | bytes,
    *,
    name: str | None = None,
    volume_index: int | None = None,
    spacing: tuple[float, float, float] | None = None,
    limits: Limits | None = None,
) -> Volume:
    """Load a 3D scan and reorient it to the closest canonical orientation.

    Args:
        source: a path, or the file's bytes (an upload).
        name: the name shown in messages (defaults to the path's name, or ``upload``).
        volume_index: which volume of a 4D image to take (a 4D image with one volume needs none).
        spacing: voxel size for TIFF stacks (default 1, 1, 1); ignored for NIfTI, whose header has it.
        limits: size and voxel limits (default: :meth:`Limits.from_env`).

    Raises:
        InputError: the file is missing, empty, too large, truncated, of an unknown format, not 3D,
            complex-valued, empty along an axis, entirely non-finite or constant.
    """
    limits = limits or Limits.from_env()
    raw, label = _read(source, name, limits)
    kind, payload = _sniff(raw, label)
    if kind == "tiff":
        voxels, affine = _tiff_array(payload, label, spacing)
        _check_voxels(voxels.shape, label, limits)
    else:
        img = _nifti_image(payload, label, kind, limits)
        voxels, affine = np.asanyarray(img.dataobj), img.affine
    array = _as_3d(voxels, label, volume_index).astype(np.float64)
    canonical = nib.as_closest_canonical(nib.Nifti1Image(array, affine))
    data, nonfinite = _finite_float32(np.asanyarray(canonical.dataobj), label)
    if float(data.max()) == float(data.min()):
        raise InputError(label, f"every voxel has the value {float(data.min()):g}", "an image with some contrast")
    return Volume(
        data=data,
        affine=canonical.affine.astype(np.float64),
        source=label,
        sha256=sha256_bytes(raw),
        source_affine=np.asarray(affine, dtype=np.float64),
        source_ornt=nib.orientations.io_orientation(affine),
        nonfinite=nonfinite,
        header={"format": kind, "shape": list(array.shape)},
    )


def load_mask(source: str | Path | bytes, volume: Volume, *, name: str | None = None,
              limits: Limits | None = None) -> Mask:
    """Load a mask that lies on ``volume``'s grid; voxels > 0 are foreground.

    Raises:
        InputError: unreadable file (as :func:`load_volume`), or a shape or affine unlike the volume's.
    """
    limits = limits or Limits.from_env()
    raw, label = _read(source, name, limits)
    kind, payload = _sniff(raw, label)
    if kind == "tiff":  # a TIFF has no geometry of its own: it lies on the volume's grid if the shape fits
        pages, _ = _tiff_array(payload, label, None)
        img = nib.Nifti1Image(_as_3d(pages, label, None).astype(np.float32), volume.source_affine)
    else:
        img = _nifti_image(payload, label, kind, limits)
        img = nib.Nifti1Image(_as_3d(np.asanyarray(img.dataobj), label, None).astype(np.float32), img.affine)
    source_shape = tuple(volume.header.get("shape", volume.shape))
    if tuple(img.shape) != source_shape:
        raise InputError(label, f"mask has shape {tuple(img.shape)} but the volume has {source_shape}",
                         "a mask on the volume's voxel grid")
    if not np.allclose(img.affine, volume.source_affine, atol=1e-3):
        raise InputError(label, "mask affine differs from the volume's affine",
                         "a mask on the volume's voxel grid (same affine)")
    canonical = nib.as_closest_canonical(img)
    values = np.asanyarray(canonical.dataobj)
    if np.iscomplexobj(values):
        raise InputError(label, "mask is complex-valued", "real labels")
    return Mask(data=np.nan_to_num(values.astype(np.float64), nan=0.0) > 0, source=label,
                sha256=sha256_bytes(raw))


# --------------------------------------------------------------------------------------------- helpers


def _read(source: str | Path | bytes, name: str | None, limits: Limits) -> tuple[bytes, str]:
    return read_bounded(source, name=name, max_bytes=limits.max_bytes,
                        expected="a NIfTI (.nii, .nii.gz) or TIFF (.tif, .tiff) file")


def _sniff(raw: bytes, label: str) -> tuple[str, bytes]:
    """Return (kind, bytes) with gzip already undone; kind is ``nifti1``, ``nifti2`` or ``tiff``."""
    payload = raw
    if raw[:2] == _GZIP_MAGIC:
        try:
            payload = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:
            raise InputError(label, f"gzip data is truncated or corrupt ({exc})", "a complete .nii.gz file") from exc
    if payload[:4] in _TIFF_MAGICS:
        return "tiff", payload
    if len(payload) >= 348 and payload[344:348] in _NIFTI1_MAGICS:
        return "nifti1", payload
    if len(payload) >= 540 and payload[4:8] in _NIFTI2_MAGICS:
        return "nifti2", payload
    raise InputError(label, "not a NIfTI or TIFF file (no NIfTI magic at byte 344, no TIFF magic)",
                     "a NIfTI (.nii, .nii.gz) or multi-page TIFF (.tif, .tiff) file")


def _nifti_image(payload: bytes, label: str, kind: str, limits: Limits) -> nib.Nifti1Image:
    """Parse the header first (cheap), check voxel count and file size, then read the image."""
    cls = nib.Nifti2Image if kind == "nifti2" else nib.Nifti1Image
    try:
        header = cls.header_class.from_fileobj(io.BytesIO(payload))
    except Exception as exc:  # nibabel raises several types for a broken header
        raise InputError(label, f"unreadable NIfTI header ({exc})", "a valid NIfTI-1 or NIfTI-2 file") from exc
    shape = header.get_data_shape()
    _check_voxels(shape, label, limits)
    expected = int(np.prod(shape, dtype=np.float64)) * header.get_data_dtype().itemsize
    available = max(0, len(payload) - int(header.get_data_offset()))
    if expected > available:
        raise InputError(label, f"file is truncated: header promises {expected} bytes of voxels for shape "
                         f"{tuple(shape)}, the file holds {available}", "a complete file")
    try:
        return cls.from_bytes(payload)
    except Exception as exc:
        raise InputError(label, f"unreadable NIfTI data ({exc})", "a valid NIfTI-1 or NIfTI-2 file") from exc


def _check_voxels(shape: tuple[int, ...], label: str, limits: Limits) -> None:
    count = int(np.prod(shape, dtype=np.float64))
    if count > limits.max_voxels:
        raise InputError(label, f"image has {count:,} voxels (shape {tuple(shape)}), over the limit of "
                         f"{limits.max_voxels:,}", "a smaller image, or raise EXPLORER_MAX_VOXELS")


def _as_3d(array: np.ndarray, label: str, volume_index: int | None) -> np.ndarray:
    """Squeeze trailing singleton axes and pick one volume of 4D data."""
    if any(n == 0 for n in array.shape):
        raise InputError(label, f"image has a zero-length axis (shape {array.shape})", "a non-empty 3D volume")
    while array.ndim > 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 4:
        if volume_index is None:
            raise InputError(label, f"4D image with {array.shape[3]} volumes (shape {array.shape})",
                             "a 3D volume, or choose one with volume_index / --volume-index")
        if not 0 <= volume_index < array.shape[3]:
            raise InputError(label, f"volume index {volume_index} out of range for {array.shape[3]} volumes",
                             f"an index from 0 to {array.shape[3] - 1}")
        array = array[..., volume_index]
    if array.ndim != 3:
        raise InputError(label, f"{array.ndim}D image (shape {array.shape})", "a 3D volume")
    if np.iscomplexobj(array):
        raise InputError(label, f"complex-valued voxels ({array.dtype})", "real intensities")
    if array.dtype.kind not in "biuf":
        raise InputError(label, f"unsupported voxel type {array.dtype}", "integer or floating-point intensities")
    return array


def _finite_float32(array: np.ndarray, label: str) -> tuple[np.ndarray, int]:
    data = np.asarray(array, dtype=np.float64)
    finite = np.isfinite(data)
    bad = int(data.size - finite.sum())
    if bad == data.size:
        raise InputError(label, "every voxel is NaN or infinite", "finite intensities")
    if bad:
        lo, hi = data[finite].min(), data[finite].max()
        data = np.where(np.isnan(data) | (data == -np.inf), lo, data)
        data = np.where(data == np.inf, hi, data)
    return np.ascontiguousarray(data, dtype=np.float32), bad


def _tiff_array(payload: bytes, label: str,
                spacing: tuple[float, float, float] | None) -> tuple[np.ndarray, np.ndarray]:
    """Pages of a TIFF stack become axis 2: ``data[:, :, z]`` is page ``z`` (rows, columns)."""
    import tifffile  # imported here: only TIFF input needs it

    try:
        pages = tifffile.imread(io.BytesIO(payload))
    except Exception as exc:  # tifffile raises several types for broken files
        raise InputError(label, f"unreadable TIFF ({exc})", "a multi-page greyscale TIFF stack") from exc
    if pages.ndim == 2:
        raise InputError(label, f"single-page TIFF (shape {pages.shape}) is a 2D image", "a multi-page TIFF stack")
    if pages.ndim != 3:
        raise InputError(label, f"TIFF of shape {pages.shape} (colour or multi-channel?)",
                         "a multi-page greyscale TIFF stack (pages, rows, columns)")
    affine = np.diag([*(spacing or (1.0, 1.0, 1.0)), 1.0]).astype(np.float64)
    return np.moveaxis(pages, 0, -1), affine
