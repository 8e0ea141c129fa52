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

from .errors import InputError


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, streamed."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def size_error(label: str, size: int, max_bytes: int, what: str = "file") -> InputError:
    """The one message for a file or upload over the size limit."""
    return InputError(label, f"{what} is {size / 1024**2:.1f} MB, over the {max_bytes / 1024**2:.0f} MB limit",
                      "a smaller file, or raise EXPLORER_MAX_UPLOAD_MB")


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
