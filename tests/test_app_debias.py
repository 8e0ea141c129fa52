"""The Debias view through ``streamlit.testing.v1.AppTest``: a surgery from the view joins the checkpoint list
beside its parent, in the parent's hue, lighter, and every view shows it; a new session (a reloaded page)
finds the finished run in the cache; bad input is one message."""

from __future__ import annotations

import json

import pytest
from apptools import settle, upload_scan
from streamlit.testing.v1 import AppTest

from explorer.app.debias import COHORT, with_children
from explorer.config import REPO_ROOT
from explorer.reporting.figures.style import checkpoint_look, child_colour

APP = str(REPO_ROOT / "explorer" / "app" / "main.py")
TIMEOUT = 600
PARENT = "unet-mobilenet_v2-imagenet-s0"
CHILD = PARENT + "-surgery-symmetric"

pytestmark = pytest.mark.slow


def _settle(at: AppTest) -> AppTest:
    """Rerun until no analysis or debias job runs (a finished debias starts an analysis of its children)."""
    return settle(at, keys=("job", "debias_job"))


def _session() -> AppTest:
    """A session that analysed the sample with the ImageNet checkpoint only (one model keeps it short)."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["zoo_choice"] = [PARENT]
    at.run()
    return _settle(at)


def test_children_follow_their_parent() -> None:
    assert with_children(["a", "b", "c"], {"a-x": "a", "b-x": "b", "a-y": "a"}) == ["a", "a-x", "a-y", "b", "b-x", "c"]
    assert with_children(["a", "a-x"], {"a-x": "a", "z-x": "z"}) == ["a", "a-x", "z-x"]


def test_child_colour_is_the_parents_lighter() -> None:
    summary = {
        "models": {
            PARENT: {"strategy": "imagenet"},
            CHILD: {"strategy": "imagenet", "parent": {"name": PARENT, "strategy": "imagenet", "seed": 0}},
        }
    }
    colours, labels = checkpoint_look([PARENT, CHILD], summary)
    assert labels == {PARENT: "imagenet, seed 0", CHILD: "imagenet, seed 0 → surgery-symmetric"}
    assert colours[CHILD] == child_colour(colours[PARENT]) != colours[PARENT]
    parent_rgb = [int(colours[PARENT][i : i + 2], 16) for i in (1, 3, 5)]
    child_rgb = [int(colours[CHILD][i : i + 2], 16) for i in (1, 3, 5)]
    assert all(c >= p for c, p in zip(child_rgb, parent_rgb, strict=True)) and sum(child_rgb) > sum(parent_rgb)


@pytest.fixture()
def cache_dir(warm_cache, monkeypatch, tmp_path):
    """A copy of the session's warm cache (the parent's analysis is there already); children made here are found
    again here, and by no other test."""
    own = warm_cache.copy(tmp_path)
    own.use(monkeypatch)
    return own.root


def test_surgery_from_the_view_joins_the_list_and_is_found_again(cache_dir, monkeypatch) -> None:
    at = _session()
    at.radio(key="view").set_value("Debias").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="debias_parent").value == PARENT
    at.button(key="debias_run").click().run()
    _settle(at)
    assert at.session_state["zoo_choice"] == [PARENT, CHILD]
    assert list(at.session_state["analysis"].models) == [PARENT, CHILD]
    summary = at.session_state["analysis"].summary
    assert summary["models"][CHILD]["parent"]["name"] == PARENT
    assert abs(summary["models"][CHILD]["channel_asymmetry"]["mean"]) < 1e-3
    assert any("Made 1 child(ren)" in s.value for s in at.success)
    downloads = [b.label for b in at.get("download_button")]
    assert any(CHILD + ".safetensors" in label for label in downloads) and any("debias.json" in x for x in downloads)
    at.radio(key="view").set_value("Distributions").run()
    assert not at.exception, at.exception
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    colours = {
        t.get("legendgroup"): (t.get("marker") or {}).get("color") or (t.get("line") or {}).get("color")
        for t in spec["data"]
        if t.get("legendgroup") in (PARENT, CHILD)
    }
    assert set(colours) == {PARENT, CHILD} and colours[CHILD] == child_colour(colours[PARENT])

    # A reloaded page is a new session: the same inputs in the Debias view find the children in the cache.
    again = _session()
    again.radio(key="view").set_value("Debias").run()
    _settle(again)
    assert CHILD in again.session_state["debias_children"]
    assert again.session_state["debias_result"].children[0].record["from_cache"]


def test_a_training_variant_without_a_mask_is_one_message(cache_dir, monkeypatch, sample_crop) -> None:
    """A scan uploaded without a mask (8 slices of the sample: what is checked does not depend on its size)."""
    at = _session()
    scan, _ = sample_crop(40, 48)
    upload_scan(at, (scan.name, scan.read_bytes(), "application/gzip"))
    at.button(key="analyse").click().run()
    _settle(at)
    assert at.session_state["analysis"].mask is None
    at.radio(key="view").set_value("Debias").run()
    at.multiselect(key="debias_variants").set_value(["surgery", "finetune"]).run()
    assert not at.exception, at.exception
    assert any("no mask for the finetune variant" in e.value for e in at.error)
    assert not [b for b in at.button if b.key == "debias_run"]  # nothing can start
    assert "debias_job" not in at.session_state
    at.radio(key="debias_data").set_value(COHORT).run()  # a cohort zip instead: the uploader waits for one
    assert not at.exception, at.exception
    assert any("Upload a cohort zip" in i.value for i in at.info)
