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
import os
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
#: The warm-up thread's nice value: the server and a visitor's page come first.
WARM_NICENESS = 10
#: Checkpoint sha256 → set when the warm-up has that checkpoint's result in the cache (or gave up on it).
_done: dict[str, threading.Event] = {}
_ident: tuple | None = None
_announced = False
_registered = threading.Event()  # set once start() knows what it warms


def begin(*, analyse: bool = True) -> threading.Thread:
    """Server start: in a daemon thread, :func:`preload`, then (``analyse``) :func:`start`; in another,
    :func:`probe_export`. A job that starts before the warm-up knows its inputs waits to learn them, rather than
    computing the same results alongside it.

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
        finally:
            _registered.set()

    worker = threading.Thread(target=prepare, name="explorer-preload", daemon=True)
    worker.start()
    # The export browser's probe (two Chromium starts, seconds) alongside the imports, which leave a core idle:
    # started later it would compete with the analysis or with a visitor's page.
    threading.Thread(target=probe_export, name="explorer-export-probe", daemon=True).start()
    return worker


def probe_export() -> None:
    """Probe kaleido's export browser once (:func:`explorer.reporting.export.static_export_status`)."""
    from explorer.reporting.export import static_export_status

    static_export_status()


def preload() -> None:
    """Import the analysis stack (a few seconds), so that the first page view does not pay for it."""
    for name in PRELOAD:
        importlib.import_module(name)


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


def _yield_to_visitors() -> None:
    """Lower this thread's scheduling priority (Linux: a thread's own nice value), so that the server and a
    visitor's page, on the same cores, come before the warm-up's analysis; a no-op where that is not possible."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WARM_NICENESS)
    except (AttributeError, OSError):  # not Linux, or not permitted
        pass


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
        _yield_to_visitors()
        try:
            for checkpoint in checkpoints:
                try:
                    analyze(study, [checkpoint], spec)
                finally:
                    _done[checkpoint.sha256].set()
        finally:
            for event in _done.values():
                event.set()

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
