"""Server warm-up for ``explorer app``: the heavy imports and the first visit's analysis, done before anyone opens
the page (no ``streamlit`` import: plain Python, run in the server's process).

A first visit analyses the sample volume with the shipped zoo under the sidebar's defaults. :func:`start` runs
exactly that in a background thread when the server starts, one checkpoint at a time in the app's order, into the
backend's normal content-hash cache (memory and disk), and marks each checkpoint done. A job of the app asking
for the same inputs meanwhile waits for the warm-up's checkpoints (:func:`wait`) rather than computing them a
second time on the same cores, then reads them from the cache.
"""

from __future__ import annotations

import importlib
import json
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the analysis stack is imported by preload(), in the background, not by importing this module
    from explorer.models.checkpoints import Checkpoint
    from explorer.spec import RunSpec
    from explorer.study import Study

#: Imported at server start: what the app's first script run would otherwise import (torch, smp, plotly, ...).
PRELOAD = (
    "explorer.analysis",
    "explorer.attribution.engine",
    "explorer.attribution.fastpath",
    "explorer.reporting.figures",
    "explorer.reporting.figures.tables",
    "explorer.reporting.export",
    "explorer.cohort",
    "explorer.app.jobs",
    "explorer.reporting.overlays",
    "plotly.graph_objects",
    "scipy.stats",
    "segmentation_models_pytorch",
)
#: Checkpoint sha256 → set when the warm-up has that checkpoint's result in the cache (or gave up on it).
_done: dict[str, threading.Event] = {}
_ident: tuple | None = None
_announced = False
_registered = threading.Event()  # set once start() knows what it warms


def begin(*, analyse: bool = True) -> threading.Thread:
    """Server start: in a daemon thread, :func:`preload`, then (``analyse``) :func:`start`. A job that starts
    before the warm-up knows its inputs waits to learn them, rather than computing the same results alongside it.

    Returns:
        The thread.
    """
    global _announced
    _announced = analyse

    def prepare() -> None:
        try:
            preload()
            if analyse:
                start()
            else:
                probe_export()
        finally:
            _registered.set()

    worker = threading.Thread(target=prepare, name="explorer-preload", daemon=True)
    worker.start()
    return worker


def preload() -> None:
    """Import the analysis stack (a few seconds), so that the first page view does not pay for it."""
    for name in PRELOAD:
        importlib.import_module(name)


def probe_export() -> None:
    """Start kaleido's export browser (the first static export's probe, seconds), so that the first visitor's
    export buttons do not wait for it."""
    from explorer.reporting.export import static_export_status

    static_export_status()


def first_visit() -> tuple[Study, list[Checkpoint], RunSpec]:
    """The inputs a first visit analyses: the sample with its mask, the shipped zoo, the sidebar's defaults."""
    from explorer.attribution.methods import DEFAULT_METHOD, TARGETS
    from explorer.config import SAMPLE_DIR
    from explorer.models.checkpoints import list_zoo, load_checkpoint
    from explorer.spec import RunSpec
    from explorer.study import Study

    study = Study.load(SAMPLE_DIR / "mni152_t1_2mm.nii.gz", SAMPLE_DIR / "mni152_gm_mask_2mm.nii.gz")
    spec = RunSpec(method=DEFAULT_METHOD, target=next(iter(TARGETS)), axis=None, device="auto", keep_maps=True)
    return study, [load_checkpoint(p) for p in list_zoo()], spec


def identity(study: Study, spec: RunSpec) -> tuple:
    """What makes two analyses' per-checkpoint results the same: the study's content and the parameters."""
    return tuple(study.key().values()), json.dumps(spec.record(), sort_keys=True, default=str)


def start(inputs: Callable[[], tuple[Study, list[Checkpoint], RunSpec]] = first_visit) -> threading.Thread:
    """Analyse ``inputs()`` (default: the first visit's) into the cache in a daemon thread, one checkpoint at a
    time; returns the thread."""
    global _ident
    from explorer.analysis import analyze

    try:
        study, checkpoints, spec = inputs()
        _ident = identity(study, spec)
        for checkpoint in checkpoints:
            _done.setdefault(checkpoint.sha256, threading.Event())
    finally:
        _registered.set()

    def run() -> None:
        try:
            for checkpoint in checkpoints:
                try:
                    analyze(study, [checkpoint], spec)
                finally:
                    _done[checkpoint.sha256].set()
        finally:
            for event in _done.values():
                event.set()
        probe_export()  # after the analysis: the browser's start would compete with it for the cores

    worker = threading.Thread(target=run, name="explorer-warm-up", daemon=True)
    worker.start()
    return worker


def wait(
    study: Study | object, checkpoints: Sequence[Checkpoint], spec: RunSpec, progress: Callable | None = None
) -> None:
    """Block until the warm-up has cached ``checkpoints`` for these inputs (return at once for other inputs, or
    when no warm-up ran); ``progress(0.0, message)`` is told once if it has to wait."""
    from explorer.study import Study

    if _announced:
        _registered.wait()
    if _ident is None or not isinstance(study, Study) or _ident != identity(study, spec):
        return
    pending = [_done[c.sha256] for c in checkpoints if c.sha256 in _done and not _done[c.sha256].is_set()]
    if pending and progress is not None:
        progress(0.0, "the server's warm-up is analysing these inputs")
    for event in pending:
        event.wait()
