"""Translate a validated ruleset into durable-rules' JSON definitions and an action plan.

Pure: data in, data out. The engine wrapper registers the definitions and runs the
plan's actions when rules fire. Only enabled rules are compiled.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.machinery.rules.language import action_kind, is_ref, split_ref

# Batch up to this many matches of a rule into one action call: each Python action
# call costs ~20 µs, so batching keeps cost proportional to rules, not matches.
MATCHES_PER_ACTION = 1000
# The sentinel rule matches the one sentinel fact of every evaluation, so every session
# starts an action (deleting a session that never did crashes the engine). Its name
# cannot be a rule id (ids start with a letter or digit).
SENTINEL_RULE = "_sentinel"
SENTINEL_FACT = "$sentinel"
PRIORITY_RANGE = 1000


@dataclass(frozen=True)
class RulePlan:
    """What to do when a compiled rule fires."""

    rule_id: str
    priority: int
    actions: tuple  # (kind, action) pairs
    aliases: dict  # user alias -> position of its positive pattern in the rule
    patterns: int  # how many positive patterns (engine names p0, p1, ... in rule order)
    negated: tuple = ()  # the negated patterns, re-checked when the rule fires
    # Tests the engine gets wrong, checked when the rule fires (see _engine_safe):
    # (position, field, operator, literal operand, (ref position, ref field) or None).
    residual: tuple = ()


@dataclass(frozen=True)
class Compiled:
    """A ruleset as the engine takes it."""

    definitions: dict  # durable-rules JSON, without actions
    plans: dict  # rule id -> RulePlan
    # The fields the engine itself tests, per fact type: only these are sent to it
    # (a fact type no engine pattern names is not sent at all).
    fields: dict


def compile_ruleset(document: dict, many: frozenset = frozenset()) -> Compiled:
    """Compile the enabled rules of a validated ruleset.

    ``many`` names the fact types an evaluation has many of (the catalogue's
    ``x-count``); the engine's join memory grows with the square of the facts on
    the right of a join with no equality, so those patterns are put first.
    """
    definitions: dict[str, dict] = {
        SENTINEL_RULE: {"all": [{"m": {"fact": SENTINEL_FACT}}], "pri": 0}
    }
    plans: dict[str, RulePlan] = {}
    fields: dict[str, set] = {}
    for rule in document["rules"]:
        if not rule.get("enabled", True):
            continue
        definition, plan = compile_rule(rule, many, fields)
        definitions[rule["id"]] = definition
        plans[rule["id"]] = plan
    return Compiled(definitions, plans, {k: frozenset(v) for k, v in fields.items()})


def compile_rule(rule: dict, many: frozenset = frozenset(), fields: dict | None = None):
    """Return ``(definition, plan)`` of one rule; add the fields it tests to ``fields``."""
    fields = {} if fields is None else fields
    positives = [p for p in rule["when"] if not p.get("not", False)]
    negatives = [p for p in rule["when"] if p.get("not", False)]
    aliases = {p["as"]: i for i, p in enumerate(positives) if "as" in p}
    names = {alias: f"p{i}" for alias, i in aliases.items()}
    clauses = []
    residual = []
    for index in _engine_order(positives, aliases, many):
        pattern = positives[index]
        clauses.append({f"p{index}": _expression(pattern, names, positives, fields)})
    for index, pattern in enumerate(positives):
        for field, operator, operand in _tests_of(pattern):
            if not _engine_safe(pattern, operator, operand):
                ref = None
                if is_ref(operand):
                    alias, ref_field = split_ref(operand)
                    ref, operand = (aliases[alias], ref_field), None
                residual.append((index, field, operator, operand, ref))
    for index, pattern in enumerate(negatives):
        # A negation the engine cannot test exactly is left to the check at firing time:
        # a looser one in the engine would wrongly block matches.
        if all(_engine_safe(pattern, op, operand) for _, op, operand in _tests_of(pattern)):
            expression = _expression(pattern, names, positives, fields)
            clauses.append({f"n{index}$not": expression})
    priority = rule.get("priority", 0)
    definition = {"all": clauses, "cap": MATCHES_PER_ACTION, "pri": engine_priority(priority)}
    plan = RulePlan(
        rule_id=rule["id"],
        priority=priority,
        actions=tuple((action_kind(action), action) for action in rule["then"]),
        aliases=aliases,
        patterns=len(positives),
        negated=tuple(negatives),
        residual=tuple(residual),
    )
    return definition, plan


def _engine_order(positives: list[dict], aliases: dict, many: frozenset) -> list[int]:
    """The order the engine joins the positive patterns in.

    A pattern comes after every pattern its engine joins refer to. Among the
    patterns that are free to come next, one of a type with many facts comes first:
    on the right of a join with no equality the engine compares every new fact with
    every stored one (measured: 1,000 candidates cost 3.7 µs each there, 0 in front).
    """
    needs = []
    for pattern in positives:
        refs = set()
        for _, operator, operand in _tests_of(pattern):
            if is_ref(operand) and _engine_safe(pattern, operator, operand):
                refs.add(aliases[split_ref(operand)[0]])
        needs.append(refs)
    order: list[int] = []
    while len(order) < len(positives):
        ready = [i for i in range(len(positives)) if i not in order and needs[i] <= set(order)]
        order.append(min(ready, key=lambda i: (positives[i]["fact"] not in many, i)))
    return order


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


def _expression(pattern: dict, names: dict[str, str], positives: list, fields: dict) -> dict:
    """The engine's test for a pattern: every test it handles correctly.

    Records in ``fields`` each field the test reads, on its own fact type and, for a
    join, on the type of the pattern joined.
    """
    terms = [{"fact": pattern["fact"]}]
    fields.setdefault(pattern["fact"], set())
    for field, operator, operand in _tests_of(pattern):
        if _engine_safe(pattern, operator, operand):
            terms.extend(_tests(field, operator, operand, names))
            fields[pattern["fact"]].add(field)
            if is_ref(operand):
                alias, ref_field = split_ref(operand)
                other = positives[int(names[alias][1:])]["fact"]
                fields.setdefault(other, set()).add(ref_field)
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
