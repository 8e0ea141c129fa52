"""The Export view: every figure in every format, every table, the NIfTI maps, and the report zip.

Every download is made only when its button is clicked (a callable), so the view renders fast. The report zip
holds what ``explorer analyze`` writes (:func:`explorer.reporting.outputs.write_outputs`, with the maps), the slice
viewer's figure of the chosen slice and a one-page PDF summary (:mod:`explorer.reporting.summary_pdf`).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path

import streamlit as st

from explorer.diagnostics import diagnostics_tables
from explorer.reporting.export import PRESETS, report_zip, static_export_status, write_figures
from explorer.reporting.figures import analysis_figures
from explorer.reporting.figures import diagnostics as diagnostic_figs
from explorer.reporting.figures.tables import comparison_table, stats_table
from explorer.reporting.outputs import write_attribution_map, write_label_map, write_outputs, write_probability_map

from ..reporting.summary_pdf import summary_pdf
from .viewer import remembered, settings, slice_figure
from .views import figure_downloads, table_download


def all_figures(analysis) -> dict:
    """Every figure of the analysis, by file stem (the same set ``explorer analyze`` writes)."""
    tables = diagnostics_tables(analysis.models)
    return {
        **analysis_figures(analysis.shares, analysis.summary),
        **diagnostic_figs.diagnostics_figures(tables, analysis.summary),
    }


def _nifti_bytes(analysis, name: str, kind: str) -> bytes:
    """One NIfTI map of checkpoint ``name`` (``label``, ``probability`` or ``attribution``) as bytes."""
    with tempfile.TemporaryDirectory(prefix="explorer-nifti-") as tmp:
        directory = Path(tmp)
        if kind == "label":
            path = write_label_map(analysis, name, directory / "label.nii.gz")
        elif kind == "probability":
            path = write_probability_map(analysis, name, directory / "probability.nii.gz")
        else:  # the 4D attribution map exactly as `explorer analyze --save-maps` writes it
            path = write_attribution_map(analysis, name, directory / "attribution.nii.gz")
        return path.read_bytes()


def report_bytes(analysis, names: list[str], z: int, preset: str = "screen", view: Mapping | None = None) -> bytes:
    """The report zip: the analysis' outputs with maps, the slice figure of slice ``z`` drawn as the slice viewer
    draws it with the settings ``view`` (:func:`explorer.app.viewer.settings`; None: the viewer's defaults),
    and ``summary.pdf``."""
    view = dict(view or settings(analysis, {}))
    parameters = {
        **analysis.spec.record(),
        "checkpoints": names,
        "volume": analysis.volume.source,
        "slice_viewer_slice": z,
        "slice_viewer_settings": view,
        "figure_preset": preset,
    }
    figures = all_figures(analysis)

    def write(root: Path) -> None:
        write_outputs(analysis, root, figure_preset=preset)
        if analysis.models[names[0]].maps is not None:
            write_figures({f"slice_{z:03d}": slice_figure(analysis, names, z, **view)}, root / "figures", preset=preset)
        (root / "summary.pdf").write_bytes(summary_pdf(analysis, figures, parameters=parameters))

    return report_zip(write, parameters=parameters)


def show(analysis, names: list[str]) -> None:
    """The view: report first, then figures, tables and maps."""
    available, message = static_export_status()
    n = analysis.volume.stack(analysis.axis).shape[0]
    saved, view = remembered(analysis, st.session_state)  # the slice viewer's last slice and settings
    z = min(saved if saved is not None else int(st.session_state.get("viewer_slice", n // 2)), n - 1)
    preset = st.selectbox(
        "Figure size",
        list(PRESETS),
        key="export_preset",
        help="screen: as shown; paper-single / paper-double: vector figures one or two journal "
        "columns wide, fonts sized to survive the scaling.",
    )
    st.subheader("Report")
    st.markdown(
        f"One zip: every figure ({'PNG, SVG, PDF, ' if available else ''}HTML), the tables, `summary.json`, "
        f"`parameters.json` (parameters, input hashes, package versions), the NIfTI maps, the slice "
        f"viewer's figure of slice **{z}** (change it in the Slice viewer) and `summary.pdf`, a one-page "
        "summary to attach to a report."
    )
    if not available:
        st.info(f"Static figure export is unavailable here: {message}")
    st.download_button(
        "Download report (.zip)",
        data=lambda: report_bytes(analysis, names, z, preset, view),
        file_name="explorer-report.zip",
        mime="application/zip",
        key="dl-report",
        on_click="ignore",
        type="primary",
    )
    st.subheader("Figures")
    for stem, fig in all_figures(analysis).items():
        st.markdown(f"**{stem.replace('_', ' ')}**")
        figure_downloads(fig, f"export-{stem}", preset=preset)
    st.subheader("Tables (CSV)")
    tables = diagnostics_tables(analysis.models)
    for stem, table in {
        "shares": analysis.shares,
        "statistics": stats_table(analysis.summary),
        "comparisons": comparison_table(analysis.summary),
        "diagnostics": tables["slices"],
        "logit_histograms": tables["logit_histograms"],
    }.items():
        st.markdown(f"`{stem}.csv`")
        table_download(table, f"export-{stem}")
    st.download_button(
        "summary.json",
        data=json.dumps(analysis.summary, indent=2, default=str),
        file_name="summary.json",
        mime="application/json",
        key="dl-summary",
        on_click="ignore",
    )
    st.subheader("NIfTI maps (on the input scan's grid)")
    st.caption(
        "Label map: 1 = predicted foreground. Probability: sigmoid of the logits. Attribution: one volume "
        "per input channel (4D). They overlay the uploaded scan in Slicer, ITK-SNAP or NiiVue."
    )
    kinds = ["label", "probability"] + (["attribution"] if analysis.models[names[0]].maps is not None else [])
    for name in names:
        cols = st.columns(len(kinds) + 1)
        cols[0].markdown(f"**{name}**")
        for col, kind in zip(cols[1:], kinds, strict=True):
            col.download_button(
                f"{kind}.nii.gz",
                data=lambda m=name, k=kind: _nifti_bytes(analysis, m, k),
                file_name=f"{name}_{kind}.nii.gz",
                mime="application/gzip",
                key=f"dl-nifti-{name}-{kind}",
                on_click="ignore",
            )
