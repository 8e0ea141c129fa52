"""CLI progress (explorer.progress): plain lines in a log, a bar with its total on a terminal, and a line for
what follows the counted work."""

from __future__ import annotations

import io
import sys

from explorer import progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_in_a_log_each_report_and_the_writing_stage_are_plain_lines(monkeypatch, capsys):
    monkeypatch.setattr(progress, "PLAIN_INTERVAL_S", 0.0)
    with progress.Progress("cohort", unit="pair", total=4) as bar:
        bar.update(1, 4, "sub-01\nsecond line")
        bar.stage("writing the tables and figures")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and "\r" not in "".join(lines)
    assert lines[0].startswith("cohort: 25% (1 of 4 pairs), ") and lines[0].endswith(": sub-01 second line")
    assert lines[1].startswith("cohort: writing the tables and figures, ")


def test_a_quick_command_in_a_log_stays_silent(capsys):
    with progress.Progress("analyze", total=1000) as bar:
        bar.update(1000, 1000, "done")
        bar.stage("writing the tables and figures")
    assert capsys.readouterr().err == ""


def test_on_a_terminal_the_bar_starts_with_its_total_and_shows_the_stage(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with progress.Progress("cohort", unit="pair", total=6) as bar:
        assert bar._bar.total == 6
        bar.update(6, 6, "sub-03")
        bar.stage("writing the tables and figures")
    assert "writing the tables and figures" in terminal.getvalue() and "6/6" in terminal.getvalue()
