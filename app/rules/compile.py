"""Translate a validated ruleset into durable-rules' JSON definitions and an action plan.

Pure: data in, data out. The engine wrapper registers the definitions and runs the
plan's actions when rules fire. Only enabled rules are compiled.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.rules.language import action_kind, is_ref, split_ref

# Batch up to this many matches of a rule into one action call: each Python action
# call costs ~20 µs, so batching keeps cost proportional to rules, not matches.
MATCHES_PER_ACTION = 1000
# The observer matches every fact: no fact is ever "not handled", and every session
# starts an action (deleting a session that never did crashes the engine).
OBSERVER = "observe_all_facts"
OBSERVER_BATCH = 100_000
PRIORITY_RANGE = 1000


@dataclass(frozen=True)
class RulePlan:
    """What to do when a compiled rule fires."""

    rule_id: str
    priority: int
    actions: tuple  # (kind, action) pairs
    aliases: dict  # user alias -> engine pattern name
    patterns: tuple  # engine names of the positive patterns, in order
    negated: tuple = ()  # the negated patterns, re-checked when the rule fires
    # Tests the engine gets wrong, checked when the rule fires (see _engine_safe):
    # (pattern, field, operator, literal operand, (ref pattern, ref field) or None).
    residual: tuple = ()


def compile_ruleset(document: dict) -> tuple[dict, dict[str, RulePlan]]:
    """Return ``(definitions, plans)``; definitions are durable-rules JSON without actions."""
    definitions: dict[str, dict] = {
        OBSERVER: {
            "all": [{"fact": {"$ex": {"fact": 1}}}],
            "cap": OBSERVER_BATCH,
            "pri": 0,
        }
    }
    plans: dict[str, RulePlan] = {}
    for rule in document["rules"]:
        if not rule.get("enabled", True):
            continue
        definition, plan = compile_rule(rule)
        definitions[rule["id"]] = definition
        plans[rule["id"]] = plan
    return definitions, plans


def compile_rule(rule: dict) -> tuple[dict, RulePlan]:
    positives = [p for p in rule["when"] if not p.get("not", False)]
    negatives = [p for p in rule["when"] if p.get("not", False)]
    names: dict[str, str] = {}
    clauses = []
    residual = []
    # Positive patterns first, so every join refers to a pattern compiled before it.
    for index, pattern in enumerate(positives):
        name = f"p{index}"
        clauses.append({name: _expression(pattern, names)})
        for field, operator, operand in _tests_of(pattern):
            if not _engine_safe(pattern, operator, operand):
                ref = None
                if is_ref(operand):
                    alias, ref_field = split_ref(operand)
                    ref, operand = (names[alias], ref_field), None
                residual.append((name, field, operator, operand, ref))
        if "as" in pattern:
            names[pattern["as"]] = name
    for index, pattern in enumerate(negatives):
        # A negation the engine cannot test exactly is left to the check at firing time:
        # a looser one in the engine would wrongly block matches.
        if all(_engine_safe(pattern, op, operand) for _, op, operand in _tests_of(pattern)):
            clauses.append({f"n{index}$not": _expression(pattern, names)})
    priority = rule.get("priority", 0)
    definition = {"all": clauses, "cap": MATCHES_PER_ACTION, "pri": engine_priority(priority)}
    plan = RulePlan(
        rule_id=rule["id"],
        priority=priority,
        actions=tuple((action_kind(action), action) for action in rule["then"]),
        aliases=dict(names),
        patterns=tuple(f"p{i}" for i in range(len(positives))),
        negated=tuple(negatives),
        residual=tuple(residual),
    )
    return definition, plan


def _engine_safe(pattern: dict, operator: str, operand) -> bool:
    """Whether durable-rules evaluates this test correctly and without crashing.

    Measured (see tests/test_rules_fuzz.py): joins other than eq crash it at random
    (jruizgit/rules#381), and an eq join in a pattern that also has an ``$or`` (our
    ``in`` with several values) is silently ignored. Such tests run in Python.
    """
    if is_ref(operand):
        return operator == "eq"
    if operator == "in" and len(operand) > 1:
        return not any(is_ref(o) for _, _, o in _tests_of(pattern))
    return True


def _tests_of(pattern: dict):
    for field, tests in (pattern.get("where") or {}).items():
        for operator, operand in tests.items():
            yield field, operator, operand


def _expression(pattern: dict, names: dict[str, str]) -> dict:
    """The engine's test for a pattern: every test it handles correctly."""
    terms = [{"fact": pattern["fact"]}]
    for field, operator, operand in _tests_of(pattern):
        if _engine_safe(pattern, operator, operand):
            terms.extend(_tests(field, operator, operand, names))
    return terms[0] if len(terms) == 1 else {"$and": terms}


def engine_priority(priority: int) -> int:
    """Map a rule's priority (higher first, -1000..1000) to durable-rules' ``pri``.

    durable-rules fires lower ``pri`` first and mishandles negative values (they
    fire last), so the range is shifted to 1..2001; the observer's 0 fires first.
    """
    return PRIORITY_RANGE + 1 - priority


_COMPARISON = {"ne": "$neq", "lt": "$lt", "lte": "$lte", "gt": "$gt", "gte": "$gte"}


def _operand(operand, names):
    if is_ref(operand):
        alias, field = split_ref(operand)
        return {names[alias]: field}
    return operand


def _tests(field: str, operator: str, operand, names) -> list[dict]:
    if operator == "eq":
        return [{field: _operand(operand, names)}]
    if operator in _COMPARISON:
        return [{_COMPARISON[operator]: {field: _operand(operand, names)}}]
    if operator == "in":
        options = [{field: value} for value in operand]
        return [options[0] if len(options) == 1 else {"$or": options}]
    if operator == "not_in":
        return [{"$neq": {field: value}} for value in operand]
    if operator == "exists":
        return [{"$ex" if operand else "$nex": {field: 1}}]
    if operator == "matches":
        return [{"$mt": {field: operand}}]
    if operator == "contains":
        return [{"$iany": {field: {"$i": operand}}}]
    raise ValueError(f"unknown operator {operator!r}")
