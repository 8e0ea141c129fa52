"""One-line text renderings of a model's diagnostics (CLI output, captions); pure formatting."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["diagnostics_line"]


def _num(value: object, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(float(value), spec)


def diagnostics_line(entry: Mapping) -> str:
    """``background … | logit shift … | CAM … | sanity …`` for one model's ``summary.json`` block.

    Args:
        entry: ``summary["models"][name]``.

    Returns:
        One line; diagnostics that were not run are left out, a skipped logit shift says why.
    """
    parts = []
    bg = entry.get("background")
    if bg:
        fractions = bg["mean_fraction"]
        per = "/".join(_num(v) for k, v in fractions.items() if k != "total")
        parts.append(
            f"background {_num(fractions['total'])} (per offset {per}; outside the {bg['foreground']}, "
            f"dilation {bg['dilation']})"
        )
    logits = entry.get("logits")
    if logits:
        shift = logits.get("shift")
        if shift and shift.get("shift") is not None:
            text = (
                f"fg logit shift {_num(shift['shift'], '+.3f')} (train {_num(shift['train_mean'])} → "
                f"held-out {_num(shift['heldout_mean'])}"
            )
            if shift.get("train_fn_rate") is not None:
                text += f"; FN rate {_num(shift['train_fn_rate'])} → {_num(shift['heldout_fn_rate'])}"
            background = logits.get("background_shift") or {}
            if background.get("shift") is not None:
                text += f"; bg shift {_num(background['shift'], '+.3f')}"
            parts.append(text + ")")
        else:
            parts.append(f"fg logit shift skipped: {logits.get('shift_skipped')}")
    cam = entry.get("cam")
    if cam:
        bgf = cam["background_fraction"]
        parts.append(
            f"Grad-CAM {cam['layer']}: background standard {_num(bgf['standard'])} / |logit| "
            f"{_num(bgf['abs'])}, rank corr {_num(cam['target_rank_correlation'])}"
        )
    sanity = entry.get("sanity")
    if sanity:
        stages = list(sanity["rank_correlation"])
        shown = stages if len(stages) <= 3 else [stages[0], stages[-2], stages[-1]]  # head, ..., first conv
        corr = ", ".join(f"{k} {_num(sanity['rank_correlation'][k])}" for k in shown)
        text = f"sanity rank corr {corr}"
        ai = sanity.get("asymmetry_index") or {}
        if ai:
            text += "; AI " + " → ".join(f"{k} {_num(ai.get(k), '+.3f')}" for k in ["original", *shown] if k in ai)
        parts.append(text + (" — FLAGGED: maps barely depend on the weights" if sanity["flagged"] else ""))
    return " | ".join(parts)
