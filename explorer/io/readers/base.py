"""What every reader shares: the reading parameters, the result type and the limit checks on declared shapes.

Shapes: a reader returns voxels in the file's own order, ``(I, J, K)`` or ``(I, J, K, T)``, with a 4×4
voxel→world affine in RAS+ millimetres (LPS formats such as DICOM, NRRD and MetaImage are converted).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from ...config import Limits
from ...errors import InputError
from .source import Source

__all__ = [
    "LPS_TO_RAS",
    "ReadParams",
    "Raw",
    "Reader",
    "LOAD_BYTES_PER_VOXEL",
    "check_voxels",
    "inflated_size",
    "grid_affine",
]


#: LPS (DICOM, ITK) → RAS (NIfTI): negate the first two world axes.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class ReadParams:
    """How to read a source: which volume of a 4D image, which DICOM series, which HDF5 dataset, which spacing.

    Attributes:
        volume_index: the volume of a 4D image (None: the image must be 3D).
        series: a DICOM SeriesInstanceUID (None: the source must hold one series).
        dataset: an HDF5 dataset path (None: the file must hold one 3D dataset).
        spacing: voxel size along the volume's axes 0, 1, 2 for formats without geometry (TIFF, HDF5).
    """

    volume_index: int | None = None
    series: str | None = None
    dataset: str | None = None
    spacing: tuple[float, float, float] | None = None

    def key(self) -> str:
        """The parameters that were set, as canonical JSON ("" when none): part of a volume's identity."""
        chosen = {k: v for k, v in asdict(self).items() if v is not None}
        return json.dumps(chosen, sort_keys=True) if chosen else ""


@dataclass(frozen=True, eq=False)
class Raw:
    """A reader's result: voxels in file order, the RAS affine, the format name and what was chosen."""

    array: np.ndarray
    affine: np.ndarray
    kind: str
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Reader:
    """One format: how it is recognised (cheap: magic bytes, suffix, folder) and how it is read.

    Attributes:
        name: format name (``Volume.header["format"]``).
        description: one line for help texts.
        suffixes: file-name endings that usually mean this format.
        recognises: ``recognises(source) -> bool`` from the first bytes, the suffix or the folder.
        read: ``read(source, params, limits) -> Raw``; must check declared sizes before reading voxels.
        choices: ``choices(source, limits) -> list[str]`` of series/datasets to pick from, when it has any.
        choice: the :func:`explorer.io.volume.load_volume` argument that picks one of them (``series``, ``dataset``).
    """

    name: str
    description: str
    suffixes: tuple[str, ...]
    recognises: Callable[[Source], bool]
    read: Callable[[Source, ReadParams, Limits], Raw]
    choices: Callable[[Source, Limits], list[str]] | None = None
    choice: str | None = None


#: Bytes per voxel that reading holds beyond the stored voxels: a float64 copy where a scaling applies, the
#: float32 volume and a finiteness mask (:func:`explorer.io.volume.load_volume`).
LOAD_BYTES_PER_VOXEL = 8 + 4 + 1


def check_voxels(shape: tuple[int, ...], label: str, limits: Limits, itemsize: int | None = None) -> None:
    """Refuse a declared shape before any voxel is read or inflated.

    Args:
        shape: the declared shape.
        label: the file named in the error.
        limits: the limits.
        itemsize: bytes per stored voxel, when known: the voxels as stored must then fit the upload limit (a
            compressed file may not inflate to more than an uncompressed one may hold), and reading them
            (the stored voxels twice, while they are inflated and decoded, plus
            :data:`LOAD_BYTES_PER_VOXEL`) must fit the memory limit.

    Raises:
        InputError: a negative dimension, more voxels than ``limits.max_voxels``, or (with ``itemsize``) more
            bytes than ``limits.max_bytes`` or ``limits.max_run_memory_bytes``.
    """
    dims = tuple(int(n) for n in shape)
    if any(n < 0 for n in dims):
        raise InputError(label, f"header declares a negative dimension (shape {dims})", "a non-negative shape")
    count = int(np.prod(dims, dtype=np.float64))
    if count > limits.max_voxels:
        raise InputError(
            label,
            f"image has {count:,} voxels (shape {dims}), over the limit of {limits.max_voxels:,}",
            "a smaller image, or raise EXPLORER_MAX_VOXELS",
        )
    if itemsize is None:
        return
    stored, mb = count * int(itemsize), 1024**2
    if stored > limits.max_bytes:
        raise InputError(
            label,
            f"voxels take {stored:,} bytes once inflated (shape {dims}, {int(itemsize)} bytes "
            f"each), over the {limits.max_bytes / mb:,.0f} MB upload limit",
            "a smaller image, or raise EXPLORER_MAX_UPLOAD_MB",
        )
    needed = count * (2 * int(itemsize) + LOAD_BYTES_PER_VOXEL)
    if needed > limits.max_run_memory_bytes:
        raise InputError(
            label,
            f"reading it needs about {needed / mb:,.0f} MB (shape {dims}), over the memory "
            f"limit of {limits.max_run_memory_bytes / mb:,.0f} MB",
            "a smaller image, or raise EXPLORER_MAX_RUN_MEMORY_MB",
        )


def inflated_size(data: bytes, budget: int, wbits: int) -> int:
    """How many bytes the deflate stream ``data`` inflates to, counted 1 MB at a time (nothing is kept) and
    stopped once past ``budget``.

    Args:
        wbits: the stream's format, as for :func:`zlib.decompressobj` (``-15`` raw deflate, ``15`` zlib).

    Raises:
        zlib.error: corrupt data.
    """
    inflater, size, pending = zlib.decompressobj(wbits), 0, data
    while size <= budget:
        chunk = inflater.decompress(pending, 1 << 20)  # empty input: what zlib still holds
        pending = inflater.unconsumed_tail
        if not chunk and not pending:
            break
        size += len(chunk)
    return size


def grid_affine(spacing: tuple[float, float, float] | None, label: str) -> np.ndarray:
    """Diagonal affine of a format without world geometry (TIFF, HDF5); spacing must be positive and finite."""
    values = np.asarray(spacing if spacing is not None else (1.0, 1.0, 1.0), dtype=np.float64)
    if values.shape != (3,) or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise InputError(
            label,
            f"voxel spacing {tuple(values.tolist())} is not three positive numbers",
            "a spacing such as --spacing 1,1,1",
        )
    return np.diag([*values, 1.0])
