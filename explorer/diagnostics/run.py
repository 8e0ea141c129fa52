"""Running the diagnostics for one model inside :func:`explorer.analysis.analyze`, and their tables.

Cheap diagnostics (``background``, ``logits``) run with the attribution and are stored in the same cache
entry; opt-in ones (``cam``, ``sanity``) get cache entries of their own (keys from
:func:`explorer.cache.store.result_key`, like the model results), so asking for them later never recomputes the
attribution.

Shapes (``S`` slices, ``C`` channels): see :class:`DiagnosticsResult`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..attribution.windows import SliceStack
from ..errors import InputError
from .background import background_fractions, background_summary
from .cam import cam_layers, cam_summary, default_cam_layer, gradcam_stack
from .logits import GROUPS, logit_histograms, logit_summary, split_from_meta
from .options import DiagnosticOptions
from .sanity import registry_attribute, sanity_check

if TYPE_CHECKING:
    import torch

    from ..attribution.engine import StackAttribution
    from ..models.checkpoints import Checkpoint, CheckpointMeta
    from ..spec import RunSpec

__all__ = ["Cached", "DiagnosticsResult", "run_default", "check_options", "run_opt_in", "diagnostics_tables"]

#: ``cached(compute, **key) -> (arrays, summary)``: see :func:`run_opt_in`.
Cached = Callable[..., tuple[dict[str, np.ndarray], dict]]


@dataclass(frozen=True, eq=False)
class DiagnosticsResult:
    """One model's diagnostics arrays (their summaries live in the model's ``summary.json`` block).

    Attributes:
        background: ``(S, C + 1)`` fraction of attribution mass outside the foreground per channel, then total.
        logit_edges: ``(bins + 1,)`` histogram bin edges.
        logit_hist: ``(groups, bins)`` counts per :data:`explorer.diagnostics.logits.GROUPS`.
        cam: ``(S, 3)`` background fraction of the standard and the |logit| CAM and their rank correlation.
        cam_maps: ``(S, 2, H, W)`` float16 CAMs (standard, |logit|).
        sanity: ``(n, stages)`` rank correlations on the slices named in the sanity summary.
    """

    background: np.ndarray
    logit_edges: np.ndarray
    logit_hist: np.ndarray
    cam: np.ndarray | None = None
    cam_maps: np.ndarray | None = None
    sanity: np.ndarray | None = None

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The arrays under their cache names (``diag_<field>``); absent diagnostics are left out."""
        return {
            f"diag_{f.name}": getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> DiagnosticsResult:
        """Inverse of :meth:`to_arrays` (other keys are ignored)."""
        return cls(**{f.name: arrays.get(f"diag_{f.name}") for f in dataclasses.fields(cls)})


def run_default(
    attributed: StackAttribution,
    mask: np.ndarray | None,
    *,
    offsets: tuple[int, ...],
    meta: CheckpointMeta,
    volume_sha256: str,
    axis: str,
    options: DiagnosticOptions,
) -> tuple[DiagnosticsResult, dict]:
    """Background attention and logit histograms of one model, from its attribution pass.

    Args:
        attributed: the pass (its logits, maps and prediction: no second forward pass).
        mask: ground truth ``(S, H, W)`` or None.
        offsets: the model's offsets.
        meta: its checkpoint's metadata (training split).
        volume_sha256, axis: the analysed volume and axis (to match the training split).
        options: the diagnostics' options.

    Returns:
        ``(result, summary)``; summary ``{"background", "logits", "cam": None, "sanity": None}``.
    """
    logits, prediction = attributed.logits, attributed.prediction
    foreground = mask if mask is not None else prediction
    fractions = background_fractions(attributed.maps, foreground, dilation=options.dilation)
    split = split_from_meta(meta, volume_sha256, axis, logits.shape[0])
    edges, counts = logit_histograms(logits, prediction, mask, None if isinstance(split, str) else split)
    summary = {
        "background": background_summary(
            fractions, offsets, source="mask" if mask is not None else "prediction", dilation=options.dilation
        ),
        "logits": logit_summary(logits, prediction, mask, split),
        "cam": None,
        "sanity": None,
    }
    return DiagnosticsResult(background=fractions, logit_edges=edges, logit_hist=counts), summary


def check_options(options: DiagnosticOptions, checkpoints: list[Any]) -> None:
    """Fail fast on opt-in options no checkpoint can honour (before any attribution runs).

    Raises:
        InputError: a Grad-CAM layer that a checkpoint's model does not have (the valid names are listed).
    """
    if options.cam and options.cam_layer is not None:
        for ckpt in checkpoints:
            model = ckpt.build_model("cpu")
            if options.cam_layer not in dict(model.named_modules()):
                raise InputError(
                    "--cam-layer",
                    f"no layer named {options.cam_layer!r} in {ckpt.name}",
                    "one of: " + ", ".join(cam_layers(model)),
                )


def run_opt_in(
    ckpt: Checkpoint, data: SliceStack, prediction: np.ndarray, spec: RunSpec, device: torch.device, cached: Cached
) -> tuple[dict[str, np.ndarray], dict]:
    """The opt-in diagnostics ``spec`` asks for (Grad-CAM, the sanity check) of one model.

    Args:
        ckpt: the model's checkpoint.
        data: the slices it was analysed on, with its offsets, channel statistics and the mask if any.
        prediction: its predicted foreground ``(S, H, W)`` (background of the CAMs when there is no mask).
        spec: the run's spec (its ``diagnostics`` options, method, parameters and target).
        device: where to compute.
        cached: ``cached(compute, **key) -> (arrays, summary)``: ``compute()``'s result, from the cache when an
            entry under ``key`` (the diagnostic and its options) exists.

    Returns:
        ``(arrays, summary)``: the :class:`DiagnosticsResult` arrays under their cache names and the summary's
        ``cam``/``sanity`` entries, for the diagnostics that ran (both empty when none was asked for).

    Raises:
        InputError: an unknown Grad-CAM layer, or a model the diagnostics cannot explain.
    """
    options = spec.diagnostics
    arrays: dict[str, np.ndarray] = {}
    summary: dict = {}
    if options.cam:
        model = ckpt.build_model("cpu")
        layer = options.cam_layer or default_cam_layer(model)

        def cam() -> tuple[dict, dict]:
            maps = gradcam_stack(
                model, data.stack, data.offsets, layer=layer, device=device, channel_stats=data.channel_stats
            )
            foreground = data.mask if data.mask is not None else prediction
            s, per_slice = cam_summary(maps, foreground, layer=layer, dilation=options.dilation)
            return {"diag_cam": per_slice, "diag_cam_maps": maps.astype(np.float16)}, s

        found, summary["cam"] = cached(cam, diagnostic="cam", layer=layer, dilation=options.dilation)
        arrays.update(found)
    if options.sanity:

        def sanity() -> tuple[dict, dict]:
            s, corr = sanity_check(
                ckpt.build_model("cpu"),
                data,
                registry_attribute(spec),
                target=spec.target,
                slices=options.sanity_slices,
                device=device,
            )
            return {"diag_sanity": corr}, {"method": spec.method, "target": spec.target, **s}

        found, summary["sanity"] = cached(
            sanity,
            diagnostic="sanity",
            method=spec.method,
            target=spec.target,
            params=dict(spec.params),
            slices=options.sanity_slices,
        )
        arrays.update(found)
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
        diag: DiagnosticsResult | None = r.diagnostics
        if diag is None:
            continue
        bg = np.asarray(diag.background)
        frame = pd.DataFrame({"model": name, "slice": np.arange(len(bg))})
        for j, label in enumerate([*(str(o) for o in r.offsets), "total"]):
            frame[f"background_{label}"] = bg[:, j]
        if diag.cam is not None:
            cam = np.asarray(diag.cam)
            frame["cam_background_standard"], frame["cam_background_abs"] = cam[:, 0], cam[:, 1]
            frame["cam_target_rank_corr"] = cam[:, 2]
        if r.summary.get("sanity") is not None and diag.sanity is not None:
            corr = np.asarray(diag.sanity)
            for j, stage in enumerate(r.summary["sanity"]["stages"]):
                column = np.full(len(bg), np.nan)
                column[np.asarray(r.summary["sanity"]["slices"], dtype=int)] = corr[:, j]
                frame[f"sanity_{stage}"] = column
            sanity[name] = r.summary["sanity"]
        slices.append(frame)
        edges, counts = np.asarray(diag.logit_edges), np.asarray(diag.logit_hist)
        for g, group in enumerate(GROUPS):
            if counts[g].sum() > 0:
                hists.append(
                    pd.DataFrame(
                        {
                            "model": name,
                            "group": group,
                            "bin_left": edges[:-1],
                            "bin_right": edges[1:],
                            "count": counts[g],
                        }
                    )
                )
    columns = ["model", "group", "bin_left", "bin_right", "count"]
    return {
        "slices": pd.concat(slices, ignore_index=True) if slices else pd.DataFrame(columns=["model", "slice"]),
        "logit_histograms": pd.concat(hists, ignore_index=True) if hists else pd.DataFrame(columns=columns),
        "sanity": sanity,
    }
