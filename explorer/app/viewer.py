"""The slice viewer: a slider and its views in one fragment, so moving the slider reruns only this part.

Everything it shows was computed by the analysis (predictions and float16 attribution maps are kept), so a
slider move only slices arrays and builds one figure. :func:`slice_figure` is shared with the report export
(the report holds the figure of the slice chosen here).
"""

from __future__ import annotations

import time

import numpy as np
import streamlit as st

from explorer.attribution import METHODS
from explorer.figures import slice_view_figure, upright

from .diagnostics import cam_panel
from .views import figure_downloads

# (left, right, top, bottom) of an upright canonical (RAS+) slice, in neurological convention.
ORIENTATION = {"axial": ("L", "R", "A", "P"), "coronal": ("L", "R", "S", "I"), "sagittal": ("P", "A", "S", "I")}
NO_GEOMETRY = (".tif", ".tiff")


def as_stored(analysis) -> bool:
    """Whether slices are shown as stored: an axial slice of a TIFF stack is one page, row 0 at the top and
    column 0 at the left, as Fiji/ImageJ shows it (a TIFF has no patient orientation to turn upright)."""
    return analysis.axis == "axial" and analysis.volume.source.lower().endswith(NO_GEOMETRY)


def slice_figure(analysis, names: list[str], z: int, *, window=None, show_mask: bool = True,
                 show_pred: bool = True, per_row: bool = False, opacity: float | None = None):
    """The slice viewer's figure of slice ``z`` for the checkpoints ``names`` (the maps must have been kept)."""
    stack = analysis.volume.stack(analysis.axis)
    stored = as_stored(analysis)
    turn = (lambda a: np.asarray(a)) if stored else upright
    shown = [m for m in names if m in analysis.models]
    first = analysis.models[shown[0]]
    mask = analysis.mask.stack(analysis.axis)[z] if (show_mask and analysis.mask is not None) else None
    labels = ("col 0", "col →", "row 0", "row ↓") if stored else ORIENTATION[analysis.axis]
    return slice_view_figure(
        turn(np.asarray(stack[z], dtype=np.float32)),
        mask=None if mask is None else turn(mask),
        predictions={m: turn(analysis.models[m].prediction[z]) for m in shown} if show_pred else None,
        maps={m: turn(np.asarray(analysis.models[m].maps[z], dtype=np.float32)) for m in shown},
        offsets=first.offsets, signed=METHODS[analysis.spec.method].signed, window=window,
        title=f"Slice {z}: {analysis.spec.method} attribution per input channel", summary=analysis.summary,
        per_row_scale=per_row, map_opacity=opacity, orientation=labels)


@st.fragment
def show(analysis, names: list[str]) -> None:
    """Slice slider, window/level, overlays and every shown checkpoint's per-channel attribution maps."""
    start = time.perf_counter()
    stack = analysis.volume.stack(analysis.axis)
    n = stack.shape[0]
    if next(iter(analysis.models.values())).maps is None:
        st.info("This analysis kept no attribution maps.")
        return
    c1, c2, c3, c4 = st.columns([3, 2, 2, 2])
    if st.session_state.get("viewer_slice", n) > n - 1:  # first view, or a shorter volume: start mid-stack
        st.session_state["viewer_slice"] = n // 2
    z = c1.slider(f"Slice ({analysis.axis})", 0, n - 1, key="viewer_slice")
    lo, hi = (float(v) for v in np.percentile(stack, [1, 99]))
    span = float(stack.max() - stack.min()) or 1.0
    window = c2.slider("Window (grey levels)", float(stack.min()), float(stack.max()), (lo, hi),
                       step=span / 200, key=f"viewer_window-{analysis.volume.sha256[:12]}")
    opacity = c2.slider("Attribution opacity over the anatomy", 0.0, 1.0, 0.7, 0.05, key="viewer_opacity",
                        help="1: the attribution alone; lower: the anatomy shows through.")
    show_mask = c3.checkbox("Mask outline", value=analysis.mask is not None, key="viewer_mask",
                            disabled=analysis.mask is None)
    show_pred = c3.checkbox("Prediction tint", value=True, key="viewer_pred")
    per_row = c4.checkbox("One colour scale per checkpoint", value=False, key="viewer_per_row",
                          help="Off: one scale for all, so rows compare (large gradients of a random network "
                               "then darken the others). On: each row uses its own range.")
    fig = slice_figure(analysis, names, z, window=window, show_mask=show_mask, show_pred=show_pred,
                       per_row=per_row, opacity=None if opacity >= 1.0 else opacity)
    st.plotly_chart(fig, key="fig-slice")
    if as_stored(analysis):
        st.caption("TIFF stack: each slice is shown as stored (row 0 at the top), as Fiji shows the page.")
    shown = [m for m in names if m in analysis.models]
    skipped = [m for m in shown if np.isnan(analysis.models[m].masses[z]).any()]
    if skipped:
        st.caption(f"Slice {z} skipped for {', '.join(skipped)}: the target is empty there (nothing predicted).")
    figure_downloads(fig, f"slice_{z:03d}")
    cam_panel(analysis, shown, np.asarray(stack[z], dtype=np.float32), z)
    st.session_state["viewer_ms"] = (time.perf_counter() - start) * 1000
    st.caption(f"Rendered in {st.session_state['viewer_ms']:.0f} ms (server time).")
