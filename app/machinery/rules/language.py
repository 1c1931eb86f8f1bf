"""The ruleset language: fact types and their fields, operators, actions, canonical form.

The fact catalogue is ``schemas/facts.schema.json``; this module reads it into
``FactCatalogue`` so the validator and the compiler know every field's type.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

# Field types of the catalogue, and the operators that make sense on each.
OPERATORS_BY_TYPE = {
    "number": {"eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "exists"},
    "integer": {"eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "exists"},
    "string": {"eq", "ne", "in", "not_in", "exists", "matches"},
    "boolean": {"eq", "ne", "exists"},
    "array": {"contains", "exists"},
    # Flag values are free: their type is whatever rules assert.
    "any": {"eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "exists", "matches"},
}
COMPARISONS = ("eq", "ne", "lt", "lte", "gt", "gte")
JOINABLE = set(COMPARISONS)

ACTION_KINDS = ("exclude", "score", "set", "hold", "assert", "tag")
# Engine limits measured (DESIGN.md, tests/test_hostile_rulesets.py): past them
# durable-rules hangs or crashes. Distinct tests count each member of an in/not_in list
# (520 members on one field hang compilation; 510 compile at once); 256 rules sharing
# one identical condition crash it (255 do not).
MAX_RULES = 4096
MAX_PATTERNS_PER_RULE = 16
MAX_DISTINCT_TESTS_PER_FIELD = 500
MAX_RULES_PER_CONDITION = 200

# Fields the engine uses itself; facts may not carry them.
RESERVED_FIELDS = {"fact", "id", "sid", "key"}


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    description: str = ""
    enum: tuple | None = None


class FactCatalogue:
    """Fact types and their fields, read from the fact catalogue schema."""

    def __init__(self, schema: dict):
        self.schema = schema
        self.types: dict[str, dict[str, Field]] = {}
        for name, definition in schema["$defs"].items():
            fields = {}
            for field_name, spec in definition.get("properties", {}).items():
                if field_name == "fact":
                    continue
                kind = spec.get("type", "any")
                fields[field_name] = Field(
                    field_name,
                    kind,
                    spec.get("description", ""),
                    tuple(spec["enum"]) if "enum" in spec else None,
                )
            self.types[name] = fields
        # Types whose facts may carry fields the catalogue does not list.
        self.open_types = {
            name
            for name, definition in schema["$defs"].items()
            if definition.get("additionalProperties", True) is not False
        }
        # Types an evaluation has many facts of (``"x-count": "many"``): the compiler
        # orders joins by it.
        self.many = frozenset(
            name
            for name, definition in schema["$defs"].items()
            if definition.get("x-count") == "many"
        )

    @classmethod
    def read(cls, path) -> FactCatalogue:
        """The catalogue in a fact catalogue schema file."""
        with open(path, encoding="utf-8") as file:
            return cls(json.load(file))


def scalar_type(value) -> str:
    """Return the catalogue type a literal value has."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "any"


def fits(field_type: str, value_type: str) -> bool:
    """Whether a value of ``value_type`` can be compared with a field of ``field_type``."""
    if "any" in (field_type, value_type):
        return True
    if field_type == value_type:
        return True
    numeric = {"number", "integer"}
    return field_type in numeric and value_type in numeric


def canonical(document: dict) -> str:
    """The canonical JSON text of a document: sorted keys, no spaces, UTF-8."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(document: dict) -> str:
    """sha256 of the canonical JSON: a ruleset version's identity."""
    return hashlib.sha256(canonical(document).encode()).hexdigest()


def is_ref(operand) -> bool:
    return isinstance(operand, dict) and "ref" in operand


def split_ref(operand: dict) -> tuple[str, str]:
    alias, _, field = operand["ref"].partition(".")
    return alias, field


def action_kind(action: dict) -> str:
    return next(kind for kind in ACTION_KINDS if kind in action)
