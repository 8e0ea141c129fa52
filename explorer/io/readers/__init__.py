"""Format readers as a priority-ordered registry (in the spirit of nibabel's ``all_image_classes``).

Each :class:`~explorer.io.readers.base.Reader` says whether it recognises a source (magic bytes first, then
the file-name suffix, then "a folder or several files") and reads it into voxels in file order with a RAS
affine; every reader checks the declared shape against the voxel limit before reading or inflating data.
:func:`read_source` opens a source within the size limit and hands it to the first reader that recognises it.
"""

from __future__ import annotations

from pathlib import Path

from ...config import Limits
from ...errors import InputError
from .base import Raw, Reader, ReadParams
from .dicom import DICOM
from .hdf5 import HDF5
from .itk import HEADER_LIMIT, METAIMAGE, NRRD, refuse_detached
from .nifti import MGH, NIFTI
from .source import Files, Source, open_source
from .tiff import TIFF

#: Tried in this order; the first that recognises a source reads it.
READERS: tuple[Reader, ...] = (NIFTI, TIFF, HDF5, NRRD, DICOM, MGH, METAIMAGE)

#: File-name endings of every format (for upload widgets and help texts).
SUFFIXES: tuple[str, ...] = tuple(s for r in READERS for s in r.suffixes)

__all__ = [
    "HEADER_LIMIT",
    "READERS",
    "SUFFIXES",
    "Raw",
    "ReadParams",
    "Reader",
    "Source",
    "open_source",
    "read_source",
    "reader_for",
    "refuse_detached",
    "source_choices",
]


def reader_for(src: Source) -> Reader:
    """The first reader that recognises ``src``.

    Raises:
        InputError: no reader does.
    """
    for reader in READERS:
        if reader.recognises(src):
            return reader
    formats = ", ".join(r.description.split(" (")[0] for r in READERS[2:])
    raise InputError(
        src.label,
        f"not a NIfTI or TIFF file (no NIfTI magic at byte 344, no TIFF magic), nor {formats}",
        "one of: " + "; ".join(r.description for r in READERS),
    )


def _open(source: str | Path | bytes | Files, name: str | None, limits: Limits) -> Source:
    """:func:`open_source`; several uploads may not hold a detached NRRD/MetaImage header either (they would
    otherwise reach the DICOM reader, which would only say that it found no DICOM files)."""
    src = open_source(source, name, limits.max_bytes)
    for member, raw in src.files:
        refuse_detached(member, raw)
    return src


def read_source(
    source: str | Path | bytes | Files, params: ReadParams, limits: Limits, name: str | None = None
) -> tuple[Raw, Source]:
    """Open ``source`` within the size limit and read it with the reader that recognises it.

    Args:
        source: a path (file or folder), the bytes of an upload, or several uploads ``[(name, bytes), ...]``.
        params: which volume, series or dataset, and the spacing of formats without geometry.
        limits: size and voxel limits.
        name: display name for messages.

    Returns:
        The reader's :class:`Raw` result and the opened :class:`Source`.

    Raises:
        InputError: missing, empty, too large, unrecognised or unreadable input.
    """
    src = _open(source, name, limits)
    return reader_for(src).read(src, params, limits), src


def source_choices(
    source: str | Path | bytes | Files, limits: Limits, name: str | None = None
) -> tuple[str | None, list[str]]:
    """What can be chosen inside ``source``: ``("series", UIDs)`` of a DICOM source, ``("dataset", paths)`` of an
    HDF5 file, ``(None, [])`` for other formats.

    Raises:
        InputError: as :func:`read_source`.
    """
    src = _open(source, name, limits)
    reader = reader_for(src)
    return (reader.choice, reader.choices(src, limits)) if reader.choices is not None else (None, [])
