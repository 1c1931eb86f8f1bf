"""Turning a real decision into a scenario an analyst can keep and edit (pure).

The scenario takes the decision's facts with what identifies a person left out: the
customer's id is replaced, the destination keeps only its postcode district and a
position rounded to about a kilometre. Its expectations are what the version does on
those facts: the outcome, the node serving each line, the candidates excluded, the
rules fired and whether the order is held. Scores are left out: they pin weights.
"""

from __future__ import annotations

import copy

from app.machinery.rules.engine import Evaluation

PLACEHOLDER_CUSTOMER = "C-SCENARIO"


def anonymous_facts(facts: list[dict]) -> list[dict]:
    """The facts without what identifies the customer or their address.

    Fields without a value are left out, as the fact catalogue writes them (absent).
    """
    kept = [{k: v for k, v in fact.items() if v is not None} for fact in copy.deepcopy(facts)]
    for fact in kept:
        if "customer_id" in fact:
            fact["customer_id"] = PLACEHOLDER_CUSTOMER
        if fact.get("fact") == "order":
            if isinstance(fact.get("destination_postcode"), str):
                fact["destination_postcode"] = fact["destination_postcode"].split(" ")[0]
            for field in ("destination_lat", "destination_lon"):
                if isinstance(fact.get(field), float):
                    fact[field] = round(fact[field], 2)
    return kept


def expectations(evaluation: Evaluation, outcome: dict) -> dict:
    """What a version did, as a scenario's ``expect``."""
    serves: dict[str, str] = {}
    for shipment in outcome["shipments"]:
        for line in shipment["lines"]:
            serves.setdefault(line["line_id"], shipment["node_id"])
    expect = {
        "status": outcome["status"],
        "fired": sorted(set(evaluation.fired)),
        "excluded": sorted(evaluation.excluded),
        "held": bool(evaluation.holds),
    }
    if serves:
        expect["serves"] = dict(sorted(serves.items()))
    return expect


def scenario(decision: dict, facts: list[dict], evaluation: Evaluation, outcome: dict) -> dict:
    """A scenario document from a stored decision and its re-run on ``facts``."""
    ruleset = decision["ruleset"]
    return {
        "scenario": (
            f"From decision {decision['decision_id']} (order {decision['order_id']}),"
            f" {ruleset['name']} version {ruleset['version']}: {outcome['status']}"
        ),
        "facts": facts,
        "expect": expectations(evaluation, outcome),
    }
