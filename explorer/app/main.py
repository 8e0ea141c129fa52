"""Streamlit entry point: ``streamlit run explorer/app/main.py`` (``make app``).

Holds UI state only. The analysis is :func:`explorer.analysis.analyze`, the very function the CLI calls; its
results come from the backend's content-hash cache when the same inputs are asked for again, so showing or
hiding checkpoints and re-running never recomputes what is cached.
"""

from __future__ import annotations

import streamlit as st

from explorer.analysis import analyze, select_models
from explorer.app import cohort, diagnostics, resources, sidebar, viewer, views
from explorer.app.guard import guard
from explorer.outputs import write_outputs

st.set_page_config(page_title="explorer: 2D+ saliency asymmetry", layout="wide")


def _run(settings: sidebar.Settings):
    bar = st.progress(0.0, text="Starting the analysis…")
    with guard("The analysis") as ok:
        analysis = analyze(settings.study, list(settings.checkpoints), settings.spec,
                           progress=lambda f, msg: bar.progress(min(max(f, 0.0), 1.0), text=msg))
    bar.empty()
    return analysis if ok else None


def main() -> None:
    st.title("Do 2D+ networks look at one neighbour more than the other?")
    st.caption("Per-slice gradient attribution across the input channels (slices z−1, z, z+1) of 2D+ "
               "segmentation checkpoints trained with different initialisations — arXiv 2505.14105.")
    resources.warm_static_export()
    if st.sidebar.radio("Mode", ["One volume", "Cohort"], horizontal=True, key="mode") == "Cohort":
        cohort.show()
        return
    settings = sidebar.show()
    state = st.session_state
    if settings is not None:
        first_visit = "analysis" not in state
        clicked = st.sidebar.button("Analyse", type="primary", key="analyse")
        if clicked or first_visit:
            analysis = _run(settings)
            state["analysis"], state["analysis_key"] = analysis, settings.key if analysis else None
            state.pop("shown_models", None)  # a new analysis shows all of its checkpoints
        elif state.get("analysis_key") != settings.key:
            st.info("The inputs changed: press **Analyse** to update the results.")
    analysis = state.get("analysis")
    if analysis is None:
        st.info("Choose a volume and at least one checkpoint in the sidebar, then press **Analyse**.")
        return
    names = st.multiselect("Show checkpoints", list(analysis.models), default=list(analysis.models),
                           key="shown_models", help="Hiding or showing checkpoints never recomputes.")
    if not names:
        st.warning("Select at least one checkpoint to show.")
        return
    shown = select_models(analysis, names)
    st.caption(f"Analysed: {analysis.volume.source} · {analysis.spec.method} / target {analysis.spec.target} · "
               f"{analysis.axis} slices · {len(analysis.models)} checkpoint(s)")
    # One view at a time (not st.tabs, which builds every tab's figures on each rerun): a slider move or a
    # toggle then rebuilds only what is on screen.
    view = st.radio("View", list(VIEWS), horizontal=True, key="view", label_visibility="collapsed")
    with guard(view):
        VIEWS[view](shown, names)


VIEWS = {
    "Distributions": lambda shown, names: views.distributions(shown.shares, shown.summary),
    "Along the axis": lambda shown, names: views.along_axis(shown.shares),
    "Slice viewer": lambda shown, names: viewer.show(shown, names),
    "First conv": lambda shown, names: views.first_conv(shown.summary),
    "Statistics": lambda shown, names: views.statistics(shown.shares, shown.summary),
    "Diagnostics": lambda shown, names: diagnostics.show(shown),
    "Export": lambda shown, names: views.export(shown, names, lambda directory: write_outputs(shown, directory)),
}

main()
