"""Computing a cohort's volume × checkpoint pairs, in this process (``local``) or on Ray (``ray``).

Every pair goes through :func:`explorer.analysis.analyze` with the default on-disk cache, so an interrupted
cohort resumes from what was computed, and local and Ray runs give the same numbers. A task is one volume
with all checkpoints (the volume is read and normalised once): on 6 sample-cohort volumes × 2 checkpoints,
2 Ray CPUs, warm workers, fresh cache, it took 53 s against 81 s for one task per pair (docs/cohort.md,
"Executors"). Tasks receive paths and the small :class:`RunSpec`, never arrays.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..spec import RunSpec
from ..stats.summary import NO_ESTIMATE, ModelSummary
from .manifest import Entry

__all__ = ["Progress", "MAX_RETRIES", "Model", "pair_rows", "run_local", "run_ray"]


Progress = Callable[[int, int, str], None]
MAX_RETRIES = 2  # Ray re-runs a task whose worker died this often (a cached pair is not recomputed)


@dataclass(frozen=True)
class Model:
    """A checkpoint of the cohort, as the driver read it (its metadata travels to the statistics)."""

    name: str
    path: str
    strategy: str
    seed: int | None
    sha256: str
    training: dict


def pair_rows(entry: Entry, models: Sequence[Model], spec: RunSpec) -> list[dict[str, Any]]:
    """Analyse one volume with each checkpoint; one row per pair, a failed pair has its ``error`` filled in.

    Args:
        entry: the volume (and mask) to analyse.
        models: the checkpoints, loaded here from their paths.
        spec: the run's parameters (axis filled in).

    Returns:
        Rows with ``subject, volume, model, n_slices, asymmetry_index, ai_ci_low, ai_ci_high, channel_asymmetry,
        ca_ci_low, ca_ci_high, anatomy_asymmetry, aa_ci_low, aa_ci_high, block_length, dice,
        channel_asymmetry_mass_weighted, anatomy_asymmetry_mass_weighted, asymmetry_index_mass_weighted,
        share_<offset>..., error, from_cache, volume_sha256``.
    """
    from ..analysis import analyze, default_cache
    from ..models.checkpoints import load_checkpoint
    from ..study import Study

    base = {"subject": entry.subject, "volume": str(entry.volume), **entry.extra}
    try:
        study = Study.load(entry.volume, entry.mask)
    except InputError as exc:
        return [{**base, "model": m.name, "error": str(exc), "from_cache": False} for m in models]
    base["volume_sha256"] = study.volume.sha256
    cache = default_cache()
    rows = []
    for m in models:
        try:
            analysis = analyze(study, [load_checkpoint(m.path, name=m.name)], spec, cache=cache)
        except InputError as exc:
            rows.append({**base, "model": m.name, "error": str(exc), "from_cache": False})
            continue
        rows.append(
            {
                **base,
                "model": m.name,
                **_numbers(analysis.models[m.name].stats),
                "error": None,
                "from_cache": analysis.models[m.name].from_cache,
            }
        )
    return rows


def _numbers(stats: ModelSummary) -> dict[str, Any]:
    """A pair's CSV columns from the model's typed summary (the split's columns None when it was skipped)."""
    ai = stats.asymmetry_index
    ca, aa = stats.channel_asymmetry or NO_ESTIMATE, stats.anatomy_asymmetry or NO_ESTIMATE
    out = {
        "n_slices": stats.n_slices,
        "asymmetry_index": ai.mean,
        "ai_ci_low": ai.ci_low,
        "ai_ci_high": ai.ci_high,
        "block_length": stats.block_length,
        "dice": stats.dice,
        "channel_asymmetry": ca.mean,
        "ca_ci_low": ca.ci_low,
        "ca_ci_high": ca.ci_high,
        "anatomy_asymmetry": aa.mean,
        "aa_ci_low": aa.ci_low,
        "aa_ci_high": aa.ci_high,
        # Σ(m₋ − m₊) / Σ(m₋ + m₊)
        "channel_asymmetry_mass_weighted": ca.mass_weighted,
        "anatomy_asymmetry_mass_weighted": aa.mass_weighted,
        "asymmetry_index_mass_weighted": ai.mass_weighted,
    }
    out.update({f"share_{k}": v for k, v in stats.mean_share.items()})
    return out


def run_local(
    entries: Sequence[Entry], models: Sequence[Model], spec: RunSpec, *, fail_fast: bool, progress: Progress
) -> list[dict]:
    """All pairs in this process, volume by volume; ``progress(done_pairs, total_pairs, message)``.

    Raises:
        InputError: with ``fail_fast``, the first bad pair.
    """
    rows, total = [], len(entries) * len(models)
    for entry in entries:
        new = pair_rows(entry, models, spec)
        _check(new, fail_fast)
        rows += new
        progress(len(rows), total, entry.subject)
    return rows


def run_ray(
    entries: Sequence[Entry],
    models: Sequence[Model],
    spec: RunSpec,
    *,
    address: str | None,
    workers: int | None,
    fail_fast: bool,
    progress: Progress,
) -> list[dict]:
    """All pairs as Ray tasks (one per volume); the driver collects them with ``ray.wait`` as they finish.

    Args:
        address: an existing cluster (``ray.init(address=...)``); None uses ``RAY_ADDRESS`` or starts a local
            instance with ``workers`` CPUs (default all) that is stopped again at the end.

    Raises:
        InputError: with ``fail_fast``, the first bad pair (the remaining tasks are cancelled).
    """
    import ray

    from ..cache.integrity import key_path
    from ..config import cache_dir
    from ..models.checkpoints import load_checkpoint

    address = address or os.environ.get("RAY_ADDRESS") or None
    package_root = str(Path(__file__).resolve().parents[2])
    env = {
        "EXPLORER_CACHE_DIR": str(cache_dir()),
        "EXPLORER_CACHE_KEY_FILE": str(key_path()),  # entries the workers sign are the driver's to verify
        "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p),
    }
    started = not ray.is_initialized()
    if started:
        common = dict(runtime_env={"env_vars": env}, log_to_driver=False, include_dashboard=False)
        if address:
            ray.init(address=address, **common)
        else:
            ray.init(num_cpus=workers or os.cpu_count(), **common)
    try:
        task = ray.remote(_task)
        gpus = 1 if _cuda() else 0
        ckpts = [load_checkpoint(m.path, name=m.name) for m in models]
        pending = {
            task.options(
                num_cpus=1, num_gpus=gpus, memory=_task_memory(e, ckpts, spec), max_retries=MAX_RETRIES
            ).remote(e, list(models), spec): e
            for e in entries
        }
        rows, total = [], len(entries) * len(models)
        while pending:
            (done,), _ = ray.wait(list(pending), num_returns=1)
            entry = pending.pop(done)
            new = ray.get(done)
            try:
                _check(new, fail_fast)
            except InputError:
                for ref in pending:
                    ray.cancel(ref)
                raise
            rows += new
            progress(len(rows), total, entry.subject)
        return rows
    finally:
        if started:
            ray.shutdown()


def _task(entry: Entry, models: list[Model], spec: RunSpec) -> list[dict]:
    import explorer  # noqa: F401  (first: installs the torchvision shim before torch/smp are imported)

    return pair_rows(entry, models, spec)


def _check(rows: list[dict], fail_fast: bool) -> None:
    bad = next((r for r in rows if r.get("error")), None)
    if fail_fast and bad is not None:
        raise InputError(None, f"subject {bad['subject']}, {bad['model']}: {bad['error']}")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _task_memory(entry: Entry, ckpts: Sequence[Any], spec: RunSpec) -> int:
    """Bytes to reserve for one task: the run-memory estimate from the volume's header shape.

    A broadcast zero array stands in for the voxels (``estimate_run_memory`` reads only the shape and size),
    so the driver never loads a volume; an unreadable header reserves the minimum and the task reports it.
    """
    from types import SimpleNamespace

    import nibabel as nib

    from ..attribution.limits import estimate_run_memory
    from ..io.volume import load_volume

    try:
        shape = tuple(nib.load(entry.volume).shape[:3])
    except (OSError, nib.filebasedimages.ImageFileError):  # not NIfTI/MGH (or unreadable): the general way
        try:
            shape = load_volume(entry.volume).shape
        except InputError:
            return 1
    stand_in = SimpleNamespace(shape=shape, data=np.broadcast_to(np.float32(0), shape))
    return estimate_run_memory(stand_in, ckpts, spec).total
