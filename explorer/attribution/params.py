"""Named parameters with typed defaults (attribution methods, training losses): one merge, one kind of error."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..errors import InputError

__all__ = ["parse_bool", "merge_params"]


_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


def parse_bool(value: Any) -> bool:
    """A boolean from a bool, 0/1, or a word (``true/false``, ``yes/no``, ``on/off``, ``1/0``, any case).

    ``bool("false")`` is True in Python; this is the explicit parse every typed parameter goes through.

    Raises:
        ValueError: anything else.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"{value!r} is not a boolean")


def _convert(kind: type, value: Any) -> Any:
    """``value`` as ``kind``, without the silent conversions of ``kind(value)`` (bool("false"), int(2.7))."""
    if kind is bool:
        return parse_bool(value)
    if isinstance(value, bool) and kind is not str:
        raise ValueError("a boolean where a number belongs")
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise ValueError("a fractional number where an integer belongs")
    converted = kind(value)
    if kind is float and not math.isfinite(converted):
        raise ValueError("not a finite number")
    return converted


def merge_params(
    defaults: Mapping[str, Any], given: Mapping[str, Any] | None, *, owner: str, source: str
) -> dict[str, Any]:
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
        raise InputError(
            source,
            f"unknown parameter(s) {unknown} for {owner}",
            f"some of {sorted(defaults)}" if defaults else "no parameters",
        )
    resolved = dict(defaults)
    for key, value in given.items():
        kind = type(defaults[key])
        try:
            resolved[key] = _convert(kind, value)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InputError(source, f"{key}={value!r} for {owner}", _TYPE_NAMES.get(kind, kind.__name__)) from exc
    return resolved
