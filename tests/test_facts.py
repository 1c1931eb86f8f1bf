"""Building facts: candidates, screening and the per-line cap. Pure."""

from __future__ import annotations

from app.kinds.sourcing.facts import NetworkView, build
from tests.rules_helpers import SETTINGS

ORDER = {
    "order_id": "o",
    "channel": "web",
    "customer_id": "c",
    "delivery": {
        "method": "ship",
        "address": {
            "lines": ["x"],
            "city": "y",
            "postcode": "z",
            "country": "GB",
            "lat": 52.0,
            "lon": -1.0,
        },
    },
    "lines": [{"line_id": "1", "sku": "S", "qty": 2, "unit_price": 5.0}],
}
CUSTOMER = {
    "customer_id": "c",
    "tier": "gold",
    "segments": [],
    "lifetime_orders": 1,
    "lifetime_value": 10.0,
}


def view(count: int, **node_changes) -> NetworkView:
    nodes = {
        f"N{i:03d}": {
            "type": "dc",
            "capabilities": ["ship"],
            "lat": 52.0 + i / 100,
            "lon": -1.0,
            "active": True,
            "priority": 0,
            "daily_capacity": 10,
            "timezone": "Europe/London",
            **node_changes,
        }
        for i in range(count)
    }
    positions = [
        {"node_id": n, "sku": "S", "atp": 5, "feed_as_of": "2026-11-25T08:00:00.000000Z"}
        for n in nodes
    ]
    return NetworkView(
        nodes=nodes,
        positions=positions,
        skus={"S": {"weight_kg": 1.0, "category": "home", "hazmat": False, "suppliers": {}}},
        capacity_used={"N000": 4},
        now="2026-11-25T10:00:00.000000Z",
    )


def candidates(facts):
    return [f for f in facts if f["fact"] == "candidate"]


def test_candidate_fields():
    facts, _context = build(ORDER, CUSTOMER, view(1), SETTINGS)
    [candidate] = candidates(facts)
    assert candidate["key"] == "1@N000"
    assert (candidate["atp"], candidate["atp_after"], candidate["capacity_left"]) == (5, 3, 6)
    assert candidate["feed_age_hours"] == 2.0
    assert candidate["distance_km"] == 0.0
    assert candidate["estimated_cost"] == 3 + 0.3 * 2  # base + per kg x 2 kg
    order = facts[0]
    assert (order["total"], order["line_count"], order["unit_count"]) == (10.0, 1, 2)


def test_only_the_nearest_candidates_per_line():
    settings = {**SETTINGS, "max_candidates_per_line": 5}
    facts, context = build(ORDER, CUSTOMER, view(40), settings)
    assert [c["node_id"] for c in candidates(facts)] == [f"N{i:03d}" for i in range(5)]
    [group] = context["screened"]
    assert group["reason"] == "farther than the 5 nearest candidates"
    assert len(group["node_ids"]) == 35


def test_nodes_that_cannot_serve_are_screened_with_a_reason():
    facts, context = build(ORDER, CUSTOMER, view(3, capabilities=["pickup"]), SETTINGS)
    assert candidates(facts) == []
    assert context["screened"] == [
        {
            "line_id": "1",
            "reason": "node lacks the ship capability",
            "node_ids": ["N000", "N001", "N002"],
        }
    ]
