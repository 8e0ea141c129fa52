"""The 3D viewer alone on a small analysis (the sample's 12 central axial slices, its first zoo checkpoint, maps
kept), with a second view to leave it for: the browser test drives its controls without the whole app's first
visit. ``streamlit run tests/pages/viewer3d_page.py``."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import streamlit as st

from explorer.analysis import analyze, select_models
from explorer.app import viewer3d
from explorer.config import SAMPLE_DIR
from explorer.io.volume import Mask, load_mask, load_volume
from explorer.models.checkpoints import list_zoo, load_checkpoint
from explorer.spec import RunSpec


@st.cache_resource
def _analysis():
    full = load_volume(SAMPLE_DIR / "mni152_t1_2mm.nii.gz")
    mask = load_mask(SAMPLE_DIR / "mni152_gm_mask_2mm.nii.gz", full)
    crop = replace(full, data=np.ascontiguousarray(full.data[:, :, 34:46]), sha256="crop-34-46")
    crop_mask = Mask(data=np.ascontiguousarray(mask.data[:, :, 34:46]), source="crop-mask", sha256="crop-mask-34")
    return analyze(crop, [load_checkpoint(list_zoo()[0])], RunSpec(keep_maps=True, zflip=False), mask=crop_mask)


analysis = _analysis()
if st.radio("View", ["3D viewer", "Another view"], key="view", horizontal=True) == "3D viewer":
    names = list(analysis.models)
    viewer3d.show(select_models(analysis, names), names)  # a new object per run, as the app's main page passes
else:
    st.write("Another view.")
