"""Orchestration of a validation run: planted data → trained networks (cached) → every method → scores.

For each regime × direction × seed, a training volume and a held-out volume (another seed, never seen in
training) are drawn (:mod:`.planted`); each strategy's network is trained on the first with
:func:`explorer.training.train.train` and kept in the explorer cache folder under a key of everything that determines
it (:func:`checkpoint_key`), so a re-run trains only what is missing. Every network is then analysed on its
held-out volume with every method by :func:`explorer.analysis.analyze` (target ``predicted``; results cached
as any analysis), and its functional Dices are measured (:mod:`.functional`).

Shapes: ``Validation.rows`` has one row per regime × strategy × direction × seed × method;
``Validation.table`` one row per regime × strategy × direction × method (:func:`.score.aggregate`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .. import __version__
from ..analysis import analyze
from ..config import cache_dir
from ..errors import InputError
from ..models.build import DEFAULT_ARCH_KWARGS
from ..models.checkpoints import Checkpoint, load_checkpoint, save_checkpoint
from ..reporting.export import versions
from ..spec import RunSpec
from ..stats.summary import NO_ESTIMATE, ModelSummary
from ..study import Study
from ..training.train import FitHooks, Recipe, TrainSpec, train
from .functional import FunctionalDice, functional_dice
from .planted import make_planted, write_planted
from .score import aggregate, network_score
from .spec import REFERENCE_METHOD, ValidationSpec, parse_method

__all__ = ["Progress", "Validation", "checkpoint_key", "run_validation"]


#: ``progress(done, total, message)`` in units of work (one training, one analysis, one functional check).
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True, eq=False)
class Validation:
    """A finished validation run: per-network rows, the aggregated table, the record for ``validation.json``,
    and how many networks were trained now and how many came from the cache."""

    rows: pd.DataFrame
    table: pd.DataFrame
    record: dict
    trained: int
    from_cache: int


@dataclass(frozen=True)
class _Case:
    regime: str
    direction: int
    seed: int

    @property
    def label(self) -> str:
        return f"{self.regime} d={self.direction:+d} seed {self.seed}"


def checkpoint_key(spec: ValidationSpec, case: _Case, strategy: str) -> str:
    """SHA-256 of every parameter a trained network depends on: architecture, offsets, strategy, the full
    recipe with its seed, the planted direction, regime and data-generator parameters (with its version)."""
    recipe = Recipe(epochs=spec.epochs, seed=case.seed).to_dict()
    record = {
        "arch": spec.arch,
        "encoder": spec.encoder,
        "offsets": list(spec.offsets),
        "arch_kwargs": DEFAULT_ARCH_KWARGS.get(spec.arch, {}),
        "strategy": strategy,
        "recipe": recipe,
        "regime": case.regime,
        "direction": case.direction,
        "planted": spec.planted.to_dict(),
        "train_data_seed": 2 * case.seed,
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def run_validation(spec: ValidationSpec, *, progress: Progress | None = None, command: str | None = None) -> Validation:
    """Train (or reuse) every network of ``spec``, analyse each with every method and score the results.

    Args:
        spec: what to train and score.
        progress: ``progress(done, total, message)`` after each unit of work.
        command: the command line that started the run (recorded).

    Returns:
        The :class:`Validation`.

    Raises:
        InputError: an unusable cache folder, or as :func:`explorer.training.train.train` and
            :func:`explorer.analysis.analyze`.
    """
    report = progress or (lambda done, total, message: None)
    root = cache_dir() / "validation"
    cases = [_Case(r, d, s) for r in spec.regimes for d in spec.directions for s in range(spec.seeds)]
    methods = [(m, *parse_method(m)) for m in spec.methods]
    total = len(cases) * (2 * len(spec.strategies) + len(methods))
    done, trained, rows, inputs = 0, 0, [], {}
    for case in cases:
        data = _write_data(spec, case, root)
        inputs[case.label] = {
            role: {"volume_sha256": s.volume.sha256, "label_sha256": s.mask.sha256} for role, s in data.items()
        }
        ckpts, dices = {}, {}
        for strategy in spec.strategies:
            report(done, total, f"train {strategy}, {case.label}")
            ckpts[strategy], fresh = _network(spec, case, strategy, data["train"], root)
            trained += fresh
            done += 1
            report(done, total, f"functional Dice {strategy}, {case.label}")
            dices[strategy] = functional_dice(ckpts[strategy], data["heldout"], device=spec.device)
            done += 1
        for label, name, params in methods:
            report(done, total, f"{label}, {case.label}")
            analysis = analyze(
                data["heldout"],
                list(ckpts.values()),
                RunSpec(method=name, target="predicted", params=params, device=spec.device),
            )
            rows += [
                _row(case, strategy, label, analysis.models[strategy].stats, ckpts[strategy], dices[strategy])
                for strategy in spec.strategies
            ]
            done += 1
    report(done, total, "done")
    frame = pd.DataFrame(rows)
    n_networks = len(cases) * len(spec.strategies)
    record = {
        "parameters": spec.to_dict(),
        "seeds": list(range(spec.seeds)),
        "reference_method": REFERENCE_METHOD,
        "target": "predicted",
        "inputs": inputs,
        "versions": versions(),
        "explorer_version": __version__,
        "command": command,
        "networks": n_networks,
        "trained": trained,
        "from_cache": n_networks - trained,
    }
    return Validation(
        rows=frame, table=aggregate(frame), record=record, trained=trained, from_cache=n_networks - trained
    )


def _write_data(spec: ValidationSpec, case: _Case, root: Path) -> dict[str, Study]:
    """The training (seed ``2s``) and held-out (seed ``2s + 1``) studies of ``case``, written as NIfTI under
    the cache folder (drawn again each run: cheap, and a damaged file cannot go unnoticed)."""
    studies = {}
    for role, seed in (("train", 2 * case.seed), ("heldout", 2 * case.seed + 1)):
        volume, label = make_planted(spec.planted, case.regime, case.direction, seed)
        folder = root / "data" / f"{case.regime}_d{case.direction:+d}_s{seed}_{_params_hash(spec)}"
        try:
            paths = write_planted(volume, label, folder)
        except OSError as exc:
            raise InputError(
                folder, f"cannot write the planted volumes ({exc.strerror})", "a writable EXPLORER_CACHE_DIR"
            ) from exc
        studies[role] = Study.load(*paths)
    return studies


def _params_hash(spec: ValidationSpec) -> str:
    return hashlib.sha256(json.dumps(spec.planted.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


def _network(spec: ValidationSpec, case: _Case, strategy: str, data: Study, root: Path) -> tuple[Checkpoint, bool]:
    """The trained network of ``strategy`` for ``case``: from the cache when there, else trained and cached.

    Returns:
        The checkpoint (named after the strategy) and whether it was trained now.
    """
    path = root / "checkpoints" / f"{checkpoint_key(spec, case, strategy)}.safetensors"
    if path.is_file():
        try:
            return load_checkpoint(path, name=strategy), False
        except InputError:  # a damaged cache entry (e.g. a write cut short elsewhere) is trained again
            pass
    trained = TrainSpec(
        strategy=strategy,
        arch=spec.arch,
        encoder=spec.encoder,
        offsets=spec.offsets,
        recipe=Recipe(epochs=spec.epochs, seed=case.seed),
        device=spec.device,
    )
    result = train(
        data.volume, data.mask, trained, hooks=FitHooks(progress=False), command=f"explorer validate ({case.label})"
    )
    save_checkpoint(result.model, result.meta, path)
    return load_checkpoint(path, name=strategy), True


def _row(
    case: _Case,
    strategy: str,
    method: str,
    stats: ModelSummary,
    ckpt: Checkpoint,
    dices: FunctionalDice,
) -> dict:
    """One CSV row: the network, its channel/anatomy asymmetry under ``method``, its score and Dices."""
    channel, anatomy = stats.channel_asymmetry or NO_ESTIMATE, stats.anatomy_asymmetry or NO_ESTIMATE
    return {
        "regime": case.regime,
        "strategy": strategy,
        "direction": case.direction,
        "seed": case.seed,
        "method": method,
        "checkpoint_sha256": ckpt.sha256,
        "train_val_dice": ckpt.meta.metrics["val_dice"],
        "heldout_dice": stats.dice,
        "channel_asymmetry": channel.mean,
        "channel_ci95_lo": channel.ci_low,
        "channel_ci95_hi": channel.ci_high,
        "anatomy_asymmetry": anatomy.mean,
        "anatomy_ci95_lo": anatomy.ci_low,
        "anatomy_ci95_hi": anatomy.ci_high,
        "zflip_dice": stats.zflip_dice,
        **network_score(case.direction, ckpt.meta.offsets, channel.mean, channel.ci95),
        **dices.columns(),
    }
