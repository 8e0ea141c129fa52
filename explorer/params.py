"""Named parameters with typed defaults (attribution methods, training losses): one merge, one kind of error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import InputError

_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def merge_params(defaults: Mapping[str, Any], given: Mapping[str, Any] | None, *, owner: str,
                 source: str) -> dict[str, Any]:
    """``defaults`` updated by ``given``, each value converted to the type of its default.

    Args:
        defaults: parameter names and default values (their types are the accepted types).
        given: the caller's values, or None.
        owner: what the parameters belong to, for messages (e.g. ``method 'smoothgrad'``).
        source: the parameter or flag named in messages (e.g. ``params``, ``--loss-param``).

    Raises:
        InputError: an unknown name (the valid ones are listed) or a value of the wrong type.
    """
    given = dict(given or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise InputError(source, f"unknown parameter(s) {unknown} for {owner}",
                         f"some of {sorted(defaults)}" if defaults else "no parameters")
    resolved = dict(defaults)
    for key, value in given.items():
        kind = type(defaults[key])
        try:
            resolved[key] = kind(value)
        except (TypeError, ValueError) as exc:
            raise InputError(source, f"{key}={value!r} for {owner}", _TYPE_NAMES.get(kind, kind.__name__)) from exc
    return resolved
