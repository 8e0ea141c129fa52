"""The result cache: hit, miss, corrupt and partial entries, the memory bound, atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from explorer.cache import store as cache_module
from explorer.cache.store import ResultCache, make_key
from explorer.config import cache_dir


def arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"masses": rng.uniform(size=(10, 3)), "prediction": rng.uniform(size=(10, 8, 8)) > 0.5}


def test_key_is_canonical_and_content_sensitive() -> None:
    assert make_key({"a": 1, "b": [1, 2]}) == make_key({"b": [1, 2], "a": 1})
    assert make_key({"a": 1}) != make_key({"a": 2})


def test_miss_then_memory_hit_then_disk_hit(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path)
    key = make_key({"x": 1})
    assert cache.get(key) is None and cache.stats.misses == 1
    cache.put(key, arrays(), {"summary": {"ai": 0.1}})
    assert cache.get(key).meta == {"summary": {"ai": 0.1}} and cache.stats.memory_hits == 1
    fresh = ResultCache(tmp_path)  # a new process: only the disk
    entry = fresh.get(key)
    assert fresh.stats.disk_hits == 1
    for name, value in arrays().items():
        np.testing.assert_array_equal(entry.arrays[name], value)
        assert entry.arrays[name].dtype == value.dtype


def _corrupt_npz(folder: Path) -> None:
    data = bytearray((folder / "arrays.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "arrays.npz").write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage",
    [
        _corrupt_npz,
        lambda folder: (folder / "meta.json").unlink(),  # partial: no completeness record
        lambda folder: (folder / "meta.json").write_text("{trunc"),  # truncated record
        lambda folder: (folder / "arrays.npz").unlink(),  # data file gone
    ],
)
def test_corrupt_or_partial_entry_is_detected_and_recomputed(tmp_path: Path, damage) -> None:
    key = make_key({"x": 2})
    ResultCache(tmp_path).put(key, arrays(), {"summary": {}})
    damage(tmp_path / key[:2] / key)
    cache = ResultCache(tmp_path)
    assert cache.get(key) is None
    assert not (tmp_path / key[:2] / key).exists(), "the broken entry is removed"
    cache.put(key, arrays(), {"summary": {}})  # the caller recomputes and stores again
    assert ResultCache(tmp_path).get(key) is not None


def test_memory_lru_is_bounded_by_bytes(tmp_path: Path) -> None:
    one = sum(a.nbytes for a in arrays().values())
    cache = ResultCache(tmp_path, max_memory_bytes=int(2.5 * one))
    keys = [make_key({"i": i}) for i in range(3)]
    for i, key in enumerate(keys):
        cache.put(key, arrays(i), {})
    assert cache.get(keys[0]) is not None and cache.stats.disk_hits == 1  # evicted from memory, read from disk
    assert cache.get(keys[2]) is not None and cache.stats.memory_hits == 1


def test_large_arrays_are_memory_mapped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_module, "SEPARATE_ARRAY_BYTES", 1000)
    key = make_key({"maps": True})
    maps = np.random.default_rng(0).normal(size=(4, 3, 16, 16)).astype(np.float16)
    ResultCache(tmp_path).put(key, {"maps": maps, "masses": np.ones((4, 3))}, {})
    entry = ResultCache(tmp_path).get(key)
    assert isinstance(entry.arrays["maps"], np.memmap)
    np.testing.assert_array_equal(entry.arrays["maps"], maps)
    record = json.loads((tmp_path / key[:2] / key / "meta.json").read_text())
    assert set(record["files"]) == {"arrays.npz", "maps.npy"}


def test_writes_leave_no_temporary_folders(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path)
    key = make_key({"x": 3})
    cache.put(key, arrays(), {})
    cache.put(key, arrays(), {})  # a second writer of the same key is harmless
    assert [p.name for p in (tmp_path / key[:2]).iterdir()] == [key]


def test_memory_only_cache_and_default_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = ResultCache(disk=False)
    cache.put("k" * 64, arrays(), {})
    assert cache.get("k" * 64) is not None and cache.directory is None
    monkeypatch.setenv("EXPLORER_CACHE_DIR", str(tmp_path / "c"))
    assert ResultCache().directory == cache_dir() == tmp_path / "c"
