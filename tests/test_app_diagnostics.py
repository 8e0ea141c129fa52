"""The Diagnostics tab and the Grad-CAM panel through ``AppTest.from_function`` on a 16-slice crop."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.slow


def _page() -> None:
    from dataclasses import replace

    import numpy as np
    import streamlit as st

    from explorer.analysis import analyze
    from explorer.app import diagnostics
    from explorer.config import MODELS_DIR, SAMPLE_DIR
    from explorer.io.volume import Mask, load_mask, load_volume
    from explorer.models.checkpoints import load_checkpoint
    from explorer.spec import RunSpec

    if "analysis" not in st.session_state:
        full = load_volume(SAMPLE_DIR / "mni152_t1_2mm.nii.gz")
        mask = load_mask(SAMPLE_DIR / "mni152_gm_mask_2mm.nii.gz", full)
        crop = replace(full, data=np.ascontiguousarray(full.data[:, :, 30:46]), sha256="crop-30-46")
        crop_mask = Mask(data=np.ascontiguousarray(mask.data[:, :, 30:46]), source="crop-mask", sha256="crop-mask")
        ckpt = load_checkpoint(MODELS_DIR / "unet-mobilenet_v2-imagenet-s0.safetensors")
        st.session_state["analysis"] = analyze(crop, [ckpt], RunSpec(keep_maps=True, zflip=False), mask=crop_mask)
    analysis = st.session_state["analysis"]
    diagnostics.show(analysis)
    diagnostics.cam_panel(analysis, list(analysis.models), np.zeros(analysis.volume.stack("axial").shape[1:]), 8)


def _titles(at: AppTest) -> list[str]:
    return [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]


def test_diagnostics_tab_runs_cam_and_sanity_on_a_click(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EXPLORER_CACHE_DIR", str(tmp_path))
    at = AppTest.from_function(_page, default_timeout=600)
    at.run()
    assert not at.exception, at.exception
    titles = _titles(at)
    assert any("Background attention" in t for t in titles) and any("Logit distributions" in t for t in titles)
    assert any("Not run yet" in c.value for c in at.caption)
    at.number_input(key="diag_slices").set_value(2)
    at.button(key="diag_run").click().run()
    assert not at.exception, at.exception
    assert not at.error
    titles = _titles(at)
    assert any("Grad-CAM mass outside" in t for t in titles)
    assert any("Sanity check" in t for t in titles)
    assert any("Slice 8: Grad-CAM on encoder.features.18" in t for t in titles)
    entry = at.session_state["analysis"].summary["models"]["unet-mobilenet_v2-imagenet-s0"]
    assert entry["sanity"] is not None and len(entry["sanity"]["slices"]) == 2
