"""The validator finds every problem at once, with pointers, rule ids and codes."""

from __future__ import annotations

import pytest

from app.machinery.rules import runtime
from app.machinery.rules.language import (
    MAX_DISTINCT_TESTS_PER_FIELD,
    MAX_PATTERNS_PER_RULE,
    MAX_RULES,
)
from app.platform.schemas import Catalogue
from tests.rules_helpers import rule, ruleset, shipped

# Pure: the same on every database.
pytestmark = pytest.mark.one_database

SCHEMAS = Catalogue("schemas")
CANDIDATE = {"fact": "candidate", "as": "c"}
EXCLUDE = [{"exclude": "c", "reason": "r"}]


def problems_of(document):
    return [(p["pointer"], p["code"]) for p in runtime.validate(document, SCHEMAS)]


def one_rule(when, then=EXCLUDE, **extra):
    return ruleset([rule("r1", when, then, **extra)])


CASES = [
    (
        "unknown field with suggestion",
        one_rule([{**CANDIDATE, "where": {"node_typ": {"eq": "dc"}}}]),
        [("/rules/0/when/0/where/node_typ", "unknown_field")],
    ),
    (
        "unknown fact type",
        one_rule([{"fact": "ordr", "where": {"total": {"gt": 1}}}, CANDIDATE]),
        [("/rules/0/when/0/fact", "unknown_fact")],
    ),
    (
        "operator that does not fit the type",
        one_rule([{**CANDIDATE, "where": {"node_type": {"gt": "dc"}}}]),
        [("/rules/0/when/0/where/node_type/gt", "operator_type")],
    ),
    (
        "value of the wrong type",
        one_rule([{**CANDIDATE, "where": {"atp": {"lt": "two"}}}]),
        [("/rules/0/when/0/where/atp/lt", "value_type")],
    ),
    (
        "value outside an enumerated field",
        one_rule([{**CANDIDATE, "where": {"node_type": {"in": ["dc", "warehouse"]}}}]),
        [("/rules/0/when/0/where/node_type/in/1", "value_type")],
    ),
    (
        "alias used but never bound",
        one_rule([{"fact": "candidate"}], [{"exclude": "c", "reason": "r"}]),
        [("/rules/0/then/0/exclude", "unbound_alias")],
    ),
    (
        "join to an alias bound later",
        one_rule(
            [
                {**CANDIDATE, "where": {"line_id": {"eq": {"ref": "l.line_id"}}}},
                {"fact": "line", "as": "l"},
            ]
        ),
        [("/rules/0/when/0/where/line_id/eq/ref", "unbound_alias")],
    ),
    (
        "join to an unknown field",
        one_rule(
            [
                {"fact": "line", "as": "l"},
                {**CANDIDATE, "where": {"line_id": {"eq": {"ref": "l.lineid"}}}},
            ]
        ),
        [("/rules/0/when/1/where/line_id/eq/ref", "unknown_field")],
    ),
    (
        "excluding something that is not a candidate",
        one_rule([{"fact": "order", "as": "o"}], [{"exclude": "o", "reason": "r"}]),
        [("/rules/0/then/0/exclude", "alias_type")],
    ),
    (
        "contradictory bounds",
        one_rule([{**CANDIDATE, "where": {"atp": {"gt": 5, "lt": 3}}}]),
        [("/rules/0/when/0/where/atp", "never_fires")],
    ),
    (
        "eq against ne",
        one_rule([{**CANDIDATE, "where": {"node_type": {"eq": "dc", "ne": "dc"}}}]),
        [("/rules/0/when/0/where/node_type", "never_fires")],
    ),
    (
        "eq outside in",
        one_rule([{**CANDIDATE, "where": {"node_type": {"eq": "dc", "in": ["store"]}}}]),
        [("/rules/0/when/0/where/node_type", "never_fires")],
    ),
    (
        "absent yet tested",
        one_rule([{**CANDIDATE, "where": {"capacity_left": {"exists": False, "lt": 3}}}]),
        [("/rules/0/when/0/where/capacity_left", "never_fires")],
    ),
    (
        "unsupported regular expression",
        one_rule([{**CANDIDATE, "where": {"node_id": {"matches": "ST-\\d+"}}}]),
        [("/rules/0/when/0/where/node_id/matches", "regex")],
    ),
    (
        "set with a value of the wrong type",
        one_rule([{"fact": "order"}], [{"set": "max_shipments", "value": "two"}]),
        [("/rules/0/then/0/value", "value_type")],
    ),
    (
        "service level missing from the rate card",
        one_rule([{"fact": "order"}], [{"set": "service_level", "value": "overnight"}]),
        [("/rules/0/then/0/value", "value_type")],
    ),
    (
        "schema violation",
        one_rule([{**CANDIDATE, "where": {"atp": {"between": [1, 2]}}}]),
        [("/rules/0/when/0/where/atp/between", "schema")],
    ),
    (
        "flag field never asserted",
        ruleset(
            [
                rule("a", [{"fact": "order"}], [{"assert": "big", "values": {"size": 3}}]),
                rule(
                    "b",
                    [{"fact": "flag", "where": {"name": {"eq": "big"}, "sise": {"gt": 2}}}],
                    [{"tag": "x"}],
                ),
            ]
        ),
        [("/rules/1/when/0/where/sise", "unknown_field")],
    ),
]


@pytest.mark.parametrize(("name", "document", "expected"), CASES, ids=[c[0] for c in CASES])
def test_problems(name, document, expected):
    assert problems_of(document) == expected


def test_valid_rulesets_have_no_problems():
    assert problems_of(shipped()) == []
    flag_rules = ruleset(
        [
            rule("a", [{"fact": "order"}], [{"assert": "big", "values": {"size": 3}}]),
            rule("b", [{"fact": "flag", "where": {"size": {"gt": 2}}}], [{"tag": "x"}]),
        ]
    )
    assert problems_of(flag_rules) == []


def test_every_problem_at_once_with_rule_ids():
    document = shipped()
    document["rules"][0]["when"][0]["where"]["node_typ"] = {"eq": "store"}
    document["rules"][2]["id"] = document["rules"][1]["id"]
    document["rules"][5]["then"] = [{"frobnicate": True}]  # a schema error in one rule
    document["rules"][7]["when"][0]["where"]["tier"] = {"gt": 5}
    found = runtime.validate(document, SCHEMAS)
    by_rule = {(p["rule_id"], p["code"]) for p in found}
    assert ("protect-store-stock", "unknown_field") in by_rule
    assert ("hazmat-not-from-stores", "duplicate_rule_id") in by_rule
    assert ("flag-vip-high-value", "schema") in by_rule
    assert ("vip-express", "operator_type") in by_rule
    suggestion = next(p for p in found if p["code"] == "unknown_field")
    assert "did you mean 'node_type'" in suggestion["message"]


# Engine hazards (DESIGN.md): each must be refused before the engine sees it.


def only_negated():
    return one_rule([{"fact": "candidate", "not": True}], [{"tag": "x"}])


def too_many_patterns():
    patterns = [{"fact": "line", "as": f"l{i}"} for i in range(MAX_PATTERNS_PER_RULE)]
    return one_rule([*patterns, CANDIDATE])


def too_many_tests_on_one_field():
    rules = [
        rule(f"r{i}", [{**CANDIDATE, "where": {"atp": {"eq": i}}}], EXCLUDE)
        for i in range(MAX_DISTINCT_TESTS_PER_FIELD + 1)
    ]
    return ruleset(rules)


def too_many_rules():
    rules = [
        rule(f"r{i}", [{**CANDIDATE, "where": {"atp": {"eq": i % 100}}}], EXCLUDE)
        for i in range(MAX_RULES + 1)
    ]
    return ruleset(rules)


HAZARDS = [
    ("only negated patterns", only_negated, "only_negated_patterns"),
    ("more than 16 patterns", too_many_patterns, "too_many_patterns"),
    ("more than 512 tests on one field", too_many_tests_on_one_field, "too_many_tests_on_field"),
    ("more than 4096 rules", too_many_rules, "too_many_rules"),
]


@pytest.mark.parametrize(("name", "build", "code"), HAZARDS, ids=[h[0] for h in HAZARDS])
def test_hazards_are_refused_over_http_and_the_service_keeps_answering(
    client, keys, name, build, code
):
    headers = {"Authorization": f"Bearer {keys['analyst']}"}
    document = build()
    for path in ("/v1/rulesets/validate", "/v1/rulesets/test/versions"):
        response = client.post(path, json=document, headers=headers)
        assert response.status_code == 422, response.get_json()
        error = response.get_json()["error"]
        assert error["code"] == "invalid_input"
        assert code in {e["code"] for e in error["errors"]}
    assert client.get("/v1/rulesets/test", headers=headers).status_code == 404  # nothing stored
    assert client.get("/healthz").status_code == 200


def test_the_limits_themselves_are_accepted():
    at_limit = [
        rule(f"r{i}", [{**CANDIDATE, "where": {"atp": {"eq": i}}}], EXCLUDE)
        for i in range(MAX_DISTINCT_TESTS_PER_FIELD)
    ]
    assert problems_of(ruleset(at_limit)) == []
    same_line = {"line_id": {"eq": {"ref": "l0.line_id"}}}
    patterns = [{"fact": "line", "as": "l0"}] + [
        {"fact": "line", "as": f"l{i}", "where": same_line}
        for i in range(1, MAX_PATTERNS_PER_RULE - 1)
    ]
    assert problems_of(one_rule([*patterns, {**CANDIDATE, "where": same_line}])) == []


def test_every_ruleset_field_is_described_for_editors():
    """An editor that reads JSON Schema shows analysts what each field means."""
    schema = SCHEMAS.documents["ruleset"]
    missing = []

    def walk(node, path):
        if isinstance(node, dict):
            for name, child in node.get("properties", {}).items():
                described = isinstance(child, dict) and (
                    "description" in child or ("$ref" in child and len(child) > 1)
                )
                if not described:
                    missing.append(f"{path}/properties/{name}")
            for key, child in node.items():
                walk(child, f"{path}/{key}")
        elif isinstance(node, list):
            for index, child in enumerate(node):
                walk(child, f"{path}/{index}")

    walk(schema, "")
    assert missing == []
