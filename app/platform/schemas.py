"""Load the JSON Schemas in ``schemas/`` and validate documents against them.

Every body that crosses the boundary is checked here. Errors come back as a list
of ``{"pointer", "message"}`` entries, one per bad field, all of them at once.

Two validators read the same schemas: ``jsonschema-rs`` answers "is it valid?"
fast (a 100,000-item feed in tens of milliseconds, where the pure-Python validator
takes seconds), and ``jsonschema`` lists the errors of an invalid document with the
messages and pointers this service promises. The pure-Python one has the last word.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from functools import cache
from pathlib import Path

import jsonschema_rs
import orjson
from jsonschema import Draft202012Validator, FormatChecker, ValidationError
from referencing import Registry, Resource

from app.platform.db import parse_time
from app.platform.errors import InvalidInput, MalformedJson, field_error

SUFFIX = ".schema.json"

format_checker = FormatChecker()


@format_checker.checks("date-time", raises=ValueError)
def _date_time(value) -> bool:
    # RFC 3339 requires an offset; jsonschema's own check needs an optional package.
    if not isinstance(value, str):
        return True
    parse_time(value)
    return True


def _is_date_time(value: str) -> bool:
    try:
        return _date_time(value)
    except ValueError:
        return False


def _is_email(value: str) -> bool:
    # The same rule as jsonschema's email check, so both validators agree.
    return "@" in value


FAST_FORMATS = {"date-time": _is_date_time, "email": _is_email}


class Catalogue:
    """The schemas of one folder, by short name (``node`` for ``node.schema.json``)."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.documents: dict[str, dict] = {}
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            self.documents[path.name[: -len(SUFFIX)]] = json.loads(path.read_text())
        resources = [
            (doc["$id"], Resource.from_contents(doc))
            for doc in self.documents.values()
            if "$id" in doc
        ]
        self.registry = Registry().with_resources(resources)
        self.fast_registry = jsonschema_rs.Registry(
            [(doc["$id"], doc) for doc in self.documents.values() if "$id" in doc]
        )
        self._validators: dict[str, Draft202012Validator] = {}
        self._fast: dict[str, jsonschema_rs.Draft202012Validator] = {}

    def fast_validator(self, name: str) -> jsonschema_rs.Draft202012Validator:
        if name not in self._fast:
            self._fast[name] = jsonschema_rs.Draft202012Validator(
                self.documents[name],
                registry=self.fast_registry,
                formats=FAST_FORMATS,
                validate_formats=True,
            )
        return self._fast[name]

    def validator(self, name: str) -> Draft202012Validator:
        if name not in self._validators:
            schema = self.documents[name]
            Draft202012Validator.check_schema(schema)
            self._validators[name] = Draft202012Validator(
                schema, registry=self.registry, format_checker=format_checker
            )
        return self._validators[name]

    def errors(self, name: str, document) -> list[dict]:
        """Return every problem with ``document``, each with the pointer of the bad field."""
        if self.fast_validator(name).is_valid(document):
            return []
        found: list[dict] = []
        for error in self.validator(name).iter_errors(document):
            found.extend(_field_errors(error))
        # Stable order, and no repeats when two keywords blame the same field the same way.
        unique = {(e["pointer"], e["message"]): e for e in found}
        return sorted(unique.values(), key=lambda e: (e["pointer"], e["message"]))

    def validate(self, name: str, document) -> None:
        """Raise ``InvalidInput`` listing every problem, or return quietly."""
        problems = self.errors(name, document)
        if problems:
            raise InvalidInput(problems)


def _field_errors(error: ValidationError) -> list[dict]:
    path = tuple(error.absolute_path)
    instance = error.instance
    if error.validator == "required" and isinstance(instance, dict):
        # Point at the missing field itself, not at the object that lacks it.
        missing = [name for name in error.validator_value if name not in instance]
        return [field_error((*path, name), "is required") for name in missing]
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        allowed = set(error.schema.get("properties", {}))
        patterns = error.schema.get("patternProperties", {})
        extra = [k for k in instance if k not in allowed and not patterns]
        if extra:
            return [field_error((*path, name), unknown_key(name, allowed)) for name in extra]
    if error.validator == "unevaluatedProperties" and isinstance(instance, dict):
        # jsonschema names the unexpected keys only in its message.
        extra = [k for k in instance if repr(k) in error.message]
        if extra:
            return [field_error((*path, name), "is not a known field") for name in extra]
    if error.validator in {"anyOf", "oneOf"} and error.context:
        # Report the problems of the branch that came closest, not a bare "not valid".
        best = min(
            _group_by_branch(error.context).values(),
            key=len,
        )
        return [item for sub in best for item in _field_errors(sub)]
    return [field_error(path, _message(error))]


# JSON Schema's types, as an analyst says them.
TYPE_WORDS = {
    "integer": "a whole number",
    "number": "a number",
    "string": "text",
    "boolean": "true or false",
    "array": "a list",
    "object": "an object ({...})",
    "null": "null",
}
# What people type for an operator, and the operator's name.
OPERATOR_SYMBOLS = {
    ">": "gt",
    ">=": "gte",
    "=>": "gte",
    "<": "lt",
    "<=": "lte",
    "=<": "lte",
    "=": "eq",
    "==": "eq",
    "!=": "ne",
    "<>": "ne",
}


def wrote(value) -> str:
    """A value as an analyst would describe what they wrote."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"the text {json.dumps(value)}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    return "an object"


def unknown_key(name: str, allowed: set[str]) -> str:
    """Why a key is refused, with the closest allowed one; operators named as operators."""
    if {"eq", "ne", "gt"} <= allowed:
        if OPERATOR_SYMBOLS.get(name) in allowed:
            return f"{name!r} is not an operator; did you mean {OPERATOR_SYMBOLS[name]!r}?"
        return f"{name!r} is not an operator{suggest(name, allowed)}"
    return f"is not a known field{suggest(name, allowed)}"


def suggest(name: str, options) -> str:
    close = difflib.get_close_matches(str(name), sorted(options), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _group_by_branch(context: list[ValidationError]) -> dict[int, list[ValidationError]]:
    groups: dict[int, list[ValidationError]] = {}
    for sub in context:
        branch = sub.schema_path[0] if sub.schema_path else 0
        groups.setdefault(branch, []).append(sub)
    return groups


def _message(error: ValidationError) -> str:
    if error.validator == "enum":
        options = ", ".join(json.dumps(v) for v in error.validator_value)
        return f"must be one of {options}"
    if error.validator == "not" and error.validator_value == {}:
        return f"is not allowed here ({error.schema.get('description', 'forbidden')})"
    if error.validator == "const":
        return f"must be {json.dumps(error.validator_value)}"
    if error.validator == "format":
        return f"is not a valid {error.validator_value}"
    if error.validator == "type":
        expected = error.validator_value
        kinds = expected if isinstance(expected, list) else [expected]
        words = " or ".join(TYPE_WORDS.get(kind, kind) for kind in kinds)
        return f"must be {words}; you wrote {wrote(error.instance)}"
    if error.validator == "minimum":
        return f"must be at least {error.validator_value}"
    if error.validator == "maximum":
        return f"must be at most {error.validator_value}"
    if error.validator == "exclusiveMinimum":
        return f"must be greater than {error.validator_value}"
    if error.validator == "minLength":
        return f"must have at least {error.validator_value} characters"
    if error.validator == "maxLength":
        return f"must have at most {error.validator_value} characters"
    if error.validator == "minItems":
        return f"must have at least {error.validator_value} items"
    if error.validator == "maxItems":
        return f"must have at most {error.validator_value} items"
    if error.validator == "pattern":
        return f"must match the pattern {error.validator_value}"
    if error.validator == "uniqueItems":
        return "must not repeat items"
    return error.message


# Untrusted JSON ------------------------------------------------------------------------

MAX_DEPTH = 64
# The widest integer any store or engine here can hold; schemas set tighter maxima.
MAX_INTEGER = 2**63 - 1


class _NonFinite:
    """Stands where a body had NaN, Infinity or a number too large for a float."""


_NON_FINITE = _NonFinite()


def _finite_float(text: str):
    value = float(text)
    return value if math.isfinite(value) else _NON_FINITE


def parse_json(raw: bytes | str):
    """Parse an untrusted JSON body; raise ``MalformedJson`` or ``InvalidInput``.

    NaN, Infinity and numbers that overflow a float (``1e400``) are not JSON numbers
    anyone can use; integers beyond 64 bits fit no column; documents nested deeper
    than ``MAX_DEPTH`` levels describe nothing this service takes. Each is a 422
    with the pointer of the offending value.
    """
    document = _parse_plain(raw)
    if document is not _UNSURE:
        return document
    try:
        document = json.loads(raw, parse_float=_finite_float, parse_constant=_non_finite)
    except RecursionError:
        raise InvalidInput([field_error((), f"is nested deeper than {MAX_DEPTH} levels")]) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedJson(f"the body is not valid JSON: {exc}") from exc
    problems = []
    stack = [(document, (), 0)]
    while stack:
        value, path, depth = stack.pop()
        if value is _NON_FINITE:
            problems.append(field_error(path, "must be a finite number"))
        elif isinstance(value, int) and not isinstance(value, bool):
            if abs(value) > MAX_INTEGER:
                problems.append(field_error(path, "is too large (beyond 64 bits)"))
        elif isinstance(value, dict | list):
            if depth >= MAX_DEPTH:
                problems.append(field_error(path, f"is nested deeper than {MAX_DEPTH} levels"))
                continue
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend((item, (*path, key), depth + 1) for key, item in items)
    if problems:
        raise InvalidInput(sorted(problems, key=lambda e: e["pointer"])[:100])
    return document


_UNSURE = object()
_CONTAINERS = frozenset({dict, list})
# A run of digits that long may be an integer beyond 64 bits (orjson makes it a float).
_LONG_DIGITS = re.compile(rb"\d{19,}")


def _parse_plain(raw: bytes | str):
    """The document, when orjson parses it and it is plainly within the limits above;
    else ``_UNSURE``, and the careful parse finds each problem and its place.

    orjson refuses NaN, infinities and numbers that overflow; long runs of digits and
    deep nesting are looked for here. A 100,000-item feed parses ten times faster.
    """
    text = raw.encode() if isinstance(raw, str) else raw
    if _LONG_DIGITS.search(text):
        return _UNSURE
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError:
        return _UNSURE
    # Level by level, the containers at each depth, in one comprehension per level.
    level = [document] if document.__class__ in _CONTAINERS else []
    depth = 0
    while level:
        if depth >= MAX_DEPTH:
            return _UNSURE
        level = [
            item
            for value in level
            for item in (value.values() if value.__class__ is dict else value)
            if item.__class__ in _CONTAINERS
        ]
        depth += 1
    return document


def _non_finite(_name: str):
    return _NON_FINITE


@cache
def catalogue(directory: str) -> Catalogue:
    """Return the catalogue of a folder, loaded once per process."""
    return Catalogue(directory)
