"""The 3D viewer: multiplanar + 3D rendering of the scan with the mask, a prediction and an attribution overlay.

Why ``niivue-streamlit``: it wraps NiiVue, the WebGL2 viewer neuroimagers know (multiplanar and 3D render,
crosshair, L/R/A/P/S/I labels from the affine, radiological/neurological convention, colour maps), is MIT
licensed, and ships its built front end inside the wheel, so it works offline with no CDN. Its overlays take
a colour map and an opacity; it has no threshold setting, so the threshold is applied to the data (values
below it set to 0) and written as the overlay's ``cal_min``. The alternatives were a plotly volume/isosurface
trace (no multiplanar reading view, slow beyond ~10⁵ voxels) or writing our own component (a front-end build
to maintain). Each overlay's bytes are kept per session and analysis, so moving a slider re-sends but does not
re-encode them.
"""

from __future__ import annotations

import streamlit as st
from niivue_component import niivue_viewer

from explorer.figures._style import offset_label

from . import overlays

COLORMAPS = ["hot", "warm", "plasma", "viridis", "winter", "red", "green", "blue"]
VIEW_MODES = {"Multiplanar": "multiplanar", "3D render": "3d", "Axial": "axial", "Coronal": "coronal",
              "Sagittal": "sagittal"}
MAX_BYTES_KEPT = 6  # encoded overlays kept per session


def _bytes(key: tuple, make) -> bytes | None:
    """``make()`` once per session and ``key`` (a few kept), since encoding a volume takes a moment."""
    kept = st.session_state.setdefault("_viewer3d_bytes", {})
    if key not in kept:
        kept[key] = make()
        while len(kept) > MAX_BYTES_KEPT:
            kept.pop(next(iter(kept)))
    return kept[key]


def show(analysis, names: list[str]) -> None:
    """Controls (checkpoint, channel, colour map, opacity, threshold, convention) and the NiiVue viewer."""
    first = analysis.models[names[0]]
    ident = (analysis.volume.sha256, id(analysis))
    c1, c2, c3, c4 = st.columns(4)
    name = c1.selectbox("Checkpoint", names, key="v3d_model")
    offsets = list(analysis.models[name].offsets)
    channel = c2.selectbox("Attribution of input channel", range(len(offsets)), index=offsets.index(0)
                           if 0 in offsets else 0, format_func=lambda i: offset_label(offsets[i]), key="v3d_channel",
                           disabled=first.maps is None)
    colormap = c3.selectbox("Colour map", COLORMAPS, key="v3d_cmap")
    mode = c4.selectbox("Layout", list(VIEW_MODES), key="v3d_mode")
    c5, c6, c7, c8 = st.columns(4)
    opacity = c5.slider("Attribution opacity", 0.0, 1.0, 0.6, 0.05, key="v3d_opacity")
    threshold = c6.slider("Threshold (fraction of the largest |attribution|)", 0.0, 0.95, 0.2, 0.05,
                          key="v3d_threshold", help="Attribution below this fraction of its maximum is hidden.")
    show_pred = c7.checkbox("Prediction", value=True, key="v3d_pred")
    show_mask = c7.checkbox("Mask", value=analysis.mask is not None, key="v3d_mask", disabled=analysis.mask is None)
    radiological = c8.toggle("Radiological convention", value=False, key="v3d_radiological",
                             help="On: the patient's right on the screen's left (as on a reading station). "
                                  "Off: neurological (right on the right).")
    crosshair = c8.checkbox("Crosshair", value=True, key="v3d_crosshair")
    layers = []
    if show_mask and analysis.mask is not None:
        layers.append({"data": _bytes((*ident, "mask"), lambda: overlays.mask_nifti(analysis)),
                       "name": "mask.nii.gz", "colormap": "green", "opacity": 0.35})
    if show_pred:
        layers.append({"data": _bytes((*ident, "pred", name), lambda: overlays.prediction_nifti(analysis, name)),
                       "name": f"prediction-{name}.nii.gz", "colormap": "blue", "opacity": 0.3})
    if first.maps is not None:
        layers.append({"data": _bytes((*ident, "map", name, channel, threshold),
                                      lambda: overlays.attribution_nifti(analysis, name, channel, threshold)),
                       "name": f"attribution-{name}-{offsets[channel]}.nii.gz", "colormap": colormap,
                       "opacity": opacity})
    else:
        st.caption("This analysis kept no attribution maps: only the prediction and the mask are shown.")
    st.caption(f"Overlays: {', '.join(layer['name'].removesuffix('.nii.gz') for layer in layers) or 'none'} · "
               f"{analysis.spec.method} |attribution| from {threshold:.0%} of its maximum.")
    niivue_viewer(nifti_data=_bytes((*ident, "scan"), lambda: overlays.scan_nifti(analysis.volume)),
                  filename="scan.nii.gz", overlays=layers, height=620, view_mode=VIEW_MODES[mode],
                  settings={"crosshair": crosshair, "radiological": radiological, "colorbar": True},
                  update_interval_ms=None, key="v3d_viewer")
