"""The debias report's figure: parent and children side by side (pure data → plotly figure).

Panels: held-out Dice, channel asymmetry under the default method with its 95% CI (first analysed scan),
first-conv L1 share per input channel, and the time each model took (the parent's recorded training time;
a child's surgery or training).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ...errors import InputError
from .style import checkpoint_look, offset_label, offset_values, style

__all__ = ["PANELS", "debias_figure", "debias_table"]


PANELS = ("Held-out Dice", "Channel asymmetry (95% CI)", "First-conv share per channel", "Time (s)")


def debias_figure(report: Mapping) -> go.Figure:
    """Four panels comparing the parent with each child of a ``debias.json`` report.

    Raises:
        InputError: a report without a parent.
    """
    if not report.get("parent"):
        raise InputError("debias report", "no parent", "a report written by explorer debias")
    records = [report["parent"], *report.get("children", [])]
    names = [r["name"] for r in records]
    entries = {
        r["name"]: {"strategy": r.get("strategy"), **({"parent": _parent(report)} if r is not records[0] else {})}
        for r in records
    }
    colours, _ = checkpoint_look(names, {"models": entries})
    labels = {r["name"]: r.get("variant", "") if r is not records[0] else "parent" for r in records}
    fig = make_subplots(rows=1, cols=4, subplot_titles=PANELS, horizontal_spacing=0.07)
    scan = next(iter(records[0].get("channel_asymmetry") or {}), None)
    for record in records:
        name, label, colour = record["name"], labels[record["name"]], colours[record["name"]]
        common = dict(name=label, legendgroup=name, marker_color=colour, showlegend=False)
        fig.add_trace(
            go.Bar(
                x=[label],
                y=[record.get("heldout_dice")],
                **common,
                hovertemplate=f"{name}<br>held-out Dice %{{y:.4f}}<extra></extra>",
            ),
            row=1,
            col=1,
        )
        split = (record.get("channel_asymmetry") or {}).get(scan) or {}
        if split.get("mean") is not None:
            lo, hi = split.get("ci95") or [None, None]
            errors = dict(
                type="data",
                symmetric=False,
                array=[(hi - split["mean"]) if hi is not None else 0],
                arrayminus=[(split["mean"] - lo) if lo is not None else 0],
            )
            fig.add_trace(
                go.Bar(
                    x=[label],
                    y=[split["mean"]],
                    error_y=errors,
                    **common,
                    hovertemplate=f"{name}<br>channel asymmetry %{{y:.4f}}<extra></extra>",
                ),
                row=1,
                col=2,
            )
        shares = offset_values(record.get("first_conv_share"), f"debias report: {name}.first_conv_share")
        fig.add_trace(
            go.Bar(
                x=[offset_label(o) for o in shares],
                y=list(shares.values()),
                **{**common, "showlegend": True},
                hovertemplate=f"{name}<br>offset %{{x}}: %{{y:.3f}}<extra></extra>",
            ),
            row=1,
            col=3,
        )
        fig.add_trace(
            go.Bar(
                x=[label], y=[record.get("seconds")], **common, hovertemplate=f"{name}<br>%{{y:.1f}} s<extra></extra>"
            ),
            row=1,
            col=4,
        )
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=-0.2))
    fig.update_yaxes(rangemode="tozero", row=1, col=1)
    fig.update_yaxes(rangemode="tozero", row=1, col=3)
    where = f" on {scan}" if scan else ""
    return style(
        fig,
        f"Debiasing {records[0]['name']}: parent and children",
        height=480,
        subtitle=f"held-out Dice; channel asymmetry under the default method{where}; first-conv L1 shares; "
        "time (parent: recorded training; child: surgery or training)",
    )


def _parent(report: Mapping) -> dict:
    parent = report["parent"]
    return {
        "name": parent["name"],
        "strategy": parent.get("strategy"),
        "seed": ((report.get("inputs") or {}).get("parent") or {}).get("seed"),
    }


def debias_table(report: Mapping) -> pd.DataFrame:
    """One row per model of a ``debias.json`` report: variant, held-out Dice and its change, the prediction's
    Dice against the parent's, channel asymmetry with its CI (first analysed scan), first-conv shares, seconds."""
    rows = []
    for record in [report["parent"], *report.get("children", [])]:
        split = next(iter((record.get("channel_asymmetry") or {}).values()), None) or {}
        ci = split.get("ci95") or [None, None]
        rows.append(
            {
                "model": record["name"],
                "variant": record.get("variant"),
                "mode": record.get("mode"),
                "heldout_dice": record.get("heldout_dice"),
                "dice_change": record.get("dice_change"),
                "prediction_dice_vs_parent": record.get("prediction_dice_vs_parent"),
                "channel_asymmetry": split.get("mean"),
                "ci95_lo": ci[0],
                "ci95_hi": ci[1],
                **{f"first_conv_{k}": v for k, v in (record.get("first_conv_share") or {}).items()},
                "seconds": record.get("seconds"),
                "from_cache": record.get("from_cache"),
            }
        )
    return pd.DataFrame(rows)
