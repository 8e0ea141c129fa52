"""A cohort's manifest: which volumes (and masks) make up the cohort.

Two forms: a CSV with a ``volume`` column and optional ``mask`` and ``subject`` columns (any other column, e.g.
``split``, is kept), paths relative to the CSV's folder; or a folder, whose every volume file is an entry and
``NAME_mask.EXT`` beside ``NAME.EXT`` is its mask. Files are not opened here: an unreadable volume is a bad
row reported by the run, a malformed manifest is an :class:`InputError` naming the file and row.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..io.readers import SUFFIXES

__all__ = ["MAX_MANIFEST_BYTES", "Entry", "stem", "read_manifest"]


MAX_MANIFEST_BYTES = 4 * 1024**2
_KNOWN = ("subject", "volume", "mask")


@dataclass(frozen=True)
class Entry:
    """One volume of a cohort.

    Attributes:
        subject: the subject's name (``subject`` column, else the volume's file name without its suffix).
        volume: path of the volume.
        mask: path of its ground-truth mask, or None.
        extra: the manifest's other columns for this row (e.g. ``{"split": "test"}``).
        row: line number in the CSV (1 = header), 0 for a folder manifest.
    """

    subject: str
    volume: Path
    mask: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)
    row: int = 0


def stem(path: str | Path) -> str:
    """A file name without its volume suffix (``sub-01_T1w.nii.gz`` → ``sub-01_T1w``)."""
    name = Path(path).name
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix.lower()):
            return name[: -len(suffix)]
    return Path(name).stem


def read_manifest(source: str | Path, *, root: str | Path | None = None) -> list[Entry]:
    """The entries of a CSV manifest or a folder.

    Args:
        source: a ``.csv`` manifest or a folder of volumes.
        root: when given, every path must resolve inside it (the app's data root or an extracted upload).

    Returns:
        The entries in manifest order (a folder's in file-name order).

    Raises:
        InputError: a missing or oversized manifest, no ``volume`` column, an empty volume cell, a duplicate
            subject, a path outside ``root``, or an empty folder.
    """
    path = Path(source)
    if path.is_dir():
        entries = _from_folder(path)
    elif path.is_file():
        entries = _from_csv(path)
    else:
        raise InputError(path, "no such file or folder", "a manifest .csv or a folder of volumes")
    seen: dict[str, int] = {}
    for e in entries:
        if e.subject in seen:
            raise InputError(
                path, f"row {e.row}: subject {e.subject!r} repeats row {seen[e.subject]}", "one row per subject"
            )
        seen[e.subject] = e.row
        if root is not None:
            for p in (e.volume, e.mask):
                if p is not None and not p.resolve().is_relative_to(Path(root).resolve()):
                    raise InputError(path, f"row {e.row}: {p} lies outside {root}", "paths inside the data root")
    return entries


def _from_csv(path: Path) -> list[Entry]:
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise InputError(path, f"manifest is {path.stat().st_size:,} bytes", f"at most {MAX_MANIFEST_BYTES:,}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(path, "is not UTF-8 text", "a CSV manifest") from exc
    reader = csv.DictReader(text.splitlines())
    columns = [c.strip() for c in reader.fieldnames or []]
    if "volume" not in columns:
        raise InputError(
            path,
            f"row 1: no 'volume' column (columns: {', '.join(columns) or 'none'})",
            "a CSV header with volume and optional mask, subject columns",
        )
    entries = []
    for line, raw in enumerate(reader, start=2):
        if None in raw:
            raise InputError(path, f"row {line}: more cells than the header has columns", "one cell per column")
        row = {k.strip(): (v or "").strip() for k, v in raw.items()}
        if not any(row.values()):
            continue
        if not row["volume"]:
            raise InputError(path, f"row {line}: empty volume cell", "a volume path relative to the manifest")
        volume = path.parent / row["volume"]
        mask = path.parent / row["mask"] if row.get("mask") else None
        entries.append(
            Entry(
                subject=row.get("subject") or stem(volume),
                volume=volume,
                mask=mask,
                extra={k: v for k, v in row.items() if k not in _KNOWN},
                row=line,
            )
        )
    if not entries:
        raise InputError(path, "no rows", "at least one volume")
    return entries


def _from_folder(folder: Path) -> list[Entry]:
    files = {
        stem(p): p
        for p in sorted(folder.iterdir())
        if p.is_file() and any(p.name.lower().endswith(s.lower()) for s in SUFFIXES)
    }
    entries = [
        Entry(subject=name, volume=p, mask=files.get(f"{name}_mask"))
        for name, p in files.items()
        if not name.endswith("_mask")
    ]
    if not entries:
        raise InputError(folder, "holds no volume file", "files ending in " + ", ".join(SUFFIXES))
    return entries
