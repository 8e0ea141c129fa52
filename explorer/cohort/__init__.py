"""Cohorts: many volumes × many checkpoints, with the volume and the trained model as units of inference.

:func:`run_cohort` reads a manifest (:mod:`.manifest`), computes every volume × checkpoint pair locally or on
Ray (:mod:`.run`) through the cached :func:`explorer.analysis.analyze`, and summarises the groups
(:mod:`.summary`); :func:`explorer.cohort.outputs.write_cohort` writes ``cohort.csv``,
``cohort_summary.json`` and the figures. Definitions: docs/cohort.md ("Statistics") and docs/definitions.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .. import choices
from ..analysis import unique_names
from ..errors import InputError, unknown_name
from ..spec import RunSpec
from .manifest import Entry, read_manifest
from .run import Model, run_local, run_ray
from .summary import DEFAULT_MARGIN, MARGIN_RATIONALE, summarise

EXECUTORS = choices.EXECUTORS

__all__ = [
    "DEFAULT_MARGIN",
    "EXECUTORS",
    "MARGIN_RATIONALE",
    "Cohort",
    "Entry",
    "Executor",
    "Model",
    "read_manifest",
    "run_cohort",
]


@dataclass(frozen=True, eq=False)
class Cohort:
    """A computed cohort: one row per volume × checkpoint (``cohort.csv``) and the summary
    (``cohort_summary.json``)."""

    rows: pd.DataFrame
    summary: dict
    entries: list[Entry]
    models: list[Model]
    spec: RunSpec
    from_cache: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Executor:
    """Where a cohort's pairs run.

    Attributes:
        kind: ``local`` (this process) or ``ray``.
        address: an existing Ray cluster (else ``RAY_ADDRESS``, else a local instance).
        workers: CPUs of the local Ray instance (default all); for ``local``, torch's threads during the run.

    Raises:
        InputError: an unknown kind or a worker count below 1.
    """

    kind: str = "local"
    address: str | None = None
    workers: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise unknown_name("executor", self.kind, EXECUTORS)
        if self.workers is not None and self.workers < 1:
            raise InputError("--workers", str(self.workers), "a positive number")


def run_cohort(
    manifest: str | Path | Sequence[Entry],
    checkpoints: Sequence[str | Path],
    spec: RunSpec | None = None,
    *,
    executor: Executor = Executor(),
    margin: float = DEFAULT_MARGIN,
    fail_fast: bool = False,
    root: str | Path | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> Cohort:
    """Analyse every volume of the manifest with every checkpoint and summarise by strategy.

    Args:
        manifest: a CSV manifest or a folder (:func:`read_manifest`), or its entries.
        checkpoints: checkpoint paths; those of one strategy are that group's models.
        spec: the run's parameters (default :class:`RunSpec()`).
        executor: where the pairs run (default: this process, torch's own thread count).
        margin: equivalence margin of the per-model |endpoint| (default 0.05, :data:`MARGIN_RATIONALE`).
        fail_fast: stop at the first bad pair instead of recording it in ``error``.
        root: every manifest path must lie inside it (the app's data root).
        progress: ``progress(done_pairs, total_pairs, message)``.

    Returns:
        A :class:`Cohort`.

    Raises:
        InputError: a bad manifest, checkpoint or margin; with ``fail_fast``, the first bad pair;
            no pair succeeded.
    """
    from ..models.checkpoints import load_checkpoint

    if not margin > 0:
        raise InputError("--margin", f"{margin!r}", "a positive number, e.g. 0.05")
    entries = list(manifest) if not isinstance(manifest, (str, Path)) else read_manifest(manifest, root=root)
    if not checkpoints:
        raise InputError("--checkpoint", "no checkpoint given", "at least one checkpoint")
    loaded = [load_checkpoint(c) for c in checkpoints]
    names = unique_names([c.name for c in loaded])
    models = [
        Model(
            name=n,
            path=str(p),
            strategy=c.meta.strategy,
            seed=c.meta.recipe.get("seed"),
            sha256=c.sha256,
            training=c.meta.training,
        )
        for n, p, c in zip(names, checkpoints, loaded, strict=True)
    ]
    spec = (spec or RunSpec()).for_checkpoints(loaded)
    report = progress or (lambda done, total, message: None)
    report(0, len(entries) * len(models), "starting")  # the total before the first pair ends
    if executor.kind == "ray":
        rows = run_ray(
            entries,
            models,
            spec,
            address=executor.address,
            workers=executor.workers,
            fail_fast=fail_fast,
            progress=report,
        )
    else:
        import torch

        threads = torch.get_num_threads()
        if executor.workers:
            torch.set_num_threads(executor.workers)
        try:
            rows = run_local(entries, models, spec, fail_fast=fail_fast, progress=report)
        finally:
            torch.set_num_threads(threads)  # the caller's setting, also after an error
    table = _table(rows, entries, models)
    errors = [f"{r.subject} × {r.model}: {r.error}" for r in table.itertuples() if isinstance(r.error, str)]
    if table["error"].notna().all():
        raise InputError(
            manifest if isinstance(manifest, (str, Path)) else None,
            f"no volume could be analysed ({errors[0]})",
            "readable volumes on the checkpoints' grid",
        )
    summary = summarise(table, margin=margin)
    summary["inputs"] = _inputs(table, entries, models, spec, executor=executor, margin=margin)
    return Cohort(
        rows=table,
        summary=summary,
        entries=entries,
        models=models,
        spec=spec,
        from_cache=int(table["from_cache"].sum()),
        errors=errors,
    )


def _table(rows: list[dict], entries: Sequence[Entry], models: Sequence[Model]) -> pd.DataFrame:
    """The rows in manifest × checkpoint order (whatever order the executor finished them in), with each
    model's strategy and seed, and whether the subject was unseen in the checkpoint's training."""
    order = {(e.subject, m.name): i for i, (e, m) in enumerate((e, m) for e in entries for m in models)}
    by_name = {m.name: m for m in models}
    table = pd.DataFrame(sorted(rows, key=lambda r: order[(r["subject"], r["model"])]))
    table.insert(2, "strategy", [by_name[n].strategy for n in table["model"]])
    table.insert(3, "seed", pd.array([by_name[n].seed for n in table["model"]], dtype="Int64"))
    table["held_out"] = [
        _held_out(by_name[m].training, s, v)
        for m, s, v in zip(
            table["model"], table["subject"], table.get("volume_sha256", [None] * len(table)), strict=True
        )
    ]
    fixed = [
        "subject",
        "volume",
        "model",
        "strategy",
        "seed",
        "n_slices",
        "channel_asymmetry",
        "ca_ci_low",
        "ca_ci_high",
        "anatomy_asymmetry",
        "aa_ci_low",
        "aa_ci_high",
        "asymmetry_index",
        "ai_ci_low",
        "ai_ci_high",
        "block_length",
        "dice",
        "channel_asymmetry_mass_weighted",
        "anatomy_asymmetry_mass_weighted",
        "asymmetry_index_mass_weighted",
    ]
    for column in [*fixed, "error"]:
        if column not in table:
            table[column] = None
    shares = sorted((c for c in table if c.startswith("share_")), key=lambda c: int(c.removeprefix("share_")))
    rest = [c for c in table if c not in {*fixed, *shares, "error"}]
    return table[[*fixed, *shares, "error", *rest]]


def _held_out(training: dict, subject: str, volume_sha256: str | None) -> bool:
    """False when the checkpoint's training metadata names this subject or this volume's content: the
    subject-level split ``split.train`` (and ``split.val``, the early-stopping subjects) that ``explorer train
    --manifest`` records, or the single training volume of ``explorer train --volume``."""
    split = training.get("split") if isinstance(training.get("split"), dict) else {}
    train = [t for t in [*(split.get("train") or []), *(split.get("val") or [])] if isinstance(t, dict)]
    seen = {t.get("subject") for t in train}
    hashes = {t.get("volume_sha256") for t in train} | {(training.get("volume") or {}).get("sha256")}
    return subject not in seen and (volume_sha256 is None or volume_sha256 not in hashes)


def _inputs(
    table: pd.DataFrame,
    entries: Sequence[Entry],
    models: Sequence[Model],
    spec: RunSpec,
    *,
    executor: Executor,
    margin: float,
) -> dict:
    from .. import __version__
    from ..cache.store import ENGINE_VERSION
    from ..io.files import file_sha256
    from .summary import ALPHA, INTERVAL_METHOD, N_BOOT, SEED

    def sha(path: Path | None) -> str | None:
        return file_sha256(path) if path is not None and path.is_file() else None

    return {
        "volumes": {
            e.subject: {
                "volume": str(e.volume),
                "sha256": sha(e.volume),
                "mask": str(e.mask) if e.mask else None,
                "mask_sha256": sha(e.mask),
                **e.extra,
            }
            for e in entries
        },
        "checkpoints": {
            m.name: {"path": m.path, "sha256": m.sha256, "strategy": m.strategy, "seed": m.seed} for m in models
        },
        **spec.record(),
        "margin": margin,
        "alpha": ALPHA,
        "executor": executor.kind,
        "workers": executor.workers,
        "bootstrap": {
            "seed": SEED,
            "resamples": N_BOOT,
            "per_volume": "circular block bootstrap over slices",
            "group": "none: " + INTERVAL_METHOD,
        },
        "engine_version": ENGINE_VERSION,
        "explorer_version": __version__,
        "n_pairs": len(table),
        "n_errors": int(table["error"].notna().sum()),
    }
