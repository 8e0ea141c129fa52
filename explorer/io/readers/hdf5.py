"""HDF5 (``.h5``, ``.hdf5``) through h5py: electron-microscopy stacks stored z-first ``(Z, Y, X)``.

Dataset ``z`` becomes ``data[:, :, z]`` (rows, columns), as for a TIFF stack. The file is opened lazily:
links are listed and shapes read from the metadata; external links, external storage and virtual datasets
(which would read other files) are refused, and the declared shape (voxels and bytes) and chunk size are
checked before the one chosen dataset is read. Spacing: the ``spacing`` parameter, else a ``resolution`` or
``element_size_um`` attribute (z, y, x), else 1.
"""

from __future__ import annotations

import io

import h5py
import numpy as np

from ...config import Limits
from ...errors import InputError
from .base import Raw, Reader, ReadParams, check_voxels, grid_affine
from .source import Source

__all__ = ["MAX_CHUNK_BYTES", "hdf5_choices", "read_hdf5", "HDF5"]


_MAGIC = b"\x89HDF\r\n\x1a\n"
_EXPECTED = "an HDF5 file holding a 3D dataset (Z, Y, X)"
#: Chunks up to this size are accepted whatever the dataset's size (h5py's automatic chunks stay under 1 MB).
MAX_CHUNK_BYTES = 64 * 1024**2


def _open(src: Source) -> h5py.File:
    try:
        return h5py.File(src.path if src.raw is None else io.BytesIO(src.raw), "r")
    except Exception as exc:  # h5py raises OSError and others for broken files
        raise InputError(src.label, f"unreadable HDF5 ({exc})", _EXPECTED) from exc


def _datasets(src: Source, handle: h5py.File) -> dict[str, h5py.Dataset]:
    """Every dataset by path; refuses links and storage that point outside the file."""
    names: list[str] = []
    handle.visit_links(names.append)
    found = {}
    for name in names:
        link = handle.get(name, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            raise InputError(
                src.label,
                f"external link {name!r} -> {link.filename}:{link.path}",
                "an HDF5 file whose data lie in the file itself",
            )
        if isinstance(link, h5py.SoftLink):
            continue  # the target is listed under its own name
        obj = handle[name]
        if isinstance(obj, h5py.Dataset):
            if obj.external or obj.is_virtual:
                raise InputError(
                    src.label,
                    f"dataset {name!r} stores its data in other files",
                    "an HDF5 file whose data lie in the file itself",
                )
            found[name] = obj
    return found


def _volumes(src: Source, handle: h5py.File) -> dict[str, h5py.Dataset]:
    return {name: d for name, d in _datasets(src, handle).items() if d.ndim in (3, 4)}


def hdf5_choices(src: Source, limits: Limits) -> list[str]:
    """Paths of the 3D/4D datasets (what ``dataset`` / ``--dataset`` can name)."""
    with _open(src) as handle:
        return list(_volumes(src, handle))


def _pick(src: Source, handle: h5py.File, wanted: str | None) -> tuple[str, h5py.Dataset]:
    volumes = _volumes(src, handle)
    listing = ", ".join(f"{n} {tuple(int(k) for k in d.shape)}" for n, d in volumes.items()) or "none"
    if wanted is not None:
        name = wanted.strip("/")
        if name not in volumes:
            raise InputError(
                src.label,
                f"no 3D dataset {wanted!r} (3D datasets: {listing})",
                "one of those, chosen with dataset= / --dataset PATH",
            )
        return name, volumes[name]
    if len(volumes) != 1:
        raise InputError(
            src.label,
            f"{len(volumes)} 3D datasets ({listing})",
            "exactly one, or choose one with dataset= / --dataset PATH",
        )
    return next(iter(volumes.items()))


def _attr_spacing(src: Source, dataset: h5py.Dataset) -> tuple[float, float, float] | None:
    for key in ("element_size_um", "resolution"):
        if key in dataset.attrs:
            try:
                values = np.asarray(dataset.attrs[key], dtype=np.float64).ravel()
            except (TypeError, ValueError, OSError) as exc:  # strings, compounds, unreadable types
                raise InputError(
                    src.label,
                    f"spacing attribute {key!r} is not numbers",
                    "three numbers (z, y, x), or a spacing such as --spacing 1,1,1",
                ) from exc
            if values.size == 3:
                z, y, x = values
                return float(y), float(x), float(z)
    return None


def _check_chunks(src: Source, name: str, dataset: h5py.Dataset) -> None:
    """Refuse chunks larger than the dataset they hold (and than :data:`MAX_CHUNK_BYTES`): HDF5 inflates a
    whole chunk to read any part of it, so a small resizable dataset in one huge compressed chunk is a bomb."""
    if dataset.chunks is None:
        return
    chunk = int(np.prod([int(n) for n in dataset.chunks], dtype=np.float64)) * dataset.dtype.itemsize
    stored = int(np.prod([int(n) for n in dataset.shape], dtype=np.float64)) * dataset.dtype.itemsize
    if chunk > max(stored, MAX_CHUNK_BYTES):
        raise InputError(
            src.label,
            f"dataset {name!r} is stored in chunks of {chunk:,} bytes "
            f"(chunk shape {tuple(int(n) for n in dataset.chunks)}) for {stored:,} bytes of data",
            f"chunks no larger than the dataset or {MAX_CHUNK_BYTES // 1024**2} MB (h5repack -l)",
        )


def read_hdf5(src: Source, params: ReadParams, limits: Limits) -> Raw:
    with _open(src) as handle:
        name, dataset = _pick(src, handle, params.dataset)
        if dataset.dtype.kind not in "biuf":
            raise InputError(src.label, f"dataset {name!r} holds {dataset.dtype} values", "numeric intensities")
        check_voxels(dataset.shape, src.label, limits, itemsize=dataset.dtype.itemsize)
        _check_chunks(src, name, dataset)
        spacing = params.spacing or _attr_spacing(src, dataset)
        try:
            array = dataset[()]
        except Exception as exc:  # h5py raises OSError and others for broken data
            raise InputError(src.label, f"unreadable dataset {name!r} ({exc})", _EXPECTED) from exc
    return Raw(
        np.moveaxis(array, 0, 2),
        grid_affine(spacing, src.label),
        "hdf5",
        {"dataset": name, "spacing": list(spacing) if spacing else None},
    )


HDF5 = Reader(
    "hdf5",
    "HDF5 (.h5, .hdf5; dataset (Z, Y, X), chosen with --dataset)",
    (".h5", ".hdf5"),
    lambda src: src.head[:8] == _MAGIC,
    read_hdf5,
    hdf5_choices,
    "dataset",
)
