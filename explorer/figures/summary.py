"""Summary-level figures: attribution-share distributions, share along the slicing axis, first-conv shares.

Inputs follow the engine's contracts (docs/definitions.md, README.md "Outputs"): ``shares`` has one row per
model × slice × offset with columns ``model, slice, offset, share`` (shares of one model and slice sum to 1);
``summary`` is the dict written as ``summary.json``.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..errors import InputError, unknown_name
from ._style import (
    ai_pairs,
    check_shares,
    comparison_fields,
    equal_share_line,
    format_ai,
    format_p,
    model_colors,
    model_order,
    offset_label,
    offset_values,
    ordered,
    style,
    summary_models,
)

SHARE_AXIS = "share of attribution"
OFFSET_AXIS = "offset (slices)"
DISTRIBUTION_KINDS = ("violin", "box")


def distribution_figure(shares: pd.DataFrame, summary: Mapping | None = None, *, kind: str = "violin") -> go.Figure:
    """Per-slice attribution shares per offset, one colour per model, side by side on one axis.

    Args:
        shares: the shares table (see the module docstring).
        summary: when given, each model's asymmetry index (mean and 95% CI), its Wilcoxon p and the
            between-model comparisons are written above the plot, and it fixes the model order.
        kind: ``violin`` (with inner box and mean line) or ``box``.

    Returns:
        One trace per model (named after it) with x = offset label, y = share.

    Raises:
        InputError: an unknown ``kind``, or a malformed ``shares``/``summary``.
    """
    if kind not in DISTRIBUTION_KINDS:
        raise unknown_name("distribution kind", kind, DISTRIBUTION_KINDS)
    shares = check_shares(shares)
    models = model_order(shares, summary)
    colors = model_colors(models)
    offsets = ordered(shares["offset"])
    fig = go.Figure()
    for model in models:
        rows = shares[shares["model"] == model]
        if rows.empty:
            continue
        common = dict(x=[offset_label(o) for o in rows["offset"]], y=rows["share"], name=model,
                      legendgroup=model, line=dict(color=colors[model]), hoverinfo="y+name")
        if kind == "violin":
            fig.add_trace(go.Violin(**common, box_visible=True, meanline_visible=True, points=False,
                                    spanmode="hard", scalemode="width", fillcolor=colors[model], opacity=0.75))
        else:
            fig.add_trace(go.Box(**common, boxmean=True, marker=dict(size=3), boxpoints="outliers"))
    fig.update_layout(violinmode="group", boxmode="group", violingap=0.25, boxgap=0.25)
    fig.update_xaxes(title_text=OFFSET_AXIS, categoryorder="array",
                     categoryarray=[offset_label(o) for o in offsets])
    fig.update_yaxes(title_text=SHARE_AXIS, rangemode="tozero")
    equal_share_line(fig, len(offsets))
    lines = _stat_lines(summary, colors) if summary is not None else []
    style(fig, "Attribution share per input slice", height=520 + 20 * len(lines),
          subtitle="per-slice share of |attribution| in each channel of the 2D+ window")
    for i, (text, color) in enumerate(lines):  # statistics below the x-axis title, one line each
        fig.add_annotation(text=text, font=dict(color=color, size=13), xref="paper", yref="paper", x=0.0,
                           y=0.0, yshift=-62 - 20 * i, xanchor="left", yanchor="top", showarrow=False)
    fig.update_layout(margin=dict(b=70 + 20 * len(lines)))
    return fig


def _stat_lines(summary: Mapping, colors: Mapping[str, str]) -> list[tuple[str, str]]:
    """One ``(text, colour)`` line per model (AI, CI, Wilcoxon p) and per between-model comparison."""
    lines = []
    for name, entry in summary_models(summary).items():
        top = {**(entry.get("asymmetry_index") or {}), "wilcoxon_p": entry.get("wilcoxon_p")}
        pairs = ai_pairs(entry) or {None: top}
        parts = [f"{format_ai(ai, k)}, Wilcoxon {format_p(ai.get('wilcoxon_p'))}" for k, ai in pairs.items()]
        lines.append((f"{name}: " + "; ".join(parts), colors.get(name, "#222222")))
    for comp in map(comparison_fields, summary.get("comparisons") or []):
        means = comp.get("mean_abs_ai")
        mean_text = (f"mean |AI| {means[0]:.3f} vs {means[1]:.3f}, "
                     if isinstance(means, (list, tuple)) and len(means) == 2 and None not in means else "")
        lines.append((f"{comp['a']} vs {comp['b']}: {mean_text}{comp['test'] or 'paired test'} {format_p(comp['p'])}",
                      "#222222"))
    return lines


def share_along_axis_figure(shares: pd.DataFrame, *, offset: int | None = None) -> go.Figure:
    """Attribution share against slice index, one line per model; one panel per offset unless one is chosen.

    Skipped slices (absent from ``shares``) show as gaps in the lines.

    Args:
        shares: the shares table.
        offset: show only this offset (one panel); ``None`` stacks one panel per offset.

    Raises:
        InputError: ``offset`` is not among the table's offsets, or ``shares`` is malformed.
    """
    shares = check_shares(shares)
    offsets = ordered(shares["offset"])
    if offset is not None and int(offset) not in offsets:
        raise unknown_name("offset", str(offset), offsets)
    panels = offsets if offset is None else [int(offset)]
    models = model_order(shares)
    colors = model_colors(models)
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=[f"offset {offset_label(o)}" for o in panels])
    for row, off in enumerate(panels, start=1):
        for model in models:
            rows = shares[(shares["model"] == model) & (shares["offset"] == off)].sort_values("slice")
            if rows.empty:
                continue
            full = rows.set_index("slice")["share"].reindex(range(int(rows["slice"].min()),
                                                                   int(rows["slice"].max()) + 1))
            fig.add_trace(go.Scatter(x=full.index, y=full.to_numpy(), mode="lines", name=model,
                                     legendgroup=model, showlegend=row == 1, connectgaps=False,
                                     line=dict(color=colors[model], width=2)), row=row, col=1)
        fig.update_yaxes(title_text=SHARE_AXIS if len(panels) == 1 else f"share ({offset_label(off)})",
                         row=row, col=1)
        equal_share_line(fig, len(offsets), row=row, col=1)
    fig.update_xaxes(title_text="slice index along the slicing axis", row=len(panels), col=1)
    return style(fig, "Attribution share along the slicing axis", height=180 + 200 * len(panels),
                 subtitle="per-slice share of |attribution| in each window channel")


def first_conv_figure(summary: Mapping) -> go.Figure:
    """Grouped bars: L1 share of the first convolution's kernels per input channel, per model.

    This is the root cause the tool looks for: ImageNet RGB kernels weigh the slices unequally, uniform
    initialisation gives every channel the same share.

    Raises:
        InputError: the summary has no models, or a model has no ``first_conv_share``.
    """
    models = summary_models(summary)
    colors = model_colors(models)
    fig = go.Figure()
    n_channels = 0
    for name, entry in models.items():
        values = offset_values(entry.get("first_conv_share"), f"summary: models.{name}.first_conv_share")
        if not values:
            raise InputError("summary", f"model {name!r} has no first_conv_share",
                             "{offset: L1 share} for every model")
        n_channels = max(n_channels, len(values))
        fig.add_trace(go.Bar(x=[offset_label(o) for o in values], y=list(values.values()), name=name,
                             marker_color=colors[name], text=[f"{v:.2f}" for v in values.values()],
                             textposition="outside", cliponaxis=False))
    fig.update_layout(barmode="group", bargap=0.25)
    fig.update_xaxes(title_text="input channel: offset (slices)")
    fig.update_yaxes(title_text="share of first-conv L1 weight", rangemode="tozero")
    equal_share_line(fig, n_channels)
    return style(fig, "First-convolution weight per input channel", height=500,
                 subtitle="L1 norm of the first conv's kernels per input channel, normalised to sum to 1")


def analysis_figures(shares: pd.DataFrame, summary: Mapping) -> dict[str, go.Figure]:
    """Every summary-level figure of an analysis, keyed by a file-safe name (the export file stem).

    Raises:
        InputError: malformed ``shares`` or ``summary``.
    """
    figures = {
        "share_distribution_violin": distribution_figure(shares, summary, kind="violin"),
        "share_distribution_box": distribution_figure(shares, summary, kind="box"),
        "share_along_axis": share_along_axis_figure(shares),
    }
    if all(entry.get("first_conv_share") for entry in summary_models(summary).values()):
        figures["first_conv_share"] = first_conv_figure(summary)
    return figures
