"""Values the core stores (session data, scope, hub messages) are JSON."""

import json

from hpxd.core import errors

# json.loads is this decoder's raw_decode plus two regular-expression scans
# for whitespace around the value, which cost about as much as parsing a
# small message. load_json skips them for text with nothing around it.
_raw_decode = json.JSONDecoder().raw_decode
# What json.dumps raises for a value that is no JSON: a type it does not know
# (TypeError), NaN or a circular reference (ValueError), a value nested too
# deeply (RecursionError).
NOT_ENCODABLE = (TypeError, ValueError, RecursionError)
# ``json.dumps`` as every door writes JSON, but refusing NaN and the
# infinities (ValueError), which are no JSON: a browser's JSON.parse, and
# most clients' parsers, refuse them. One encoder made once: json.dumps with
# any option builds a new encoder per call.
to_json = json.JSONEncoder(allow_nan=False).encode


def load_json(text):
    """``json.loads(text)`` for a str, in about half the time for a small
    message with no whitespace around it; anything else (whitespace, junk,
    errors) goes through ``json.loads`` itself, which gives its own answer."""
    try:
        value, end = _raw_decode(text)
    except ValueError:
        return json.loads(text)
    if end == len(text):
        return value
    return json.loads(text)


def dump_json(value, what):
    """``value`` as JSON text; BadArguments naming ``what`` if it is not JSON."""
    try:
        return to_json(value)
    except NOT_ENCODABLE as e:
        raise errors.BadArguments(f"{what} must be JSON-serialisable ({e})") from None
