"""Orchestration: a study (volume + optional mask), one or more checkpoints and a :class:`RunSpec` →
per-model attribution results, statistics, comparisons.

Shapes: a model's ``masses`` are ``(S, C)`` over the slices ``S`` of the volume along the analysis axis
(canonical order) and the model's offsets ``C``; ``prediction`` (bool) and ``logits`` (float16 foreground
logits) are ``(S, H, W)``; ``maps`` ``(S, C, H, W)``.
Each model's result is cached separately (:func:`explorer.cache.store.result_key`), so adding or removing a
checkpoint from an analysis never recomputes the others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import __version__
from .attribution.engine import Pass, attribute_stack
from .attribution.fastpath import prepared_checkpoint
from .attribution.limits import check_run_memory, device_batch_size
from .attribution.methods import require_truth
from .attribution.windows import SliceStack
from .cache.store import ENGINE_VERSION, ResultCache, result_key
from .device import describe_device, resolve_precision, select_device
from .diagnostics import DiagnosticsResult, check_options, run_default, run_opt_in
from .errors import InputError
from .io.normalise import channel_stats_for
from .io.volume import Mask, Volume
from .models.build import first_conv_shares
from .models.checkpoints import Checkpoint, load_checkpoint
from .spec import RunSpec
from .stats.scan import (
    ai_ci,
    asymmetry_index,
    compare_models,
    dice,
    dice_per_slice,
    model_summary,
    shares_from_masses,
    split_asymmetry,
    split_summary,
    with_holm,
)
from .stats.summary import ModelSummary
from .study import Study

__all__ = [
    "Progress",
    "ModelResult",
    "Analysis",
    "analyze",
    "is_cached",
    "shares_table",
    "default_cache",
    "unique_names",
    "select_models",
]


Progress = Callable[[float, str], None]


@dataclass(frozen=True, eq=False)
class ModelResult:
    """One checkpoint's results on the volume (see the module docstring for shapes).

    ``summary`` is the model's ``summary.json`` block (:attr:`stats` reads its numbers as attributes);
    ``diagnostics`` holds the diagnostics' arrays;
    ``reversed_masses`` ``(S, C)`` are the reversed windows' masses mapped back to offsets (None with
    ``--no-reverse``); ``from_cache`` says the attribution was served by the result cache, not computed (the
    one cache-hit signal: the CLI, the cohort and the app read it here).
    """

    name: str
    strategy: str
    checkpoint_sha256: str
    offsets: tuple[int, ...]
    masses: np.ndarray
    prediction: np.ndarray
    maps: np.ndarray | None
    summary: dict
    diagnostics: DiagnosticsResult | None = None
    logits: np.ndarray | None = None
    reversed_masses: np.ndarray | None = None
    from_cache: bool = False

    @property
    def stats(self) -> ModelSummary:
        """The typed view of :attr:`summary` (:class:`explorer.stats.summary.ModelSummary`)."""
        return ModelSummary.from_entry(self.name, self.summary)


@dataclass(frozen=True, eq=False)
class Analysis:
    """A complete analysis: its inputs, the run's parameters, per-model results, the long-format shares
    table and ``summary.json``."""

    study: Study
    spec: RunSpec
    models: dict[str, ModelResult]
    shares: pd.DataFrame
    summary: dict
    checkpoints: dict[str, Checkpoint] = field(default_factory=dict)

    @property
    def volume(self) -> Volume:
        return self.study.volume

    @property
    def mask(self) -> Mask | None:
        return self.study.mask

    @property
    def axis(self) -> str:
        return self.spec.axis  # type: ignore[return-value]  (always filled in by analyze)

    @property
    def from_cache(self) -> list[str]:
        """The checkpoints whose results the cache served."""
        return [name for name, r in self.models.items() if r.from_cache]

    @property
    def model_stats(self) -> dict[str, ModelSummary]:
        """Each model's typed summary (:attr:`ModelResult.stats`), in the analysis' order."""
        return {name: r.stats for name, r in self.models.items()}


def analyze(
    study: Study | Volume | str | Path,
    checkpoints: Sequence[Checkpoint | str | Path],
    spec: RunSpec | None = None,
    *,
    mask: Mask | str | Path | None = None,
    cache: ResultCache | bool | None = None,
    progress: Progress | None = None,
) -> Analysis:
    """Attribute every slice of the study's volume for each checkpoint and compute the statistics.

    Args:
        study: a :class:`Study`, or a loaded :class:`Volume` or a path (then ``mask`` may name its mask).
        checkpoints: loaded checkpoints or paths (at least one); the order is kept.
        spec: what to compute (default :class:`RunSpec()`: occlusion (mean replacement) of the predicted
            foreground, with the reversed pass and the channel/anatomy split).
        mask: optional ground truth when ``study`` is not a :class:`Study` (Dice; needed by target ``mask``).
        cache: a :class:`ResultCache`, None for the shared default cache, False for none.
        progress: ``progress(fraction, message)``.

    Returns:
        An :class:`Analysis`; its ``spec`` has the axis filled in.

    Raises:
        InputError: bad files, names, parameters, checkpoints that disagree on the axis, or an estimated
            memory over ``EXPLORER_MAX_RUN_MEMORY_MB`` (:func:`explorer.attribution.limits.check_run_memory`).
    """
    report = progress or (lambda fraction, message: None)
    if isinstance(study, Study):
        if mask is not None:
            raise InputError("mask", "a mask was given beside a Study", "the mask inside the Study")
    else:
        study = Study.load(study, mask)
    ckpts = [c if isinstance(c, Checkpoint) else load_checkpoint(c) for c in checkpoints]
    if not ckpts:
        raise InputError("--checkpoint", "no checkpoint given", "at least one checkpoint")
    spec, dev = _resolved(spec, ckpts)
    require_truth(spec.target, study.mask is not None)
    check_run_memory(study.volume, ckpts, spec)
    store = default_cache() if cache is None else (cache or None)
    names = unique_names([c.name for c in ckpts])
    check_options(spec.diagnostics, ckpts)
    results: dict[str, ModelResult] = {}
    for i, (name, ckpt) in enumerate(zip(names, ckpts, strict=True)):

        def sub(fraction: float, message: str, i: int = i, name: str = name) -> None:
            report((i + fraction) / len(ckpts), f"{name}: {message}")

        result = _model_result(name, ckpt, study, spec, dev, store, sub)
        sub(1.0, "diagnostics")
        results[name] = _with_opt_in(result, ckpt, study, spec, dev, store)
    empty = [name for name, r in results.items() if not np.isfinite(r.masses).all(axis=1).any()]
    if empty:
        raise InputError(
            study.volume.source,
            f"no slice has a non-empty target {spec.target!r} for "
            f"{', '.join(empty)} (nothing is predicted as foreground)",
            "--target all or abs, or a checkpoint trained on images like this one",
        )
    report(1.0, "done")
    summary = {
        "models": {name: r.summary for name, r in results.items()},
        "inputs": _inputs(study, spec, ckpts, names, dev),
        "comparisons": _comparisons(results),
    }
    return Analysis(
        study=study,
        spec=spec,
        models=results,
        shares=shares_table(results),
        summary=summary,
        checkpoints=dict(zip(names, ckpts, strict=True)),
    )


def shares_table(results: dict[str, ModelResult]) -> pd.DataFrame:
    """Long table ``model, slice, offset, share, mass, channel_asymmetry, anatomy_asymmetry`` (the last two per
    slice, repeated on its offsets' rows; NaN where the reversed windows were not attributed); skipped slices
    are absent."""
    frames = []
    for name, r in results.items():
        shares = shares_from_masses(r.masses)
        rows = np.nonzero(np.isfinite(shares).all(axis=1))[0]
        s, c = np.meshgrid(rows, np.arange(len(r.offsets)), indexing="ij")
        channel, anatomy = (
            split_asymmetry(r.masses, r.reversed_masses, r.offsets)
            if r.reversed_masses is not None
            else (np.full(len(shares), np.nan),) * 2
        )
        frames.append(
            pd.DataFrame(
                {
                    "model": name,
                    "slice": s.ravel(),
                    "offset": np.asarray(r.offsets)[c.ravel()],
                    "share": shares[s, c].ravel(),
                    "mass": r.masses[s, c].ravel(),
                    "channel_asymmetry": channel[s.ravel()],
                    "anatomy_asymmetry": anatomy[s.ravel()],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


_DEFAULT_CACHES: dict[str, ResultCache] = {}


def default_cache() -> ResultCache:
    """The process-wide cache for the current :func:`explorer.config.cache_dir` (memory LRU + disk)."""
    from .config import cache_dir

    key = str(cache_dir())
    if key not in _DEFAULT_CACHES:
        _DEFAULT_CACHES[key] = ResultCache(Path(key))
    return _DEFAULT_CACHES[key]


# --------------------------------------------------------------------------------------------- helpers


def _resolved(spec: RunSpec | None, ckpts: Sequence[Checkpoint]) -> tuple[RunSpec, Any]:
    """The spec as :func:`analyze` runs, records and keys it (the axis and precision filled in), and the device."""
    spec = (spec or RunSpec()).for_checkpoints(ckpts)
    dev = select_device(spec.device)
    return replace(spec, precision=resolve_precision(spec.precision, dev)), dev


def _result_keys(study: Study, ckpt: Checkpoint, spec: RunSpec) -> list[str]:
    """The cache keys that can serve one checkpoint's result, in the order tried: a result with maps also serves
    a run that keeps none."""
    return [
        result_key(study, ckpt, spec.axis, **replace(spec, keep_maps=maps).result_key())
        for maps in ([True] if spec.keep_maps else [False, True])
    ]


def is_cached(
    study: Study, checkpoints: Sequence[Checkpoint], spec: RunSpec | None = None, *, cache: ResultCache | None = None
) -> bool:
    """Whether :func:`analyze` would read every checkpoint's result from the cache rather than compute it (the
    opt-in diagnostics, cached on their own, aside); a quick look, nothing is read.

    Args:
        study, checkpoints, spec: as for :func:`analyze`.
        cache: the cache to look in (default: the shared one).

    Raises:
        InputError: checkpoints that disagree on the axis, or a device that is not available.
    """
    spec, _ = _resolved(spec, checkpoints)
    store = cache or default_cache()
    return all(any(store.holds(key) for key in _result_keys(study, c, spec)) for c in checkpoints)


def _model_result(
    name: str, ckpt: Checkpoint, study: Study, spec: RunSpec, dev: Any, store: ResultCache | None, progress: Progress
) -> ModelResult:
    offsets = tuple(ckpt.meta.offsets)
    if store is not None:
        for key in _result_keys(study, ckpt, spec):
            entry = store.get(key)
            if entry is not None:
                progress(1.0, "from cache")
                return replace(
                    _from_arrays(name, ckpt, entry.arrays, entry.meta["summary"], spec.keep_maps), from_cache=True
                )
    stack = study.slices(spec.axis, ckpt.meta.normalisation)
    mask_stack = study.mask_slices(spec.axis)
    prepared = prepared_checkpoint(ckpt, dev)
    data = SliceStack(stack, offsets, mask_stack, channel_stats_for(ckpt.meta.normalisation, len(offsets)))
    run = Pass(device=dev, batch_size=device_batch_size(ckpt, spec.method, stack.shape[1:], dev))
    share = 1 / (1 + 1 / spec.zflip_stride) if spec.zflip else 1.0  # of the progress bar: the reversed pass's part
    main = attribute_stack(prepared, data, spec, replace(run, keep_maps=True), lambda f, m: progress(f * share, m))
    arrays: dict[str, np.ndarray] = {
        "masses": main.masses,
        "prediction": main.prediction,
        "logits": main.logits.astype(np.float16),
    }
    summary = {
        "strategy": ckpt.meta.strategy,
        "checkpoint_sha256": ckpt.sha256,
        "offsets": list(offsets),
        "normalisation": ckpt.meta.normalisation,
    }
    if parent := (ckpt.meta.training.get("debias") or {}).get("parent"):  # a child made by explorer debias
        summary["parent"] = parent
    summary["first_conv_share"] = {str(k): v for k, v in first_conv_shares(ckpt.first_conv_weight(), offsets).items()}
    # per-slice method diagnostics, e.g. integrated gradients' mean |convergence delta|, SmoothGrad's mean σ
    summary["method_info"] = {
        key: (float(np.nanmean(v)) if np.isfinite(v).any() else None) for key, v in main.info.items()
    }
    summary["dice"] = dice(main.prediction, mask_stack) if mask_stack is not None else None
    if mask_stack is not None:
        arrays["dice_per_slice"] = dice_per_slice(main.prediction, mask_stack)
    summary["zflip_dice"] = None
    summary["zflip_asymmetry_index"] = None
    if spec.zflip:
        flipped, flip_summary = _zflip(
            prepared, data, spec, run, main.prediction, lambda f, m: progress(share + f * (1 - share), "reversed " + m)
        )
        arrays.update(flipped)
        summary.update(flip_summary)
    summary.update(
        {**model_summary(main.masses, offsets), **split_summary(main.masses, arrays.get("zflip_masses"), offsets)}
    )
    diag, diag_summary = run_default(
        main,
        mask_stack,
        offsets=offsets,
        meta=ckpt.meta,
        volume_sha256=study.volume.sha256,
        axis=spec.axis,
        options=spec.diagnostics,
    )
    arrays.update(diag.to_arrays())
    summary.update(diag_summary)
    if spec.keep_maps and main.maps is not None:
        arrays["maps"] = main.maps
    if store is not None:
        entry = store.put(result_key(study, ckpt, spec.axis, **spec.result_key()), arrays, {"summary": summary})
        arrays = entry.arrays
    return _from_arrays(name, ckpt, arrays, summary, spec.keep_maps)


def _with_opt_in(
    result: ModelResult, ckpt: Checkpoint, study: Study, spec: RunSpec, dev: Any, store: ResultCache | None
) -> ModelResult:
    """``result`` with the opt-in diagnostics ``spec.diagnostics`` asks for, each cached under its own key."""
    if not (spec.diagnostics.cam or spec.diagnostics.sanity):
        return result
    sub = store.subcache("diagnostics") if store is not None else None  # own counters: stats stay per model

    def cached(compute: Callable[[], tuple[dict, dict]], **key: Any) -> tuple[dict, dict]:
        k = result_key(study, ckpt, spec.axis, **key)
        entry = sub.get(k) if sub is not None else None
        if entry is not None:
            return dict(entry.arrays), entry.meta["summary"]
        arrays, summary = compute()
        return (dict(sub.put(k, arrays, {"summary": summary}).arrays) if sub is not None else arrays), summary

    offsets = tuple(ckpt.meta.offsets)
    data = SliceStack(
        study.slices(spec.axis, ckpt.meta.normalisation),
        offsets,
        study.mask_slices(spec.axis),
        channel_stats_for(ckpt.meta.normalisation, len(offsets)),
    )
    arrays, summary = run_opt_in(ckpt, data, result.prediction, spec, dev, cached)
    diagnostics = replace(result.diagnostics, **{k.removeprefix("diag_"): v for k, v in arrays.items()})
    return replace(result, summary={**result.summary, **summary}, diagnostics=diagnostics)


def _zflip(
    prepared: Any, data: SliceStack, spec: RunSpec, run: Pass, prediction: np.ndarray, progress: Progress
) -> tuple[dict[str, np.ndarray], dict]:
    """The reversed pass on every ``spec.zflip_stride``-th slice (every slice by default): the reversed
    window is predicted (z-flip Dice against the prediction from the window as it is) and attributed (the
    channel/anatomy split and the asymmetry index under reversal).

    Returns:
        ``(arrays, summary)``: ``zflip_masses`` and ``zflip_prediction``, and the summary's ``zflip_dice`` and
        ``zflip_asymmetry_index``.
    """
    chosen = list(range(0, data.stack.shape[0], spec.zflip_stride))
    attributed = attribute_stack(prepared, data, spec, replace(run, reverse=True, slices=chosen), progress)
    ai = asymmetry_index(shares_from_masses(attributed.masses), data.offsets)
    mean, ci, block = ai_ci(ai)
    summary = {
        "zflip_dice": dice(attributed.prediction[chosen], prediction[chosen]),
        "zflip_asymmetry_index": {
            "mean": mean,
            "ci95": ci,
            "block_length": block,
            "stride": spec.zflip_stride,
            "n_slices": int(np.isfinite(ai).sum()),
        },
    }
    return {"zflip_masses": attributed.masses, "zflip_prediction": attributed.prediction}, summary


def _from_arrays(
    name: str, ckpt: Checkpoint, arrays: dict[str, np.ndarray], summary: dict, keep_maps: bool
) -> ModelResult:
    return ModelResult(
        name=name,
        strategy=ckpt.meta.strategy,
        checkpoint_sha256=ckpt.sha256,
        offsets=tuple(ckpt.meta.offsets),
        masses=arrays["masses"],
        prediction=np.asarray(arrays["prediction"], dtype=bool),
        maps=arrays.get("maps") if keep_maps else None,
        summary=summary,
        diagnostics=DiagnosticsResult.from_arrays(arrays),
        logits=arrays.get("logits"),
        reversed_masses=arrays.get("zflip_masses"),
    )


def unique_names(names: list[str]) -> list[str]:
    """``names`` with repeats made distinct: the second ``a`` becomes ``a-2``."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}-{seen[n]}")
    return out


def _inputs(study: Study, spec: RunSpec, ckpts: Sequence[Checkpoint], names: list[str], dev: Any) -> dict:
    return {
        **study.record(),
        "checkpoints": {
            n: {
                "sha256": c.sha256,
                "arch": c.meta.arch,
                "encoder": c.meta.encoder,
                "strategy": c.meta.strategy,
                "offsets": list(c.meta.offsets),
                "normalisation": c.meta.normalisation,
            }
            for n, c in zip(names, ckpts, strict=True)
        },
        **spec.record(),
        "device": describe_device(dev),
        "engine_version": ENGINE_VERSION,
        "explorer_version": __version__,
    }


def _comparisons(results: dict[str, ModelResult]) -> list[dict]:
    return compare_models(
        {name: asymmetry_index(shares_from_masses(r.masses), r.offsets) for name, r in results.items()}
    )


def select_models(analysis: Analysis, names: Sequence[str]) -> Analysis:
    """The same analysis restricted to the checkpoints ``names`` (in that order); nothing is recomputed.

    Raises:
        InputError: a name that is not in the analysis.
    """
    unknown = [n for n in names if n not in analysis.models]
    if unknown:
        raise InputError(
            None, f"no checkpoint named {', '.join(unknown)} in this analysis", "one of: " + ", ".join(analysis.models)
        )
    keep = set(names)
    summary = dict(analysis.summary)
    summary["models"] = {n: analysis.summary["models"][n] for n in names}
    # the kept pairs are the family now: Holm's p is re-adjusted over them (the raw p-values are unchanged)
    summary["comparisons"] = with_holm([c for c in analysis.summary.get("comparisons", []) if set(c["models"]) <= keep])
    inputs = dict(summary.get("inputs", {}))
    if "checkpoints" in inputs:
        inputs["checkpoints"] = {n: inputs["checkpoints"][n] for n in names if n in inputs["checkpoints"]}
    summary["inputs"] = inputs
    shares = analysis.shares[analysis.shares["model"].isin(keep)].reset_index(drop=True)
    return replace(analysis, models={n: analysis.models[n] for n in names}, shares=shares, summary=summary)
