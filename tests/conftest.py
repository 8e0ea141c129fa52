"""Shared fixtures. ``explorer`` is imported first so torchvision/timm/smp import on a CPU-only torch."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import explorer  # noqa: E402,F401  (the torchvision shim must precede smp/timm imports in tests)
from explorer.config import SAMPLE_DIR  # noqa: E402

SAMPLE_VOLUME = SAMPLE_DIR / "mni152_t1_2mm.nii.gz"
SAMPLE_MASK = SAMPLE_DIR / "mni152_gm_mask_2mm.nii.gz"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own cache directory and integrity key: no test sees another's cached results, and
    none writes a key into the user's configuration folder."""
    monkeypatch.setenv("EXPLORER_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("EXPLORER_CACHE_KEY_FILE", str(tmp_path_factory.mktemp("config") / "cache.key"))


@pytest.fixture(scope="session")
def sample_volume_path():
    return SAMPLE_VOLUME


@pytest.fixture(scope="session")
def sample_mask_path():
    return SAMPLE_MASK


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
