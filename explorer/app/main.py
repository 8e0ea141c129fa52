"""Streamlit entry point (``streamlit run explorer/app/main.py``): shows a slice of the sample volume."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from explorer.config import SAMPLE_DIR
from explorer.volume import load_volume

st.set_page_config(page_title="explorer: 2D+ saliency asymmetry", layout="wide")
st.title("2D+ saliency asymmetry explorer")

volume = load_volume(SAMPLE_DIR / "mni152_t1_2mm.nii.gz")
stack = volume.stack("axial")
z = st.slider("Axial slice", 0, stack.shape[0] - 1, stack.shape[0] // 2)
fig = go.Figure(go.Heatmap(z=np.asarray(stack[z]).T, colorscale="gray", showscale=False))
fig.update_yaxes(scaleanchor="x")
st.caption(f"{volume.source}: shape {volume.shape}, spacing {volume.spacing} mm")
st.plotly_chart(fig)
