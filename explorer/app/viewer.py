"""The slice viewer: a slider and its views in one fragment, so moving the slider reruns only this part.

Everything it shows was computed by the analysis (predictions and float16 attribution maps are kept), so a
slider move only slices arrays and builds one figure. :func:`slice_figure` is shared with the report export
(the report holds the figure of the slice chosen here).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import streamlit as st

from explorer.attribution.methods import METHODS
from explorer.reporting.figures import SliceLook, slice_view_figure, upright

from .diagnostics import cam_panel
from .views import figure_downloads

# (left, right, top, bottom) of an upright canonical (RAS+) slice, in neurological convention.
ORIENTATION = {"axial": ("L", "R", "A", "P"), "coronal": ("L", "R", "S", "I"), "sagittal": ("P", "A", "S", "I")}
NO_GEOMETRY = (".tif", ".tiff")
DEFAULT_OPACITY = 0.7  # of the attribution over the anatomy
SAVED = "slice_viewer_saved"  # not a widget key: it outlives the view, for the report


def as_stored(analysis) -> bool:
    """Whether slices are shown as stored: an axial slice of a TIFF stack is one page, row 0 at the top and
    column 0 at the left, as Fiji/ImageJ shows it (a TIFF has no patient orientation to turn upright)."""
    return analysis.axis == "axial" and analysis.volume.source.lower().endswith(NO_GEOMETRY)


def default_window(analysis) -> tuple[float, float]:
    """The viewer's default grey-level window: the 1st and 99th percentiles of the whole stack."""
    lo, hi = (float(v) for v in np.percentile(analysis.volume.stack(analysis.axis), [1, 99]))
    return lo, hi


def window_key(analysis) -> str:
    """The session-state key of the window slider (one per scan, so another scan starts at its default)."""
    return f"viewer_window-{analysis.volume.sha256[:12]}"


def settings(analysis, state: Mapping) -> dict:
    """The slice viewer's display settings in ``state`` (``st.session_state``), defaults where unset: the
    keyword arguments of :func:`slice_figure`, so the report draws the slice exactly as the screen does."""
    opacity = float(state.get("viewer_opacity", DEFAULT_OPACITY))
    return {
        "window": tuple(float(v) for v in state.get(window_key(analysis), default_window(analysis))),
        "show_mask": bool(state.get("viewer_mask", analysis.mask is not None)),
        "show_pred": bool(state.get("viewer_pred", True)),
        "per_row": bool(state.get("viewer_per_row", False)),
        "opacity": None if opacity >= 1.0 else opacity,
    }


def remembered(analysis, state: Mapping) -> tuple[int | None, dict]:
    """The slice and :func:`settings` the viewer last drew for this scan (kept under :data:`SAVED`, since
    Streamlit drops a widget's state once its view is left), else ``(None, the defaults)``."""
    saved = state.get(SAVED) or {}
    if saved.get("volume") != analysis.volume.sha256:
        return None, settings(analysis, {})
    return int(saved["slice"]), dict(saved["view"])


def slice_figure(
    analysis,
    names: list[str],
    z: int,
    *,
    window=None,
    show_mask: bool = True,
    show_pred: bool = True,
    per_row: bool = False,
    opacity: float | None = DEFAULT_OPACITY,
):
    """The slice viewer's figure of slice ``z`` for the checkpoints ``names`` (the maps must have been kept); the
    screen and the report both draw it, with :func:`settings` (window default: :func:`default_window`)."""
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
        offsets=first.offsets,
        summary=analysis.summary,
        look=SliceLook(
            signed=METHODS[analysis.spec.method].signed,
            window=window or default_window(analysis),
            title=f"Slice {z}: {analysis.spec.method} attribution per input channel",
            per_row_scale=per_row,
            map_opacity=opacity,
            orientation=labels,
        ),
    )


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
    span = float(stack.max() - stack.min()) or 1.0
    c2.slider(
        "Window (grey levels)",
        float(stack.min()),
        float(stack.max()),
        default_window(analysis),
        step=span / 200,
        key=window_key(analysis),
    )
    c2.slider(
        "Attribution opacity over the anatomy",
        0.0,
        1.0,
        DEFAULT_OPACITY,
        0.05,
        key="viewer_opacity",
        help="1: the attribution alone; lower: the anatomy shows through.",
    )
    c3.checkbox("Mask outline", value=analysis.mask is not None, key="viewer_mask", disabled=analysis.mask is None)
    c3.checkbox("Prediction tint", value=True, key="viewer_pred")
    c4.checkbox(
        "One colour scale per checkpoint",
        value=False,
        key="viewer_per_row",
        help="Off: one scale for all, so rows compare (large gradients of a random network then darken "
        "the others). On: each row uses its own range.",
    )
    view = settings(analysis, st.session_state)
    st.session_state[SAVED] = {"volume": analysis.volume.sha256, "slice": int(z), "view": view}
    fig = slice_figure(analysis, names, z, **view)  # the report draws it with the same settings
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
