"""Summary-level figures: attribution-share distributions, share along the slicing axis, first-conv shares, and
the asymmetry's sensitivity to the edge slices.

Inputs follow the engine's contracts (docs/definitions.md, README.md "Outputs"): ``shares`` has one row per
model × slice × offset with columns ``model, slice, offset, share`` (shares of one model and slice sum to 1);
``summary`` is the dict written as ``summary.json``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import scipy.stats as sps
from plotly.subplots import make_subplots

from ...errors import InputError, unknown_name
from ...stats.scan import edge_trim_means
from .style import (
    check_shares,
    checkpoint_look,
    equal_share_line,
    model_order,
    number,
    offset_label,
    offset_values,
    ordered,
    p_text,
    reference_line,
    style,
    summary_models,
    translucent,
)

__all__ = [
    "SHARE_AXIS",
    "OFFSET_AXIS",
    "DISTRIBUTION_KINDS",
    "MAX_TRIM",
    "distribution_figure",
    "ai_legend_text",
    "share_along_axis_figure",
    "first_conv_figure",
    "per_slice_asymmetry",
    "edge_sensitivity_figure",
    "analysis_figures",
]


SHARE_AXIS = "share of attribution"
OFFSET_AXIS = "offset (slices)"
DISTRIBUTION_KINDS = ("box", "violin")
MAX_TRIM = 16  # edge slices trimmed at most, per end (the example flipped a sign at 8)


def distribution_figure(shares: pd.DataFrame, summary: Mapping | None = None, *, kind: str = "box") -> go.Figure:
    """Per-slice attribution shares per offset, one colour per checkpoint, side by side on one axis: every
    slice as a point over a box (or violin), the mean and its 95% CI as a diamond; each legend entry carries
    the checkpoint's asymmetry index with its 95% CI and p (so every export carries them).

    Args:
        shares: the shares table (see the module docstring).
        summary: when given, it fixes the checkpoint order, gives each checkpoint's strategy and seed (colour
            and short legend label) and its ``asymmetry_index`` (the legend's statistics).
        kind: ``box`` (quartiles; the diamond: mean ± t-based 95% CI over slices) or ``violin`` (density with
            the mean line).

    Returns:
        One trace per checkpoint (``name`` = short label followed by its AI, CI and p when the summary has them,
        ``legendgroup`` = full name, full name in hover) with x = offset label, y = share.

    Raises:
        InputError: an unknown ``kind``, or a malformed ``shares``/``summary``.
    """
    if kind not in DISTRIBUTION_KINDS:
        raise unknown_name("distribution kind", kind, DISTRIBUTION_KINDS)
    shares = check_shares(shares)
    models = model_order(shares, summary)
    colors, labels = checkpoint_look(models, summary)
    entries = summary_models(summary) if summary is not None else {}
    offsets = ordered(shares["offset"])
    fig = go.Figure()
    for model in models:
        rows = shares[shares["model"] == model]
        if rows.empty:
            continue
        common = dict(
            x=[offset_label(o) for o in rows["offset"]],
            y=rows["share"],
            name=labels[model] + ai_legend_text(entries.get(model)),
            legendgroup=model,
            line=dict(color=colors[model], width=1.5),
            fillcolor=translucent(colors[model], 0.25),
            marker=dict(color=colors[model], size=3, opacity=0.6),
            hovertemplate=f"{model}<br>offset %{{x}}: share %{{y:.3f}}<extra></extra>",
        )
        if kind == "violin":
            fig.add_trace(
                go.Violin(
                    **common,
                    box_visible=False,
                    meanline_visible=True,
                    points="all",
                    jitter=0.6,
                    pointpos=0,
                    spanmode="hard",
                    scalemode="width",
                )
            )
        else:
            n = max(int(rows["slice"].nunique()), 2)
            fig.add_trace(
                go.Box(
                    **common,
                    boxmean="sd",
                    sdmultiple=float(sps.t.ppf(0.975, n - 1) / np.sqrt(n)),
                    boxpoints="all",
                    jitter=0.6,
                    pointpos=0,
                )
            )
    fig.update_layout(violinmode="group", boxmode="group", violingap=0.2, boxgap=0.2)
    fig.update_xaxes(title_text=OFFSET_AXIS, categoryorder="array", categoryarray=[offset_label(o) for o in offsets])
    fig.update_yaxes(title_text=SHARE_AXIS)
    equal_share_line(fig, len(offsets))
    subtitle = (
        "points: slices; box: quartiles; diamond: mean and its 95% CI"
        if kind == "box"
        else "points: slices; line: the mean"
    ) + "; legend: AI [95% CI] and p of each checkpoint"
    return style(fig, "Attribution share per input slice", height=520, subtitle=subtitle)


def ai_legend_text(entry: Mapping | None) -> str:
    """`` · AI +0.163 [+0.150, +0.180], p 2.5e−09`` from a summary entry's ``asymmetry_index`` (``""`` without
    one)."""
    ai = (entry or {}).get("asymmetry_index") or {}
    if ai.get("mean") is None:
        return ""
    lo, hi = (list(ai.get("ci95") or []) + [None, None])[:2]
    ci = f" [{number(lo)}, {number(hi)}]" if lo is not None and hi is not None else ""
    return f" · AI {number(ai['mean'])}{ci}, p {p_text(ai.get('p'))}"


def share_along_axis_figure(
    shares: pd.DataFrame, *, offset: int | None = None, summary: Mapping | None = None
) -> go.Figure:
    """Attribution share against slice index, one line per model; one panel per offset unless one is chosen.

    Skipped slices (absent from ``shares``) show as gaps in the lines.

    Args:
        shares: the shares table.
        offset: show only this offset (one panel); ``None`` stacks one panel per offset.
        summary: when given, each checkpoint's strategy and seed (colour and label) come from it.

    Raises:
        InputError: ``offset`` is not among the table's offsets, or ``shares`` is malformed.
    """
    shares = check_shares(shares)
    offsets = ordered(shares["offset"])
    if offset is not None and int(offset) not in offsets:
        raise unknown_name("offset", str(offset), offsets)
    panels = offsets if offset is None else [int(offset)]
    models = model_order(shares)
    colors, labels = checkpoint_look(models, summary)
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=0.06)
    for row, off in enumerate(panels, start=1):
        for model in models:
            rows = shares[(shares["model"] == model) & (shares["offset"] == off)].sort_values("slice")
            if rows.empty:
                continue
            full = rows.set_index("slice")["share"].reindex(
                range(int(rows["slice"].min()), int(rows["slice"].max()) + 1)
            )
            fig.add_trace(
                go.Scatter(
                    x=full.index,
                    y=full.to_numpy(),
                    mode="lines",
                    name=labels[model],
                    legendgroup=model,
                    showlegend=row == 1,
                    connectgaps=False,
                    line=dict(color=colors[model], width=2),
                    hovertemplate=f"{model}<br>slice %{{x}}: share %{{y:.3f}}<extra></extra>",
                ),
                row=row,
                col=1,
            )
        fig.update_yaxes(
            title_text=SHARE_AXIS if len(panels) == 1 else f"share, offset {offset_label(off)}", row=row, col=1
        )
    equal_share_line(fig, len(offsets), rows=range(1, len(panels) + 1))
    fig.update_xaxes(title_text="slice index along the slicing axis", row=len(panels), col=1)
    return style(
        fig,
        "Attribution share along the slicing axis",
        height=180 + 200 * len(panels),
        subtitle="per-slice share of |attribution| in each window channel",
    )


def first_conv_figure(summary: Mapping) -> go.Figure:
    """Grouped bars: L1 share of the first convolution's kernels per input channel, per model.

    This is the root cause the tool looks for: ImageNet RGB kernels weigh the slices unequally, uniform
    initialisation gives every channel the same share.

    Raises:
        InputError: the summary has no models, or a model has no ``first_conv_share``.
    """
    models = summary_models(summary)
    colors, labels = checkpoint_look(models, summary)
    fig = go.Figure()
    n_channels = 0
    for name, entry in models.items():
        values = offset_values(entry.get("first_conv_share"), f"summary: models.{name}.first_conv_share")
        if not values:
            raise InputError("summary", f"model {name!r} has no first_conv_share", "{offset: L1 share} for every model")
        n_channels = max(n_channels, len(values))
        fig.add_trace(
            go.Bar(
                x=[offset_label(o) for o in values],
                y=list(values.values()),
                name=labels[name],
                legendgroup=name,
                marker_color=colors[name],
                text=[f"{v:.2f}" for v in values.values()],
                textposition="outside",
                cliponaxis=False,
                hovertemplate=f"{name}<br>offset %{{x}}: %{{y:.3f}}<extra></extra>",
            )
        )
    # bar labels only where they fit at a readable size (uniformtext hides the rest; hover has every value)
    fig.update_layout(barmode="group", bargap=0.25, uniformtext=dict(minsize=10, mode="hide"))
    fig.update_xaxes(title_text="input channel: offset (slices)")
    fig.update_yaxes(title_text="share of first-conv L1 weight", rangemode="tozero")
    equal_share_line(fig, n_channels)
    return style(
        fig,
        "First-convolution weight per input channel",
        height=500,
        subtitle="L1 norm of the first conv's kernels per input channel, normalised to sum to 1",
    )


def per_slice_asymmetry(shares: pd.DataFrame, model: str) -> tuple[pd.Series, str]:
    """One model's per-slice asymmetry indexed by slice: the channel asymmetry where the table has it for every
    slice of the model, else the AI of the innermost pair from the shares; with its name."""
    rows = shares[shares["model"] == model]
    if "channel_asymmetry" in rows and len(rows) and rows["channel_asymmetry"].notna().all():
        return rows.groupby("slice")["channel_asymmetry"].first().sort_index(), "channel asymmetry"
    k = min(o for o in rows["offset"] if o > 0)
    wide = rows.pivot_table(index="slice", columns="offset", values="share", aggfunc="first").sort_index()
    return (wide[-k] - wide[k]) / (wide[-k] + wide[k]), "asymmetry index"


def edge_sensitivity_figure(
    shares: pd.DataFrame, summary: Mapping | None = None, *, max_trim: int = MAX_TRIM
) -> go.Figure:
    """Mean asymmetry over the slices left after trimming ``t`` slices at each end, against ``t`` (0 … max_trim),
    one line per model: a flat line says the edge slices do not drive the per-volume mean of ratios; a line that
    crosses 0 says they do (their small masses make their ratios noisy, see the mass-weighted AI).

    Args:
        shares: the shares table (``channel_asymmetry`` is used where present, else the AI from the shares).
        summary: when given, it fixes the checkpoint order, colours and labels.
        max_trim: the most slices trimmed at each end; a model stops where fewer than one slice would be left.

    Raises:
        InputError: a malformed ``shares``/``summary``, or a ``max_trim`` below 0.
    """
    if max_trim < 0:
        raise InputError("max_trim", str(max_trim), "0 or more slices")
    shares = check_shares(shares)
    models = model_order(shares, summary)
    colors, labels = checkpoint_look(models, summary)
    fig = go.Figure()
    names = set()
    for model in models:
        if not (shares["model"] == model).any():
            continue
        series, name = per_slice_asymmetry(shares, model)
        names.add(name)
        means = edge_trim_means(series.to_numpy(), max_trim)
        trims = np.flatnonzero(np.isfinite(means))
        fig.add_trace(
            go.Scatter(
                x=trims.tolist(),
                y=means[trims].tolist(),
                mode="lines+markers",
                name=labels[model],
                legendgroup=model,
                line=dict(color=colors[model], width=2),
                hovertemplate=f"{model}<br>%{{x}} slices trimmed per end: {name} %{{y:.4f}}<extra></extra>",
            )
        )
    label = " / ".join(sorted(names)) or "asymmetry"
    reference_line(fig, 0.0, "no asymmetry")
    fig.update_xaxes(title_text="edge slices trimmed at each end", dtick=2)
    fig.update_yaxes(title_text=f"mean {label}")
    return style(
        fig,
        "Edge sensitivity of the asymmetry",
        height=450,
        subtitle="mean over the slices left after dropping t at both ends",
    )


def analysis_figures(shares: pd.DataFrame, summary: Mapping) -> dict[str, go.Figure]:
    """Every summary-level figure of an analysis, keyed by a file-safe name (the export file stem).

    Raises:
        InputError: malformed ``shares`` or ``summary``.
    """
    figures = {
        "share_distribution_box": distribution_figure(shares, summary, kind="box"),
        "share_distribution_violin": distribution_figure(shares, summary, kind="violin"),
        "share_along_axis": share_along_axis_figure(shares, summary=summary),
        "edge_sensitivity": edge_sensitivity_figure(shares, summary),
    }
    if all(entry.get("first_conv_share") for entry in summary_models(summary).values()):
        figures["first_conv_share"] = first_conv_figure(summary)
    return figures
