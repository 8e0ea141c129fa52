"""An analysis run outside the script rerun: a background thread per session, polled by the page.

Streamlit reruns the whole script on every click, so an analysis computed inside the script would be
abandoned by a click on a view, and would block the page while it runs. Here :func:`start` hands
:func:`explorer.analysis.analyze` (the function the CLI calls), and :func:`start_cohort`
:func:`explorer.cohort.run_cohort` (the function ``explorer cohort`` calls), to a daemon thread; the :class:`Job`
lives in the session's state, the page polls it (a fragment with ``run_every``) and swaps the result in when it
is done. With several checkpoints the first one is analysed
on its own first and published as ``preview``, so the page shows a first chart after one checkpoint's time, not
all of them (the full run then reads that checkpoint back from the cache). Cancelling is cooperative: the
progress callback raises :class:`Cancelled` at the next report once the flag is set. No ``streamlit`` import:
the job is plain Python and tested as such. A job for the inputs the server is warming up (``explorer app``,
:mod:`explorer.app.warm`) waits for those results instead of computing them twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from explorer.analysis import Analysis, analyze
from explorer.cohort import Cohort, Entry, run_cohort
from explorer.debias import DebiasData, DebiasResult, DebiasSpec, debias
from explorer.errors import InputError
from explorer.spec import RunSpec

from . import warm

#: Running debias jobs by key, shared by every session: a page reloaded during a run finds it again.
_DEBIAS: dict[tuple, Job] = {}
_DEBIAS_LOCK = threading.Lock()


class Cancelled(Exception):
    """Raised inside the worker by the progress callback once the user pressed Cancel."""


@dataclass
class Job:
    """One analysis (or cohort) in a worker thread; every field is written by the worker and read by the page.

    ``steps`` is what the status line counts: the checkpoints of an analysis, the volumes of a cohort (``unit``).
    """

    key: tuple
    steps: int
    unit: str = "Checkpoint"
    names: tuple[str, ...] = ()  # the checkpoints in order, whose names start analyze's progress messages
    fraction: float = 0.0
    message: str = "starting"
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    result: Analysis | Cohort | DebiasResult | None = None
    preview: Analysis | None = None
    error: str | None = None
    cancelled: bool = False
    cached: set[str] = field(default_factory=set)  # the checkpoints the cache served (not the preview's own)
    _cancel: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.finished is None

    @property
    def step(self) -> int:
        """The 1-based number of the checkpoint (or volume) being analysed: the one the last message names, else
        the one the fraction done falls in."""
        name = self.message.split(": ", 1)[0]
        if name in self.names:
            return self.names.index(name) + 1
        return min(int(self.fraction * self.steps) + 1, self.steps)

    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    def remaining(self) -> float | None:
        """Seconds left, extrapolated from the fraction done (None until there is something to go on)."""
        if self.fraction < 0.02 or not self.running:
            return None
        return self.elapsed() * (1.0 - self.fraction) / self.fraction

    def join(self, timeout: float, *, preview: bool = False) -> None:
        """Wait up to ``timeout`` seconds for the worker to finish (``preview``: or to publish its preview)."""
        deadline = time.monotonic() + timeout
        while self.running and not (preview and self.preview is not None) and time.monotonic() < deadline:
            time.sleep(0.02)

    def cancel(self) -> None:
        self._cancel.set()

    def status(self) -> str:
        """One line for the page: "checkpoint k of n", what it is doing, elapsed and estimated time."""
        eta = self.remaining()
        return f"{self.unit} {self.step} of {self.steps} — {self.message} · {self.elapsed():.0f} s elapsed" + (
            f", about {eta:.0f} s left" if eta is not None else ""
        )

    def _progress(self, fraction: float, message: str) -> None:
        if self._cancel.is_set():
            raise Cancelled
        # max: the full run re-reports, from the cache, the first checkpoint the preview already analysed
        self.fraction, self.message = max(self.fraction, min(max(fraction, 0.0), 1.0)), message

    def _run(self, run: Callable[..., Analysis | Cohort], first: Callable[..., Analysis] | None) -> None:
        try:
            if first is not None:
                self.preview = first(progress=lambda f, m: self._progress(f / self.steps, m))
            self.result = run(progress=self._progress)
            if isinstance(self.result, Analysis):  # analyze's own signal; the preview's result read back is not one
                previewed = {n for n, r in self.preview.models.items() if not r.from_cache} if self.preview else set()
                self.cached = set(self.result.from_cache) - previewed
        except Cancelled:
            self.cancelled = True
        except InputError as exc:
            self.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - shown as one line in the page, never a traceback
            self.error = f"The analysis failed: {type(exc).__name__}: {exc}"
        finally:
            self.finished = time.monotonic()


def start(key: tuple, study: Any, checkpoints: list, spec: Any) -> Job:
    """Start ``analyze(study, checkpoints, spec)`` in a daemon thread and return its :class:`Job`.

    Args:
        key: identifies the inputs (content hashes and parameters), stored with the result.
        study, checkpoints, spec: the arguments of :func:`explorer.analysis.analyze`.

    Returns:
        The running job; poll ``job.running`` and read ``job.result`` / ``job.error`` / ``job.cancelled``.
    """
    job = Job(key=key, steps=len(checkpoints), names=tuple(c.name for c in checkpoints))

    def whole(progress: Callable) -> Analysis:
        warm.wait(study, checkpoints, spec, progress)
        return analyze(study, checkpoints, spec, progress=progress)

    def first(progress: Callable) -> Analysis:
        warm.wait(study, checkpoints[:1], spec, progress)
        return analyze(study, checkpoints[:1], spec, progress=progress)

    return _launch(job, whole, first if len(checkpoints) > 1 else None)


def start_cohort(
    key: tuple, entries: Sequence[Entry], checkpoints: Sequence[str | Path], spec: RunSpec, *, margin: float
) -> Job:
    """Start ``run_cohort(entries, checkpoints, spec, margin=margin)`` in a daemon thread and return its
    :class:`Job`, which counts volumes; its ``result`` is the :class:`~explorer.cohort.Cohort`.

    Cancelling stops after the volume being analysed (the cohort reports progress once per volume).

    Args:
        key: identifies the inputs, stored with the result.
        entries, checkpoints, spec, margin: the arguments of :func:`explorer.cohort.run_cohort`.
    """
    job = Job(key=key, steps=len(entries), unit="Volume")

    def whole(progress: Callable) -> Cohort:
        return run_cohort(
            entries,
            checkpoints,
            spec,
            margin=margin,
            progress=lambda done, total, subject: progress(
                done / total, f"{done} of {total} pairs done" + (f" (last: {subject})" if done else "")
            ),
        )

    return _launch(job, whole, None)


def _launch(job: Job, run: Callable[..., Any], first: Callable[..., Any] | None) -> Job:
    job._thread = threading.Thread(target=job._run, args=(run, first), name=f"explorer-{job.unit.lower()}", daemon=True)
    job._thread.start()
    return job


def start_debias(key: tuple, parent: Any, data: DebiasData, spec: DebiasSpec, analysis: RunSpec) -> Job:
    """Start ``debias(parent, data, spec, analysis=analysis)`` in a daemon thread, or return the job already
    running for ``key`` (another session's, or this one's before a page reload); it counts steps (the parent's
    evaluation, one per variant, the analysis).

    Args:
        key: identifies the inputs (parent SHA-256, data hashes, the spec's record).
        parent, data, spec, analysis: the arguments of :func:`explorer.debias.debias`.
    """
    with _DEBIAS_LOCK:
        running = find_debias(key)
        if running is not None:
            return running
        job = Job(key=key, steps=len(spec.variants) + 2, unit="Step")
        _DEBIAS[key] = job

    def whole(progress: Callable) -> DebiasResult:
        return debias(parent, data, spec, progress=progress, analysis=analysis)

    return _launch(job, whole, None)


def find_debias(key: tuple) -> Job | None:
    """The running debias job for ``key``, or None (finished jobs are forgotten: their children are cached)."""
    for old in [k for k, job in _DEBIAS.items() if not job.running]:
        _DEBIAS.pop(old, None)
    return _DEBIAS.get(key)
