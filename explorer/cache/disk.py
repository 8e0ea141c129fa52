"""Upkeep of the on-disk cache: a byte budget with least-recently-used eviction, safe across processes.

The cache folder holds three kinds of entry, all counted by ``explorer cache info``, removed by ``clear`` and kept
to the budget together: a model result or diagnostic (a folder holding ``meta.json``, see
:mod:`explorer.cache.store`), a run record (``runs/<key>/``, see :mod:`explorer.reporting.replay`) and a static
figure render (``renders/<xx>/<key>-<signature>.<format>``, see :mod:`explorer.reporting.export`). "Last used" is
the modification time of the entry's ``meta.json``, ``manifest.json`` or render file, set when the entry is written
and touched on every read (explicitly: ``noatime`` mounts do not record reads). Eviction and clearing run under an
exclusive ``fcntl`` lock on ``<root>/cache.lock``, so two processes never evict at once; a reader whose entry
disappears meanwhile sees a miss and recomputes. Temporary folders and files (``.<name>-*``) of writers that died
are removed after an hour."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LOCK_NAME",
    "RECORD",
    "RUN_MANIFEST",
    "STALE_SECONDS",
    "CacheInfo",
    "locked",
    "unusable_reason",
    "touch",
    "touch_file",
    "clean_stale",
    "evict",
    "keep_budget",
    "cache_info",
    "clear_cache",
]


LOCK_NAME = "cache.lock"
RECORD = "meta.json"
#: The run records' and the renders' subfolders of the cache (see the module docstring).
RUNS, RENDERS = "runs", "renders"
RUN_MANIFEST = "manifest.json"
#: Age after which a temporary folder is taken to belong to a dead writer.
STALE_SECONDS = 3600


@dataclass(frozen=True)
class CacheInfo:
    """What ``explorer cache info`` prints."""

    directory: Path
    entries: int
    bytes: int
    budget_bytes: int
    runs: int = 0
    renders: int = 0


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    """Hold the exclusive cross-process lock of the cache at ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK_NAME, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def unusable_reason(root: Path) -> str | None:
    """Why ``root`` cannot hold the cache (cannot be made, or not writable), or None when it can."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".probe-"):
            pass
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


def touch(entry: Path) -> None:
    """Mark ``entry`` as just used (ignored if it vanished meanwhile)."""
    touch_file(entry / RECORD)


def touch_file(path: Path) -> None:
    """Mark the file that dates an entry (``meta.json``, a run's manifest, a render) as just used."""
    with contextlib.suppress(OSError):
        os.utime(path)


def _entries(root: Path) -> list[tuple[float, int, Path]]:
    """``(last used, bytes, path)`` of every complete entry under ``root``: result folders (sub-caches
    included), run-record folders and render files."""
    return [*_results(root), *_runs(root), *_renders(root)]


def _results(root: Path) -> list[tuple[float, int, Path]]:
    found = []
    for record in root.rglob(RECORD):
        folder = record.parent
        parts = folder.relative_to(root).parts
        if parts[:1] in ((RUNS,), (RENDERS,)) or any(part.startswith(".") for part in parts):
            continue  # a run record's outputs, or a writer's temporary folder
        try:
            size = sum(p.stat().st_size for p in folder.iterdir())
            found.append((record.stat().st_mtime, size, folder))
        except OSError:  # removed by another process while we looked
            continue
    return found


def _runs(root: Path) -> list[tuple[float, int, Path]]:
    found = []
    for folder in _listing(root / RUNS):
        try:
            size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
            found.append(((folder / RUN_MANIFEST).stat().st_mtime, size, folder))
        except OSError:
            continue
    return found


def _renders(root: Path) -> list[tuple[float, int, Path]]:
    found = []
    for shard in _listing(root / RENDERS):
        for path in _listing(shard):
            try:
                stat = path.stat()
                found.append((stat.st_mtime, stat.st_size, path))
            except OSError:
                continue
    return found


def _listing(folder: Path) -> list[Path]:
    """The entries of ``folder`` that are not hidden (a writer's temporary names are), or [] if it is missing."""
    try:
        return [p for p in folder.iterdir() if not p.name.startswith(".")]
    except OSError:
        return []


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def clean_stale(root: Path, now: float | None = None) -> int:
    """Remove temporary folders and files older than :data:`STALE_SECONDS` (their writers died); returns how
    many."""
    now = time.time() if now is None else now
    removed = 0
    for tmp in root.rglob(".*-*"):
        try:
            if now - tmp.stat().st_mtime > STALE_SECONDS:
                _remove(tmp)
                removed += 1
        except OSError:
            continue
    return removed


def evict(root: Path, budget_bytes: int) -> int:
    """Delete least-recently-used entries until the cache fits ``budget_bytes``; returns how many went."""
    with locked(root):
        clean_stale(root)
        entries = sorted(_entries(root))
        total = sum(size for _, size, _ in entries)
        removed = 0
        for _, size, path in entries:
            if total <= budget_bytes:
                break
            _remove(path)
            total -= size
            removed += 1
        return removed


def keep_budget() -> None:
    """Evict least-recently-used entries of :func:`explorer.config.cache_dir` down to ``EXPLORER_CACHE_MAX_MB``
    (after a run record or a render was written; a model result evicts through its :class:`ResultCache`).

    Raises:
        OSError: the cache folder is not usable.
        InputError: ``EXPLORER_CACHE_MAX_MB`` holds no positive number.
    """
    from ..config import cache_dir, cache_max_bytes

    evict(cache_dir(), cache_max_bytes())


def cache_info(root: Path, budget_bytes: int) -> CacheInfo:
    """Entries and bytes held by the cache at ``root`` (results, run records and renders; how many of the
    latter two in :attr:`CacheInfo.runs` and :attr:`CacheInfo.renders`)."""
    if not root.is_dir():
        return CacheInfo(root, 0, 0, budget_bytes)
    entries = _entries(root)
    return CacheInfo(
        root,
        len(entries),
        sum(size for _, size, _ in entries),
        budget_bytes,
        runs=len(_runs(root)),
        renders=len(_renders(root)),
    )


def clear_cache(root: Path) -> int:
    """Delete every entry (results, run records, renders; and stale temporaries) of the cache at ``root``;
    returns how many entries went."""
    if not root.is_dir():
        return 0
    with locked(root):
        entries = _entries(root)
        for _, _, path in entries:
            _remove(path)
        clean_stale(root)
        return len(entries)
