"""Small file helpers every module shares: hashing, bounded reads, atomic writes, tensor-dict unwrapping.

Written by hand because no dependency offers exactly these: ``hashlib.file_digest`` streams a file but does
not hash bytes already read; ``tempfile`` does not rename into place; torch's checkpoints come wrapped in
``{"state_dict": ...}`` or ``{"model": ...}`` by convention, not by an API.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import InputError

__all__ = [
    "sha256_bytes",
    "file_sha256",
    "content_sha256",
    "detached_data_files",
    "size_error",
    "read_bounded",
    "checked_file",
    "write_atomic",
    "unwrap_state_dict",
]


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, streamed."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def content_sha256(path: str | Path) -> str:
    """Hex SHA-256 of what a file *means*: its bytes, and for an NRRD or MetaImage header with a detached data
    file (``.nhdr``, ``.mhd``), also the bytes of that data file, so new voxels under an old header are new
    content (for the result cache and the run records alike). Equal to :func:`file_sha256` for other files."""
    path = Path(path)
    companions = detached_data_files(path)
    if not companions:
        return file_sha256(path)
    parts = [file_sha256(path), *(f"{p.name}:{file_sha256(p)}" for p in companions)]
    return sha256_bytes("\n".join(parts).encode())


def detached_data_files(header: Path) -> list[Path]:
    """The data files beside an NRRD or MetaImage ``header`` that its ``data file`` / ``ElementDataFile`` line
    names (one plain file name, or a ``%d`` pattern with first, last and step), that exist; else ``[]``.

    Only names in the header's own folder are looked at: a header never makes this open another file.
    """
    names: list[str] = []
    for value in _data_file_values(header):
        tokens = value.split()
        if not tokens or tokens[0].upper() in ("LOCAL", "LIST"):
            continue
        if len(tokens) >= 4 and all(t.lstrip("-").isdigit() for t in tokens[1:4]):  # NRRD/MetaImage pattern
            first, last, step = (int(t) for t in tokens[1:4])
            if step == 0 or abs((last - first) // step) > 100_000:
                continue
            try:
                names += [tokens[0] % i for i in range(first, last + (1 if step > 0 else -1), step)]
            except (TypeError, ValueError):
                continue
        else:
            names.append(tokens[0])
    found = []
    for name in names:
        candidate = header.parent / name
        if "/" not in name and "\\" not in name and name not in (".", "..") and candidate.is_file():
            found.append(candidate)
    return found


_HEADER_LIMIT = 1024**2  # an NRRD/MetaImage text header is a few hundred bytes; stop looking after a MiB


def _data_file_values(header: Path) -> list[str]:
    """The values of the data-file lines of an NRRD (up to its blank line) or MetaImage header."""
    try:
        with open(header, "rb") as handle:
            head = handle.read(_HEADER_LIMIT)
    except OSError:
        return []
    is_nrrd = head.startswith(b"NRRD")
    if not (is_nrrd or header.suffix.lower() in (".mha", ".mhd") or b"ObjectType" in head[:256]):
        return []
    values = []
    for line in head.splitlines():
        if is_nrrd and not line.strip():
            break  # the end of an NRRD header: attached data follows
        key, sep, value = line.decode("latin-1").partition("=" if not is_nrrd else ":")
        if sep and key.strip().lower().replace(" ", "") in ("datafile", "elementdatafile"):
            values.append(value.strip())
            if not is_nrrd:
                break  # MetaImage: the last header line; data (attached or not) follows
    return values


def size_error(label: str, size: int, max_bytes: int, what: str = "file") -> InputError:
    """The one message for a file or upload over the size limit."""
    return InputError(
        label,
        f"{what} is {size / 1024**2:.1f} MB, over the {max_bytes / 1024**2:.0f} MB limit",
        "a smaller file, or raise EXPLORER_MAX_UPLOAD_MB",
    )


def read_bounded(source: str | Path | bytes, *, name: str | None, max_bytes: int, expected: str) -> tuple[bytes, str]:
    """The bytes of a path or an upload, refused before reading when over ``max_bytes``.

    Args:
        source: a path or the bytes of an upload.
        name: display name (default: the file name, or ``upload``).
        max_bytes: the size limit.
        expected: what the file should be (for the error message).

    Returns:
        ``(raw, label)``.

    Raises:
        InputError: no such file, an empty file, or one over the limit.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        raw, label = bytes(source), name or "upload"
    else:
        path, label = checked_file(source, name=name, max_bytes=max_bytes, expected=expected)
        raw = path.read_bytes()
    if len(raw) > max_bytes:
        raise size_error(label, len(raw), max_bytes)
    if not raw:
        raise InputError(label, "file is empty", expected)
    return raw, label


def checked_file(source: str | Path, *, name: str | None, max_bytes: int, expected: str) -> tuple[Path, str]:
    """``(path, label)`` of an existing, non-empty file within ``max_bytes``, checked without reading it.

    Raises:
        InputError: no such file, an empty file, or one over the limit.
    """
    path = Path(source)
    label = name or path.name
    if not path.is_file():
        raise InputError(path, "no such file", expected)
    size = path.stat().st_size
    if size > max_bytes:
        raise size_error(label, size, max_bytes)
    if size == 0:
        raise InputError(label, "file is empty", expected)
    return path, label


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file next to ``path``, then rename it over ``path`` (mode 0644)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def unwrap_state_dict(obj: Any) -> Any:
    """The tensor dict inside the usual wrappers (``{"state_dict": ...}``, ``{"model": ...}``), else ``obj``."""
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
    return obj
