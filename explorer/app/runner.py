"""The Analyse button, the running job's progress panel, and handing a finished job's result to the page.

The session state keys this module owns: ``job`` (the running :class:`~explorer.app.jobs.Job`), ``analysis``,
``analysis_key`` (the inputs it was computed from), ``analysis_id`` (bumped per new result, so widgets that
belong to one analysis start afresh) and ``run_note`` (what the last run said: cache hit, cancelled, error).
"""

from __future__ import annotations

import streamlit as st

from explorer.analysis import is_cached
from explorer.errors import InputError

from . import jobs
from .sidebar import Blocked, Settings

POLL_SECONDS = 1.0
#: How long a script run waits for a job whose every result is cached before it polls like any other.
CACHED_WAIT_SECONDS = 5.0


def _cached(settings: Settings, checkpoints) -> bool:
    """Whether these checkpoints' results for these settings are already in the backend's cache (a page reload or
    a new session finds the analysis of the same inputs there)."""
    try:
        return is_cached(settings.study, checkpoints, settings.spec)
    except (InputError, RuntimeError):
        return False


def collect() -> None:
    """Move a finished job's result (or its error, or the cancellation) into the session."""
    state = st.session_state
    job = state.get("job")
    if job is None or job.running:
        return
    del state["job"]
    state.pop("preview_shown", None)
    if job.result is not None:
        state["analysis"], state["analysis_key"] = job.result, job.key
        old = state.get("analysis_id", 0)
        state.pop(f"shown_models-{old}", None)
        state["analysis_id"] = old + 1
        names = list(job.result.models)
        if set(names) <= job.cached:
            state["run_note"] = (
                "success",
                f"Found in the cache: these inputs (same file contents, checkpoints and "
                f"parameters) were analysed before, so all {len(names)} checkpoint(s) "
                f"were loaded in {job.elapsed():.1f} s, not recomputed.",
            )
        else:
            state["run_note"] = (
                "success",
                f"Analysed {len(names)} checkpoint(s) in {job.elapsed():.0f} s"
                + (f" ({len(job.cached)} from the cache)." if job.cached else "."),
            )
    elif job.cancelled:
        state["run_note"] = ("warning", "The analysis was cancelled: the results shown are the previous ones.")
    else:
        state["failed_key"] = job.key
        state["run_note"] = ("error", job.error or "The analysis failed.")


def controls(settings: Settings | Blocked) -> None:
    """The Analyse button; starts a job on a click, on the first visit, or when the inputs' results are cached.

    A job started without a click starts before the button is drawn, so that the button is disabled in the very
    run that shows the job's first results."""
    state = st.session_state
    collect()
    ready = isinstance(settings, Settings)
    if state.get("run_note", ("",))[0] == "error" and (not ready or state.get("failed_key") != settings.key):
        state.pop("run_note")  # a failed run's message belongs to its inputs, not to the ones chosen since
    state["inputs_blocked"] = not ready
    changed = ready and state.get("analysis_key") != settings.key
    if ready and "job" not in state:
        first_visit = "analysis" not in state and "failed_key" not in state
        found_again = changed and state.get("failed_key") != settings.key and _cached(settings, settings.checkpoints)
        run_now = state.pop("run_now", False)  # set by a view's one-click switch of the measure
        if first_visit or found_again or (run_now and changed):
            _start(settings, first_visit=first_visit, cached=found_again)  # a first visit counts as changed
    clicked = st.sidebar.button(
        "Analyse",
        type="primary",
        key="analyse",
        disabled=not ready or "job" in state,
        help="Runs in the background: you can look at the views meanwhile.",
    )
    if not ready:
        st.sidebar.warning(str(settings))
    elif clicked and "job" not in state:
        _start(settings, first_visit=False, cached=False)
    elif changed and "job" not in state and "analysis" in state:
        st.info("The inputs changed: press **Analyse** to update the results (the views show the previous ones).")


def _start(settings: Settings, *, first_visit: bool, cached: bool) -> None:
    """Start the job for ``settings``; wait for it here when every result is cached (reading them back takes a
    fraction of a second: the charts then show in this very run rather than one poll and one more script run
    later), or, on a first visit, for its first checkpoint when that one is cached."""
    state = st.session_state
    state.pop("run_note", None)
    state.pop("preview_shown", None)
    job = jobs.start(settings.key, settings.study, list(settings.checkpoints), settings.spec)
    if cached:
        job.join(CACHED_WAIT_SECONDS)
    elif first_visit and _cached(settings, settings.checkpoints[:1]):
        job.join(CACHED_WAIT_SECONDS, preview=True)
        state["preview_shown"] = job.preview is not None
    state["job"] = job
    collect()


def preview():
    """The first checkpoint's analysis of the running job, to show while the others run (else None)."""
    job = st.session_state.get("job")
    return job.preview if job is not None and job.running else None


def progress() -> None:
    """The running job's progress (polled), or the last run's note."""
    job = st.session_state.get("job")
    if job is not None:
        _progress_panel()
    elif (note := st.session_state.get("run_note")) is not None:
        if note[0] == "success" and st.session_state.get("inputs_blocked") and "analysis" in st.session_state:
            note = (
                "info",
                "Showing the previous results: the inputs now in the sidebar cannot be analysed (see "
                "the message there).",
            )
        getattr(st, note[0])(note[1])


@st.fragment(run_every=POLL_SECONDS)
def _progress_panel() -> None:
    job = st.session_state.get("job")
    if job is None or not job.running:
        st.rerun()  # the whole page picks up the result
        return
    if job.preview is not None and not st.session_state.get("preview_shown"):
        st.session_state["preview_shown"] = True
        st.rerun()  # the whole page shows the first checkpoint while the others run
    c1, c2 = st.columns([6, 1])
    c1.progress(job.fraction, text=job.status())
    if c2.button("Cancel", key="cancel_run", help="Stops at the next progress step; the previous results stay."):
        job.cancel()
        c1.caption("Cancelling…")
