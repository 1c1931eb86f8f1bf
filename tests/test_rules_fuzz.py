"""Random rules and facts: the engine's matches equal a plain Python reference."""

from __future__ import annotations

import itertools
import json
import random

import pytest

from app.machinery.rules.engine import Engine
from app.machinery.rules.language import FactCatalogue
from app.machinery.rules.patterns import pattern_matches
from app.machinery.rules.validate import problems
from app.platform.schemas import Catalogue
from tests.rules_helpers import rule, ruleset

# Pure: the same on every database.
pytestmark = pytest.mark.one_database

SCHEMAS = Catalogue("schemas")
FACTS = FactCatalogue(SCHEMAS.documents["facts"])
NUMERIC = {"atp": (-2, 6), "atp_after": (-3, 5), "distance_km": (0.0, 50.0)}
STRINGS = {"line_id": ["L1", "L2", "L3"], "node_type": ["store", "dc", "3pl", "supplier"]}


def random_test(rng: random.Random, aliases: list[tuple[str, str]]):
    """One (field, {operator: operand}) for a candidate pattern."""
    if aliases and rng.random() < 0.35:
        alias, kind = rng.choice(aliases)
        if rng.random() < 0.5:
            return "line_id", {rng.choice(["eq", "ne"]): {"ref": f"{alias}.line_id"}}
        field = rng.choice(["atp", "atp_after"])
        operator = rng.choice(["eq", "ne", "lt", "lte", "gt", "gte"])
        other = rng.choice(["atp", "atp_after"]) if kind == "candidate" else "qty"
        return field, {operator: {"ref": f"{alias}.{other}"}}
    if rng.random() < 0.15:
        if rng.random() < 0.5:
            return "capabilities", {"contains": rng.choice(["ship", "same_day"])}
        return "in_transit", {rng.choice(["eq", "ne"]): rng.random() < 0.5}
    if rng.random() < 0.5:
        field = rng.choice(list(NUMERIC))
        low, high = NUMERIC[field]
        value = rng.randint(int(low), int(high))
        operator = rng.choice(["eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "exists"])
        if operator in ("in", "not_in"):
            return field, {operator: rng.sample(range(int(low), int(high) + 1), 2)}
        if operator == "exists":
            return field, {"exists": rng.random() < 0.7}
        return field, {operator: value}
    field = rng.choice(list(STRINGS))
    operator = rng.choice(["eq", "ne", "in", "not_in", "matches"])
    if operator in ("in", "not_in"):
        return field, {operator: rng.sample(STRINGS[field], 2)}
    if operator == "matches":
        return field, {"matches": rng.choice(["L[12]", "s.*", "(dc|3pl)", "L.+"])}
    return field, {operator: rng.choice(STRINGS[field])}


def random_rule(rng: random.Random, index: int) -> dict:
    patterns, aliases = [], []
    if rng.random() < 0.4:
        where = (
            {"qty": {rng.choice(["gt", "lte", "ne"]): rng.randint(1, 4)}}
            if rng.random() < 0.5
            else {}
        )
        patterns.append({"fact": "line", "as": "l", "where": where})
        aliases.append(("l", "line"))
    for position in range(rng.randint(1, 3)):
        alias = f"c{position}"
        where = dict(random_test(rng, aliases) for _ in range(rng.randint(0, 2)))
        patterns.append({"fact": "candidate", "as": alias, "where": where})
        aliases.append((alias, "candidate"))
    if rng.random() < 0.4:
        where = dict(random_test(rng, aliases) for _ in range(rng.randint(1, 2)))
        patterns.append({"fact": "candidate", "not": True, "where": where})
    return rule(f"r{index}", patterns, [{"tag": "t"}])


def random_facts(rng: random.Random) -> list[dict]:
    facts = [
        {
            "fact": "line",
            "key": f"line-{line_id}",
            "line_id": line_id,
            "sku": "S",
            "qty": rng.randint(1, 5),
            "unit_price": 1.0,
        }
        for line_id in rng.sample(STRINGS["line_id"], rng.randint(1, 2))
    ]
    for index in range(rng.randint(2, 7)):
        fact = {
            "fact": "candidate",
            "key": f"k{index}",
            "line_id": rng.choice(STRINGS["line_id"]),
            "sku": "S",
            "node_id": f"N{index}",
            "node_type": rng.choice(STRINGS["node_type"]),
            "atp": rng.randint(-2, 6),
            "distance_km": round(rng.uniform(0, 50), 1),
        }
        if rng.random() < 0.8:
            fact["atp_after"] = rng.randint(-3, 5)
        if rng.random() < 0.7:
            fact["capabilities"] = rng.sample(["ship", "pickup", "same_day"], rng.randint(0, 2))
        if rng.random() < 0.5:
            fact["in_transit"] = rng.random() < 0.5
        facts.append(fact)
    return facts


def reference(document_rule: dict, facts: list[dict]) -> set[tuple]:
    positives = [p for p in document_rule["when"] if not p.get("not")]
    negatives = [p for p in document_rule["when"] if p.get("not")]
    frames = set()
    # Each pattern matches a different fact; negations look at the other facts.
    for combo in itertools.permutations(facts, len(positives)):
        if any(p["fact"] != f["fact"] for p, f in zip(positives, combo, strict=True)):
            continue
        bound = {}
        ok = True
        for pattern, fact in zip(positives, combo, strict=True):
            if not pattern_matches(pattern, fact, bound):
                ok = False
                break
            bound[pattern["as"]] = fact
        if not ok:
            continue
        others = [f for f in facts if f not in combo]
        if any(pattern_matches(n, f, bound) for n in negatives for f in others):
            continue
        frames.add(tuple(f["key"] for f in combo))
    return frames


@pytest.mark.parametrize("seed", range(25))
def test_random_rules_match_the_reference(seed):
    rng = random.Random(seed)
    engine = Engine()
    checked = 0
    for index in range(40):
        candidate_rule = random_rule(rng, index)
        document = ruleset([candidate_rule], name=f"fuzz{seed}")
        # The facts here are a handful, so the budget for the largest order does not apply.
        if [p for p in problems(document, SCHEMAS, FACTS) if p["code"] != "join_fan_out"]:
            continue  # e.g. a random rule that can never fire
        name = f"fuzz-{seed}-{index}"
        engine.load(name, document)
        for _ in range(3):
            facts = random_facts(rng)
            result = engine.evaluate(name, facts)
            got = {tuple(entry["facts"]) for entry in result.trace}
            assert got == reference(candidate_rule, facts), json.dumps([candidate_rule, facts])
            checked += 1
    assert checked > 60
