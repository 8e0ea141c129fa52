"""Cohort figures: group AI with CIs (forest plot), per-subject paired lines, share distributions per group.

Pure functions of ``cohort.csv``'s rows and ``cohort_summary.json``'s summary (see :mod:`explorer.cohort`);
groups are coloured by strategy as everywhere else (:data:`explorer.figures._style.STRATEGY_COLOURS`).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import plotly.graph_objects as go

from ._style import FONT, model_colours


def _colour(strategy: str) -> str:
    return model_colours([strategy], {strategy: strategy}, {strategy: None})[strategy]


#: The cohort's endpoints (``summary["endpoint"]``) as titles and axis labels.
ENDPOINT_LABELS = {"channel_asymmetry": "Channel asymmetry", "asymmetry_index": "Asymmetry index"}
ENDPOINT_AXES = {"channel_asymmetry": "(AI(x) + AI(reversed x)) / 2, channel coordinates",
                 "asymmetry_index": "AI₁ = (s₋₁ − s₊₁) / (s₋₁ + s₊₁)"}


def _ok(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["error"].isna()] if "error" in rows else rows


def forest_figure(rows: pd.DataFrame, summary: Mapping) -> go.Figure:
    """Group AI (mean over models of the mean over volumes) with its hierarchical-bootstrap 95% CI, one line
    per group, and each model's mean over volumes as a point."""
    fig = go.Figure()
    groups, endpoint = summary["groups"], summary.get("endpoint", "asymmetry_index")
    ok = _ok(rows)
    for name, g in groups.items():
        ai = g[endpoint]
        lo, hi = ai["ci95"]
        fig.add_trace(go.Scatter(x=[ai["mean"]], y=[name], mode="markers", marker=dict(symbol="diamond", size=13,
                                 color=_colour(name)), error_x=dict(type="data", symmetric=False,
                                 array=[None if hi is None else hi - ai["mean"]],
                                 arrayminus=[None if lo is None else ai["mean"] - lo]),
                                 name=f"{name} (group)", hovertemplate="%{y}: AI %{x:.4f}<extra></extra>"))
        per_model = ok[ok["strategy"] == name].groupby("model")[endpoint].mean()
        fig.add_trace(go.Scatter(x=per_model.to_numpy(), y=[name] * len(per_model), mode="markers",
                                 marker=dict(size=7, color=_colour(name), opacity=0.5, line=dict(width=1)),
                                 text=list(per_model.index), name=f"{name} (models)", showlegend=False,
                                 hovertemplate="%{text}: mean AI %{x:.4f}<extra></extra>"))
    fig.add_vline(x=0, line=dict(color="#888888", dash="dot"))
    fig.update_layout(title=f"{ENDPOINT_LABELS[endpoint]} per group (mean over models of the mean over volumes, "
                      "95% CI)", xaxis_title=ENDPOINT_AXES[endpoint], yaxis=dict(autorange="reversed"),
                      font=FONT, showlegend=False, height=160 + 60 * len(groups))
    return fig


def paired_lines_figure(rows: pd.DataFrame, endpoint: str = "asymmetry_index") -> go.Figure:
    """Per-subject ``endpoint`` (averaged over each group's models) joined by one line per subject across the
    groups."""
    ok = _ok(rows)
    table = ok.groupby(["subject", "strategy"], sort=False)[endpoint].mean().unstack("strategy")
    groups = list(dict.fromkeys(ok["strategy"]))
    table = table.reindex(columns=groups)
    fig = go.Figure()
    for subject, values in table.iterrows():
        fig.add_trace(go.Scatter(x=groups, y=values.to_numpy(), mode="lines+markers", name=str(subject),
                                 line=dict(color="#999999", width=1), marker=dict(size=7, color=[_colour(g)
                                 for g in groups]), hovertemplate=f"{subject}, " + "%{x}: AI %{y:.4f}<extra></extra>"))
    fig.add_hline(y=0, line=dict(color="#888888", dash="dot"))
    fig.update_layout(title=f"Per-subject {ENDPOINT_LABELS[endpoint].lower()}, paired across groups",
                      yaxis_title=f"{ENDPOINT_LABELS[endpoint]} (per volume)",
                      font=FONT, showlegend=False)
    return fig


def share_distribution_figure(rows: pd.DataFrame) -> go.Figure:
    """Per-volume mean share of each offset, one box per group and offset (points = volume × model)."""
    ok = _ok(rows)
    columns = sorted((c for c in ok if c.startswith("share_")), key=lambda c: int(c.removeprefix("share_")))
    long = ok.melt(id_vars=["subject", "model", "strategy"], value_vars=columns, var_name="offset", value_name="share")
    long["offset"] = long["offset"].str.removeprefix("share_").map(lambda o: f"{int(o):+d}" if int(o) else "0")
    fig = go.Figure()
    for name, part in long.groupby("strategy", sort=False):
        fig.add_trace(go.Box(x=part["offset"], y=part["share"], name=str(name), marker_color=_colour(str(name)),
                             boxpoints="all", jitter=0.3, pointpos=0, text=part["subject"] + " · " + part["model"]))
    fig.update_layout(boxmode="group", title="Mean share per offset per volume, by group", xaxis_title="offset",
                      yaxis_title="mean share over the volume's slices", font=FONT)
    return fig


def cohort_figures(rows: pd.DataFrame, summary: Mapping) -> dict[str, go.Figure]:
    """``{file-safe name: figure}`` of a cohort, for :func:`explorer.export.write_figures`."""
    return {"cohort_forest": forest_figure(rows, summary),
            "cohort_paired": paired_lines_figure(rows, summary.get("endpoint", "asymmetry_index")),
            "cohort_shares": share_distribution_figure(rows)}
