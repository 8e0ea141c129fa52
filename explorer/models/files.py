"""Reading checkpoint files within limits: the safetensors header checked before any tensor is read, zip
members checked on their declared size and read in bounded chunks, smp folders read with a size limit.

Written by hand because safetensors' own loader reads every tensor before a caller can see a shape, and
``zipfile`` inflates a member to whatever size it has: the limits must hold on what a file *declares*.
"""

from __future__ import annotations

import json
import math
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..io.files import size_error

__all__ = [
    "MAX_HEADER",
    "MAX_CONFIG",
    "DTYPE_BYTES",
    "safetensors_header",
    "declared_shapes",
    "read_zip_member",
    "folder_reader",
    "zip_reader",
]


#: Largest safetensors JSON header accepted (a U-Net's header is tens of kB).
MAX_HEADER = 16 * 1024**2
#: Largest ``config.json`` of an smp folder.
MAX_CONFIG = 1024**2
_CHUNK = 1024**2
#: Bytes per element of every safetensors dtype.
DTYPE_BYTES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U64": 8,
    "U32": 4,
    "U16": 2,
    "U8": 1,
    "BOOL": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
}


def _corrupt(label: str, problem: str) -> InputError:
    return InputError(label, f"corrupt safetensors file ({problem})", "a complete .safetensors checkpoint")


def safetensors_header(raw: bytes, label: str) -> dict[str, Any]:
    """Parse and check a safetensors header without reading any tensor.

    Every tensor entry must name a known dtype, a shape of non-negative integers and a byte range
    ``[begin, end)`` whose length is ``prod(shape) × itemsize`` and which lies inside the file.

    Args:
        raw: the file's bytes.
        label: the file named in errors.

    Returns:
        The header: ``{tensor name: {"dtype", "shape", "data_offsets"}, "__metadata__": {str: str}}``.

    Raises:
        InputError: a header that is too long, not JSON, or declares tensors the file does not hold.
    """
    if len(raw) < 10:
        raise _corrupt(label, f"{len(raw)} bytes")
    size = int.from_bytes(raw[:8], "little")
    if size > MAX_HEADER or 8 + size > len(raw):
        raise _corrupt(label, f"header declares {size:,} bytes in a file of {len(raw):,}")
    try:
        header = json.loads(raw[8 : 8 + size])
    except (RecursionError, ValueError, UnicodeDecodeError) as exc:
        raise _corrupt(label, f"header is not JSON: {' '.join(str(exc).split())[:80]}") from exc
    if not isinstance(header, dict):
        raise _corrupt(label, f"header is a {type(header).__name__}")
    body = len(raw) - 8 - size
    meta = header.get("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise _corrupt(label, "__metadata__ is not an object of strings")
    for name, entry in header.items():
        if name != "__metadata__":
            _check_entry(name, entry, body, label)
    return header


def _check_entry(name: str, entry: Any, body: int, label: str) -> None:
    if not isinstance(entry, dict):
        raise _corrupt(label, f"tensor {name[:60]!r} is described by a {type(entry).__name__}")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in DTYPE_BYTES:
        raise _corrupt(label, f"tensor {name[:60]!r} has dtype {str(dtype)[:20]!r}")
    if not _naturals(shape) or len(shape) > 8 or not _naturals(offsets) or len(offsets) != 2:
        raise _corrupt(label, f"tensor {name[:60]!r} has shape {str(shape)[:40]} and offsets {str(offsets)[:40]}")
    begin, end = offsets
    if end < begin or end > body or end - begin != math.prod(shape) * DTYPE_BYTES[dtype]:
        raise _corrupt(
            label,
            f"tensor {name[:60]!r} declares {math.prod(shape):,} {dtype} values in bytes "
            f"{begin:,}..{end:,} of {body:,}",
        )


def _naturals(values: Any) -> bool:
    return isinstance(values, list) and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in values)


def declared_shapes(header: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Tensor name → declared shape, from a checked header."""
    return {k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"}


def read_zip_member(zf: zipfile.ZipFile, member: str, *, max_bytes: int, label: str) -> bytes:
    """A zip member's bytes, refused on its declared size and read in chunks that stop at ``max_bytes``.

    Raises:
        InputError: the member declares, or inflates to, more than ``max_bytes``; a corrupt member.
    """
    info = zf.getinfo(member)
    if info.file_size > max_bytes:
        raise size_error(f"{label}:{member}", info.file_size, max_bytes, what="zip member (uncompressed)")
    chunks, total = [], 0
    try:
        with zf.open(info) as handle:
            while chunk := handle.read(_CHUNK):
                total += len(chunk)
                if total > max_bytes:  # the declared size lied: stop inflating
                    raise size_error(f"{label}:{member}", total, max_bytes, what="zip member (uncompressed)")
                chunks.append(chunk)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise InputError(label, f"corrupt zip member {member} ({exc})", "a valid .zip of an smp folder") from exc
    return b"".join(chunks)


def folder_reader(root: Path, max_bytes: int, label: str) -> Callable[[str], bytes | None]:
    """``read(name)`` for an smp folder: a file's bytes (None if absent), refused over ``max_bytes``."""

    def read(name: str) -> bytes | None:
        path = root / name
        if not path.is_file():
            return None
        limit = MAX_CONFIG if name == "config.json" else max_bytes
        if path.stat().st_size > limit:
            raise size_error(f"{label}/{name}", path.stat().st_size, limit)
        return path.read_bytes()

    return read


def zip_reader(zf: zipfile.ZipFile, max_bytes: int, label: str) -> Callable[[str], bytes | None]:
    """``read(name)`` for a zip of an smp folder: the member whose base name is ``name``, bounded."""
    names = {Path(n).name: n for n in zf.namelist()}

    def read(name: str) -> bytes | None:
        if name not in names:
            return None
        return read_zip_member(
            zf, names[name], max_bytes=MAX_CONFIG if name == "config.json" else max_bytes, label=label
        )

    return read
