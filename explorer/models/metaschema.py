"""Bounded parsing and validation of checkpoint metadata, before anything is built from it.

A checkpoint's metadata (our ``explorer`` JSON, or smp's ``config.json``) chooses code paths and sizes
allocations: ``classes`` and ``decoder_channels`` size layers, ``in_channels`` sizes the first convolution.
Everything it holds is therefore checked against a schema with bounds first: JSON nesting depth, string
and list lengths, types (an object, not a list; numbers, not strings) and numeric ranges. Written by hand
because a schema library (jsonschema) would still need these bounds spelled out and would parse first.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..errors import InputError

__all__ = [
    "MAX_CLASSES",
    "MAX_WIDTH",
    "MAX_DEPTH",
    "MAX_NAME",
    "MAX_TEXT",
    "MAX_ITEMS",
    "MAX_KWARG_ITEMS",
    "parse_json",
    "check_bounds",
    "integer",
    "validate_fields",
]


#: Bounds on what metadata may declare.
MAX_CLASSES = 512
MAX_WIDTH = 4096  # any integer in arch_kwargs (decoder widths, pyramid channels, ...)
MAX_DEPTH = 8  # JSON nesting
MAX_NAME = 128  # arch, encoder, strategy, ... and any key
MAX_TEXT = 65_536  # free text in training / recipe / metrics (a training command line)
MAX_ITEMS = 10_000  # entries of one list or object (a loss per epoch)
MAX_KWARG_ITEMS = 64  # entries of one list or object in arch_kwargs (each may build a layer)

_NAME_FIELDS = ("arch", "encoder", "strategy", "normalisation", "axis", "version")
_FREE_FIELDS = ("training", "recipe", "metrics")


def parse_json(text: str | bytes, *, source: str, what: str) -> Any:
    """``json.loads`` that refuses deep nesting, long strings and huge containers with an :class:`InputError`.

    Args:
        text: the JSON text.
        source: the file named in errors.
        what: which JSON it is (e.g. ``metadata 'explorer'``, ``config.json``).

    Raises:
        InputError: invalid JSON, or JSON over the bounds of this module.
    """
    try:
        value = json.loads(text)
    except RecursionError as exc:  # C json recurses once per nesting level
        raise InputError(source, f"{what} is nested too deeply", f"JSON nested at most {MAX_DEPTH} levels") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(source, f"{what} is not valid JSON ({exc})", "a JSON object") from exc
    check_bounds(value, source=source, what=what)
    return value


def check_bounds(value: Any, *, source: str, what: str, depth: int = 0) -> None:
    """Walk ``value`` and refuse nesting deeper than :data:`MAX_DEPTH`, long strings and huge containers.

    Raises:
        InputError: the first bound exceeded, naming ``source`` and ``what``.
    """
    if depth > MAX_DEPTH:
        raise InputError(source, f"{what} is nested more than {MAX_DEPTH} levels", "flat metadata")
    if isinstance(value, str) and len(value) > MAX_TEXT:
        raise InputError(source, f"{what} holds a string of {len(value):,} characters", f"at most {MAX_TEXT:,}")
    if isinstance(value, (list, dict)):
        if len(value) > MAX_ITEMS:
            raise InputError(source, f"{what} holds a container of {len(value):,} entries", f"at most {MAX_ITEMS}")
        children = value.values() if isinstance(value, dict) else value
        for key in value if isinstance(value, dict) else ():
            if len(key) > MAX_NAME:
                raise InputError(source, f"{what} has a key of {len(key):,} characters", f"at most {MAX_NAME}")
        for child in children:
            check_bounds(child, source=source, what=what, depth=depth + 1)


def integer(value: Any, *, source: str, field: str, low: int, high: int) -> int:
    """``value`` as an int in ``[low, high]``; a bool, a string or a fractional number is refused.

    Raises:
        InputError: anything else, naming ``field`` and the range.
    """
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(source, f"metadata field {field!r} is {value!r}", f"an integer in {low}..{high}")
    if not low <= value <= high:
        raise InputError(source, f"metadata field {field!r} is {value:,}", f"an integer in {low}..{high:,}")
    return value


def validate_fields(data: Any, *, source: str) -> dict[str, Any]:
    """Type- and range-check the fields of checkpoint metadata (unknown keys are kept for the caller to drop).

    Args:
        data: the merged metadata (file, inferred and user-supplied values).
        source: the file named in errors.

    Returns:
        A copy of ``data`` with ``classes`` as an int.

    Raises:
        InputError: not an object, a name that is not a short string, ``classes`` out of range,
            ``arch_kwargs`` holding anything but bounded scalars and short lists, or free-form fields that
            are not objects.
    """
    if not isinstance(data, dict):
        raise InputError(source, f"metadata is a {type(data).__name__}", "a JSON object")
    check_bounds(data, source=source, what="metadata")
    out = dict(data)
    for key in _NAME_FIELDS:
        if key in out and not (isinstance(out[key], str) and 0 < len(out[key]) <= MAX_NAME):
            raise InputError(
                source, f"metadata field {key!r} is {_short(out[key])}", f"a name of 1..{MAX_NAME} characters"
            )
    if "classes" in out:
        out["classes"] = integer(out["classes"], source=source, field="classes", low=1, high=MAX_CLASSES)
    if "offsets" in out and not isinstance(out["offsets"], (list, tuple)):
        raise InputError(source, f"metadata field 'offsets' is {_short(out['offsets'])}", "a list such as [-1, 0, 1]")
    for key in ("arch_kwargs", *_FREE_FIELDS):
        if key in out and not isinstance(out[key], dict):
            raise InputError(source, f"metadata field {key!r} is {type(out[key]).__name__}", "an object")
    for key, value in out.get("arch_kwargs", {}).items():
        _check_kwarg(value, source=source, field=f"arch_kwargs.{key}")
    return out


def _check_kwarg(value: Any, *, source: str, field: str) -> None:
    """An architecture argument: None, a bool, a bounded number, a short string, or a list/object of those."""
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        integer(value, source=source, field=field, low=-MAX_WIDTH, high=MAX_WIDTH)
    elif isinstance(value, float):
        if not (math.isfinite(value) and abs(value) <= MAX_WIDTH):
            raise InputError(source, f"metadata field {field!r} is {value!r}", f"a finite number within ±{MAX_WIDTH}")
    elif isinstance(value, str):
        if len(value) > MAX_NAME:
            raise InputError(
                source,
                f"metadata field {field!r} is a {len(value):,}-character string",
                f"at most {MAX_NAME} characters",
            )
    elif isinstance(value, (list, dict)):
        if len(value) > MAX_KWARG_ITEMS:
            raise InputError(
                source, f"metadata field {field!r} has {len(value):,} entries", f"at most {MAX_KWARG_ITEMS}"
            )
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            _check_kwarg(item, source=source, field=f"{field}.{key}")
    else:
        raise InputError(source, f"metadata field {field!r} is {_short(value)}", "a number, string, list or object")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
