"""The slice viewer: a slider and its views in one fragment, so moving the slider reruns only this part.

Everything it shows was computed by the analysis (predictions and float16 attribution maps are kept), so a
slider move only slices arrays and builds one figure.
"""

from __future__ import annotations

import time

import numpy as np
import streamlit as st

from explorer.attribution import METHODS
from explorer.figures import slice_view_figure, upright

from .diagnostics import cam_panel
from .views import figure_downloads


@st.fragment
def show(analysis, names: list[str]) -> None:
    """Slice slider, window/level, overlays and every shown checkpoint's per-channel attribution maps."""
    start = time.perf_counter()
    stack = analysis.volume.stack(analysis.axis)
    n = stack.shape[0]
    first = next(iter(analysis.models.values()))
    if first.maps is None:
        st.info("This analysis kept no attribution maps.")
        return
    c1, c2, c3 = st.columns([3, 2, 2])
    if st.session_state.get("viewer_slice", n) > n - 1:  # first view, or a shorter volume: start mid-stack
        st.session_state["viewer_slice"] = n // 2
    z = c1.slider(f"Slice ({analysis.axis})", 0, n - 1, key="viewer_slice")
    lo, hi = (float(v) for v in np.percentile(stack, [1, 99]))
    span = float(stack.max() - stack.min()) or 1.0
    window = c2.slider("Window (grey levels)", float(stack.min()), float(stack.max()), (lo, hi),
                       step=span / 200, key=f"viewer_window-{analysis.volume.sha256[:12]}")
    show_mask = c3.checkbox("Mask outline", value=analysis.mask is not None, key="viewer_mask",
                            disabled=analysis.mask is None)
    show_pred = c3.checkbox("Predictions", value=True, key="viewer_pred")
    shown = [m for m in names if m in analysis.models]
    image = upright(np.asarray(stack[z], dtype=np.float32))
    fig = slice_view_figure(
        image,
        mask=upright(analysis.mask.stack(analysis.axis)[z]) if (show_mask and analysis.mask is not None) else None,
        predictions={m: upright(analysis.models[m].prediction[z]) for m in shown} if show_pred else None,
        maps={m: upright(np.asarray(analysis.models[m].maps[z], dtype=np.float32)) for m in shown},
        offsets=first.offsets,
        signed=METHODS[analysis.spec.method].signed,
        window=window,
        title=f"Slice {z}: {analysis.spec.method} attribution per input channel (one shared scale)",
    )
    st.plotly_chart(fig, key="fig-slice")
    skipped = [m for m in shown if np.isnan(analysis.models[m].masses[z]).any()]
    if skipped:
        st.caption(f"Slice {z} skipped for {', '.join(skipped)}: the target is empty there (nothing predicted).")
    figure_downloads(fig, f"slice_{z:03d}")
    cam_panel(analysis, shown, np.asarray(stack[z], dtype=np.float32), z)
    st.session_state["viewer_ms"] = (time.perf_counter() - start) * 1000
    st.caption(f"Rendered in {st.session_state['viewer_ms']:.0f} ms (server time).")
