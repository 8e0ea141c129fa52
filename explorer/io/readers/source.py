"""Where a scan comes from: a file, a folder (a DICOM series), the bytes of an upload, or several uploads.

A :class:`Source` is opened once, with the size limit checked before anything is read; readers then ask it
for the first bytes (to recognise a format), the whole bytes (within the limit) or, for readers that read
lazily (HDF5), the path. Written by hand because no library models "a path, an upload or a set of uploads".
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ...errors import InputError
from ..files import checked_file, content_sha256, file_sha256, read_bounded, sha256_bytes, size_error

__all__ = ["GZIP_MAGIC", "HEAD_BYTES", "EXPECTED", "Files", "Source", "folder_files", "open_source"]


GZIP_MAGIC = b"\x1f\x8b"
HEAD_BYTES = 1024
EXPECTED = (
    "a NIfTI (.nii, .nii.gz), TIFF, DICOM series (folder, .zip or files), NRRD, MetaImage (.mha), MGH/MGZ or HDF5 file"
)

#: Several uploaded files: ``(file name, bytes)`` pairs.
Files = Sequence[tuple[str, bytes]]


@dataclass(frozen=True, eq=False)
class Source:
    """An input within the size limit. Exactly one of ``path``, ``raw`` or ``files`` is set.

    Attributes:
        label: the name shown in messages.
        path: a file or a folder on disk.
        raw: the bytes of one upload.
        files: several uploads ``(name, bytes)``.
    """

    label: str
    path: Path | None = None
    raw: bytes | None = None
    files: tuple[tuple[str, bytes], ...] = ()

    @property
    def is_dir(self) -> bool:
        return self.path is not None and self.path.is_dir()

    @property
    def suffix(self) -> str:
        """Lower-case suffix of the label, ``.gz`` joined to the one before (``.nii.gz``)."""
        name = self.label.lower()
        for double in (".nii.gz", ".tar.gz"):
            if name.endswith(double):
                return double
        return Path(name).suffix

    @cached_property
    def head(self) -> bytes:
        """The first bytes of a single file (empty for folders and several files)."""
        if self.raw is not None:
            return self.raw[:HEAD_BYTES]
        if self.path is not None and self.path.is_file():
            with open(self.path, "rb") as handle:
                return handle.read(HEAD_BYTES)
        return b""

    @cached_property
    def data(self) -> bytes:
        """The whole file (already checked against the size limit)."""
        if self.raw is not None:
            return self.raw
        if self.path is None or not self.path.is_file():
            raise InputError(self.label, "is not a single file", EXPECTED)
        return self.path.read_bytes()

    @cached_property
    def sha256(self) -> str:
        """Hex digest of the content: a file's bytes (an NRRD/MetaImage header's with its detached data file's,
        :func:`explorer.io.files.content_sha256`); for a folder or several files, of their sorted digests."""
        if self.raw is not None:
            return sha256_bytes(self.raw)
        if self.files:
            digests = sorted(sha256_bytes(raw) for _, raw in self.files)
        elif self.path is not None and self.path.is_dir():
            digests = sorted(file_sha256(p) for p in folder_files(self.path))
        else:
            return content_sha256(self.path)  # type: ignore[arg-type]
        return hashlib.sha256("\n".join(digests).encode()).hexdigest()

    def gunzip(self, budget: int) -> bytes:
        """Decompress a gzip file, stopping after ``budget`` bytes (nothing more is ever inflated).

        Raises:
            InputError: truncated or corrupt gzip data.
        """
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(self.data)) as stream:
                return stream.read(budget)
        except (EOFError, OSError, zlib.error) as exc:
            raise InputError(
                self.label, f"gzip data is truncated or corrupt ({exc})", f"a complete {self.suffix or 'gzip'} file"
            ) from exc


def folder_files(folder: Path) -> list[Path]:
    """Regular files under ``folder`` (recursively, symbolic links and hidden files skipped), sorted."""
    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            path = Path(root) / name
            if not name.startswith(".") and path.is_file() and not path.is_symlink():
                found.append(path)
    return found


def open_source(source: str | Path | bytes | Files, name: str | None, max_bytes: int) -> Source:
    """Check that ``source`` exists and fits ``max_bytes`` (a folder or several files: in total).

    Args:
        source: a path (file or folder), the bytes of an upload, or several uploads ``[(name, bytes), ...]``.
        name: display name (default: the path's name, ``upload``, or ``N files``).
        max_bytes: the size limit.

    Raises:
        InputError: missing, empty or over the limit.
    """
    if isinstance(source, (list, tuple)):
        files = tuple((str(n), bytes(b)) for n, b in source)
        if len(files) == 1:
            return open_source(files[0][1], name or files[0][0], max_bytes)
        label = name or f"{len(files)} files"
        total = sum(len(b) for _, b in files)
        if not files:
            raise InputError(label, "no files", EXPECTED)
        if total > max_bytes:
            raise size_error(label, total, max_bytes, "upload")
        return Source(label, files=files)
    if not isinstance(source, (bytes, bytearray, memoryview)) and Path(source).is_dir():
        path = Path(source)
        total = sum(p.stat().st_size for p in folder_files(path))
        if total > max_bytes:
            raise size_error(name or path.name, total, max_bytes, "folder")
        return Source(name or path.name, path=path)
    if isinstance(source, (bytes, bytearray, memoryview)):
        raw, label = read_bounded(source, name=name, max_bytes=max_bytes, expected=EXPECTED)
        return Source(label, raw=raw)
    path, label = checked_file(source, name=name, max_bytes=max_bytes, expected=EXPECTED)
    return Source(label, path=path)
