"""JSON text for what the service stores: compact, and fast on the hot paths.

orjson writes and reads a decision record (facts, context, result) several times
faster than the standard library; its text has no spaces. Keys that are not
strings are written as strings, as ``json`` does. NaN and infinities, which JSON
does not have (and no computed value here should be), are written as null.
"""

from __future__ import annotations

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps(value) -> str:
    """The JSON text of ``value``."""
    return orjson.dumps(value, option=_OPTIONS).decode()


def loads(text: str | bytes):
    """The value of a JSON text."""
    return orjson.loads(text)
