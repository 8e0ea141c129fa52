"""Running the diagnostics for one model inside :func:`explorer.analysis.analyze`, and their tables.

Cheap diagnostics (``background``, ``logits``) run with the attribution and are stored in the same cache
entry (arrays prefixed ``diag_``); opt-in ones (``cam``, ``sanity``) get cache entries of their own, keyed by
the model's inputs and their parameters, so asking for them later never recomputes the attribution.

Per-slice arrays (``S`` slices): ``diag_background`` ``(S, C + 1)``, ``diag_cam`` ``(S, 3)`` (background
fraction of the standard and |logit| CAM, their rank correlation), ``diag_cam_maps`` ``(S, 2, H, W)``
float16; ``diag_sanity`` ``(n, stages)`` over the slices named in the summary; ``diag_logit_edges``
``(bins + 1,)`` and ``diag_logit_hist`` ``(groups, bins)``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from ..cache import ResultCache, make_key
from ..errors import InputError
from ..normalise import channel_stats_for, normalise
from . import DiagnosticOptions
from .background import background_fractions, background_summary
from .cam import cam_layers, cam_summary, default_cam_layer, gradcam_stack
from .logits import GROUPS, logit_histograms, logit_summary, split_from_meta
from .sanity import registry_attribute, sanity_check

#: Bump when the diagnostics' numbers change; part of their cache keys.
DIAGNOSTICS_VERSION = "2"


def default_diagnostics(logits: np.ndarray, offsets: tuple[int, ...], meta: Any, volume_sha256: str, axis: str,
                        maps: np.ndarray, prediction: np.ndarray, mask: np.ndarray | None,
                        options: DiagnosticOptions) -> tuple[dict, dict]:
    """Background attention and logit histograms of one model, from its attribution pass.

    Args:
        logits: foreground logits ``(S, H, W)`` of the attribution pass (no second forward pass).
        offsets: the model's offsets.
        meta: its :class:`explorer.checkpoints.CheckpointMeta` (normalisation, training split).
        volume_sha256, axis: the analysed volume and axis (to match the training split).
        maps: attribution maps ``(S, C, H, W)``.
        prediction: ``(S, H, W)`` bool.
        mask: ground truth ``(S, H, W)`` or None.
        options: the diagnostics' options.

    Returns:
        ``(arrays, summary)``: ``diag_*`` arrays and ``{"background", "logits", "cam": None, "sanity": None}``.
    """
    foreground = mask if mask is not None else prediction
    fractions = background_fractions(maps, foreground, dilation=options.dilation)
    split = split_from_meta(meta, volume_sha256, axis, logits.shape[0])
    edges, counts = logit_histograms(logits, prediction, mask, None if isinstance(split, str) else split)
    arrays = {"diag_background": fractions, "diag_logit_edges": edges, "diag_logit_hist": counts}
    summary = {"background": background_summary(fractions, offsets, source="mask" if mask is not None else
                                                "prediction", dilation=options.dilation),
               "logits": logit_summary(logits, prediction, mask, split), "cam": None, "sanity": None}
    return arrays, summary


def check_options(options: DiagnosticOptions, checkpoints: list[Any]) -> None:
    """Fail fast on opt-in options no checkpoint can honour (before any attribution runs).

    Raises:
        InputError: a Grad-CAM layer that a checkpoint's model does not have (the valid names are listed).
    """
    if options.cam and options.cam_layer is not None:
        for ckpt in checkpoints:
            model = ckpt.build_model("cpu")
            if options.cam_layer not in dict(model.named_modules()):
                raise InputError("--cam-layer", f"no layer named {options.cam_layer!r} in {ckpt.name}",
                                 "one of: " + ", ".join(cam_layers(model)))


def add_opt_in(result: Any, ckpt: Any, volume: Any, mask: Any, axis: str, method: str, target: str,
               params: dict, options: DiagnosticOptions, device: Any, store: ResultCache | None) -> Any:
    """``result`` (a :class:`explorer.analysis.ModelResult`) with the requested opt-in diagnostics added.

    Raises:
        InputError: an unknown Grad-CAM layer, or a model the diagnostics cannot explain.
    """
    if not (options.cam or options.sanity):
        return result
    base = {"volume": volume.sha256, "checkpoint": ckpt.sha256, "mask": mask.sha256 if mask is not None else None,
            "axis": axis, "normalisation": ckpt.meta.normalisation, "offsets": list(ckpt.meta.offsets),
            "dilation": options.dilation, "version": DIAGNOSTICS_VERSION}
    stack = volume.stack(axis, normalise(volume.data, ckpt.meta.normalisation))
    mask_stack = mask.stack(axis) if mask is not None else None
    stats = channel_stats_for(ckpt.meta.normalisation, len(ckpt.meta.offsets))
    summary, extras = dict(result.summary), dict(result.extras)
    if options.cam:
        model = ckpt.build_model("cpu")
        layer = options.cam_layer or default_cam_layer(model)

        def cam() -> tuple[dict, dict]:
            maps = gradcam_stack(model, stack, ckpt.meta.offsets, layer=layer, device=device, channel_stats=stats)
            foreground = mask_stack if mask_stack is not None else result.prediction
            s, per_slice = cam_summary(maps, foreground, layer=layer, dilation=options.dilation)
            return {"diag_cam": per_slice, "diag_cam_maps": maps.astype(np.float16)}, s

        arrays, summary["cam"] = _cached(store, {**base, "diagnostic": "cam", "layer": layer}, cam)
        extras.update(arrays)
    if options.sanity:
        def sanity() -> tuple[dict, dict]:
            s, corr = sanity_check(ckpt.build_model("cpu"), stack, ckpt.meta.offsets,
                                   attribute=registry_attribute(method, target, params), target=target,
                                   mask=mask_stack, n_slices=options.sanity_slices, channel_stats=stats,
                                   device=device)
            return {"diag_sanity": corr}, {"method": method, "target": target, **s}

        key = {**base, "diagnostic": "sanity", "method": method, "target": target, "params": params,
               "slices": options.sanity_slices}
        arrays, summary["sanity"] = _cached(store, key, sanity)
        extras.update(arrays)
    return dataclasses.replace(result, summary=summary, extras=extras)


def _cached(store: ResultCache | None, parts: dict, compute: Any) -> tuple[dict, dict]:
    store = store.subcache("diagnostics") if store is not None else None  # own counters: stats stay per model
    key = make_key(parts)
    entry = store.get(key) if store is not None else None
    if entry is not None:
        return dict(entry.arrays), entry.meta["summary"]
    arrays, summary = compute()
    if store is not None:
        entry = store.put(key, arrays, {"summary": summary})
        arrays = dict(entry.arrays)
    return arrays, summary


def diagnostics_tables(models: dict[str, Any]) -> dict[str, Any]:
    """The diagnostics of an analysis' models as tables.

    Args:
        models: ``{name: ModelResult}``.

    Returns:
        ``{"slices": DataFrame, "logit_histograms": DataFrame, "sanity": dict}``: one row per model × slice
        (``background_<offset>``, ``background_total`` and, when computed, ``cam_background_standard``,
        ``cam_background_abs``, ``cam_target_rank_corr``, ``sanity_<stage>`` on the checked slices);
        one row per model × group × bin (``bin_left, bin_right, count``; groups without pixels are left
        out); the sanity summaries by model.
    """
    slices, hists, sanity = [], [], {}
    for name, r in models.items():
        extras = r.extras
        if "diag_background" not in extras:
            continue
        bg = np.asarray(extras["diag_background"])
        frame = pd.DataFrame({"model": name, "slice": np.arange(len(bg))})
        for j, label in enumerate([*(str(o) for o in r.offsets), "total"]):
            frame[f"background_{label}"] = bg[:, j]
        if "diag_cam" in extras:
            cam = np.asarray(extras["diag_cam"])
            frame["cam_background_standard"], frame["cam_background_abs"] = cam[:, 0], cam[:, 1]
            frame["cam_target_rank_corr"] = cam[:, 2]
        if r.summary.get("sanity") is not None and "diag_sanity" in extras:
            corr = np.asarray(extras["diag_sanity"])
            for j, stage in enumerate(r.summary["sanity"]["stages"]):
                column = np.full(len(bg), np.nan)
                column[np.asarray(r.summary["sanity"]["slices"], dtype=int)] = corr[:, j]
                frame[f"sanity_{stage}"] = column
        slices.append(frame)
        edges, counts = np.asarray(extras["diag_logit_edges"]), np.asarray(extras["diag_logit_hist"])
        for g, group in enumerate(GROUPS):
            if counts[g].sum() > 0:
                hists.append(pd.DataFrame({"model": name, "group": group, "bin_left": edges[:-1],
                                           "bin_right": edges[1:], "count": counts[g]}))
        if r.summary.get("sanity") is not None:
            sanity[name] = r.summary["sanity"]
    columns = ["model", "group", "bin_left", "bin_right", "count"]
    return {"slices": pd.concat(slices, ignore_index=True) if slices else pd.DataFrame(columns=["model", "slice"]),
            "logit_histograms": pd.concat(hists, ignore_index=True) if hists else pd.DataFrame(columns=columns),
            "sanity": sanity}
