"""Turn a failed step into a clear message in the page: never a traceback in the UI."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from explorer.errors import InputError

log = logging.getLogger("explorer.app")


class Outcome:
    """Truthy until the guarded block fails."""

    def __init__(self) -> None:
        self.ok = True
        self.message: str | None = None

    def __bool__(self) -> bool:
        return self.ok


@contextmanager
def guard(step: str, where=None) -> Iterator[Outcome]:
    """Run a block; on failure show one message (``InputError``: its text; anything else: the step and the
    error, with the traceback only in the server log) and carry on rendering the page."""
    outcome = Outcome()
    target = where if where is not None else st
    try:
        yield outcome
    except InputError as exc:
        outcome.ok, outcome.message = False, str(exc)
        target.error(str(exc))
    except Exception as exc:  # noqa: BLE001 - the UI must never show a traceback
        log.exception("%s failed", step)
        outcome.ok, outcome.message = False, f"{step} failed: {type(exc).__name__}: {exc}"
        target.error(outcome.message)
