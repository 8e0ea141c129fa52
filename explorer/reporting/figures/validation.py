"""The known-answer benchmark's figure: recovered channel asymmetry per method and planted direction.

A pure function of the aggregated table of :func:`explorer.validation.run_validation` (``validation.json``'s
``table``): one panel per regime (rows) × strategy (columns); in each, the methods along x and one marker per
planted direction with its t-interval over seeds. A method that recovers the planted dependency puts
``d = -1`` above 0 and ``d = +1`` below 0.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .style import style

__all__ = ["DIRECTION_COLOURS", "validation_figure"]


#: One colour per planted direction: previous slice, centre only, next slice (Okabe–Ito).
DIRECTION_COLOURS = {-1: "#0072B2", 0: "#6E6E6E", 1: "#D55E00"}
_TABLE_COLUMNS = ("regime", "strategy", "direction", "method", "channel_asymmetry", "ci95_lo", "ci95_hi", "seeds")


def _direction_name(d: int) -> str:
    return "centre only (d = 0)" if d == 0 else f"{'previous' if d < 0 else 'next'} slice (d = {d:+d})"


def validation_figure(table: pd.DataFrame) -> go.Figure:
    """Mean ``channel_asymmetry`` over seeds (95 % t-interval) per method, planted direction, strategy and regime.

    Args:
        table: the aggregated validation table, with at least the columns ``regime, strategy, direction,
            method, channel_asymmetry, ci95_lo, ci95_hi, seeds``.

    Raises:
        KeyError: a column is missing.
    """
    missing = [c for c in _TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise KeyError(f"validation table lacks {missing}")
    regimes = list(dict.fromkeys(table["regime"]))
    strategies = list(dict.fromkeys(table["strategy"]))
    methods = list(dict.fromkeys(table["method"]))
    fig = make_subplots(
        rows=len(regimes),
        cols=len(strategies),
        shared_yaxes=True,
        shared_xaxes=True,
        subplot_titles=[f"{s} · {r}" for r in regimes for s in strategies],
        horizontal_spacing=0.04,
        vertical_spacing=0.12,
    )
    shown: set[int] = set()
    for i, regime in enumerate(regimes, start=1):
        for j, strategy in enumerate(strategies, start=1):
            panel = table[(table["regime"] == regime) & (table["strategy"] == strategy)]
            for d, rows in panel.groupby("direction", sort=True):
                rows = rows.set_index("method").reindex(methods)
                mean = rows["channel_asymmetry"]
                fig.add_trace(
                    go.Scatter(
                        x=methods,
                        y=mean,
                        mode="markers",
                        name=_direction_name(int(d)),
                        legendgroup=str(d),
                        showlegend=int(d) not in shown,
                        marker=dict(size=10, color=DIRECTION_COLOURS.get(int(d), "#000")),
                        error_y=dict(
                            type="data",
                            symmetric=False,
                            array=(rows["ci95_hi"] - mean).to_numpy(),
                            arrayminus=(mean - rows["ci95_lo"]).to_numpy(),
                        ),
                        customdata=rows["seeds"].to_numpy(),
                        hovertemplate="%{x}: %{y:.3f} (%{customdata} seed(s))<extra>"
                        + _direction_name(int(d))
                        + "</extra>",
                    ),
                    row=i,
                    col=j,
                )
                shown.add(int(d))
            fig.add_hline(y=0, line=dict(color="#888888", dash="dot", width=1), row=i, col=j)
    fig.update_yaxes(title_text="channel asymmetry", col=1)
    fig.update_yaxes(range=[-1.05, 1.05])
    fig.update_xaxes(tickangle=-35, automargin=True)
    fig.update_layout(scattermode="group", width=max(560, 320 * len(strategies)))  # directions side by side
    return style(
        fig,
        "Recovered channel asymmetry vs planted direction",
        subtitle="mean over seeds with its 95% t-interval; d = −1 should lie above 0, d = +1 below",
        height=300 + 360 * len(regimes),
        title_pad=24,
    )
