"""The app's one cache module: read-only resources shared between sessions.

``st.cache_resource`` objects are shared by every browser session, so they are treated as read-only: the
sample arrays are flagged non-writeable, and the engine never mutates a checkpoint (it builds a fresh module
per run). Analysis results are cached by the backend's content-hash cache (memory + disk), not here.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import streamlit as st

from explorer.config import SAMPLE_DIR
from explorer.io.volume import Mask, Volume, load_mask, load_volume
from explorer.models.checkpoints import Checkpoint, list_seeds, list_zoo, load_checkpoint
from explorer.reporting.export import static_export_known, static_export_status

SAMPLE_VOLUME = SAMPLE_DIR / "mni152_t1_2mm.nii.gz"
SAMPLE_MASK = SAMPLE_DIR / "mni152_gm_mask_2mm.nii.gz"
#: Seconds between the first result shown and the export browser's probe.
PROBE_DELAY_S = 8.0


def _freeze(*arrays) -> None:
    for array in arrays:
        array.setflags(write=False)


@st.cache_resource(show_spinner=False)
def sample() -> tuple[Volume, Mask]:
    """The shipped sample volume and its grey-matter mask (read-only arrays)."""
    volume = load_volume(SAMPLE_VOLUME)
    mask = load_mask(SAMPLE_MASK, volume)
    _freeze(volume.data, mask.data)
    return volume, mask


@st.cache_resource(show_spinner=False)
def _zoo_checkpoint(path: str, mtime_ns: int) -> Checkpoint:
    return load_checkpoint(Path(path))


def zoo() -> dict[str, Checkpoint]:
    """The zoo's checkpoints by name (file stem), loaded once per file version: the shipped ones, then the other
    seeds that ``models/train_zoo.py`` reproduced into ``models/seeds/`` (when present)."""
    found = {}
    for path in list_zoo() + list_seeds():
        checkpoint = _zoo_checkpoint(str(path), path.stat().st_mtime_ns)
        found[checkpoint.name] = checkpoint
    return found


@st.cache_resource(show_spinner=False)
def warm_static_export() -> threading.Thread:
    """Probe kaleido's browser in the background once per process, :data:`PROBE_DELAY_S` after the first result
    is shown: the browser's start takes both cores for seconds and would slow the first chart's drawing. Until
    it answers, the figures' download rows offer HTML and redraw themselves."""

    def probe() -> None:
        if static_export_known() is None:  # `explorer app` probes at server start, alongside its imports
            time.sleep(PROBE_DELAY_S)
            static_export_status()

    worker = threading.Thread(target=probe, name="explorer-export-probe", daemon=True)
    worker.start()
    return worker
