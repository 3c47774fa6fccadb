"""load_json answers exactly as json.loads does, on good and bad text."""

import json

import pytest

from hpxd.core import errors
from hpxd.core.jsonvalues import dump_json, load_json

TEXTS = [
    '{"session": "abc", "name": "x", "data": [{"fname": "add", "a": 1, "b": 2}]}',
    "[]", "0", "-1.5e3", '"text"', "null", "true", "NaN",
    ' {"a": 1}', '{"a": 1} ', '\n\t{"a": 1}\r\n', "  7  ",  # whitespace around: valid
]
BAD = ['{"a": 1} x', '{"a": 1}{"a": 1}', "", "   ", "{", '{"a": }', "\ufeff{}", "[1,]", "01"]


@pytest.mark.parametrize("text", TEXTS)
def test_load_json_parses_as_json_loads(text):
    # Compared as JSON text: types count (1 is not 1.0) and NaN equals NaN.
    assert json.dumps(load_json(text)) == json.dumps(json.loads(text))


@pytest.mark.parametrize("text", BAD)
def test_load_json_refuses_as_json_loads(text):
    with pytest.raises(ValueError) as expected:
        json.loads(text)
    with pytest.raises(ValueError) as got:
        load_json(text)
    assert str(got.value) == str(expected.value)


def test_dump_json_names_what_is_not_json():
    with pytest.raises(errors.BadArguments) as info:
        dump_json({1, 2}, "session data")
    assert "session data" in info.value.msg
