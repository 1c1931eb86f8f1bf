"""Small rulesets and facts for the rules tests."""

from __future__ import annotations

import copy
import json
from pathlib import Path

SHIPPED = json.loads((Path(__file__).parent.parent / "rulesets/sourcing/ruleset.json").read_text())
SETTINGS = {
    "objective": {"shipping_cost": 1},
    "rate_card": {
        "standard": {"base": 3, "per_km": 0.01, "per_kg": 0.3},
        "express": {"base": 6, "per_km": 0.02, "per_kg": 0.5},
    },
}


def ruleset(rules: list[dict], name: str = "test", version: int = 1) -> dict:
    return {"ruleset": name, "version": version, "settings": SETTINGS, "rules": rules}


def rule(rule_id: str, when: list[dict], then: list[dict], **extra) -> dict:
    return {"id": rule_id, "when": when, "then": then, **extra}


def shipped(**changes) -> dict:
    document = copy.deepcopy(SHIPPED)
    document.update(changes)
    return document


def candidate(key: str, line_id: str = "L1", **fields) -> dict:
    base = {
        "fact": "candidate",
        "key": key,
        "line_id": line_id,
        "sku": "S1",
        "node_id": key,
        "node_type": "store",
        "atp": 10,
        "atp_after": 9,
        "distance_km": 10.0,
    }
    base.update(fields)
    return base


ORDER = {
    "fact": "order",
    "order_id": "O1",
    "channel": "web",
    "total": 100.0,
    "line_count": 1,
    "delivery_method": "ship",
}
LINE = {"fact": "line", "line_id": "L1", "sku": "S1", "qty": 1, "unit_price": 100.0}
