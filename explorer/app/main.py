"""Streamlit entry point: ``streamlit run explorer/app/main.py`` (``make app``).

Holds UI state only. The analysis is :func:`explorer.analysis.analyze`, the very function the CLI calls, run in a
background thread (:mod:`explorer.app.runner`) so that clicks on the views do not abandon it; its results come
from the backend's content-hash cache when the same inputs are asked for again (also after a page reload), so
showing or hiding checkpoints and re-running never recomputes what is cached.
"""

from __future__ import annotations

import streamlit as st

from explorer.analysis import select_models
from explorer.app import (
    cohort,
    debias,
    diagnostics,
    explain,
    exports,
    resources,
    runner,
    sidebar,
    viewer,
    viewer3d,
    views,
)
from explorer.app.guard import guard

st.set_page_config(page_title="explorer: 2D+ neighbour asymmetry", layout="wide")


def _shown(analysis) -> list[str]:
    """The "Show checkpoints" picker: a fresh widget per analysis (its key carries the analysis number), so it
    always lists exactly the checkpoints of the analysis the charts show, in the analysis' order."""
    key = f"shown_models-{st.session_state.get('analysis_id', 0)}"
    labels = sidebar.chip_labels(analysis.models, analysis.summary)
    chosen = st.multiselect(
        "Show checkpoints",
        list(analysis.models),
        default=list(analysis.models),
        key=key,
        format_func=labels.get,
        help="Hiding or showing checkpoints never recomputes. Full "
        "names:\n\n" + "\n".join(f"- {label}: `{name}`" for name, label in labels.items()),
    )
    return [m for m in analysis.models if m in chosen]


def main() -> None:
    st.title("Do 2D+ networks look at one neighbour more than the other?")
    st.caption(
        "Which input slice (z−1, z, z+1) does each 2D+ segmentation checkpoint depend on, per slice of "
        "the scan? Occlusion by default (validated on planted dependencies), the paper's gradient saliency "
        "one click away — arXiv 2505.14105."
    )
    if st.sidebar.radio("Mode", ["One volume", "Cohort"], horizontal=True, key="mode") == "Cohort":
        cohort.show()
        return
    debias.collect()  # a finished debias run's children join the sidebar's list before it is drawn
    runner.controls(sidebar.show())
    runner.progress()
    analysis = st.session_state.get("analysis")
    if analysis is None and (analysis := runner.preview()) is not None:
        st.caption("Showing the first checkpoint while the others are analysed.")
    if analysis is None:
        if "job" not in st.session_state:
            st.info("Choose a volume and at least one checkpoint in the sidebar, then press **Analyse**.")
        return
    resources.warm_static_export()  # after the first result: its Chromium start would compete with the analysis
    names = _shown(analysis)
    if not names:
        st.warning("Select at least one checkpoint to show.")
        return
    shown = select_models(analysis, names)
    st.caption(
        f"Analysed: {analysis.volume.source} · {analysis.spec.method} / target {analysis.spec.target} · "
        f"{analysis.axis} slices · {len(analysis.models)} checkpoint(s)"
    )
    # One view at a time (not st.tabs, which builds every tab's figures on each rerun): a slider move or a
    # toggle then rebuilds only what is on screen.
    view = st.radio("View", list(VIEWS), horizontal=True, key="view", label_visibility="collapsed")
    explain.how_to_read(view)
    with guard(view):
        VIEWS[view](shown, names)


# One line per view (the label, then what renders it from the shown analysis and the shown names).
VIEWS = {
    "Distributions": lambda shown, names: views.distributions(shown.shares, shown.summary),
    "Along the axis": lambda shown, names: views.along_axis(shown.shares, shown.summary),
    "Slice viewer": lambda shown, names: viewer.show(shown, names),
    "3D viewer": lambda shown, names: viewer3d.show(shown, names),
    "First conv": lambda shown, names: views.first_conv(shown.summary),
    "Statistics": lambda shown, names: views.statistics(shown.shares, shown.summary),
    "Diagnostics": lambda shown, names: diagnostics.show(shown),
    "Export": lambda shown, names: exports.show(shown, names),
    "Debias": lambda shown, names: debias.show(shown),
}

main()
