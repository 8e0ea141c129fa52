"""The cache can not lie (every byte checked), degrades to memory on an unusable location, and keeps to a
byte budget by least-recently-used eviction; ``explorer cache info|clear``."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import explorer  # noqa: F401  (before torchvision / smp)
from explorer.analysis import analyze
from explorer.cache.disk import STALE_SECONDS, cache_info, clean_stale
from explorer.cache.store import ResultCache, make_key
from explorer.cli import main
from explorer.config import SAMPLE_DIR
from explorer.errors import InputError
from explorer.models.checkpoints import list_zoo
from explorer.spec import RunSpec

VOLUME = SAMPLE_DIR / "mni152_t1_2mm.nii.gz"


def _arrays(seed: int, size: int = 64 * 1024) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).uniform(size=size // 8)}


def test_an_edited_digit_of_a_stored_asymmetry_index_is_recomputed(tmp_path):
    ckpt = list_zoo()[1]
    first = analyze(VOLUME, [ckpt], RunSpec(zflip=False), cache=ResultCache(tmp_path))
    name = next(iter(first.models))
    ai = first.summary["models"][name]["asymmetry_index"]["mean"]
    [record] = [p for p in tmp_path.rglob("meta.json") if '"asymmetry_index"' in p.read_text()]
    text = record.read_text()
    digits = re.search(r'"asymmetry_index": \{"mean": (-?\d\.\d+)', text)
    original = digits.group(1)
    edited = original[:-1] + str((int(original[-1]) + 1) % 10)
    record.write_text(text.replace(original, edited, 1))
    fresh = ResultCache(tmp_path)  # a new process: only the disk
    again = analyze(VOLUME, [ckpt], RunSpec(zflip=False), cache=fresh)
    assert fresh.stats.corrupt == 1 and fresh.stats.disk_hits == 0
    assert again.summary["models"][name]["asymmetry_index"]["mean"] == ai
    assert repr(ai) != edited


@pytest.mark.parametrize("where", ["read_only", "under_a_file"])
def test_an_unusable_location_degrades_to_memory_with_one_warning(tmp_path, where, caplog):
    if where == "read_only":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        location = tmp_path / "ro"
        location.mkdir()
        location.chmod(0o500)
    else:
        (tmp_path / "file").write_text("x")
        location = tmp_path / "file" / "cache"
    with caplog.at_level(logging.WARNING, logger="explorer.cache.store"):
        cache = ResultCache(location)
    assert not cache.disk and "caching in memory only" in cache.warning
    assert len(caplog.records) == 1 and "\n" not in caplog.records[0].getMessage()
    key = make_key({"k": 1})
    cache.put(key, _arrays(0), {"summary": {}})
    assert cache.get(key) is not None and cache.stats.memory_hits == 1


def test_cache_in_a_path_under_a_regular_file_still_runs_the_cli(tmp_path, monkeypatch, capfd):
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("EXPLORER_CACHE_DIR", str(tmp_path / "file" / "cache"))
    assert main(["cache", "info"]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not usable" in err[0]


def test_least_recently_used_entries_are_evicted_to_the_budget(tmp_path):
    cache = ResultCache(tmp_path, max_disk_bytes=350 * 1024)
    keys = [make_key({"i": i}) for i in range(3)]
    for i, key in enumerate(keys):
        cache.put(key, _arrays(i, 100 * 1024), {})
        os.utime(cache.entry_dir(key) / "meta.json", (1000 + i, 1000 + i))  # written in this order
    ResultCache(tmp_path, max_disk_bytes=350 * 1024).get(keys[0])  # reading makes it the most recent
    cache.put(make_key({"i": 3}), _arrays(3, 100 * 1024), {})
    present = [k for k in keys if cache.entry_dir(k).exists()]
    assert present == [keys[0], keys[2]]  # keys[1] was the least recently used
    info = cache_info(tmp_path, 350 * 1024)
    assert info.entries == 3 and info.bytes <= 350 * 1024


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path):
    dead = tmp_path / "ab" / ".abcdef12-xyz"
    dead.mkdir(parents=True)
    live = tmp_path / "ab" / ".12345678-abc"
    live.mkdir()
    old = dead.stat().st_mtime - STALE_SECONDS - 10
    os.utime(dead, (old, old))
    assert clean_stale(tmp_path) == 1 and not dead.exists() and live.exists()


def test_cache_info_and_clear_subcommands(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EXPLORER_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("EXPLORER_CACHE_MAX_MB", "2")
    cache = ResultCache(tmp_path)
    for i in range(2):
        cache.put(make_key({"i": i}), _arrays(i), {})
    assert main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert f"{tmp_path}: 2 entries" in out and "budget of 2 MB" in out
    assert main(["cache", "clear"]) == 0
    assert "removed 2 entries" in capsys.readouterr().out
    assert cache_info(tmp_path, 0).entries == 0


@pytest.mark.parametrize("value", ["lots", "-5", "0", "nan"])
def test_an_invalid_budget_is_one_input_error(tmp_path, monkeypatch, value):
    monkeypatch.setenv("EXPLORER_CACHE_MAX_MB", value)
    with pytest.raises(InputError, match=f"EXPLORER_CACHE_MAX_MB: environment variable is '{value}'"):
        ResultCache(tmp_path)


_WRITER = """
import sys
from pathlib import Path

import numpy as np

from explorer.cache.store import ResultCache, make_key
directory, seed = Path(sys.argv[1]), int(sys.argv[2])
cache = ResultCache(directory, max_disk_bytes=350 * 1024)
for i in range(8):
    key = make_key({"writer": seed, "i": i})
    cache.put(key, {"x": np.random.default_rng(seed * 100 + i).uniform(size=100 * 1024 // 8)}, {"i": i})
    ResultCache(directory, max_disk_bytes=350 * 1024).get(key)  # read back while the other evicts
"""


def test_two_processes_writing_keep_the_budget(tmp_path):
    # Two separate interpreters (not a multiprocessing pool: its spawned workers must import this test module).
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), str(seed)]) for seed in (1, 2)]
    assert [w.wait(timeout=600) for w in writers] == [0, 0]
    info = cache_info(tmp_path, 350 * 1024)
    assert 1 <= info.entries <= 3 and info.bytes <= 350 * 1024
    assert not [p for p in tmp_path.rglob(".*")], "temporary folders left behind"
