"""Helpers for AppTest sessions of the app, whose analysis runs in a background job."""

from __future__ import annotations

import time

from streamlit.testing.v1 import AppTest

TIMEOUT = 600


def settle(at: AppTest, timeout: float = TIMEOUT) -> AppTest:
    """Rerun the page until the background analysis (if any) has finished and its result is shown."""
    deadline = time.monotonic() + timeout
    while "job" in at.session_state and time.monotonic() < deadline:
        time.sleep(0.5)
        at.run()
    assert "job" not in at.session_state, "the analysis did not finish"
    assert not at.exception, at.exception
    return at
