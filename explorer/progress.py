"""Progress of a CLI command on stderr: tqdm's bar on a terminal, plain lines anywhere else.

tqdm draws its bar with carriage returns, which turn a log file or a pipe into one long line, and with
``disable=None`` it prints nothing at all when stderr is not a terminal — a 40-minute cohort then looks hung.
So, when stderr is not a terminal, one plain line is written at most every :data:`PLAIN_INTERVAL_S` seconds
(the first one after that long: a quick command, or one refused at once, stays silent). The bar starts with its
total when the command knows it, and :meth:`Progress.stage` says what follows the counted work (writing the
figures), so the seconds after 100% are not silent.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType

__all__ = ["PLAIN_INTERVAL_S", "Progress"]


#: Seconds between two plain progress lines (and before the first).
PLAIN_INTERVAL_S = 10.0


class Progress:
    """A context manager reporting ``done`` of ``total`` (with a message) for the command ``desc``.

    Args:
        desc: the command's name, first on every line (``analyze``, ``cohort``).
        unit: what is counted (``pair``), or ``""`` to show a percentage only.
        total: how many there are, when known before the first report (the bar then starts with it).
    """

    def __init__(self, desc: str, unit: str = "", total: int | None = None) -> None:
        self.desc, self.unit = desc, unit
        self.plain = not sys.stderr.isatty()
        self._start = self._last = time.monotonic()
        self._bar = None
        if not self.plain:
            from tqdm import tqdm  # imported here: a replayed command never reports progress

            self._bar = tqdm(
                desc=desc,
                unit=unit,
                total=total,
                file=sys.stderr,
                bar_format=None if unit else "{l_bar}{bar}| {elapsed}<{remaining} {postfix}",
            )

    def update(self, done: int, total: int, message: str = "") -> None:
        """Report ``done`` of ``total``: redraw the bar, or write a line when the interval has passed."""
        if self._bar is not None:
            self._bar.total, self._bar.n = total, done
            self._bar.set_postfix_str(message, refresh=False)
            self._bar.refresh()
            return
        now = time.monotonic()
        if now - self._last < PLAIN_INTERVAL_S:
            return
        self._last = now
        share = f"{100 * done / total:.0f}%" if total else "?%"
        count = f" ({done:,} of {total:,} {self.unit}s)" if self.unit else ""
        text = f"{self.desc}: {share}{count}, {now - self._start:,.0f} s" + (f": {message}" if message else "")
        print(" ".join(text.split()), file=sys.stderr, flush=True)  # one line, whatever the message holds

    def stage(self, message: str) -> None:
        """Say what the command does after the counted work (``writing figures``): on the bar at once; as a plain
        line when the command has already run for :data:`PLAIN_INTERVAL_S` (a quick one stays silent)."""
        if self._bar is not None:
            self._bar.set_postfix_str(message, refresh=True)
            return
        now = time.monotonic()
        if now - self._start >= PLAIN_INTERVAL_S:
            self._last = now
            print(" ".join(f"{self.desc}: {message}, {now - self._start:,.0f} s".split()), file=sys.stderr, flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.close()
