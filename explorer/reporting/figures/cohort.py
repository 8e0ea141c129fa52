"""Cohort figures: group AI with CIs (forest plot), per-subject paired lines, share distributions per group.

Pure functions of ``cohort.csv``'s rows and ``cohort_summary.json``'s summary (see :mod:`explorer.cohort`);
groups are coloured by strategy as everywhere else (:func:`explorer.reporting.figures.style.strategy_colour`), and drawn
with the same template, fonts and title layout (:func:`explorer.reporting.figures.style.style`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .style import number, offset_label, reference_line, strategy_colour, style, translucent

__all__ = [
    "ENDPOINT_LABELS",
    "ENDPOINT_AXES",
    "NEUTRAL",
    "MODEL_ROW",
    "JITTER",
    "forest_figure",
    "paired_lines_figure",
    "share_distribution_figure",
    "cohort_figures",
]


#: The cohort's endpoints (``summary["endpoint"]``) as titles and axis labels.
ENDPOINT_LABELS = {"channel_asymmetry": "Channel asymmetry", "asymmetry_index": "Asymmetry index"}
ENDPOINT_AXES = {
    "channel_asymmetry": "channel asymmetry (AI(x) + AI(reversed x)) / 2",
    "asymmetry_index": "AI₁ = (s₋₁ − s₊₁) / (s₋₁ + s₊₁)",
}
NEUTRAL = "#444444"  # legend keys that stand for every group
MODEL_ROW = 0.25  # the model points sit this far below their group's diamond (they would hide it otherwise)
JITTER = 0.12  # half-width of the deterministic spread of subjects around a group's position


def _ok(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["error"].isna()] if "error" in rows else rows


def _legend_key(fig: go.Figure, name: str, **marker_or_line) -> None:
    """A legend entry only (no data): what a mark means, drawn in a neutral colour for every group."""
    fig.add_trace(go.Scatter(x=[None], y=[None], name=name, hoverinfo="skip", **marker_or_line))


def forest_figure(rows: pd.DataFrame, summary: Mapping) -> go.Figure:
    """Group mean of the endpoint (mean over models of each model's mean over volumes) with its 95% t-interval
    over models as a diamond and bar, each model's mean over volumes as a small circle under it, and the
    equivalence margin (``summary["equivalence_margin"]``, the TOST on magnitudes) as a grey band around 0.

    Args:
        rows: ``cohort.csv``'s rows (failed pairs, with an ``error``, are left out).
        summary: ``cohort_summary.json``'s dict (``groups``, ``endpoint``, ``equivalence``, ``equivalence_margin``).

    Returns:
        A figure with a legend that names the diamond, the circles and the band.
    """
    groups, endpoint = summary["groups"], summary.get("endpoint", "asymmetry_index")
    margin = (summary.get("equivalence_margin") or {}).get("margin")
    equivalence = summary.get("equivalence") or {}
    ok = _ok(rows)
    fig = go.Figure()
    if margin:
        fig.add_vrect(x0=-margin, x1=margin, fillcolor="#BBBBBB", opacity=0.35, line_width=0, layer="below")
        _legend_key(
            fig,
            f"equivalence margin ±{margin:g}",
            mode="markers",
            marker=dict(symbol="square", size=12, color="rgba(187, 187, 187, 0.6)"),
        )
    _legend_key(
        fig,
        "group mean, 95% CI",
        mode="markers",
        marker=dict(symbol="diamond", size=12, color=NEUTRAL),
        error_x=dict(type="data", array=[0]),
    )
    _legend_key(
        fig,
        "one model's mean over volumes",
        mode="markers",
        marker=dict(size=7, color="white", line=dict(width=1.5, color=NEUTRAL)),
    )
    for i, (name, g) in enumerate(groups.items()):
        ai, colour = g[endpoint], strategy_colour(name)
        lo, hi = ai["ci95"]
        verdict = (equivalence.get(name) or {}).get("claim", "")
        fig.add_trace(
            go.Scatter(
                x=[ai["mean"]],
                y=[i],
                mode="markers",
                marker=dict(symbol="diamond", size=13, color=colour),
                error_x=dict(
                    type="data",
                    symmetric=False,
                    color=colour,
                    thickness=2,
                    array=[None if hi is None else hi - ai["mean"]],
                    arrayminus=[None if lo is None else ai["mean"] - lo],
                ),
                name=name,
                showlegend=False,
                hovertemplate=f"{name}: mean %{{x:.4f}} [{number(lo, '.4f')}, {number(hi, '.4f')}]<br>{verdict}"
                "<extra></extra>",
            )
        )
        per_model = ok[ok["strategy"] == name].groupby("model")[endpoint].mean()
        fig.add_trace(
            go.Scatter(
                x=per_model.to_numpy(),
                y=[i + MODEL_ROW] * len(per_model),
                mode="markers",
                marker=dict(size=7, color="white", line=dict(width=1.5, color=colour)),
                text=list(per_model.index),
                name=f"{name} (models)",
                showlegend=False,
                hovertemplate="%{text}: mean over volumes %{x:.4f}<extra></extra>",
            )
        )
    fig.add_vline(x=0, line=dict(color="#888888", dash="dot"))
    fig.update_xaxes(title_text=ENDPOINT_AXES[endpoint], zeroline=False)
    fig.update_yaxes(
        tickvals=list(range(len(groups))),
        ticktext=list(groups),
        autorange="reversed",
        range=[len(groups) - 0.5, -0.5],
        showgrid=False,
    )
    return style(
        fig,
        f"{ENDPOINT_LABELS[endpoint]} per group",
        height=260 + 70 * len(groups),
        subtitle="diamond: mean over models of each model's mean over volumes, bar: its 95% t-interval "
        "over models; circles: the models; band: the equivalence margin of the TOST on |value|",
    )


def _spread(n: int) -> np.ndarray:
    """``n`` deterministic offsets in ``[-JITTER, JITTER]`` (subjects side by side, not on top of each other)."""
    return np.linspace(-JITTER, JITTER, n) if n > 1 else np.zeros(n)


def paired_lines_figure(rows: pd.DataFrame, endpoint: str = "asymmetry_index") -> go.Figure:
    """Per-subject ``endpoint`` (averaged over each group's models), one faint line per subject joining the
    groups (subjects spread side by side), and the mean over subjects as a bold line.

    Args:
        rows: ``cohort.csv``'s rows (failed pairs left out).
        endpoint: the column drawn (``summary["endpoint"]``).
    """
    ok = _ok(rows)
    table = ok.groupby(["subject", "strategy"], sort=False)[endpoint].mean().unstack("strategy")
    groups = list(dict.fromkeys(ok["strategy"]))
    table = table.reindex(columns=groups)
    fig = go.Figure()
    colours = [strategy_colour(g) for g in groups]
    for (subject, values), dx in zip(table.iterrows(), _spread(len(table)), strict=True):
        fig.add_trace(
            go.Scatter(
                x=np.arange(len(groups)) + dx,
                y=values.to_numpy(),
                mode="lines+markers",
                name=str(subject),
                showlegend=False,
                line=dict(color="rgba(120, 120, 120, 0.35)", width=1),
                marker=dict(size=6, color=[translucent(c, 0.8) for c in colours]),
                hovertemplate=f"{subject}, " + "%{text}: %{y:.4f}<extra></extra>",
                text=groups,
            )
        )
    fig.add_trace(
        go.Scatter(
            x=list(range(len(groups))),
            y=table.mean(axis=0).to_numpy(),
            mode="lines+markers",
            name="mean over subjects",
            line=dict(color="#222222", width=3),
            marker=dict(size=10, symbol="diamond", color=colours, line=dict(width=1, color="#222222")),
            hovertemplate="mean, %{text}: %{y:.4f}<extra></extra>",
            text=groups,
        )
    )
    _legend_key(
        fig,
        "one subject (mean over the group's models)",
        mode="lines+markers",
        line=dict(color="rgba(120, 120, 120, 0.6)", width=1),
        marker=dict(size=6, color="#888888"),
    )
    reference_line(fig, 0.0, "no asymmetry")
    fig.update_xaxes(
        tickvals=list(range(len(groups))),
        ticktext=groups,
        title_text="group (strategy)",
        range=[-0.5, len(groups) - 0.5],
    )
    fig.update_yaxes(title_text=f"{ENDPOINT_LABELS[endpoint].lower()} per volume")
    return style(
        fig,
        f"Per-subject {ENDPOINT_LABELS[endpoint].lower()}, paired across groups",
        height=500,
        subtitle="one faint line per subject, spread side by side; bold: the mean over subjects",
    )


def share_distribution_figure(rows: pd.DataFrame) -> go.Figure:
    """Per-volume mean share of each offset, one box per group and offset over its points (volume × model)."""
    ok = _ok(rows)
    columns = sorted((c for c in ok if c.startswith("share_")), key=lambda c: int(c.removeprefix("share_")))
    long = ok.melt(id_vars=["subject", "model", "strategy"], value_vars=columns, var_name="offset", value_name="share")
    long["offset"] = long["offset"].str.removeprefix("share_").map(lambda o: offset_label(int(o)))
    fig = go.Figure()
    for name, part in long.groupby("strategy", sort=False):
        colour = strategy_colour(str(name))
        fig.add_trace(
            go.Box(
                x=part["offset"],
                y=part["share"],
                name=str(name),
                line=dict(color=colour, width=1.5),
                fillcolor=translucent(colour, 0.25),
                marker=dict(color=colour, size=4, opacity=0.7),
                boxpoints="all",
                jitter=0.5,
                pointpos=0,
                text=part["subject"] + " · " + part["model"],
                hovertemplate="%{text}<br>offset %{x}: %{y:.3f}<extra></extra>",
            )
        )
    fig.update_layout(boxmode="group", boxgap=0.2)
    fig.update_xaxes(
        title_text="offset (slices)",
        categoryorder="array",
        categoryarray=[offset_label(int(c.removeprefix("share_"))) for c in columns],
    )
    fig.update_yaxes(title_text="mean share over the volume's slices")
    if columns:
        reference_line(fig, 1 / len(columns), f"equal share (1/{len(columns)})")
    return style(
        fig,
        "Mean share per offset per volume, by group",
        height=500,
        subtitle="points: one volume × checkpoint each; box: their quartiles",
    )


def cohort_figures(rows: pd.DataFrame, summary: Mapping) -> dict[str, go.Figure]:
    """``{file-safe name: figure}`` of a cohort, for :func:`explorer.reporting.export.write_figures`."""
    return {
        "cohort_forest": forest_figure(rows, summary),
        "cohort_paired": paired_lines_figure(rows, summary.get("endpoint", "asymmetry_index")),
        "cohort_shares": share_distribution_figure(rows),
    }
