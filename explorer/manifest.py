"""A cohort manifest: one CSV row per subject with its volume, optional mask and extra columns.

The format is ``subject,volume,mask[,more columns...]`` with a header (``sample_data/cohort/manifest.csv``);
paths are relative to the CSV's folder unless absolute. Read with the standard ``csv`` module: the file is
small and a DataFrame would add nothing but a dependency on pandas' type guessing (``"01"`` stays ``"01"``).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputError

REQUIRED = ("subject", "volume")


@dataclass(frozen=True)
class Row:
    """One subject: its id, the volume path, the mask path (or None) and the other columns as strings."""

    subject: str
    volume: Path
    mask: Path | None
    extra: dict[str, str] = field(default_factory=dict)


def read_manifest(path: str | Path) -> list[Row]:
    """Rows of the manifest at ``path``, paths resolved relative to its folder.

    Args:
        path: a CSV file with a header naming at least ``subject`` and ``volume`` (``mask`` optional).

    Returns:
        One :class:`Row` per data line, in file order.

    Raises:
        InputError: an unreadable file, missing columns, an empty manifest, empty or repeated subject ids,
            or a volume or mask that does not exist.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = [name.strip() for name in reader.fieldnames or []]
            records = [{(k or "").strip(): (v or "").strip() for k, v in rec.items()} for rec in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(str(path), f"cannot be read as CSV ({exc})", "a UTF-8 CSV manifest") from exc
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise InputError(str(path), f"columns {header} lack {missing}", "a header with subject,volume[,mask]")
    if not records:
        raise InputError(str(path), "no subjects", "at least one data row")
    rows, seen = [], set()
    for line, rec in enumerate(records, start=2):
        subject = rec["subject"]
        if not subject or subject in seen:
            raise InputError(f"{path}:{line}", f"subject id {subject!r} is empty or repeated", "unique subject ids")
        seen.add(subject)
        files = {key: _resolve(path, rec.get(key, ""), line) for key in ("volume", "mask")}
        if files["volume"] is None:
            raise InputError(f"{path}:{line}", "empty volume path", "a volume file for every subject")
        extra = {k: v for k, v in rec.items() if k not in ("subject", "volume", "mask")}
        rows.append(Row(subject, files["volume"], files["mask"], extra))
    return rows


def _resolve(manifest: Path, value: str, line: int) -> Path | None:
    if not value:
        return None
    resolved = (manifest.parent / value) if not Path(value).is_absolute() else Path(value)
    if not resolved.exists():
        raise InputError(f"{manifest}:{line}", f"{value} does not exist (looked for {resolved})",
                         "paths relative to the manifest's folder")
    return resolved
