"""Upkeep of the on-disk result cache: a byte budget with least-recently-used eviction, safe across processes.

An entry is a folder holding ``meta.json`` (see :mod:`explorer.cache`). "Last used" is the modification time
of its ``meta.json``, set when the entry is written and touched on every read (explicitly: ``noatime``
mounts do not record reads). Eviction and clearing run under an exclusive ``fcntl`` lock on
``<root>/cache.lock``, so two processes never evict at once; a reader whose entry disappears meanwhile sees a
miss and recomputes. Temporary folders (``.<key>-*``) of writers that died are removed after an hour.
"""

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

LOCK_NAME = "cache.lock"
RECORD = "meta.json"
#: Age after which a temporary folder is taken to belong to a dead writer.
STALE_SECONDS = 3600


@dataclass(frozen=True)
class CacheInfo:
    """What ``explorer cache info`` prints."""

    directory: Path
    entries: int
    bytes: int
    budget_bytes: int


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
    with contextlib.suppress(OSError):
        os.utime(entry / RECORD)


def _entries(root: Path) -> list[tuple[float, int, Path]]:
    """``(last used, bytes, folder)`` of every complete entry under ``root`` (sub-caches included)."""
    found = []
    for record in root.rglob(RECORD):
        folder = record.parent
        if any(part.startswith(".") for part in folder.relative_to(root).parts):
            continue  # a writer's temporary folder
        try:
            size = sum(p.stat().st_size for p in folder.iterdir())
            found.append((record.stat().st_mtime, size, folder))
        except OSError:  # removed by another process while we looked
            continue
    return found


def clean_stale(root: Path, now: float | None = None) -> int:
    """Remove temporary folders older than :data:`STALE_SECONDS` (their writers died); returns how many."""
    now = time.time() if now is None else now
    removed = 0
    for tmp in root.rglob(".*-*"):
        try:
            if tmp.is_dir() and now - tmp.stat().st_mtime > STALE_SECONDS:
                shutil.rmtree(tmp, ignore_errors=True)
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
        for _, size, folder in entries:
            if total <= budget_bytes:
                break
            shutil.rmtree(folder, ignore_errors=True)
            total -= size
            removed += 1
        return removed


def cache_info(root: Path, budget_bytes: int) -> CacheInfo:
    """Entries and bytes held by the cache at ``root``."""
    entries = _entries(root) if root.is_dir() else []
    return CacheInfo(root, len(entries), sum(size for _, size, _ in entries), budget_bytes)


def clear_cache(root: Path) -> int:
    """Delete every entry (and stale temporaries) of the cache at ``root``; returns how many entries went."""
    if not root.is_dir():
        return 0
    with locked(root):
        entries = _entries(root)
        for _, _, folder in entries:
            shutil.rmtree(folder, ignore_errors=True)
        clean_stale(root)
        return len(entries)
