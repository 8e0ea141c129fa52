"""The 3D viewer: multiplanar + 3D rendering of the scan with the mask, a prediction and an attribution overlay.

Why ``niivue-streamlit``: it wraps NiiVue, the WebGL2 viewer neuroimagers know (multiplanar and 3D render,
crosshair, L/R/A/P/S/I labels from the affine, radiological/neurological convention, colour maps), is MIT
licensed, and ships its built front end inside the wheel, so it works offline with no CDN. Its overlays take
a colour map and an opacity; it has no threshold setting, so the threshold is applied to the data (values
below it set to 0) and written as the overlay's ``cal_min``. The alternatives were a plotly volume/isosurface
trace (no multiplanar reading view, slow beyond ~10⁵ voxels) or writing our own component (a front-end build
to maintain).

One viewer, whatever the controls do: the component's front end adds a new panel whenever the scan's bytes
change, and swaps the overlays in place when only they change. So the scan's bytes are encoded once per volume
(deterministically, :mod:`explorer.reporting.overlays`), the component's key is fixed per volume, and each overlay's
bytes are kept per session and analysis (moving a slider re-sends but does not re-encode them). The controls'
values are kept in session state (:data:`SETTINGS_KEY`), so leaving the view and coming back keeps them.
"""

from __future__ import annotations

import colorsys

import streamlit as st
from niivue_component import niivue_viewer

from explorer.reporting.figures.style import checkpoint_look, offset_label

from ..reporting import overlays

COLORMAPS = ["hot", "warm", "plasma", "viridis", "winter", "red", "green", "blue"]
VIEW_MODES = {
    "Multiplanar": "multiplanar",
    "3D render": "3d",
    "Axial": "axial",
    "Coronal": "coronal",
    "Sagittal": "sagittal",
}
#: NiiVue's single-hue colour maps with the hue each one shows, for the prediction in its checkpoint's colour.
HUE_MAPS = {"red": 0, "green": 120, "blue": 225}
MAX_BYTES_KEPT = 6  # encoded overlays kept per session
SETTINGS_KEY = "_v3d_settings"  # the controls' values, kept while the view is not shown
HEIGHT = 760


def _bytes(key: tuple, make) -> bytes | None:
    """``make()`` once per session and ``key`` (a few kept), since encoding a volume takes a moment."""
    kept = st.session_state.setdefault("_viewer3d_bytes", {})
    if key not in kept:
        kept[key] = make()
        while len(kept) > MAX_BYTES_KEPT:
            kept.pop(next(iter(kept)))
    return kept[key]


def _restore(defaults: dict[str, object], valid: dict[str, list]) -> None:
    """Put each control's kept value (or its default) into session state before the widgets are drawn.

    Streamlit drops a widget's state on a run that does not draw it (another view); the copy under
    :data:`SETTINGS_KEY` survives. A kept value no longer among a control's options falls back to the default.
    """
    kept = st.session_state.setdefault(SETTINGS_KEY, {})
    for key, default in defaults.items():
        if key not in st.session_state:
            value = kept.get(key, default)
            st.session_state[key] = value if key not in valid or value in valid[key] else default


def _keep(keys) -> None:
    st.session_state[SETTINGS_KEY] = {key: st.session_state[key] for key in keys if key in st.session_state}


def _hue(colour: str) -> float:
    r, g, b = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return colorsys.rgb_to_hsv(r, g, b)[0] * 360


def prediction_colormap(colour: str) -> str:
    """The NiiVue single-hue colour map nearest to a checkpoint's ``#rrggbb`` colour (by hue)."""
    hue = _hue(colour)
    return min(HUE_MAPS, key=lambda m: min(abs(hue - HUE_MAPS[m]), 360 - abs(hue - HUE_MAPS[m])))


def channel_label(offset: int) -> str:
    """``offset −1 (slice z−1)``: what the channel selector shows."""
    return f"offset {offset_label(offset)} (slice z{'' if offset == 0 else offset_label(offset)})"


def show(analysis, names: list[str]) -> None:
    """Controls (checkpoint, channel, colour map, opacity, threshold, convention) and the NiiVue viewer."""
    first = analysis.models[names[0]]
    sha = analysis.volume.sha256
    ident = (sha, st.session_state.get("analysis_id", 0))
    offsets0 = list(first.offsets)
    defaults = {
        "v3d_model": names[0],
        "v3d_channel": offsets0.index(0) if 0 in offsets0 else 0,
        "v3d_cmap": COLORMAPS[0],
        "v3d_mode": next(iter(VIEW_MODES)),
        "v3d_opacity": 0.6,
        "v3d_threshold": 0.2,
        "v3d_pred": True,
        "v3d_mask": analysis.mask is not None,
        "v3d_radiological": False,
        "v3d_crosshair": True,
    }
    _restore(
        defaults,
        {
            "v3d_model": names,
            "v3d_channel": list(range(len(offsets0))),
            "v3d_cmap": COLORMAPS,
            "v3d_mode": list(VIEW_MODES),
        },
    )
    colours, labels = checkpoint_look(names, analysis.summary)
    c1, c2, c3, c4 = st.columns(4)
    name = c1.selectbox("Checkpoint", names, key="v3d_model", format_func=lambda n: labels.get(n, n))
    offsets = list(analysis.models[name].offsets)
    if st.session_state["v3d_channel"] not in range(len(offsets)):  # a checkpoint with a narrower window
        st.session_state["v3d_channel"] = offsets.index(0) if 0 in offsets else 0
    channel = c2.selectbox(
        "Attribution of input channel",
        range(len(offsets)),
        key="v3d_channel",
        format_func=lambda i: channel_label(offsets[i]),
        disabled=first.maps is None,
    )
    colormap = c3.selectbox("Colour map", COLORMAPS, key="v3d_cmap")
    mode = c4.selectbox("Layout", list(VIEW_MODES), key="v3d_mode")
    c5, c6, c7, c8 = st.columns(4)
    opacity = c5.slider("Attribution opacity", 0.0, 1.0, step=0.05, key="v3d_opacity")
    threshold = c6.slider(
        "Threshold (fraction of the largest |attribution|)",
        0.0,
        0.95,
        step=0.05,
        key="v3d_threshold",
        help="Attribution below this fraction of its maximum is hidden.",
    )
    show_pred = c7.checkbox("Prediction", key="v3d_pred")
    show_mask = c7.checkbox("Mask", key="v3d_mask", disabled=analysis.mask is None)
    radiological = c8.toggle(
        "Radiological convention",
        key="v3d_radiological",
        help="On: the patient's right on the screen's left (as on a reading station). "
        "Off: neurological (right on the right).",
    )
    crosshair = c8.checkbox("Crosshair", key="v3d_crosshair")
    _keep(defaults)
    layers, legend = [], []
    if show_mask and analysis.mask is not None:
        layers.append(
            {
                "data": _bytes((*ident, "mask"), lambda: overlays.mask_nifti(analysis)),
                "name": "mask.nii.gz",
                "colormap": "green",
                "opacity": 0.35,
            }
        )
        legend.append("mask: green")
    if show_pred:
        pred_map = prediction_colormap(colours[name])
        layers.append(
            {
                "data": _bytes((*ident, "pred", name), lambda: overlays.prediction_nifti(analysis, name)),
                "name": f"prediction-{name}.nii.gz",
                "colormap": pred_map,
                "opacity": 0.3,
            }
        )
        legend.append(f"prediction of {labels.get(name, name)}: {pred_map}")
    if first.maps is not None:
        layers.append(
            {
                "data": _bytes(
                    (*ident, "map", name, channel, threshold),
                    lambda: overlays.attribution_nifti(analysis, name, channel, threshold),
                ),
                "name": f"attribution-{name}-{offsets[channel]}.nii.gz",
                "colormap": colormap,
                "opacity": opacity,
            }
        )
        legend.append(
            f"{analysis.spec.method} |attribution| of {channel_label(offsets[channel])}: {colormap}, "
            f"from {threshold:.0%} of its maximum (dark) to the maximum (bright)"
        )
    else:
        st.caption("This analysis kept no attribution maps: only the prediction and the mask are shown.")
    st.caption(f"Overlays: {', '.join(layer['name'].removesuffix('.nii.gz') for layer in layers) or 'none'}")
    if legend:
        st.caption("Colours — " + " · ".join(legend) + " · scan: grey.")
    # The key is fixed per volume: a new volume gets a new viewer rather than a second panel in this one.
    niivue_viewer(
        nifti_data=_bytes((sha, "scan"), lambda: overlays.scan_nifti(analysis.volume)),
        filename="scan.nii.gz",
        overlays=layers,
        height=HEIGHT,
        view_mode=VIEW_MODES[mode],
        settings={"crosshair": crosshair, "radiological": radiological, "colorbar": False},
        update_interval_ms=None,
        key=f"v3d_viewer-{sha[:16]}",
    )
