"""Result views: distributions, share along the axis, first conv, statistics, each with its exports."""

from __future__ import annotations

import json

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from explorer import figures
from explorer.export import figure_bytes, report_zip, static_export_status, table_csv
from explorer.figures.tables import format_table, table_caption

MIME = {"png": "image/png", "svg": "image/svg+xml", "pdf": "application/pdf", "html": "text/html"}


def figure_downloads(fig: go.Figure, name: str) -> None:
    """Download buttons for one figure: PNG, SVG, PDF (when kaleido can export here) and HTML.

    The bytes are made only when a button is clicked (a callable), so rendering the page stays fast.
    """
    available, message = static_export_status()
    formats = ["png", "svg", "pdf", "html"] if available else ["html"]
    cols = st.columns(len(formats) + (0 if available else 1))
    for col, fmt in zip(cols, formats, strict=False):
        col.download_button(f"{fmt.upper()}", data=lambda f=fmt: figure_bytes(fig, f), file_name=f"{name}.{fmt}",
                            mime=MIME[fmt], key=f"dl-{name}-{fmt}", on_click="ignore")
    if not available:
        cols[-1].caption(f"PNG/SVG/PDF export unavailable: {message}")


def table_download(table: pd.DataFrame, name: str) -> None:
    st.download_button("CSV", data=table_csv(table), file_name=f"{name}.csv", mime="text/csv",
                       key=f"dl-{name}-csv", on_click="ignore")


def distributions(shares: pd.DataFrame, summary: dict) -> None:
    kind = st.radio("Plot", ["violin", "box"], horizontal=True, key="dist_kind")
    fig = figures.distribution_figure(shares, summary, kind=kind)
    st.plotly_chart(fig, key="fig-distribution")
    figure_downloads(fig, "distribution")


def along_axis(shares: pd.DataFrame) -> None:
    fig = figures.share_along_axis_figure(shares)
    st.plotly_chart(fig, key="fig-along-axis")
    figure_downloads(fig, "share_along_axis")


def first_conv(summary: dict) -> None:
    st.markdown("L1 norm of the first convolution's kernels per input channel, normalised: the weights the "
                "network starts from (ImageNet: R, G, B = slices z−1, z, z+1) and keeps after training.")
    fig = figures.first_conv_figure(summary)
    st.plotly_chart(fig, key="fig-first-conv")
    figure_downloads(fig, "first_conv_shares")


def statistics(shares: pd.DataFrame, summary: dict) -> None:
    table = figures.stats_table(summary)
    st.subheader("Per checkpoint")
    st.dataframe(format_table(table), hide_index=True)
    st.caption(table_caption(table))
    table_download(table, "statistics")
    comparison = figures.comparison_table(summary)
    st.subheader("Between checkpoints (paired test of per-slice |AI|)")
    if comparison.empty:
        st.caption("Show at least two checkpoints to compare them.")
    else:
        st.dataframe(format_table(comparison), hide_index=True)
        st.caption(table_caption(comparison))
        table_download(comparison, "comparison")
    st.subheader("Per-slice shares")
    table_download(shares, "shares")


def export(analysis, names: list[str], write_outputs) -> None:
    """The report bundle and the raw tables."""
    available, message = static_export_status()
    st.markdown("The **report** zip holds every figure (HTML" + (", PNG, SVG, PDF" if available else "") +
                "), `shares.csv`, `summary.json`, the tables and `parameters.json` (parameters, input hashes, "
                "package versions).")
    if not available:
        st.info(f"Static figure export is unavailable here: {message}")
    parameters = {**analysis.spec.record(), "checkpoints": names, "volume": analysis.volume.source}
    st.download_button("Download report (.zip)", data=lambda: report_zip(write_outputs, parameters=parameters),
                       file_name="explorer-report.zip", mime="application/zip", key="dl-report",
                       on_click="ignore", type="primary")
    st.download_button("summary.json", data=json.dumps(analysis.summary, indent=2, default=str),
                       file_name="summary.json", mime="application/json", key="dl-summary", on_click="ignore")
