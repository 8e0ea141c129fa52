"""Helpers for AppTest sessions of the app, whose analysis runs in a background job."""

from __future__ import annotations

import time

from streamlit.testing.v1 import AppTest

TIMEOUT = 600
#: Session state keys of the background jobs: the single-volume analysis and the cohort.
JOB_KEYS = ("job", "cohort_job")


def settle(at: AppTest, timeout: float = TIMEOUT) -> AppTest:
    """Rerun the page until the background analysis or cohort (if any) has finished and its result is shown."""
    deadline = time.monotonic() + timeout
    while any(key in at.session_state for key in JOB_KEYS) and time.monotonic() < deadline:
        time.sleep(0.5)
        at.run()
    assert not any(key in at.session_state for key in JOB_KEYS), "the analysis did not finish"
    assert not at.exception, at.exception
    return at
