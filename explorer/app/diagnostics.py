"""The Diagnostics tab: background attention, logit shift, and the opt-in Grad-CAM and sanity check.

Background attention and logit histograms come with every analysis; Grad-CAM and the sanity check re-run
the models, so they start from a button. That re-runs :func:`explorer.analysis.analyze` (the function the
CLI calls) with the same inputs: the attribution comes from the backend's cache, only the diagnostics are new.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import streamlit as st

from explorer.analysis import analyze
from explorer.diagnostics import DIAGNOSTICS, DiagnosticOptions, diagnostics_tables
from explorer.diagnostics.cam import cam_layers, default_cam_layer
from explorer.reporting.figures import diagnostics as figs
from explorer.reporting.figures import upright
from explorer.reporting.figures.tables import logit_shift_table

from .guard import guard
from .views import figure_downloads, table_download


def _rerun(options: DiagnosticOptions) -> None:
    """Re-run the session's full analysis with ``options``; the result replaces it in the session."""
    full = st.session_state["analysis"]
    with st.spinner("Running the diagnostics (attribution comes from the cache)…"), guard("The diagnostics") as ok:
        result = analyze(full.study, list(full.checkpoints.values()), replace(full.spec, diagnostics=options))
    if ok:
        st.session_state["analysis"] = result
        st.rerun()


def _controls(analysis) -> None:
    current = analysis.summary["inputs"].get("diagnostics", {})
    first = next(iter(analysis.checkpoints.values()), None)
    model = first.build_model("cpu") if first is not None else None
    layers = cam_layers(model) if model is not None else []
    c1, c2, c3, c4 = st.columns([2, 3, 2, 2])
    dilation = c1.number_input(
        "Foreground dilation (pixels)", 0, 50, int(current.get("dilation", 0)), key="diag_dilation"
    )
    layer = c2.selectbox(
        "Grad-CAM layer", layers, index=layers.index(default_cam_layer(model)) if layers else None, key="diag_layer"
    )
    n = c3.number_input("Sanity-check slices", 1, 64, int(current.get("sanity_slices", 12)), key="diag_slices")
    c4.write("")
    if c4.button("Run Grad-CAM and sanity check", key="diag_run", type="primary"):
        _rerun(DiagnosticOptions(dilation=int(dilation), cam=True, cam_layer=layer, sanity=True, sanity_slices=int(n)))
    elif int(dilation) != int(current.get("dilation", 0)):
        if st.button("Apply the dilation", key="diag_apply"):
            _rerun(
                DiagnosticOptions(
                    dilation=int(dilation),
                    cam=bool(current.get("cam")),
                    cam_layer=current.get("cam_layer"),
                    sanity=bool(current.get("sanity")),
                    sanity_slices=int(current.get("sanity_slices", 12)),
                )
            )


def show(analysis) -> None:
    """The tab: controls, the four diagnostics side by side across the shown checkpoints, their exports."""
    st.markdown("\n".join(f"- **{d.name}** — {d.description} ({d.reference})" for d in DIAGNOSTICS.values()))
    _controls(analysis)
    tables = diagnostics_tables(analysis.models)
    slices = tables["slices"]
    built = figs.diagnostics_figures(tables, analysis.summary)  # the same figures the exports write
    st.subheader("Background attention")
    if (fig := built.get("background_attention")) is not None:
        st.plotly_chart(fig, key="fig-background")
        figure_downloads(fig, "background_attention")
    else:
        st.caption("No slice has both foreground and attribution.")
    st.subheader("Logit shift")
    st.table(logit_shift_table(analysis.summary).set_index("checkpoint"))  # wraps: a missing value says why
    if (fig := built.get("logit_histograms")) is not None:
        st.plotly_chart(fig, key="fig-logits")
        figure_downloads(fig, "logit_histograms")
        table_download(tables["logit_histograms"], "logit_histograms")
    st.subheader("Grad-CAM (standard vs |logit| target)")
    if (fig := built.get("cam_background")) is not None:
        st.plotly_chart(fig, key="fig-cam-background")
        figure_downloads(fig, "cam_background")
        st.caption("The per-slice CAMs are in the slice viewer.")
    else:
        st.caption("Not run yet: press **Run Grad-CAM and sanity check**.")
    st.subheader("Sanity check (parameter randomisation)")
    if (fig := built.get("sanity_check")) is not None:
        for name, entry in tables["sanity"].items():
            if entry["flagged"]:
                st.warning(
                    f"**{name}**: {entry['method']} maps barely change when the weights are randomised "
                    f"(rank correlation {entry['rank_correlation'][list(entry['rank_correlation'])[-1]]:.2f} "
                    f"≥ {entry['threshold']}): they reflect the input more than the model."
                )
        st.plotly_chart(fig, key="fig-sanity")
        figure_downloads(fig, "sanity_check")
    else:
        st.caption("Not run yet: press **Run Grad-CAM and sanity check**.")
    st.subheader("Per-slice diagnostics")
    table_download(slices, "diagnostics")


def cam_panel(analysis, names: list[str], image: np.ndarray, z: int) -> None:
    """Grad-CAM of slice ``z`` (``image`` in stack orientation) for the shown checkpoints, shown upright beside
    the gradient maps (when it was computed)."""
    cams = {
        m: upright(np.asarray(analysis.models[m].diagnostics.cam_maps[z], dtype=np.float32))
        for m in names
        if analysis.models[m].diagnostics.cam_maps is not None
    }
    if not cams:
        st.caption("Grad-CAM: press **Run Grad-CAM and sanity check** in the Diagnostics tab to add it here.")
        return
    layer = next(analysis.summary["models"][m]["cam"]["layer"] for m in cams)
    fig = figs.cam_figure(upright(image), cams, layer=layer, title=f"Slice {z}: Grad-CAM on {layer}")
    st.plotly_chart(fig, key="fig-cam")
    figure_downloads(fig, f"gradcam_{z:03d}")
