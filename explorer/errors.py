"""The one error type for input a user can get wrong (files, uploads, names, parameters)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["InputError", "unknown_name"]


class InputError(ValueError):
    """Bad user input: names the file (or parameter), what was found and what was expected.

    The CLI prints ``str(error)`` as its single stderr line and exits 2; the app shows it as a message.
    """

    def __init__(self, source: str | Path | None, problem: str, expected: str | None = None) -> None:
        self.source = str(source) if source is not None else None
        self.problem = problem
        self.expected = expected
        text = f"{self.source}: {problem}" if self.source else problem
        if expected:
            text += f"; expected {expected}"
        super().__init__(text)


def unknown_name(kind: str, name: str, available: object) -> InputError:
    """Error for a name missing from a registry, listing the valid names."""
    names = ", ".join(sorted(str(n) for n in available))  # type: ignore[attr-defined]
    return InputError(None, f"unknown {kind} {name!r}", f"one of: {names}")
