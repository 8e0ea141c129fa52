"""Helpers for the app's tests: AppTest sessions (whose analysis runs in a background job) and the figures a page
or a report draws."""

from __future__ import annotations

import json
import time

from streamlit.testing.v1 import AppTest

TIMEOUT = 600
#: Session state keys of the background jobs: the single-volume analysis and the cohort.
JOB_KEYS = ("job", "cohort_job")


def settle(at: AppTest, timeout: float = TIMEOUT, keys: tuple[str, ...] = JOB_KEYS) -> AppTest:
    """Rerun the page until the background jobs under ``keys`` (if any) have finished and their result is shown.

    Waits on the jobs themselves and reruns the page once each has finished (a finished job may start another:
    a debias run starts the analysis of its children), rather than rerunning every half second meanwhile: a
    rerun draws the whole page, figures included, and took the cores from the very analysis it waited for."""
    deadline = time.monotonic() + timeout
    while (running := [at.session_state[key] for key in keys if key in at.session_state]) and (
        time.monotonic() < deadline
    ):
        for job in running:
            job.join(max(0.0, deadline - time.monotonic()))
        at.run()
    assert not any(key in at.session_state for key in keys), "the analysis did not finish"
    assert not at.exception, at.exception
    return at


def upload_scan(at: AppTest, files: tuple | list[tuple]) -> AppTest:
    """Switch the session's volume source to an upload and upload ``files`` (one ``(name, bytes, MIME type)`` or a
    list of them)."""
    at.radio(key="volume_source").set_value("Upload a scan").run()
    return at.file_uploader(key="volume_upload").set_value(files).run()


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
