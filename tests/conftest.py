"""Shared fixtures. ``explorer`` is imported first so torchvision/timm/smp import on a CPU-only torch."""

from __future__ import annotations

import os
import shutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")
if workers := os.environ.get("PYTEST_XDIST_WORKER_COUNT"):  # `make test` runs one pytest-xdist worker per core:
    # each worker's torch (and the CLIs it starts) then uses its share of the cores, not all of them each
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(workers))))

from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import explorer  # noqa: E402,F401  (the torchvision shim must precede smp/timm imports in tests)
from explorer.config import SAMPLE_DIR  # noqa: E402

SAMPLE_VOLUME = SAMPLE_DIR / "mni152_t1_2mm.nii.gz"
SAMPLE_MASK = SAMPLE_DIR / "mni152_gm_mask_2mm.nii.gz"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest files first: the browser file, then every file holding a test marked ``slow``, then the rest, each
    group in collection order. ``make test`` runs ``--dist loadfile --no-loadscope-reorder``, so pytest-xdist hands
    out files in this order; its default orders files by their number of tests, which started the longest file
    (three browser tests) last and left the other worker idle meanwhile."""

    def rank(item: pytest.Item) -> int:
        marks = {mark.name for mark in item.iter_markers()}
        return 0 if "browser" in marks else 1 if "slow" in marks else 2

    first: dict[str, int] = {}
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        first[module] = min(first.get(module, 2), rank(item))
    items.sort(key=lambda item: first[item.nodeid.split("::", 1)[0]])  # stable: a file's tests stay together


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own cache directory and integrity key: no test sees another's cached results, and
    none writes a key into the user's configuration folder."""
    monkeypatch.setenv("EXPLORER_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("EXPLORER_CACHE_KEY_FILE", str(tmp_path_factory.mktemp("config") / "cache.key"))


@dataclass(frozen=True)
class WarmCache:
    """A cache folder, and the key that signs it, holding the app's first-visit analysis."""

    root: Path
    key: Path

    def env(self) -> dict[str, str]:
        """The variables that point explorer (this process or a server it starts) at this cache."""
        return {"EXPLORER_CACHE_DIR": str(self.root), "EXPLORER_CACHE_KEY_FILE": str(self.key)}

    def use(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name, value in self.env().items():
            monkeypatch.setenv(name, value)

    def copy(self, to: Path) -> WarmCache:
        """A private copy in ``to``: for a test whose writes change what a later one sees (a debias run's children
        are found again by any session that asks for the same surgery)."""
        shutil.copytree(self.root, to / "cache")
        shutil.copytree(self.key.parent, to / "key")
        return WarmCache(to / "cache", to / "key" / self.key.name)


@pytest.fixture(scope="session")
def warm_cache(tmp_path_factory: pytest.TempPathFactory) -> WarmCache:
    """The sample × zoo analysed once per test run with exactly the inputs of the app's first visit
    (:func:`explorer.app.warm.first_visit`, what ``explorer app`` warms at server start). The app tests, the
    corpus's app sessions, the formats' app test and the browser test start from it: they test what the app
    does with results, not the analysis again. A test that needs a cold cache keeps the per-test one.

    Under pytest-xdist the workers share one: the first to ask computes it under a file lock, the others wait
    and reuse it (each worker's temporary folder sits in the run's common one)."""
    from filelock import FileLock

    from explorer.analysis import analyze
    from explorer.app.warm import first_visit

    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "warm-cache"
    warm = WarmCache(shared / "cache", shared / "key" / "cache.key")
    with FileLock(f"{shared}.lock"):
        if not (shared / "done").exists():
            warm.key.parent.mkdir(parents=True, exist_ok=True)
            with pytest.MonkeyPatch.context() as mp:
                warm.use(mp)
                study, checkpoints, spec = first_visit()
                analyze(study, checkpoints, spec)
            (shared / "done").touch()
    return warm


@pytest.fixture(scope="session")
def sample_volume_path():
    return SAMPLE_VOLUME


@pytest.fixture(scope="session")
def sample_mask_path():
    return SAMPLE_MASK


@pytest.fixture(scope="session")
def sample_crop(tmp_path_factory: pytest.TempPathFactory):
    """``sample_crop(start, stop)``: the sample and its mask cut to axial slices ``start:stop`` (paths, made once
    per run): a test whose assertions do not depend on the whole volume pays for a part of it."""
    made: dict[tuple[int, int], tuple[Path, Path]] = {}

    def crop(start: int, stop: int) -> tuple[Path, Path]:
        if (start, stop) not in made:
            root = tmp_path_factory.mktemp(f"sample-{start}-{stop}")
            for path in (SAMPLE_VOLUME, SAMPLE_MASK):
                small = nib.load(path).slicer[:, :, start:stop]
                nib.save(nib.Nifti1Image(np.asanyarray(small.dataobj), small.affine), root / path.name)
            made[(start, stop)] = (root / SAMPLE_VOLUME.name, root / SAMPLE_MASK.name)
        return made[(start, stop)]

    return crop


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory):
    """Three cohort subjects cropped to 20 axial slices (two train, one test), with a manifest."""
    out = tmp_path_factory.mktemp("cohort")
    lines = ["subject,volume,mask,split"]
    for subject, split in (("sub-01", "train"), ("sub-02", "train"), ("sub-03", "test")):
        for kind in ("T1w", "gm_mask"):
            img = nib.load(SAMPLE_DIR / "cohort" / f"{subject}_{kind}.nii.gz")
            small = img.slicer[:, :, 30:50]
            nib.save(nib.Nifti1Image(np.asanyarray(small.dataobj), small.affine), out / f"{subject}_{kind}.nii.gz")
        lines.append(f"{subject},{subject}_T1w.nii.gz,{subject}_gm_mask.nii.gz,{split}")
    (out / "manifest.csv").write_text("\n".join(lines) + "\n")
    return out / "manifest.csv"
