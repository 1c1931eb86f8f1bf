"""Validate a ruleset before anything stores or compiles it.

``problems(document, schemas, facts)`` returns every problem at once, each with
the JSON pointer of the offending part, a stable ``code`` and, where it belongs to
a rule, the ``rule_id``. It is pure: no database, no engine. Anything that would
hang or crash the engine (see DESIGN.md) is a problem here, so it can never load.
"""

from __future__ import annotations

import difflib
import math
import re
from collections import defaultdict

from jsonschema import Draft202012Validator

from app.machinery.rules import budget, kinds, regex
from app.machinery.rules.kinds import Kind
from app.machinery.rules.language import (
    JOINABLE,
    MAX_DISTINCT_TESTS_PER_FIELD,
    MAX_PATTERNS_PER_RULE,
    MAX_RULES,
    MAX_RULES_PER_CONDITION,
    OPERATORS_BY_TYPE,
    FactCatalogue,
    action_kind,
    canonical,
    fits,
    is_ref,
    scalar_type,
    split_ref,
)
from app.platform.errors import pointer
from app.platform.schemas import TYPE_WORDS, Catalogue, wrote

RULE_SCHEMA = {"$ref": "https://dom.local/schemas/ruleset.schema.json#/$defs/rule"}
PATTERN_SCHEMA = {"$ref": "https://dom.local/schemas/ruleset.schema.json#/$defs/pattern"}
# The engine reads numbers in conditions as plain decimals: it fails on what Python
# writes with an exponent (below 0.0001 or from 10**16 on); the schema caps the size.
SMALLEST_NUMBER = 0.0001


def problem(path, message: str, code: str, rule_id: str | None = None) -> dict:
    entry = {"pointer": path if isinstance(path, str) else pointer(*path), "message": message}
    entry["code"] = code
    if rule_id is not None:
        entry["rule_id"] = rule_id
    return entry


def problems(document, schemas: Catalogue, facts: FactCatalogue | None = None) -> list[dict]:
    """Return every problem of a ruleset document (empty when it can be stored).

    Its ``kind`` chooses the fact catalogue (unless ``facts`` is given), the attributes
    rules may set and the facts they exclude and score."""
    kind = kinds.of(document)
    facts = facts or kinds.catalogue(kind.name)
    found: list[dict] = []
    rules = document.get("rules") if isinstance(document, dict) else None
    rule_ids = {}
    if isinstance(rules, list):
        rule_ids = {
            index: rule.get("id")
            for index, rule in enumerate(rules)
            if isinstance(rule, dict) and isinstance(rule.get("id"), str)
        }
    for entry in schemas.errors("ruleset", document):
        match = re.match(r"^/rules/(\d+)", entry["pointer"])
        rule_id = rule_ids.get(int(match.group(1))) if match else None
        found.append(problem(entry["pointer"], entry["message"], "schema", rule_id))
    name = document.get("ruleset") if isinstance(document, dict) else None
    if isinstance(name, str) and name in kinds.KINDS and name != kind.name:
        found.append(
            problem(
                ("kind",),
                f"the ruleset named {name} decides {name}; its kind must be {name}",
                "wrong_kind",
            )
        )
    if not isinstance(rules, list):
        return found
    if len(rules) > MAX_RULES:
        found.append(
            problem(
                ("rules",),
                f"{len(rules)} rules; the engine takes at most {MAX_RULES}",
                "too_many_rules",
            )
        )
        return found
    # Check the meaning of every rule whose shape is right, so one malformed rule
    # does not hide the problems of the others.
    rule_validator = Draft202012Validator(RULE_SCHEMA, registry=schemas.registry)
    well_formed = [
        (index, rule)
        for index, rule in enumerate(rules)
        if isinstance(rule, dict) and rule_validator.is_valid(rule)
    ]
    found.extend(_duplicate_ids(rules))
    # A rule with a schema error still has its sound patterns checked: every problem of
    # the ruleset comes in one answer, not one layer per attempt.
    pattern_validator = Draft202012Validator(PATTERN_SCHEMA, registry=schemas.registry)
    sound = {index for index, _ in well_formed}
    for index, rule in enumerate(rules):
        if isinstance(rule, dict) and index not in sound:
            found.extend(_check_malformed(index, rule, facts, pattern_validator, kind))
    settings = document.get("settings") if isinstance(document.get("settings"), dict) else {}
    rate_card = settings.get("rate_card")
    service_levels = set(rate_card) if isinstance(rate_card, dict) else set()
    found.extend(_check_rules(well_formed, facts, service_levels, kind))
    # Measure the rules that are otherwise sound: a broken one is reported already.
    broken = {int(m.group(1)) for p in found if (m := re.match(r"^/rules/(\d+)", p["pointer"]))}
    found.extend(budget.problems([(i, r) for i, r in well_formed if i not in broken], settings))
    return sorted(found, key=lambda p: (_pointer_key(p["pointer"]), p["message"]))


def _pointer_key(text: str):
    return [int(part) if part.isdigit() else -1 for part in text.split("/")[1:]], text


def flag_fields(rules) -> dict[str, str]:
    """Fields that flags can carry: the values asserted by any rule, with their types."""
    fields: dict[str, str] = {}
    for _, rule in rules:
        for action in rule["then"]:
            for name, operand in (action.get("values") or {}).items():
                kind = "any" if is_ref(operand) else scalar_type(operand)
                if fields.get(name, kind) != kind:
                    kind = "any"
                fields[name] = kind
    return fields


def _duplicate_ids(rules: list) -> list[dict]:
    """Rule ids used twice, whatever else is wrong with the rules."""
    found = []
    seen: dict[str, int] = {}
    for index, rule in enumerate(rules):
        rule_id = rule.get("id") if isinstance(rule, dict) else None
        if not isinstance(rule_id, str):
            continue
        if rule_id in seen:
            found.append(
                problem(
                    ("rules", index, "id"),
                    f"rule id {rule_id!r} is already used by /rules/{seen[rule_id]}",
                    "duplicate_rule_id",
                    rule_id,
                )
            )
        else:
            seen[rule_id] = index
    return found


def _check_malformed(
    index: int, rule: dict, facts: FactCatalogue, pattern_validator, kind: Kind
) -> list:
    """The meaning of the sound patterns of a rule that has a schema error elsewhere.

    Patterns that compare with another pattern's fact are left to the next attempt: the
    pattern they refer to may be the malformed part.
    """
    rule_id = rule.get("id") if isinstance(rule.get("id"), str) else None
    checker = _RuleChecker(
        {"id": rule_id, "when": [], "then": []}, ("rules", index), facts, {}, set(), kind
    )
    patterns = rule.get("when") if isinstance(rule.get("when"), list) else []
    for position, pattern in enumerate(patterns):
        if not pattern_validator.is_valid(pattern):
            continue
        tests = [t for t in (pattern.get("where") or {}).values() if isinstance(t, dict)]
        if any(is_ref(operand) for t in tests for operand in t.values()):
            continue
        checker.check_pattern(position, pattern)
    return checker.found


def _check_rules(rules, facts: FactCatalogue, service_levels: set[str], kind: Kind) -> list[dict]:
    found = []
    flag_extra = flag_fields(rules)
    distinct_tests: dict[str, set] = defaultdict(set)
    sharing: dict[tuple, int] = defaultdict(int)
    for index, rule in rules:
        base = ("rules", index)
        rule_id = rule["id"]
        checker = _RuleChecker(rule, base, facts, flag_extra, service_levels, kind)
        found.extend(checker.check())
        if rule.get("enabled", True):
            for test in set(checker.tests):
                sharing[test] += 1
                if sharing[test] == MAX_RULES_PER_CONDITION + 1:
                    found.append(
                        problem(
                            (*base, "when"),
                            f"more than {MAX_RULES_PER_CONDITION} rules test {test[0]} with"
                            f" {test[1]}; the engine cannot share one condition that widely"
                            " (assert a flag once and test the flag)",
                            "condition_shared_too_widely",
                            rule_id,
                        )
                    )
            for field_key, test in checker.tests:
                distinct_tests[field_key].add(test)
                if len(distinct_tests[field_key]) == MAX_DISTINCT_TESTS_PER_FIELD + 1:
                    found.append(
                        problem(
                            (*base, "when"),
                            f"more than {MAX_DISTINCT_TESTS_PER_FIELD} distinct tests on"
                            f" {field_key} across the ruleset, counting each value of an"
                            " in/not_in list; the engine cannot compile that (test a flag"
                            " or a coarser field instead)",
                            "too_many_tests_on_field",
                            rule_id,
                        )
                    )
    return found


class _RuleChecker:
    """Checks one well-formed rule against the fact catalogue."""

    def __init__(self, rule, base, facts: FactCatalogue, flag_extra, service_levels, kind: Kind):
        self.rule = rule
        self.kind = kind
        self.rule_id = rule["id"]
        self.base = base
        self.facts = facts
        self.flag_extra = flag_extra
        self.service_levels = service_levels
        self.found: list[dict] = []
        self.tests: list[tuple[str, str]] = []
        # alias -> (fact type, negated, pattern index)
        self.aliases: dict[str, tuple[str, bool, int]] = {}

    def add(self, path, message, code):
        self.found.append(problem((*self.base, *path), message, code, self.rule_id))

    def fields_of(self, fact_type: str) -> dict[str, str]:
        fields = {name: f.type for name, f in self.facts.types.get(fact_type, {}).items()}
        if fact_type == "flag":
            fields.update(self.flag_extra)
        return fields

    def check(self) -> list[dict]:
        patterns = self.rule["when"]
        if len(patterns) > MAX_PATTERNS_PER_RULE:
            self.add(
                ("when",),
                f"{len(patterns)} patterns; a rule may have at most {MAX_PATTERNS_PER_RULE}",
                "too_many_patterns",
            )
        if all(p.get("not", False) for p in patterns):
            self.add(
                ("when",),
                "every pattern is negated: such a rule fires forever in the engine;"
                " add a pattern that matches a fact",
                "only_negated_patterns",
            )
        for index, pattern in enumerate(patterns):
            self.check_pattern(index, pattern)
        for index, action in enumerate(self.rule["then"]):
            self.check_action(index, action)
        return self.found

    def check_pattern(self, index: int, pattern: dict) -> None:
        path = ("when", index)
        fact_type = pattern["fact"]
        negated = pattern.get("not", False)
        if fact_type not in self.facts.types:
            self.add(
                (*path, "fact"),
                f"unknown fact type {fact_type!r}{_suggest(fact_type, self.facts.types)}",
                "unknown_fact",
            )
            return
        fields = self.fields_of(fact_type)
        for field, tests in (pattern.get("where") or {}).items():
            where = (*path, "where", field)
            if field not in fields:
                self.add(
                    where,
                    f"{fact_type} has no field {field!r}{_suggest(field, fields)}",
                    "unknown_field",
                )
                continue
            self.check_tests(where, fact_type, field, fields[field], tests)
        alias = pattern.get("as")
        if alias is not None:
            if alias in self.aliases:
                self.add((*path, "as"), f"alias {alias!r} is bound twice", "duplicate_alias")
            self.aliases[alias] = (fact_type, negated, index)

    def check_tests(self, where, fact_type, field, field_type, tests: dict) -> None:
        allowed = OPERATORS_BY_TYPE[field_type]
        spec = self.facts.types.get(fact_type, {}).get(field)
        for operator, operand in tests.items():
            at = (*where, operator)
            if operator not in allowed:
                self.add(
                    at,
                    f"{operator} does not apply to {field} ({field_type});"
                    f" use one of {', '.join(sorted(allowed))}",
                    "operator_type",
                )
                continue
            if operator in ("in", "not_in") and isinstance(operand, list):
                # The engine builds one condition per member of a list.
                self.tests.extend(
                    (f"{fact_type}.{field}", canonical({operator: [member]})) for member in operand
                )
            else:
                self.tests.append((f"{fact_type}.{field}", canonical({operator: operand})))
            if is_ref(operand):
                self.check_ref(at, operand, field_type, operator)
                continue
            values = operand if operator in ("in", "not_in") else [operand]
            if operator == "exists":
                continue
            for position, value in enumerate(values):
                value_at = (*at, position) if operator in ("in", "not_in") else at
                kind = scalar_type(value)
                expected = "string" if field_type == "array" else field_type
                if not fits(expected, kind):
                    words = TYPE_WORDS.get(expected, expected)
                    self.add(
                        value_at, f"{field} is {words}; you wrote {wrote(value)}", "value_type"
                    )
                elif kind in ("integer", "number") and 0 < abs(value) < SMALLEST_NUMBER:
                    self.add(
                        value_at,
                        f"numbers in conditions are 0 or at least {SMALLEST_NUMBER} in size",
                        "value_range",
                    )
                elif spec is not None and spec.enum and value not in spec.enum:
                    self.add(
                        value_at,
                        f"{value!r} is not a {field}{_suggest(str(value), spec.enum)}",
                        "value_type",
                    )
            if operator == "matches":
                self.check_regex(at, operand)
        contradiction = _contradiction(tests)
        if contradiction:
            self.add(where, f"this rule can never fire: {contradiction}", "never_fires")

    def check_ref(self, at, operand, field_type, operator) -> None:
        alias, field = split_ref(operand)
        if operator not in JOINABLE:
            self.add(at, f"{operator} cannot compare with another fact", "operator_type")
            return
        if alias not in self.aliases:
            self.add(
                (*at, "ref"),
                f"alias {alias!r} is not bound by an earlier pattern of this rule",
                "unbound_alias",
            )
            return
        fact_type, negated, _ = self.aliases[alias]
        if negated:
            self.add(
                (*at, "ref"),
                f"alias {alias!r} names a negated pattern, which matches no fact",
                "unbound_alias",
            )
            return
        fields = self.fields_of(fact_type)
        if field not in fields:
            self.add(
                (*at, "ref"),
                f"{fact_type} has no field {field!r}{_suggest(field, fields)}",
                "unknown_field",
            )
        elif not fits(field_type, fields[field]):
            self.add(
                (*at, "ref"),
                f"cannot compare {field_type} with {alias}.{field} ({fields[field]})",
                "value_type",
            )

    def check_regex(self, at, expression) -> None:
        if not isinstance(expression, str):
            return  # the value check above reported it
        for message in regex.problems(expression):
            self.add(at, f"the expression {message}", "regex")

    def bound_candidate(self, path, alias) -> None:
        if alias not in self.aliases:
            self.add(path, f"alias {alias!r} is not bound by any pattern", "unbound_alias")
            return
        fact_type, negated, _ = self.aliases[alias]
        if negated:
            self.add(path, f"alias {alias!r} names a negated pattern", "unbound_alias")
        elif fact_type not in self.kind.excludable:
            self.add(
                path,
                f"alias {alias!r} is a {fact_type}, not a {' or '.join(self.kind.excludable)}",
                "alias_type",
            )

    def check_action(self, index: int, action: dict) -> None:
        path = ("then", index)
        kind = action_kind(action)
        if kind in ("exclude", "score"):
            self.bound_candidate((*path, kind), action[kind])
        elif kind == "set":
            self.check_set(path, action)
        elif kind == "assert":
            for name, operand in (action.get("values") or {}).items():
                if not is_ref(operand):
                    continue
                alias, field = split_ref(operand)
                at = (*path, "values", name, "ref")
                if alias not in self.aliases or self.aliases[alias][1]:
                    self.add(at, f"alias {alias!r} is not bound by a pattern", "unbound_alias")
                    continue
                fields = self.fields_of(self.aliases[alias][0])
                if field not in fields:
                    self.add(
                        at,
                        f"{self.aliases[alias][0]} has no field {field!r}{_suggest(field, fields)}",
                        "unknown_field",
                    )

    def check_set(self, path, action: dict) -> None:
        attribute, value = action["set"], action["value"]
        target = action.get("for")
        known = self.kind.attributes if target is None else self.kind.item_attributes
        if attribute not in known:
            what = "decision" if target is None else f"{self.kind.item_type or 'fact'} in for"
            self.add(
                (*path, "set"),
                f"{self.kind.name} rules cannot set {attribute!r} on the {what}"
                f"{_suggest(attribute, known)}",
                "unknown_attribute",
            )
            return
        if target is not None:
            if target not in self.aliases or self.aliases[target][1]:
                self.add(
                    (*path, "for"), f"alias {target!r} is not bound by a pattern", "unbound_alias"
                )
            elif self.aliases[target][0] != self.kind.item_type:
                self.add(
                    (*path, "for"),
                    f"alias {target!r} is a {self.aliases[target][0]}, not a {self.kind.item_type}",
                    "alias_type",
                )
        expected = known[attribute]
        choices = self.kind.choices.get(attribute)
        if not fits(expected, scalar_type(value)) or (
            expected == "integer" and not isinstance(value, int)
        ):
            self.add((*path, "value"), f"{attribute} takes a {expected}", "value_type")
        elif attribute in self.kind.ranges and not (
            self.kind.ranges[attribute][0] <= value <= self.kind.ranges[attribute][1]
        ):
            low, high = self.kind.ranges[attribute]
            self.add((*path, "value"), f"{attribute} must be {low:g} to {high:g}", "value_type")
        elif choices is not None and value not in choices:
            self.add(
                (*path, "value"),
                f"{attribute} is one of {', '.join(choices)}{_suggest(value, choices)}",
                "value_type",
            )
        elif (
            attribute in ("service_level", "price_as")
            and isinstance(value, str)
            and value not in self.service_levels
        ):
            self.add(
                (*path, "value"),
                f"service level {value!r} is not in the rate card"
                f"{_suggest(value, self.service_levels)}",
                "value_type",
            )


def _suggest(word: str, options) -> str:
    close = difflib.get_close_matches(word, [str(o) for o in options], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _contradiction(tests: dict) -> str | None:
    """Explain why literal tests on one field can never all pass, or return None."""
    literal = {op: v for op, v in tests.items() if not is_ref(v)}
    if literal.get("exists") is False and len(literal) > 1:
        return "the field must be absent, yet it is also tested for a value"
    if "contains" in literal:
        return None
    low, low_open, high, high_open = -math.inf, False, math.inf, False
    for op, value in literal.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if op in ("gt", "gte") and (value > low or (value == low and op == "gt")):
            low, low_open = value, op == "gt"
        if op in ("lt", "lte") and (value < high or (value == high and op == "lt")):
            high, high_open = value, op == "lt"
    if low > high or (low == high and (low_open or high_open)):
        return "no value is both above the lower bound and below the upper bound"
    allowed = None
    if "eq" in literal:
        allowed = [literal["eq"]]
    if "in" in literal:
        allowed = [v for v in literal["in"] if allowed is None or v in allowed]
    if allowed is None:
        return None
    excluded = list(literal.get("not_in", []))
    if "ne" in literal:
        excluded.append(literal["ne"])

    def passes(value) -> bool:
        if value in excluded:
            return False
        if isinstance(value, int | float) and not isinstance(value, bool):
            if value < low or (value == low and low_open):
                return False
            if value > high or (value == high and high_open):
                return False
        return True

    if not any(passes(value) for value in allowed):
        return "no value passes every test (eq/in against ne/not_in and the bounds)"
    return None
