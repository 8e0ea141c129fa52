"""Result views: distributions, share along the axis, first conv, statistics, each with its exports."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from explorer.attribution.methods import DEFAULT_METHOD
from explorer.reporting import figures
from explorer.reporting.export import figure_bytes, static_export_known, table_csv
from explorer.reporting.figures.tables import display_comparisons, display_tables, table_caption

#: How often a figure's download row looks again while the export browser is being probed.
PROBE_POLL_SECONDS = 2.0
MIME = {"png": "image/png", "svg": "image/svg+xml", "pdf": "application/pdf", "html": "text/html"}


def figure_downloads(fig: go.Figure, name: str, *, preset: str = "screen") -> None:
    """Download buttons for one figure: PNG, SVG, PDF (when kaleido can export here) and HTML, at ``preset``
    (a key of :data:`explorer.reporting.export.PRESETS`).

    The bytes are made only when a button is clicked (a callable), so rendering the page stays fast. While the
    export browser is still being probed (a few seconds after the first result) the row shows HTML only and
    redraws itself until the probe answers, so the first chart never waits for a browser start.
    """
    if static_export_known() is None:
        _pending_downloads(fig, name, preset)
    else:
        _downloads(fig, name, preset)


@st.fragment(run_every=PROBE_POLL_SECONDS)
def _pending_downloads(fig: go.Figure, name: str, preset: str) -> None:
    _downloads(fig, name, preset)


def _downloads(fig: go.Figure, name: str, preset: str) -> None:
    status = static_export_known()
    available, message = status or (False, "checking whether this machine can export PNG/SVG/PDF…")
    formats = ["png", "svg", "pdf", "html"] if available else ["html"]
    cols = st.columns(len(formats) + (0 if available else 1))
    for col, fmt in zip(cols, formats, strict=False):
        col.download_button(
            f"{fmt.upper()}",
            data=lambda f=fmt: figure_bytes(fig, f, preset=preset),
            file_name=f"{name}.{fmt}",
            mime=MIME[fmt],
            key=f"dl-{name}-{fmt}",
            on_click="ignore",
        )
    if not available:
        cols[-1].caption(f"PNG/SVG/PDF export unavailable: {message}" if status else f"PNG/SVG/PDF: {message}")


def table_download(table: pd.DataFrame, name: str) -> None:
    st.download_button(
        "CSV", data=table_csv(table), file_name=f"{name}.csv", mime="text/csv", key=f"dl-{name}-csv", on_click="ignore"
    )


def _switch_measure(method: str) -> None:
    """A button's callback (it runs before the next script run, so it may set the sidebar's widget): choose
    ``method`` and analyse at once (the result comes from the cache when it was computed before)."""
    st.session_state["method"] = method
    st.session_state["run_now"] = True


def measure_switch(summary: dict) -> None:
    """One click between the validated default and the paper's gradient saliency, on the same checkpoints."""
    method = summary.get("inputs", {}).get("method")
    other = "saliency" if method != "saliency" else DEFAULT_METHOD
    st.caption(
        f"Measure: **{method}**. "
        + (
            "Validated on planted dependencies (`explorer validate`): how much the prediction depends on each slice."
            if method == DEFAULT_METHOD
            else "Gradient saliency (the "
            "paper's measure) reads the first convolution's per-channel weighting; on planted dependencies it "
            "gave the wrong sign or nothing."
            if method == "saliency"
            else ""
        )
    )
    label = "the paper's gradient saliency" if other == "saliency" else f"the validated default ({other})"
    st.button(
        f"Show {label}",
        key="switch_measure",
        on_click=_switch_measure,
        args=(other,),
        help="Re-analyses the same scan and checkpoints with the other measure (from the cache when computed before).",
    )


def distributions(shares: pd.DataFrame, summary: dict) -> None:
    measure_switch(summary)
    kind = st.radio(
        "Plot",
        ["box", "violin"],
        horizontal=True,
        key="dist_kind",
        help="Each point is one slice's share of one checkpoint's attribution per input channel; the "
        "box or violin is their spread, the diamond the mean with its 95% CI. 1/3 each means no "
        "preference for either neighbour.",
    )
    fig = figures.distribution_figure(shares, summary, kind=kind)
    st.plotly_chart(fig, key="fig-distribution")
    figure_downloads(fig, f"share_distribution_{kind}")


def along_axis(shares: pd.DataFrame, summary: dict) -> None:
    fig = figures.share_along_axis_figure(shares, summary=summary)
    st.plotly_chart(fig, key="fig-along-axis")
    figure_downloads(fig, "share_along_axis")


def first_conv(summary: dict) -> None:
    st.markdown(
        "L1 norm of the first convolution's kernels per input channel, normalised: the weights the "
        "network starts from (ImageNet: R, G, B = slices z−1, z, z+1) and keeps after training."
    )
    fig = figures.first_conv_figure(summary)
    st.plotly_chart(fig, key="fig-first-conv")
    figure_downloads(fig, "first_conv_share")


def statistics(shares: pd.DataFrame, summary: dict) -> None:
    table = figures.stats_table(summary)
    st.subheader(
        "Per checkpoint",
        help="Mean share per input channel and mean asymmetry index over this scan's "
        "slices, with 95% bootstrap intervals; Dice against the mask and z-flip Dice where computed.",
    )
    for title, part in display_tables(table).items():
        st.markdown(f"**{title}**")
        st.dataframe(part, hide_index=True)
    st.caption(table_caption(table.drop(columns=["model", "strategy"], errors="ignore")))
    table_download(table, "statistics")
    comparison = figures.comparison_table(summary)
    st.subheader(
        "Between checkpoints (paired test of per-slice |AI|)",
        help="Do two checkpoints differ in how lopsided they are, slice by slice on this scan?",
    )
    if comparison.empty:
        st.caption("Show at least two checkpoints to compare them.")
    else:
        shown, footnote = display_comparisons(comparison, summary)
        st.dataframe(shown, hide_index=True)
        st.caption(footnote + "\n\n" + table_caption(shown))
        table_download(comparison, "comparisons")
    st.subheader(
        "Edge sensitivity",
        help="The mean asymmetry after dropping t slices at each end of the scan: "
        "a line that moves or crosses 0 says the edge slices (small masses, noisy ratios) drive the "
        "per-scan mean; compare the mass-weighted AI in the table.",
    )
    fig = figures.edge_sensitivity_figure(shares, summary)
    st.plotly_chart(fig, key="fig-edge-sensitivity")
    figure_downloads(fig, "edge_sensitivity")
    st.subheader("Per-slice shares")
    table_download(shares, "shares")
