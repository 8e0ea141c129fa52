"""Typed parameter merge: explicit booleans, no silent truncation, one kind of error."""

from __future__ import annotations

import pytest

from explorer.attribution.params import merge_params, parse_bool
from explorer.errors import InputError

DEFAULTS = {"flag": True, "steps": 16, "sigma": 0.15, "name": "x"}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("false", False),
        ("False", False),
        ("0", False),
        ("no", False),
        ("off", False),
        (0, False),
        (False, False),
        ("true", True),
        (" TRUE ", True),
        ("1", True),
        ("yes", True),
        ("on", True),
        (1, True),
        (True, True),
    ],
)
def test_booleans_are_parsed_explicitly(given, expected):
    assert parse_bool(given) is expected
    assert merge_params(DEFAULTS, {"flag": given}, owner="m", source="params")["flag"] is expected


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("flag", "maybe", r"flag='maybe' for m; expected true or false"),
        ("flag", 2, r"flag=2 for m; expected true or false"),
        ("steps", 2.7, r"steps=2.7 for m; expected an integer"),
        ("steps", True, r"steps=True for m; expected an integer"),
        ("steps", "8.5", r"steps='8.5' for m; expected an integer"),
        ("sigma", "nan", r"sigma='nan' for m; expected a number"),
        ("sigma", "inf", r"sigma='inf' for m; expected a number"),
    ],
)
def test_garbage_is_an_input_error(key, value, message):
    with pytest.raises(InputError, match=message):
        merge_params(DEFAULTS, {key: value}, owner="m", source="params")


def test_numbers_from_strings_still_convert():
    assert merge_params(DEFAULTS, {"steps": "8", "sigma": "0.5"}, owner="m", source="params") == {
        "flag": True,
        "steps": 8,
        "sigma": 0.5,
        "name": "x",
    }
