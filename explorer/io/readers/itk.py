"""NRRD/NHDR and MetaImage (``.mha``/``.mhd``) through SimpleITK, converted from LPS to RAS.

The text header is parsed completely first, by hand, because SimpleITK opens whatever data file a header
names: every line that could name a data file is found (a MetaImage header ends at its ``ElementDataFile``
line, an NRRD header at its first blank line; a header longer than :data:`HEADER_LIMIT` is refused, not
skipped). A detached data file (``.nhdr``, ``.mhd``) is read only from a path given to the CLI or API, and only
as a plain file name in the header's own folder; an upload (and any file of an uploaded zip, see
:func:`refuse_detached`) must carry its voxels, so a header can never make the server read another file.
SimpleITK then reads only the image information, the declared size is checked against the limits, and only
then are the voxels read. An upload is written to a private temporary folder under a fixed name, because
SimpleITK reads from file names only.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import numpy as np

from ...config import Limits
from ...errors import InputError
from .base import LPS_TO_RAS, Raw, Reader, ReadParams, check_voxels, inflated_size
from .source import Source

__all__ = ["HEADER_LIMIT", "T", "refuse_detached", "read_itk", "NRRD", "METAIMAGE"]


#: Longest text header read; a header that does not end within it is refused.
HEADER_LIMIT = 1024**2
_EXPECTED = "an NRRD (.nrrd, .nhdr) or MetaImage (.mha, .mhd) 3D image"
_ATTACHED = (
    "an upload that carries its voxels (.nrrd with attached data, or .mha with ElementDataFile = LOCAL); "
    "detached headers (.nhdr, .mhd) are read only from a path, with the CLI or the Python API"
)
_LOCAL = ("LOCAL", "Local", "local")  # the spellings MetaIO takes for "the data follow the header"
_PLAIN_NAME = re.compile(r"[^\s/\\:%\x00]+")
_FIELD = re.compile(rb"([^=:]*)([=:])(.*)", re.DOTALL)  # MetaImage "key = value"
T = TypeVar("T")


def _prefix(src: Source) -> bytes:
    """The first :data:`HEADER_LIMIT` + 1 bytes (one more tells whether the header runs past the limit)."""
    if src.raw is not None:
        return src.raw[: HEADER_LIMIT + 1]
    with open(src.path, "rb") as handle:  # type: ignore[arg-type]
        return handle.read(HEADER_LIMIT + 1)


def _too_long(label: str, what: str) -> InputError:
    return InputError(
        label, f"header runs past {HEADER_LIMIT // 1024**2} MB without {what}", "a text header of a few kilobytes"
    )


def _nrrd_data_file(label: str, text: bytes) -> tuple[str | None, int]:
    """The NRRD header's ``data file`` value (None: attached data) and where the header ends."""
    end = re.search(rb"\r?\n\r?\n", text)
    if end is None and len(text) > HEADER_LIMIT:
        raise _too_long(label, "the blank line that ends it")
    header = text[: end.start() if end else len(text)]
    found = []
    for line in re.split(rb"\r?\n|\r", header)[1:]:  # line 0 is the magic NRRD000N
        if line.startswith(b"#"):
            continue
        key, sep, value = line.partition(b":")
        if sep and b"datafile" in re.sub(rb"[\s_\-]", b"", key.lower()):  # teem's "data file", "datafile"
            found.append(value.strip().decode("latin-1"))
    if len(found) > 1:
        raise InputError(label, f"header names {len(found)} data files", "one data file, or attached data")
    return (found[0] if found else None), (end.end() if end else len(text))


def _metaimage_data_file(label: str, text: bytes) -> tuple[str | None, int]:
    """The MetaImage header's ``ElementDataFile`` value (None: LOCAL) and where the header ends.

    The header ends at the first line whose key is exactly ``ElementDataFile``; any other mention of the key
    before it (another case, another separator, inside a value) is refused, since MetaIO might read it.
    """
    position = 0
    for line in text.split(b"\n"):
        position += len(line) + 1
        field = _FIELD.match(line)
        if field is not None and field.group(1).strip() == b"ElementDataFile" and field.group(2) == b"=":
            name = field.group(3).strip().decode("latin-1")
            return (None if name in _LOCAL else name), position
        if b"elementdatafile" in line.lower():
            shown = line[:60].decode("latin-1")
            raise InputError(
                label,
                f"header mentions ElementDataFile in an unexpected form ({shown!r})",
                "one line 'ElementDataFile = ...' ending the header",
            )
        if position > HEADER_LIMIT:
            break
    if len(text) > HEADER_LIMIT:
        raise _too_long(label, "an ElementDataFile line")
    raise InputError(label, "header has no ElementDataFile line", "a MetaImage header ending in ElementDataFile")


def _data_file(src: Source, text: bytes) -> tuple[str | None, int]:
    if text.startswith(b"NRRD"):
        return _nrrd_data_file(src.label, text)
    return _metaimage_data_file(src.label, text)


def _check_beside(src: Source, value: str) -> None:
    """A detached data file named in a header on disk: a plain file name in the header's own folder."""
    if not _PLAIN_NAME.fullmatch(value) or value in (".", "..") or value.upper().startswith("LIST"):
        raise InputError(
            src.label,
            f"header points to data file {value!r} outside its folder",
            "a plain data file name beside the header",
        )
    folder = src.path.parent  # type: ignore[union-attr]
    target = folder / value
    if not target.is_file() or target.resolve().parent != folder.resolve():
        where = "is missing" if not target.exists() and not target.is_symlink() else "leads outside the folder"
        raise InputError(
            src.label, f"data file {value!r} {where}", "a regular data file in the header's folder (no link leaving it)"
        )


def refuse_detached(name: str, data: bytes) -> None:
    """Refuse an uploaded file that is an NRRD or MetaImage header naming a separate data file.

    For files that reach the readers through a path although a user uploaded them (the app's Cohort zip,
    extracted to a folder): they must carry their voxels, as a single upload must.

    Args:
        name: the file's name inside the upload (its suffix is part of recognising MetaImage).
        data: its first :data:`HEADER_LIMIT` + 1 bytes (or all of it).

    Raises:
        InputError: a detached header, or a header that cannot be parsed within the limit.
    """
    src = Source(name, raw=data[: HEADER_LIMIT + 1])
    if NRRD.recognises(src) or METAIMAGE.recognises(src):
        value, _ = _data_file(src, src.raw)  # type: ignore[arg-type]
        if value is not None:
            raise InputError(name, f"header points to a separate data file {value!r}", _ATTACHED)


def _check_length(src: Source, reader, itemsize: int, header_end: int, text: bytes) -> None:
    """Attached voxels must all be there, measured first: ITK reports a short raw file as a missing one, and
    MetaIO prints a bad compressed stream to stderr and returns garbage (so a compressed MetaImage must declare
    its CompressedDataSize, as ITK writes it, and the stream is inflated once here, nothing kept). NRRD's
    other encodings report their own errors."""
    fields = text[:header_end].lower()
    expected = int(np.prod(reader.GetSize(), dtype=np.float64)) * reader.GetNumberOfComponents() * itemsize
    if re.search(rb"compresseddata\s*=\s*true", fields):
        declared = re.search(rb"^\s*compresseddatasize\s*=\s*(\d+)\s*$", fields, re.MULTILINE)
        if declared is None:
            raise InputError(
                src.label,
                "compressed voxels without CompressedDataSize",
                "a compressed MetaImage with CompressedDataSize (as ITK writes it)",
            )
        stream = src.data[header_end : header_end + int(declared.group(1))]
        try:
            available = inflated_size(stream, expected, zlib.MAX_WBITS)
        except zlib.error as exc:
            raise InputError(src.label, f"compressed voxel data are corrupt ({exc})", "a complete file") from exc
    elif re.search(rb"encoding\s*:\s*(?!\s|raw\b)", fields):
        return
    else:
        available = (len(src.raw) if src.raw is not None else src.path.stat().st_size) - header_end  # type: ignore[union-attr]
    if available < expected:
        raise InputError(
            src.label,
            f"file is truncated: header promises {expected} bytes of voxels, the file holds {max(available, 0)}",
            "a complete file",
        )


@contextmanager
def _stderr_captured() -> Iterator[list[str]]:
    """Capture what C++ code writes to file descriptor 2 while the block runs; the lines are in the yielded list
    afterwards.

    MetaIO prints its errors on ``std::cerr`` (several lines, below Python's ``sys.stderr``) and SimpleITK's
    exception then reads "No such file or directory"; captured, the first printed line names the real problem
    and the CLI keeps to one line. The descriptor is process-wide: another thread's output while ITK reads a
    header is captured too (and dropped).
    """
    printed: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield printed
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            printed += [line.strip() for line in sink.read(4096).decode("latin-1").splitlines() if line.strip()]


def _run_itk(call: Callable[[], T], label: str, problem: str) -> T:
    """``call()`` with its C++ error output captured; a failure is one :class:`InputError` naming its cause."""
    with _stderr_captured() as printed:
        try:
            return call()
        except RuntimeError as exc:
            failure = exc
    reason = printed[0] if printed else str(failure).strip().splitlines()[-1]
    raise InputError(label, f"{problem} ({reason})", _EXPECTED) from failure


def _read_image(src: Source, path: Path, header: tuple[str | None, int, bytes], limits: Limits):
    import SimpleITK as sitk  # imported here: only these formats need it

    label = src.label
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    _run_itk(reader.ReadImageInformation, label, "unreadable header")
    size = tuple(int(n) for n in reader.GetSize())
    itemsize = sitk.Image([1] * reader.GetDimension(), reader.GetPixelID()).GetSizeOfPixelComponent()
    check_voxels((*size, reader.GetNumberOfComponents()), label, limits, itemsize=itemsize)
    if reader.GetDimension() != 3 or reader.GetNumberOfComponents() != 1:
        raise InputError(
            label,
            f"{reader.GetDimension()}D image of size {size} with {reader.GetNumberOfComponents()} components per voxel",
            "a 3D scalar image",
        )
    value, header_end, text = header
    if value is None:
        _check_length(src, reader, itemsize, header_end, text)
    image = _run_itk(reader.Execute, label, "unreadable voxels")
    array = np.transpose(sitk.GetArrayFromImage(image), (2, 1, 0))  # ITK (z, y, x) → (i, j, k)
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3) @ np.diag(image.GetSpacing())
    affine[:3, 3] = image.GetOrigin()
    return array, LPS_TO_RAS @ affine


def read_itk(src: Source, params: ReadParams, limits: Limits) -> Raw:
    text = _prefix(src)
    value, header_end = _data_file(src, text)
    if value is not None:
        if src.raw is not None:
            raise InputError(src.label, f"header points to a separate data file {value!r}", _ATTACHED)
        _check_beside(src, value)
    kind = "nrrd" if text.startswith(b"NRRD") else "metaimage"
    header = (value, header_end, text)
    if src.raw is None:
        array, affine = _read_image(src, src.path, header, limits)  # type: ignore[arg-type]
    else:
        with tempfile.TemporaryDirectory(prefix="explorer-itk-") as tmp:
            path = Path(tmp) / ("upload.nrrd" if kind == "nrrd" else "upload.mha")
            path.write_bytes(src.raw)
            array, affine = _read_image(src, path, header, limits)
    return Raw(array, affine, kind)


def _is_metaimage(src: Source) -> bool:
    return src.suffix in (".mha", ".mhd") or b"ObjectType" in src.head[:256]


NRRD = Reader("nrrd", "NRRD (.nrrd, .nhdr)", (".nrrd", ".nhdr"), lambda src: src.head.startswith(b"NRRD000"), read_itk)
METAIMAGE = Reader("metaimage", "MetaImage (.mha, .mhd)", (".mha", ".mhd"), _is_metaimage, read_itk)
