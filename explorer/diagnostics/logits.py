"""Logit shift under class imbalance (Li, Kamnitsas, Glocker, arXiv 2102.10365).

Shapes: logits ``(S, H, W)`` float32 (the single foreground logit per pixel, unpadded), prediction and mask
``(S, H, W)`` bool. Histograms share one set of ``BINS`` equal bins per model; ``GROUPS`` are the pixel sets:
``foreground``/``background`` (by the mask when given, else by the prediction), ``tp``/``fn``/``fp`` (only
with a mask), and ``foreground_train``/``foreground_heldout`` (foreground pixels of the checkpoint's
training and held-out slices, when its metadata records a split on this very volume and axis).

The **shift** is ``mean(foreground logit | held-out) − mean(foreground logit | training)``: the paper's
observation is that the rare class' logits move toward the decision boundary (0) on unseen data, i.e. a
negative shift, which shows up as under-segmentation (a higher false-negative rate on held-out slices). The
background's shift (same difference over background pixels) is reported beside it: the paper's point is
that the rare class shifts while the frequent one does not. Both need a ground-truth mask: with the
prediction as truth the foreground would lose exactly the false negatives the shift is about, so without a
mask the shift is skipped (``shift_skipped`` says so).
"""

from __future__ import annotations

import numpy as np

__all__ = ["BINS", "GROUPS", "split_from_meta", "logit_histograms", "logit_summary"]


BINS = 60
GROUPS = ("foreground", "background", "tp", "fn", "fp", "foreground_train", "foreground_heldout")


def split_from_meta(meta: object, volume_sha256: str, axis: str, n_slices: int) -> tuple[np.ndarray, np.ndarray] | str:
    """Training and held-out slice indices of a checkpoint on this volume, or why there are none.

    The rule is :func:`explorer.training.train.split_slices`: held-out block ``val_slices = [first, last]``; training
    slices lie more than ``gap`` slices away from it.

    Args:
        meta: a :class:`explorer.models.checkpoints.CheckpointMeta`.
        volume_sha256: the analysed volume's content hash.
        axis: the analysis axis.
        n_slices: slices along that axis.

    Returns:
        ``(train, heldout)`` index arrays, or a one-line reason string when the metadata lacks a usable split.
    """
    training = getattr(meta, "training", None) or {}
    split = training.get("split") if isinstance(training, dict) else None
    if isinstance(split, dict) and split.get("unit") == "subject":
        return (
            "the checkpoint was trained on whole subjects (a subject-level split): a volume's slices are "
            "all training or all held-out, so there is no within-volume shift"
        )
    if not isinstance(split, dict) or "val_slices" not in split or "gap" not in split:
        return "the checkpoint's metadata records no training/held-out split"
    if (training.get("volume") or {}).get("sha256") != volume_sha256:
        return "the checkpoint was trained on another volume"
    if getattr(meta, "axis", None) != axis:
        return f"the checkpoint was trained on {getattr(meta, 'axis', None)} slices, not {axis}"
    first, last = (int(v) for v in split["val_slices"])
    gap = int(split["gap"])
    z = np.arange(n_slices)
    return z[(z < first - gap) | (z > last + gap)], z[(z >= first) & (z <= last)]


def logit_histograms(
    logits: np.ndarray,
    prediction: np.ndarray,
    mask: np.ndarray | None,
    split: tuple[np.ndarray, np.ndarray] | None,
    *,
    bins: int = BINS,
) -> tuple[np.ndarray, np.ndarray]:
    """Histogram counts of the logits of each pixel group in :data:`GROUPS`.

    Args:
        logits: ``(S, H, W)`` logits.
        prediction: ``(S, H, W)`` predicted foreground (logit > 0).
        mask: ground truth ``(S, H, W)`` or None (then ``tp``/``fn``/``fp`` are all zero).
        split: ``(train, heldout)`` slice indices or None (then the last two groups are zero).
        bins: number of equal bins over the logits' range.

    Returns:
        ``(edges (bins + 1,), counts (len(GROUPS), bins) int64)``.
    """
    lo, hi = float(np.min(logits)), float(np.max(logits))
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    fg = mask if mask is not None else prediction
    sets = _groups(fg, prediction, mask, split)
    counts = np.zeros((len(GROUPS), bins), dtype=np.int64)
    for i, name in enumerate(GROUPS):
        if sets.get(name) is not None:
            counts[i] = np.histogram(logits[sets[name]], bins=edges)[0]
    return edges, counts


def _groups(
    fg: np.ndarray, prediction: np.ndarray, mask: np.ndarray | None, split: tuple[np.ndarray, np.ndarray] | None
) -> dict[str, np.ndarray | None]:
    sets: dict[str, np.ndarray | None] = {"foreground": fg, "background": ~fg}
    if mask is not None:
        sets.update(tp=prediction & mask, fn=~prediction & mask, fp=prediction & ~mask)
    if split is not None:
        for name, rows in zip(("foreground_train", "foreground_heldout"), split, strict=False):
            chosen = np.zeros_like(fg)
            chosen[rows] = fg[rows]
            sets[name] = chosen
    return sets


def logit_summary(
    logits: np.ndarray, prediction: np.ndarray, mask: np.ndarray | None, split: tuple[np.ndarray, np.ndarray] | str
) -> dict:
    """Mean logits per group, and the train → held-out shift of the foreground and of the background logits.

    Args:
        logits, prediction, mask: as :func:`logit_histograms`.
        split: ``(train, heldout)`` or the reason string from :func:`split_from_meta`.

    Returns:
        ``{"foreground": "mask"|"prediction", "mean": {group: v}, "shift": {"train_mean", "heldout_mean",
        "shift", "train_fn_rate", "heldout_fn_rate"} or None, "background_shift": {"train_mean",
        "heldout_mean", "shift"} or None, "shift_skipped": reason or None}``; the false-negative rates are the
        foreground pixels with logit ≤ 0. Without a mask both shifts are None (skipped, with the reason).
    """
    fg = mask if mask is not None else prediction
    sets = _groups(fg, prediction, mask, None)
    means = {name: (float(logits[s].mean()) if s is not None and s.any() else None) for name, s in sets.items()}
    if mask is None:
        split = (
            "no ground-truth mask: with the prediction as truth the foreground would lose exactly the false "
            "negatives the shift is about"
        )
    out = {
        "foreground": "mask" if mask is not None else "prediction",
        "mean": means,
        "shift": None,
        "background_shift": None,
        "shift_skipped": split if isinstance(split, str) else None,
    }
    if isinstance(split, str):
        return out
    out["shift"] = _shift(logits, fg, split, fn_rate=True)
    out["background_shift"] = _shift(logits, ~fg, split, fn_rate=False)
    return out


def _shift(logits: np.ndarray, pixels: np.ndarray, split: tuple[np.ndarray, np.ndarray], *, fn_rate: bool) -> dict:
    parts: dict = {}
    for label, rows in zip(("train", "heldout"), split, strict=False):
        values = logits[rows][pixels[rows]]
        parts[f"{label}_mean"] = float(values.mean()) if values.size else None
        if fn_rate:
            parts[f"{label}_fn_rate"] = float((values <= 0).mean()) if values.size else None
    both = parts["train_mean"] is not None and parts["heldout_mean"] is not None
    parts["shift"] = parts["heldout_mean"] - parts["train_mean"] if both else None
    return parts
