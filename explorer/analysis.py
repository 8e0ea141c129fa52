"""Orchestration: a volume, one or more checkpoints → per-model attribution results, statistics, comparisons.

Shapes: a model's ``masses`` are ``(S, C)`` over the slices ``S`` of the volume along the analysis axis
(canonical order) and the model's offsets ``C``; ``prediction`` is ``(S, H, W)``; ``maps`` ``(S, C, H, W)``.
Each model's result is cached separately (:func:`model_cache_key`), so adding or removing a checkpoint
from an analysis never recomputes the others.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import __version__
from .attribution import get_method, get_target, resolve_params
from .cache import ResultCache, make_key
from .checkpoints import Checkpoint, load_checkpoint
from .device import describe_device, select_device
from .diagnostics import DiagnosticOptions, add_opt_in, check_options, default_diagnostics
from .diagnostics.run import DIAGNOSTICS_VERSION
from .engine import attribute_stack
from .errors import InputError
from .fastpath import prepare_model
from .limits import check_run_memory
from .models import first_conv_shares
from .normalise import channel_stats_for, normalise
from .stats import asymmetry_index, compare_abs_ai, dice, dice_per_slice, mean_ci, model_summary, shares_from_masses
from .volume import AXES, Mask, Volume, load_mask, load_volume

#: Bump when anything changes the numbers an analysis produces; it is part of every cache key.
ENGINE_VERSION = "2"

Progress = Callable[[float, str], None]


@dataclass(frozen=True, eq=False)
class ModelResult:
    """One checkpoint's results on the volume (see the module docstring for shapes)."""

    name: str
    strategy: str
    checkpoint_sha256: str
    offsets: tuple[int, ...]
    masses: np.ndarray
    prediction: np.ndarray
    maps: np.ndarray | None
    summary: dict
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # diagnostics' arrays (explorer.diagnostics.run)


@dataclass(frozen=True, eq=False)
class Analysis:
    """A complete analysis: inputs, per-model results, the long-format shares table and ``summary.json``."""

    volume: Volume
    mask: Mask | None
    axis: str
    method: str
    target: str
    params: dict
    models: dict[str, ModelResult]
    shares: pd.DataFrame
    summary: dict
    checkpoints: dict[str, Checkpoint] = field(default_factory=dict)


def analyze(
    volume: Volume | str | Path,
    checkpoints: Sequence[Checkpoint | str | Path],
    *,
    mask: Mask | str | Path | None = None,
    method: str = "saliency",
    target: str = "predicted",
    axis: str | None = None,
    device: str = "auto",
    params: dict[str, Any] | None = None,
    keep_maps: bool = False,
    cache: ResultCache | bool | None = None,
    progress: Progress | None = None,
    diagnostics: DiagnosticOptions | None = None,
) -> Analysis:
    """Attribute every slice of ``volume`` for each checkpoint and compute the statistics.

    Args:
        volume: a loaded :class:`Volume` or a path.
        checkpoints: loaded checkpoints or paths (at least one); the order is kept.
        mask: optional ground truth (Dice; needed by target ``mask``).
        method: key of :data:`explorer.attribution.METHODS`.
        target: key of :data:`explorer.attribution.TARGETS`.
        axis: slicing axis (default: the checkpoints' axis, which must then agree).
        device: ``auto``, ``cpu``, ``cuda`` or ``mps`` (see :func:`explorer.device.select_device`).
        params: method parameters, plus ``zflip`` (bool, default True: also attribute the reversed windows).
        keep_maps: keep float16 attribution maps in the results.
        cache: a :class:`ResultCache`, None for the shared default cache, False for none.
        progress: ``progress(fraction, message)``.
        diagnostics: background dilation and the opt-in diagnostics (default: background and logits only).

    Returns:
        An :class:`Analysis`.

    Raises:
        InputError: bad files, names, parameters, checkpoints that disagree on the axis, or an estimated
            memory over ``EXPLORER_MAX_RUN_MEMORY_MB`` (:func:`explorer.limits.check_run_memory`).
    """
    report = progress or (lambda fraction, message: None)
    vol = volume if isinstance(volume, Volume) else load_volume(volume)
    truth = mask if isinstance(mask, Mask) or mask is None else load_mask(mask, vol)
    ckpts = [c if isinstance(c, Checkpoint) else load_checkpoint(c) for c in checkpoints]
    if not ckpts:
        raise InputError("--checkpoint", "no checkpoint given", "at least one checkpoint")
    get_method(method)
    if get_target(target).uses_mask and truth is None:
        raise InputError("--target", f"target {target!r} needs a ground-truth mask", "--mask MASK, or another target")
    options = dict(params or {})
    zflip = bool(options.pop("zflip", True))
    resolved = resolve_params(method, options)
    axis = _analysis_axis(axis, ckpts)
    dev = select_device(device)
    check_run_memory(vol, ckpts, axis=axis, method=method, keep_maps=keep_maps, zflip=zflip)
    store = default_cache() if cache is None else (cache or None)
    names = _unique_names([c.name for c in ckpts])
    diag = diagnostics or DiagnosticOptions()
    check_options(diag, ckpts)
    results: dict[str, ModelResult] = {}
    for i, (name, ckpt) in enumerate(zip(names, ckpts, strict=False)):
        def sub(fraction: float, message: str, i: int = i, name: str = name) -> None:
            report((i + fraction) / len(ckpts), f"{name}: {message}")

        results[name] = _model_result(name, ckpt, vol, truth, axis, method, target, resolved, zflip, keep_maps,
                                      dev, store, sub, diag)
        sub(1.0, "diagnostics")
        results[name] = add_opt_in(results[name], ckpt, vol, truth, axis, method, target, resolved, diag, dev,
                                   store)
    empty = [name for name, r in results.items() if not np.isfinite(r.masses).all(axis=1).any()]
    if empty:
        raise InputError(vol.source, f"no slice has a non-empty target {target!r} for {', '.join(empty)} "
                         "(nothing is predicted as foreground)", "--target all or abs, or a checkpoint trained on "
                         "images like this one")
    report(1.0, "done")
    summary = {
        "models": {name: r.summary for name, r in results.items()},
        "inputs": {**_inputs(vol, truth, axis, method, target, resolved, zflip, ckpts, names, dev),
                   "diagnostics": asdict(diag)},
        "comparisons": _comparisons(results),
    }
    return Analysis(volume=vol, mask=truth, axis=axis, method=method, target=target, params=resolved,
                    models=results, shares=shares_table(results), summary=summary,
                    checkpoints=dict(zip(names, ckpts, strict=False)))


def model_cache_key(volume: Volume, ckpt: Checkpoint, mask: Mask | None, axis: str, method: str, target: str,
                    params: dict, zflip: bool, keep_maps: bool, dilation: int = 0) -> str:
    """Cache key of one model's result: content hashes, preprocessing, method, target, params, engine version
    and the background dilation of the built-in diagnostics."""
    return make_key({
        "volume": volume.sha256, "checkpoint": ckpt.sha256, "mask": mask.sha256 if mask is not None else None,
        "axis": axis, "normalisation": ckpt.meta.normalisation, "offsets": list(ckpt.meta.offsets),
        "method": method, "target": target, "params": params, "zflip": zflip, "maps": keep_maps,
        "engine": ENGINE_VERSION, "diagnostics": {"dilation": dilation, "version": DIAGNOSTICS_VERSION},
    })


def shares_table(results: dict[str, ModelResult]) -> pd.DataFrame:
    """Long table ``model, slice, offset, share, mass``; skipped slices are absent."""
    frames = []
    for name, r in results.items():
        shares = shares_from_masses(r.masses)
        rows = np.nonzero(np.isfinite(shares).all(axis=1))[0]
        s, c = np.meshgrid(rows, np.arange(len(r.offsets)), indexing="ij")
        frames.append(pd.DataFrame({"model": name, "slice": s.ravel(), "offset": np.asarray(r.offsets)[c.ravel()],
                                    "share": shares[s, c].ravel(), "mass": r.masses[s, c].ravel()}))
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


def _model_result(name: str, ckpt: Checkpoint, vol: Volume, truth: Mask | None, axis: str, method: str,
                  target: str, params: dict, zflip: bool, keep_maps: bool, dev: Any, store: ResultCache | None,
                  progress: Progress, options: DiagnosticOptions) -> ModelResult:
    offsets = tuple(ckpt.meta.offsets)
    wanted = [True] if keep_maps else [False, True]
    if store is not None:
        for maps in wanted:
            entry = store.get(model_cache_key(vol, ckpt, truth, axis, method, target, params, zflip, maps,
                                              options.dilation))
            if entry is not None:
                progress(1.0, "from cache")
                return _from_arrays(name, ckpt, entry.arrays, entry.meta["summary"], keep_maps)
    stack = vol.stack(axis, normalise(vol.data, ckpt.meta.normalisation))
    mask_stack = truth.stack(axis) if truth is not None else None
    model = ckpt.build_model("cpu")
    prepared = prepare_model(model, dev)
    run = dict(method=method, target=target, mask=mask_stack, params=params, device=dev,
               channel_stats=channel_stats_for(ckpt.meta.normalisation, len(offsets)))
    passes = 2 if zflip else 1
    main = attribute_stack(prepared, stack, offsets, keep_maps=True, **run,
                           progress=lambda f, m: progress(f / passes, m))
    arrays: dict[str, np.ndarray] = {"masses": main.masses, "prediction": main.prediction}
    summary = {"strategy": ckpt.meta.strategy, "checkpoint_sha256": ckpt.sha256, "offsets": list(offsets),
               "normalisation": ckpt.meta.normalisation, **model_summary(main.masses, offsets)}
    summary["first_conv_share"] = {str(k): v for k, v in first_conv_shares(model, offsets).items()}
    summary["dice"] = dice(main.prediction, mask_stack) if mask_stack is not None else None
    if mask_stack is not None:
        arrays["dice_per_slice"] = dice_per_slice(main.prediction, mask_stack)
    summary["zflip_dice"] = None
    summary["zflip_asymmetry_index"] = None
    if zflip:
        flipped = attribute_stack(prepared, stack, offsets, reverse=True, **run,
                                  progress=lambda f, m: progress(0.5 + f / 2, "z-flipped " + m))
        arrays["zflip_masses"], arrays["zflip_prediction"] = flipped.masses, flipped.prediction
        summary["zflip_dice"] = dice(flipped.prediction, main.prediction)
        mean, ci = mean_ci(asymmetry_index(shares_from_masses(flipped.masses), offsets))
        summary["zflip_asymmetry_index"] = {"mean": mean, "ci95": ci}
    diag_arrays, diag_summary = default_diagnostics(main.logits, offsets, ckpt.meta, vol.sha256, axis, main.maps,
                                                    main.prediction, mask_stack, options)
    arrays.update(diag_arrays)
    summary.update(diag_summary)
    if keep_maps and main.maps is not None:
        arrays["maps"] = main.maps
    if store is not None:
        entry = store.put(model_cache_key(vol, ckpt, truth, axis, method, target, params, zflip, keep_maps,
                                          options.dilation),
                          arrays, {"summary": summary})
        arrays = entry.arrays
    return _from_arrays(name, ckpt, arrays, summary, keep_maps)


def _from_arrays(name: str, ckpt: Checkpoint, arrays: dict[str, np.ndarray], summary: dict,
                 keep_maps: bool) -> ModelResult:
    return ModelResult(name=name, strategy=ckpt.meta.strategy, checkpoint_sha256=ckpt.sha256,
                       offsets=tuple(ckpt.meta.offsets), masses=arrays["masses"],
                       prediction=np.asarray(arrays["prediction"], dtype=bool),
                       maps=arrays.get("maps") if keep_maps else None, summary=summary,
                       extras={k: v for k, v in arrays.items() if k.startswith("diag_")})


def _analysis_axis(axis: str | None, ckpts: Sequence[Checkpoint]) -> str:
    if axis is not None:
        if axis not in AXES:
            raise InputError("--axis", f"unknown slicing axis {axis!r}", "one of " + ", ".join(AXES))
        return axis
    axes = {c.meta.axis for c in ckpts}
    if len(axes) > 1:
        raise InputError("--axis", f"the checkpoints were trained on different axes {sorted(axes)}",
                         "--axis to choose one")
    return axes.pop()


def _unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}-{seen[n]}")
    return out


def _inputs(vol: Volume, truth: Mask | None, axis: str, method: str, target: str, params: dict, zflip: bool,
            ckpts: Sequence[Checkpoint], names: list[str], dev: Any) -> dict:
    return {
        "volume": {"source": vol.source, "sha256": vol.sha256, "shape": list(vol.shape)},
        "mask": {"source": truth.source, "sha256": truth.sha256} if truth is not None else None,
        "checkpoints": {n: {"sha256": c.sha256, "arch": c.meta.arch, "encoder": c.meta.encoder,
                            "strategy": c.meta.strategy, "offsets": list(c.meta.offsets),
                            "normalisation": c.meta.normalisation} for n, c in zip(names, ckpts, strict=False)},
        "axis": axis, "method": method, "target": target, "params": params, "zflip": zflip,
        "device": describe_device(dev), "engine_version": ENGINE_VERSION, "explorer_version": __version__,
    }


def _comparisons(results: dict[str, ModelResult]) -> list[dict]:
    out = []
    for (na, a), (nb, b) in itertools.combinations(results.items(), 2):
        ai_a = asymmetry_index(shares_from_masses(a.masses), a.offsets)
        ai_b = asymmetry_index(shares_from_masses(b.masses), b.offsets)
        out.append({"models": [na, nb], **compare_abs_ai(ai_a, ai_b)})
    return out


def select_models(analysis: Analysis, names: Sequence[str]) -> Analysis:
    """The same analysis restricted to the checkpoints ``names`` (in that order); nothing is recomputed.

    Raises:
        InputError: a name that is not in the analysis.
    """
    unknown = [n for n in names if n not in analysis.models]
    if unknown:
        raise InputError(None, f"no checkpoint named {', '.join(unknown)} in this analysis",
                         "one of: " + ", ".join(analysis.models))
    keep = set(names)
    summary = dict(analysis.summary)
    summary["models"] = {n: analysis.summary["models"][n] for n in names}
    summary["comparisons"] = [c for c in analysis.summary.get("comparisons", []) if set(c["models"]) <= keep]
    inputs = dict(summary.get("inputs", {}))
    if "checkpoints" in inputs:
        inputs["checkpoints"] = {n: inputs["checkpoints"][n] for n in names if n in inputs["checkpoints"]}
    summary["inputs"] = inputs
    shares = analysis.shares[analysis.shares["model"].isin(keep)].reset_index(drop=True)
    return replace(analysis, models={n: analysis.models[n] for n in names}, shares=shares, summary=summary)
