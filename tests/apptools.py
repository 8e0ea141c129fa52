"""Helpers for the app's tests: AppTest sessions (whose analysis runs in a background job) and the figures a page
or a report draws."""

from __future__ import annotations

import json
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


def plotly_json(html: str) -> tuple[list, dict]:
    """The data and layout a plotly HTML page draws (the two arguments after the div id of ``Plotly.newPlot``)."""
    decoder, pos = json.JSONDecoder(), html.index("Plotly.newPlot(")
    pos = html.index(",", pos) + 1
    parsed = []
    for _ in range(2):
        while html[pos] in " \n,":
            pos += 1
        value, pos = decoder.raw_decode(html, pos)
        parsed.append(value)
    return parsed[0], parsed[1]
