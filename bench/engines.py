"""Side by side: this service's engine, GoRules' ZEN engine and plain Python.

The shipped sourcing ruleset's candidate rules (exclusions and scores, with the
derived flags they use) are evaluated three ways on the same facts, at 10, 100 and
1,000 candidates:

- this service's engine (durable-rules, through ``app.machinery.rules.engine``);
- the same rules as a ZEN decision (``zen-engine``, a development dependency): an
  expression node derives what the rules join on (the flags, each line's hazmat and
  weight), and one decision table, looped over the candidates, collects every rule
  that matches a candidate;
- the plain-Python reference the engine's tests compare with
  (``app.machinery.rules.patterns.pattern_matches``), joining patterns with nested loops and
  asserting flags until none is new.

Before timing, the bench checks that all three exclude the same candidates and give
each the same score.
"""

from __future__ import annotations

import json
import statistics
import time
from itertools import pairwise, product
from pathlib import Path

from app.machinery.rules.engine import Engine
from app.machinery.rules.patterns import pattern_matches
from bench.common import RUNS
from bench.rules import RULESET, order_facts

SIZES = (10, 100, 1000)

# The candidate rules of rulesets/sourcing/ruleset.json as a ZEN decision table: one row
# per rule (its id, exclude or a score to add), one column per thing the rules test.
COLUMNS = [
    ("node_type", "node_type"),
    ("atp_after", "atp_after"),
    ("distance_km", "distance_km"),
    ("feed_age_hours", "feed_age_hours"),
    ("capacity_left", "capacity_left"),
    ("in_transit", "in_transit"),
    ("hazmat_line", "hazmat_line"),
    ("bulky_line", "bulky_line"),
    ("owned_line", "owned_line"),
    ("high_value", "high_value"),
    ("method", "method"),
    ("at_pickup_store", "at_pickup_store"),
]
TABLE = [
    ("protect-store-stock", {"node_type": '"store"', "atp_after": "< 2"}, True, 0),
    ("hazmat-not-from-stores", {"hazmat_line": "true", "node_type": '"store"'}, True, 0),
    ("bulky-items-from-dc", {"bulky_line": "true", "node_type": '"store"'}, True, 0),
    ("high-value-ships-from-dc", {"high_value": "true", "node_type": '"store", "3pl"'}, True, 0),
    ("same-day-within-radius", {"method": '"same_day"', "distance_km": "> 25"}, True, 0),
    ("pickup-at-requested-store", {"method": '"pickup"', "at_pickup_store": "false"}, True, 0),
    ("dropship-last-resort", {"node_type": '"supplier"', "owned_line": "false"}, False, -2),
    ("no-dropship-when-owned-stock", {"owned_line": "true", "node_type": '"supplier"'}, True, 0),
    ("stale-feed-penalty", {"feed_age_hours": "> 24"}, False, -5),
    ("very-stale-store-feed", {"node_type": '"store"', "feed_age_hours": "> 168"}, True, 0),
    ("near-capacity-penalty", {"capacity_left": "(0..10)"}, False, -4),
    ("no-capacity-left", {"capacity_left": "<= 0"}, True, 0),
    ("prefer-dc", {"node_type": '"dc"'}, False, 3),
    ("3pl-fees", {"node_type": '"3pl"'}, False, -1),
    ("in-transit-penalty", {"in_transit": "true"}, False, -2),
]
DERIVED = [
    ("high_value", 'order.total >= 500 and order.delivery_method == "ship"'),
    (
        "owned",
        'map(filter(candidates, #.node_type != "supplier" and #.atp_after >= 0), #.line_id)',
    ),
    ("hazmat", "map(filter(lines, #.hazmat == true), #.line_id)"),
    ("bulky", "map(filter(lines, #.weight_kg > 20), #.line_id)"),
]
ROWS = (
    "map(candidates, {key: #.key, node_type: #.node_type, atp_after: #.atp_after,"
    " distance_km: #.distance_km, feed_age_hours: #.feed_age_hours,"
    " capacity_left: #.capacity_left, in_transit: #.in_transit,"
    " hazmat_line: contains(hazmat, #.line_id), bulky_line: contains(bulky, #.line_id),"
    " owned_line: contains(owned, #.line_id), high_value: high_value,"
    " method: order.delivery_method, at_pickup_store: #.node_id == order.pickup_node_id})"
)


def zen_graph() -> dict:
    """The JSON Decision Model: input, derive, rows, the table looped over rows, output."""
    columns = [{"id": f"in_{name}", "name": name, "field": field} for name, field in COLUMNS]
    outputs = [
        {"id": "out_rule", "name": "rule", "field": "rule"},
        {"id": "out_exclude", "name": "exclude", "field": "exclude"},
        {"id": "out_add", "name": "add", "field": "add"},
    ]
    rows = []
    for rule_id, tests, exclude, add in TABLE:
        row = {"_id": rule_id, **{f"in_{name}": tests.get(name, "") for name, _ in COLUMNS}}
        row.update(out_rule=json.dumps(rule_id), out_exclude=json.dumps(exclude), out_add=str(add))
        rows.append(row)

    def expressions(pairs):
        return [{"id": key, "key": key, "value": value} for key, value in pairs]

    nodes = [
        {"id": "request", "name": "request", "type": "inputNode"},
        {
            "id": "derive",
            "name": "derive",
            "type": "expressionNode",
            "content": {"passThrough": True, "expressions": expressions(DERIVED)},
        },
        {
            "id": "rows",
            "name": "rows",
            "type": "expressionNode",
            "content": {"passThrough": False, "expressions": expressions([("rows", ROWS)])},
        },
        {
            "id": "rules",
            "name": "rules",
            "type": "decisionTableNode",
            "content": {
                "hitPolicy": "collect",
                "inputField": "rows",
                "executionMode": "loop",
                "outputPath": "matches",
                "passThrough": True,
                "inputs": columns,
                "outputs": outputs,
                "rules": rows,
            },
        },
        {"id": "response", "name": "response", "type": "outputNode"},
    ]
    order = ["request", "derive", "rows", "rules", "response"]
    edges = [
        {"id": f"e{i}", "sourceId": a, "targetId": b, "type": "edge"}
        for i, (a, b) in enumerate(pairwise(order))
    ]
    return {"contentType": "application/vnd.gorules.decision", "nodes": nodes, "edges": edges}


def zen_input(facts: list[dict]) -> dict:
    return {
        "order": next(f for f in facts if f["fact"] == "order"),
        "customer": next(f for f in facts if f["fact"] == "customer"),
        "lines": [f for f in facts if f["fact"] == "line"],
        "candidates": [f for f in facts if f["fact"] == "candidate"],
    }


def zen_outcome(result: dict) -> tuple[set, dict]:
    rows, matches = result["rows"], result["matches"]
    excluded, scores = set(), {}
    for row, found in zip(rows, matches, strict=True):
        for match in found:
            if match["exclude"]:
                excluded.add(row["key"])
            elif match["add"]:
                scores[row["key"]] = scores.get(row["key"], 0) + match["add"]
    return excluded, scores


def engine_outcome(engine: Engine, name: str, facts: list[dict]) -> tuple[set, dict]:
    evaluation = engine.evaluate(name, facts)
    scores = {key: evaluation.score_of(key) for key in evaluation.scores}
    return set(evaluation.excluded), {k: v for k, v in scores.items() if v}


def python_outcome(document: dict, facts: list[dict]) -> tuple[set, dict]:
    """Forward chaining in plain Python with the engine tests' reference matcher."""
    rules = [r for r in document["rules"] if r.get("enabled", True)]
    facts = [{**f, "key": f.get("key") or f"{f['fact']}#{i}"} for i, f in enumerate(facts)]
    by_type: dict[str, list[dict]] = {}
    for fact in facts:
        by_type.setdefault(fact["fact"], []).append(fact)

    def frames(rule):
        positives = [p for p in rule["when"] if not p.get("not")]
        negatives = [p for p in rule["when"] if p.get("not")]
        for combo in product(*(by_type.get(p["fact"], []) for p in positives)):
            if len({id(f) for f in combo}) < len(combo):
                continue
            bound, ok = {}, True
            for pattern, fact in zip(positives, combo, strict=True):
                if not pattern_matches(pattern, fact, bound):
                    ok = False
                    break
                if "as" in pattern:
                    bound[pattern["as"]] = fact
            if not ok:
                continue
            others = [f for n in negatives for f in by_type.get(n["fact"], []) if f not in combo]
            if any(pattern_matches(n, f, bound) for n in negatives for f in others):
                continue
            yield bound

    # Flags first, until none is new: the candidate rules then see every flag.
    seen: set[tuple] = set()
    changed = True
    while changed:
        changed = False
        for rule in rules:
            for action in rule["then"]:
                if "assert" not in action:
                    continue
                for bound in list(frames(rule)):
                    values = {
                        k: bound[v["ref"].split(".")[0]].get(v["ref"].split(".")[1])
                        for k, v in (action.get("values") or {}).items()
                    }
                    identity = (action["assert"], *sorted(values.items()))
                    if identity not in seen:
                        seen.add(identity)
                        flag = {"fact": "flag", "name": action["assert"], **values}
                        flag["key"] = f"flag#{len(seen)}"
                        by_type.setdefault("flag", []).append(flag)
                        changed = True
    excluded, scores = set(), {}
    for rule in rules:
        for action in rule["then"]:
            target = action.get("exclude") or action.get("score")
            if target is None:
                continue
            for bound in frames(rule):
                key = bound[target]["key"]
                if "exclude" in action:
                    excluded.add(key)
                else:
                    scores[key] = scores.get(key, 0) + action["add"]
    return excluded, {k: v for k, v in scores.items() if v}


def rate(evaluate, seconds: float) -> float:
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        evaluate()
        count += 1
    return count / (time.perf_counter() - start)


def main() -> None:
    try:
        import zen
    except ImportError:
        print("engines side by side: skipped (pip install zen-engine, part of the dev extra)")
        return
    document = json.loads(Path(RULESET).read_text())
    engine = Engine()
    engine.load("sourcing-side-by-side", document)
    decision = zen.ZenEngine().create_decision(json.dumps(zen_graph()))
    for size in SIZES:
        facts = order_facts(size)
        ours = engine_outcome(engine, "sourcing-side-by-side", facts)
        theirs = zen_outcome(decision.evaluate(zen_input(facts))["result"])
        plain = python_outcome(document, facts)
        agree = ours == theirs == plain
        if not agree:
            raise SystemExit(
                f"engines disagree at {size} candidates: this engine {len(ours[0])} excluded,"
                f" ZEN {len(theirs[0])}, Python {len(plain[0])}"
            )
        seconds = 0.5 if size < 1000 else 1.5
        figures = {}
        for label, evaluate in (
            ("this engine", lambda f=facts: engine.evaluate("sourcing-side-by-side", f)),
            ("ZEN", lambda f=facts: decision.evaluate(zen_input(f))),
            ("plain Python", lambda f=facts: python_outcome(document, f)),
        ):
            figures[label] = statistics.median(rate(evaluate, seconds) for _ in range(RUNS))
        base = figures["this engine"]
        print(
            f"side by side, {size:>4} candidates: "
            + "   ".join(
                f"{label} {value:,.0f}/s ({value / base:.2f}x)" for label, value in figures.items()
            )
            + f"   agree: {len(ours[0])} excluded, {len(ours[1])} scored"
        )
