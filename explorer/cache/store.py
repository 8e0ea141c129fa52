"""Content-addressed result cache: a byte-bounded in-memory LRU in front of a directory on disk.

A key is the SHA-256 of a canonical JSON of everything a result depends on (content hashes of volume,
checkpoint and mask, preprocessing, method, target, parameters, engine version; see
:func:`result_key`, the one key function for model results and diagnostics). An entry is a folder
``arrays.npz`` (no pickle), optional ``<name>.npy`` files for large arrays (memory-mapped when read) and
``meta.json``, which records the SHA-256 of every other file, and ``meta.json.hmac``, the HMAC-SHA256 of
``meta.json``'s bytes (the stored summary included) under the installation's secret key
(:mod:`explorer.cache.integrity`), so every byte of an entry is covered and an entry forged without the key is
never served. The folder is written under a temporary name and renamed into place, so a reader never sees
a half-written entry (two writers of one key: the first rename wins, the other's copy is dropped); an entry
whose files are missing, do not match their checksums, whose signature does not verify or that do not parse
is deleted and reported as a miss (the caller recomputes).
Arrays handed out are read-only: one entry is shared by every caller, e.g. several app sessions.

The disk store keeps to a byte budget (``EXPLORER_CACHE_MAX_MB``) by least-recently-used eviction under a
cross-process lock (:mod:`explorer.cache.disk`). A location that cannot be used (read-only, under a regular
file, a full disk) turns the cache into a memory-only one with one warning line (logger ``explorer.cache.store``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import cache_dir, cache_max_bytes
from ..io.files import file_sha256
from . import integrity
from .disk import evict, touch, unusable_reason

__all__ = [
    "LOG",
    "DEFAULT_MEMORY_BYTES",
    "SEPARATE_ARRAY_BYTES",
    "CHECKSUM",
    "ENGINE_VERSION",
    "make_key",
    "result_key",
    "CacheEntry",
    "CacheStats",
    "ResultCache",
]


LOG = logging.getLogger(__name__)

DEFAULT_MEMORY_BYTES = 512 * 1024**2
#: Arrays at least this large are stored as their own ``.npy`` and memory-mapped when read.
SEPARATE_ARRAY_BYTES = 64 * 1024**2
#: The file holding the HMAC of ``meta.json``'s bytes (:func:`explorer.cache.integrity.sign`).
CHECKSUM = "meta.json.hmac"


#: Bump when anything changes the numbers an analysis or a diagnostic produces; part of every result key.
ENGINE_VERSION = "7"


def make_key(parts: dict[str, Any]) -> str:
    """SHA-256 hex digest of ``parts`` as canonical JSON (sorted keys, no whitespace)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def result_key(study: Any, checkpoint: Any, axis: str, **parts: Any) -> str:
    """The key of anything computed from one checkpoint on one study: model results and diagnostics alike.

    What every such result depends on is here once — the inputs' content hashes, the slicing axis, the
    preprocessing the checkpoint implies and :data:`ENGINE_VERSION`; ``parts`` add what the caller computes
    (e.g. :meth:`explorer.spec.RunSpec.result_key`, or a diagnostic's name and options).

    Args:
        study: an :class:`explorer.study.Study`.
        checkpoint: an :class:`explorer.models.checkpoints.Checkpoint`.
        axis: the slicing axis.
        parts: JSON-able fields specific to the result.
    """
    return make_key(
        {
            **study.key(),
            "checkpoint": checkpoint.sha256,
            "axis": axis,
            "normalisation": checkpoint.meta.normalisation,
            "offsets": list(checkpoint.meta.offsets),
            "engine": ENGINE_VERSION,
            **parts,
        }
    )


def _unusable_key() -> str | None:
    """Why the integrity key can be neither read nor created, or None (then entries can be signed)."""
    try:
        integrity.sign(b"")
    except OSError as exc:
        return f"integrity key {integrity.key_path()}: {exc.strerror or exc}"
    return None


@dataclass(frozen=True, eq=False)
class CacheEntry:
    """A cached result: named arrays and JSON-able metadata."""

    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]


@dataclass
class CacheStats:
    """Counters since the cache object was made."""

    memory_hits: int = 0
    disk_hits: int = 0
    misses: int = 0
    corrupt: int = 0


@dataclass
class ResultCache:
    """Memory LRU (bounded by bytes) over an on-disk store.

    Attributes:
        directory: the on-disk store (default :func:`explorer.config.cache_dir`, i.e. ``$EXPLORER_CACHE_DIR``
            or ``~/.cache/explorer``); None with ``disk=False`` keeps memory only.
        max_memory_bytes: bound of the in-memory LRU (memory-mapped arrays are not counted).
        disk: use the on-disk store (set to False, with :attr:`warning`, when the location is unusable).
        max_disk_bytes: byte budget of the disk store (default :func:`explorer.config.cache_max_bytes`).
        warning: why the disk store was given up, or None.
    """

    directory: Path | None = None
    max_memory_bytes: int = DEFAULT_MEMORY_BYTES
    disk: bool = True
    stats: CacheStats = field(default_factory=CacheStats)
    max_disk_bytes: int | None = None
    warning: str | None = None

    def __post_init__(self) -> None:
        if self.disk and self.directory is None:
            self.directory = cache_dir()
        self.directory = Path(self.directory) if self.directory is not None else None
        if self.disk and self.max_disk_bytes is None:
            self.max_disk_bytes = cache_max_bytes()
        if self.disk and (reason := unusable_reason(self.directory) or _unusable_key()):
            self._memory_only(reason)
        self._memory: OrderedDict[str, tuple[CacheEntry, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._children: dict[str, ResultCache] = {}

    def get(self, key: str) -> CacheEntry | None:
        """The entry for ``key`` from memory, else disk (verified), else None."""
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                self.stats.memory_hits += 1
                return self._memory[key][0]
        entry = self._read(key) if self.disk else None
        if entry is None:
            self.stats.misses += 1
            return None
        self.stats.disk_hits += 1
        self._remember(key, entry)
        return entry

    def holds(self, key: str) -> bool:
        """Whether ``key`` is in memory or on disk (without reading or verifying it)."""
        with self._lock:
            if key in self._memory:
                return True
        return self.disk and self.directory is not None and self.entry_dir(key).is_dir()

    def put(self, key: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> CacheEntry:
        """Store an entry (memory, and disk atomically); returns it."""
        entry = CacheEntry(arrays=dict(arrays), meta=dict(meta))
        if self.disk:
            try:
                self._write(key, entry)
                evict(self.directory, self.max_disk_bytes)
            except OSError as exc:  # read-only now, disk full, folder removed: keep going without the disk
                self._memory_only(exc.strerror or type(exc).__name__)
        self._remember(key, entry)
        return entry

    def subcache(self, name: str) -> ResultCache:
        """A cache of its own in the subfolder ``name`` (a quarter of this memory bound, its own
        :attr:`stats`), made once per name: e.g. the opt-in diagnostics beside the model results."""
        with self._lock:
            if name not in self._children:
                on_disk = self.disk and self.directory is not None
                self._children[name] = ResultCache(
                    directory=self.directory / name if on_disk else None,
                    disk=on_disk,
                    max_memory_bytes=self.max_memory_bytes // 4,
                    max_disk_bytes=self.max_disk_bytes,
                )
            return self._children[name]

    def clear_memory(self) -> None:
        """Forget the in-memory entries (the disk store stays)."""
        with self._lock:
            self._memory.clear()

    # ----------------------------------------------------------------------------------------- internals

    def _memory_only(self, reason: str) -> None:
        self.warning = f"cache directory {self.directory} is not usable ({reason}); caching in memory only"
        self.disk = False
        LOG.warning("explorer: warning: %s", self.warning)

    def entry_dir(self, key: str) -> Path:
        """The folder holding ``key`` on disk."""
        if self.directory is None:
            raise RuntimeError("a memory-only cache has no directory")
        return self.directory / key[:2] / key

    def _remember(self, key: str, entry: CacheEntry) -> None:
        for array in entry.arrays.values():  # shared by every caller (and session): nobody may write to it
            array.setflags(write=False)
        size = sum(a.nbytes for a in entry.arrays.values() if not isinstance(a, np.memmap))
        if size > self.max_memory_bytes:
            return
        with self._lock:
            self._memory[key] = (entry, size)
            self._memory.move_to_end(key)
            while sum(s for _, s in self._memory.values()) > self.max_memory_bytes:
                self._memory.popitem(last=False)

    def _write(self, key: str, entry: CacheEntry) -> None:
        final = self.entry_dir(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key[:8]}-", dir=final.parent))
        try:
            small = {k: v for k, v in entry.arrays.items() if v.nbytes < SEPARATE_ARRAY_BYTES}
            np.savez(tmp / "arrays.npz", **{k: np.ascontiguousarray(v) for k, v in small.items()})
            for name, array in entry.arrays.items():
                if name not in small:
                    np.save(tmp / f"{name}.npy", np.asarray(array), allow_pickle=False)
            files = {p.name: file_sha256(p) for p in sorted(tmp.iterdir())}
            record = json.dumps({"key": key, "files": files, "meta": entry.meta}).encode()
            (tmp / "meta.json").write_bytes(record)
            (tmp / CHECKSUM).write_text(integrity.sign(record))
            if final.exists():  # a concurrent writer won; same content by construction
                shutil.rmtree(tmp, ignore_errors=True)
                return
            try:
                os.replace(tmp, final)
            except OSError:  # lost the race between the check and the rename: keep the winner's entry
                if not final.exists():
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _read(self, key: str) -> CacheEntry | None:
        folder = self.entry_dir(key)
        if not folder.exists():
            return None
        try:
            raw = (folder / "meta.json").read_bytes()
            if not integrity.verify(raw, (folder / CHECKSUM).read_text()):
                raise ValueError("meta.json's signature does not verify")
            record = json.loads(raw)
            if record.get("key") != key:
                raise ValueError("key mismatch")
            arrays: dict[str, np.ndarray] = {}
            for name, digest in record["files"].items():
                path = folder / name
                if file_sha256(path) != digest:
                    raise ValueError(f"checksum mismatch in {name}")
                if name == "arrays.npz":
                    with np.load(path, allow_pickle=False) as data:
                        arrays.update({k: data[k] for k in data.files})
                else:
                    arrays[name[: -len(".npy")]] = np.load(path, mmap_mode="r", allow_pickle=False)
            touch(folder)
            return CacheEntry(arrays=arrays, meta=record["meta"])
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            self.stats.corrupt += 1
            shutil.rmtree(folder, ignore_errors=True)
            return None
