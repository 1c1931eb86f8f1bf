"""Match one fact against one pattern of the ruleset language, in Python.

The engine wrapper uses this to re-check negated patterns when a rule fires:
durable-rules does not withdraw a pending match when a fact that a negated
pattern forbids arrives after it, so "no such fact" is confirmed at firing time.
"""

from __future__ import annotations

import re
from functools import lru_cache

from app.machinery.rules.language import is_ref, split_ref


@lru_cache(maxsize=1024)
def _regex(expression: str) -> re.Pattern:
    return re.compile(expression)


def passes(value, operator: str, operand) -> bool:
    """Whether a field value passes one test; an absent field (None) passes only exists: false."""
    if operator == "exists":
        return (value is not None) == operand
    if value is None:
        return False
    if operator == "eq":
        return value == operand
    if operator == "ne":
        return value != operand
    if operator == "in":
        return value in operand
    if operator == "not_in":
        return value not in operand
    if operator == "contains":
        return isinstance(value, list) and operand in value
    if operator == "matches":
        return isinstance(value, str) and _regex(operand).fullmatch(value) is not None
    try:
        if operator == "lt":
            return value < operand
        if operator == "lte":
            return value <= operand
        if operator == "gt":
            return value > operand
        if operator == "gte":
            return value >= operand
    except TypeError:
        return False
    raise ValueError(f"unknown operator {operator!r}")


def pattern_matches(pattern: dict, fact: dict, bound: dict[str, dict]) -> bool:
    """Whether ``fact`` matches ``pattern``, with joins resolved against ``bound`` facts."""
    if fact.get("fact") != pattern["fact"]:
        return False
    for field, tests in (pattern.get("where") or {}).items():
        value = fact.get(field)
        for operator, operand in tests.items():
            if is_ref(operand):
                alias, other = split_ref(operand)
                operand = bound[alias].get(other)
                if operand is None:
                    return False
            if not passes(value, operator, operand):
                return False
    return True
