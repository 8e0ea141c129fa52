"""Shared look of every figure: one colour per model (keyed by model order), offset labels, fonts, layout.

Offsets arrive as ints from ``shares`` and as ints *or* strings (``"-1"``) from a ``summary`` that went
through JSON; :func:`offset_values` turns either into ``{int: float}``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go

from ..errors import InputError

#: Okabe–Ito colours (distinguishable with the common colour-vision deficiencies), in model order.
PALETTE: tuple[str, ...] = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
                            "#F0E442")
FONT = dict(family="Arial, Liberation Sans, DejaVu Sans, sans-serif", size=14, color="#222222")
SHARE_COLUMNS = ("model", "slice", "offset", "share")


def model_colors(models: Iterable[str]) -> dict[str, str]:
    """Colour of each model by its position in ``models`` (the palette cycles after eight models).

    Args:
        models: model names in display order (the order of ``summary["models"]`` or of ``shares``).

    Returns:
        ``{model: "#rrggbb"}``; the same order always gives the same colours, in every figure.
    """
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(dict.fromkeys(models))}


def offset_label(offset: int) -> str:
    """Tick label of an offset with a typographic sign: ``−1``, ``0``, ``+1``."""
    return f"+{offset}" if offset > 0 else (f"−{-offset}" if offset < 0 else "0")


def offset_values(mapping: Mapping[object, object] | None, source: str) -> dict[int, float]:
    """``{offset: value}`` with int keys, sorted by offset, from int or JSON-string keys.

    Raises:
        InputError: a key is not an integer offset (``source`` names the field).
    """
    out: dict[int, float] = {}
    for key, value in (mapping or {}).items():
        try:
            out[int(key)] = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            raise InputError(source, f"offset key {key!r} with value {value!r}",
                             "integer offsets (e.g. -1, 0, 1) mapped to numbers") from exc
    return dict(sorted(out.items()))


def check_shares(shares: pd.DataFrame) -> pd.DataFrame:
    """Validate the ``shares`` table and return it with integer offsets.

    Raises:
        InputError: a column is missing or the table is empty.
    """
    missing = [c for c in SHARE_COLUMNS if c not in shares.columns]
    if missing:
        found = ", ".join(map(str, shares.columns))
        raise InputError("shares", f"missing column(s) {', '.join(missing)} (found {found})",
                         f"a table with columns {', '.join(SHARE_COLUMNS)}")
    if shares.empty:
        raise InputError("shares", "the table has no rows", "one row per model × slice × offset")
    return shares.assign(offset=shares["offset"].astype(int))


def summary_models(summary: Mapping) -> dict[str, dict]:
    """The ``models`` entry of a summary.

    Raises:
        InputError: the summary has no non-empty ``models`` mapping.
    """
    models = summary.get("models") if isinstance(summary, Mapping) else None
    if not isinstance(models, Mapping) or not models:
        raise InputError("summary", "no 'models' entry", '{"models": {NAME: {...}}, ...} as in summary.json')
    return dict(models)


def model_order(shares: pd.DataFrame | None = None, summary: Mapping | None = None) -> list[str]:
    """Models in display order: the summary's order, then any model only ``shares`` has."""
    names: list[str] = list(summary_models(summary)) if summary is not None else []
    if shares is not None:
        names += [str(m) for m in pd.unique(shares["model"])]
    return list(dict.fromkeys(names))


def format_p(p: object) -> str:
    """A p-value as text: ``p = 0.042``, ``p = 3.1e-05``, or ``p n/a`` when missing."""
    if p is None or not isinstance(p, (int, float)) or math.isnan(float(p)):
        return "p n/a"
    return f"p = {p:.3f}" if p >= 0.001 else f"p = {p:.1e}"


def format_ai(ai: Mapping | None, pair: int | None = None) -> str:
    """``AI = +0.123 [+0.080, +0.150]`` from ``{"mean", "ci95"}`` (``AI n/a`` when missing).

    With ``pair=k`` the label names the offsets compared: ``AI(−k,+k)``.
    """
    label = "AI" if pair is None else f"AI({offset_label(-pair)},{offset_label(pair)})"
    if not ai or ai.get("mean") is None:
        return f"{label} n/a"
    text = f"{label} = {float(ai['mean']):+.3f}"
    ci = ai.get("ci95")
    if ci and len(ci) == 2 and None not in ci:
        text += f" [{float(ci[0]):+.3f}, {float(ci[1]):+.3f}]"
    return text


def ai_pairs(entry: Mapping) -> dict[int, Mapping]:
    """A model's per-pair asymmetry ``{k: {"mean", "ci95", "wilcoxon_p"}}`` (``asymmetry_by_pair``), by k."""
    return {int(k): v for k, v in sorted((entry.get("asymmetry_by_pair") or {}).items(), key=lambda kv: int(kv[0]))}


def comparison_fields(comp: Mapping) -> dict[str, object]:
    """One between-model comparison with fixed keys ``a, b, test, statistic, p`` first, then its extras.

    Accepts both spellings the engine may write: ``{"a", "b", "p"}`` or ``{"models": [a, b], "wilcoxon_p"}``.
    """
    names = [*(comp.get("models") or [comp.get("a"), comp.get("b")]), None, None]
    fixed = {"a": names[0], "b": names[1], "test": comp.get("test"), "statistic": comp.get("statistic"),
             "p": comp.get("p", comp.get("wilcoxon_p"))}
    skip = {"a", "b", "models", "test", "statistic", "p", "wilcoxon_p"}
    return {**fixed, **{k: v for k, v in comp.items() if k not in skip}}


def style(fig: go.Figure, title: str, *, height: int, subtitle: str | None = None) -> go.Figure:
    """Apply the shared paper look: white template, readable fonts, title (and subtitle), legend on top."""
    text = f"<b>{title}</b>" + (f"<br><span style='font-size:12px'>{subtitle}</span>" if subtitle else "")
    fig.update_layout(
        template="simple_white", font=FONT, height=height, title=dict(text=text, x=0.01, xanchor="left"),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1.0, title_text=""),
        margin=dict(l=70, r=30, t=110, b=60),
    )
    return fig


def equal_share_line(fig: go.Figure, n_channels: int, **where: object) -> None:
    """Dotted reference line at ``1 / n_channels``: the share every channel gets without a preference."""
    fig.add_hline(y=1.0 / n_channels, line=dict(color="#888888", dash="dot", width=1),
                  annotation_text=f"equal share 1/{n_channels}", annotation_position="top left",
                  annotation_font=dict(size=11, color="#666666"), annotation_bgcolor="rgba(255,255,255,0.7)",
                  **where)


def ordered(values: Sequence[int]) -> list[int]:
    """Distinct offsets, ascending."""
    return sorted({int(v) for v in values})
