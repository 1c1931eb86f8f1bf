"""Sourcing decisions on a small network with the shipped ruleset: table-driven cases."""

from __future__ import annotations

import pytest

from app.domain.network import nodes, reservations
from app.platform import db as database
from app.platform.db import now, parse_time
from tests.sourcing_helpers import LEICESTER, build_network, order, set_stock


@pytest.fixture
def shop(admin, network):
    build_network(admin)
    return admin


def shipped_from(decision) -> dict[str, dict[str, int]]:
    return {
        s["node_id"]: {line["line_id"]: line["qty"] for line in s["lines"]}
        for s in decision["shipments"]
    }


CASES = [
    (
        "one line from the nearby DC",
        {"DC1": {"MUG": 10}, "ST2": {"MUG": 10}},
        order("o", [("MUG", 1, 10.0)]),
        "sourced",
        {"DC1": {"1": 1}},
        {},
    ),
    (
        "a store keeps two units for walk-in shoppers",
        {"ST1": {"MUG": 2}},
        order("o", [("MUG", 1, 10.0)]),
        "backordered",
        {},
        {"1": "excluded"},
    ),
    (
        "hazardous goods skip the store",
        {"ST1": {"HAZ": 20}, "ST2": {"HAZ": 20}, "DC1": {"HAZ": 3}},
        order("o", [("HAZ", 2, 5.0)]),
        "sourced",
        {"DC1": {"1": 2}},
        {},
    ),
    (
        "a line splits across nodes when none has all of it",
        {"DC1": {"MUG": 5}, "PL1": {"MUG": 6}},
        order("o", [("MUG", 8, 10.0)]),
        "sourced",
        {"DC1": {"1": 5}, "PL1": {"1": 3}},
        {},
    ),
    (
        "what cannot be promised is back-ordered",
        {"DC1": {"MUG": 5}},
        order("o", [("MUG", 8, 10.0)]),
        "partially_sourced",
        {"DC1": {"1": 5}},
        {"1": "insufficient_stock"},
    ),
    (
        "a marketplace order no single node ships whole is consolidated: one parcel",
        {"DC1": {"MUG": 5}, "ST2": {"CUP": 5}},
        order("o", [("MUG", 1, 10.0), ("CUP", 1, 5.0)], channel="marketplace"),
        "sourced",
        {"DC1": {"1": 1, "2": 1}, "ST2": {"2": 1}},
        {},
    ),
    (
        "marketplace order that one node can ship whole",
        {"DC1": {"MUG": 5, "CUP": 5}, "ST2": {"CUP": 9}},
        order("o", [("MUG", 1, 10.0), ("CUP", 1, 5.0)], channel="marketplace"),
        "sourced",
        {"DC1": {"1": 1, "2": 1}},
        {},
    ),
    (
        "pickup comes from the chosen store",
        {"DC1": {"MUG": 50}, "ST1": {"MUG": 8}},
        order("o", [("MUG", 1, 10.0)], delivery={"method": "pickup", "node_id": "ST1"}),
        "sourced",
        {"ST1": {"1": 1}},
        {},
    ),
    (
        "pickup at a store without stock waits",
        {"DC1": {"MUG": 50}},
        order("o", [("MUG", 1, 10.0)], delivery={"method": "pickup", "node_id": "ST1"}),
        "backordered",
        {},
        {"1": "no_candidate"},
    ),
    (
        "same day only from nearby",
        {"ST1": {"MUG": 8}, "ST2": {"MUG": 50}},
        order("o", [("MUG", 1, 10.0)], delivery={"method": "same_day", "address": LEICESTER}),
        "sourced",
        {"ST1": {"1": 1}},
        {},
    ),
    (
        "drop-ship when no owned node has it",
        {"SUP1": {"SOFA": 10}},
        order("o", [("SOFA", 1, 400.0)]),
        "sourced",
        {"SUP1": {"1": 1}},
        {},
    ),
    (
        "no drop-ship while the DC has it",
        {"SUP1": {"SOFA": 10}, "DC1": {"SOFA": 2}},
        order("o", [("SOFA", 1, 400.0)]),
        "sourced",
        {"DC1": {"1": 1}},
        {},
    ),
    (
        "bulky items ship from the DC",
        {"ST1": {"BIG": 10}, "DC1": {"BIG": 1}},
        order("o", [("BIG", 1, 300.0)]),
        "sourced",
        {"DC1": {"1": 1}},
        {},
    ),
    (
        "first big order is held with nothing reserved",
        {"DC1": {"MUG": 100}},
        order("o", [("MUG", 40, 50.0)], customer="NEW"),
        "on_hold",
        {},
        {"1": "on_hold"},
    ),
    (
        "nothing anywhere",
        {},
        order("o", [("MUG", 1, 10.0)]),
        "backordered",
        {},
        {"1": "no_stock"},
    ),
]


@pytest.mark.parametrize(
    ("name", "stock", "body", "status", "shipments", "unfulfilled"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_decisions(shop, db, name, stock, body, status, shipments, unfulfilled):
    for node_id, items in stock.items():
        set_stock(shop, node_id, items)
    response = shop.post("/v1/orders", json=body)
    assert response.status_code == 201, response.get_json()
    decision = response.get_json()
    assert decision["status"] == status
    assert shipped_from(decision) == shipments
    assert {u["line_id"]: u["reason"] for u in decision["unfulfilled"]} == unfulfilled
    held = db.execute(
        "SELECT node_id, sku, SUM(qty) FROM reservations WHERE status = 'active'"
        " GROUP BY node_id, sku"
    ).fetchall()
    reserved = {(n, s): q for n, s, q in held}
    expected = {}
    for shipment in decision["shipments"]:
        for line in shipment["lines"]:
            key = (shipment["node_id"], line["sku"])
            expected[key] = expected.get(key, 0) + line["qty"]
    assert reserved == expected
    state = shop.get(f"/v1/orders/{body['order_id']}").get_json()
    assert state["status"] == status


def test_vip_gets_express(shop):
    set_stock(shop, "DC1", {"MUG": 5})
    decision = shop.post(
        "/v1/orders", json=order("v", [("MUG", 1, 9.0)], customer="VIP")
    ).get_json()
    assert decision["service_level"] == "express"
    assert decision["shipments"][0]["service_level"] == "express"


def test_decision_records_everything_in_one_go(shop, db):
    set_stock(shop, "DC1", {"MUG": 5})
    set_stock(shop, "ST2", {"CUP": 5})
    decision = shop.post(
        "/v1/orders", json=order("o", [("MUG", 1, 10.0), ("CUP", 2, 4.0)])
    ).get_json()
    assert decision["ruleset"]["name"] == "sourcing"
    assert len(decision["ruleset"]["sha256"]) == 64
    assert set(decision["timings_ms"]) == {"facts", "rules", "allocation", "total"}
    outbox = db.execute(
        "SELECT node_id, event_type, payload FROM outbox ORDER BY node_id"
    ).fetchall()
    assert [(r[0], r[1]) for r in outbox] == [
        ("DC1", "fulfillment.requested"),
        ("ST2", "fulfillment.requested"),
    ]
    held = db.execute("SELECT created_at, expires_at FROM reservations").fetchall()
    ttl = min((parse_time(e) - parse_time(c)).total_seconds() for c, e in held)
    assert ttl == pytest.approx(86400, abs=1)  # the shipped ruleset's reservation TTL
    stored = shop.get(f"/v1/decisions/{decision['decision_id']}").get_json()
    assert stored.pop("facts")  # the facts the rules saw, shown to admins and analysts
    assert stored == decision
    timeline = shop.get("/v1/orders/o").get_json()["timeline"]
    assert [event["type"] for event in timeline] == ["received", "status_changed"]
    assert timeline[1]["to"] == "sourced"


def test_explanation_names_rules_and_alternatives(shop):
    set_stock(shop, "ST1", {"HAZ": 20})
    set_stock(shop, "DC1", {"HAZ": 5})
    set_stock(shop, "ST2", {"HAZ": 20})
    decision = shop.post("/v1/orders", json=order("o", [("HAZ", 1, 5.0)])).get_json()
    explanation = decision["explanation"]
    assert "hazmat-not-from-stores" in explanation["rules_fired"]
    excluded = {(e["node_id"], e["by"][0]["rule"]) for e in explanation["excluded"]}
    assert ("ST1", "hazmat-not-from-stores") in excluded
    assert explanation["chosen"][0]["node_id"] == "DC1"
    assert explanation["chosen"][0]["scores"][0]["rule"] == "prefer-dc"
    why = shop.get(f"/v1/decisions/{decision['decision_id']}/why-not/ST1").get_json()
    assert why["lines"][0]["outcome"] == "excluded"
    assert "hazmat-not-from-stores" in why["lines"][0]["reason"]
    why_dc = shop.get(f"/v1/decisions/{decision['decision_id']}/why-not/DC1").get_json()
    assert why_dc["chosen"] is True
    nowhere = shop.get(f"/v1/decisions/{decision['decision_id']}/why-not/PL1").get_json()
    assert nowhere["lines"][0]["outcome"] == "not_a_candidate"


def test_same_order_twice_and_a_different_body(shop, db):
    set_stock(shop, "DC1", {"MUG": 5})
    body = order("o", [("MUG", 1, 10.0)])
    first = shop.post("/v1/orders", json=body)
    again = shop.post("/v1/orders", json=body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json() == first.get_json()
    assert db.execute("SELECT COUNT(*) FROM reservations").fetchone()[0] == 1
    changed = shop.post("/v1/orders", json=order("o", [("MUG", 2, 10.0)]))
    assert changed.status_code == 409
    assert changed.get_json()["error"]["code"] == "order_conflict"


def test_unknown_references_are_422_and_store_nothing(shop, db):
    body = order("o", [("MUG", 1, 1.0), ("GHOST", 1, 1.0)], customer="NOBODY")
    body["delivery"] = {"method": "pickup", "node_id": "DC1"}  # a DC does no pickup
    response = shop.post("/v1/orders", json=body)
    assert response.status_code == 422
    assert {e["pointer"] for e in response.get_json()["error"]["errors"]} == {
        "/customer_id",
        "/lines/1/sku",
        "/delivery/node_id",
    }
    assert db.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 0


def test_cancel_releases_stock_and_is_idempotent(shop, db):
    set_stock(shop, "DC1", {"MUG": 5})
    shop.post("/v1/orders", json=order("o", [("MUG", 3, 10.0)]))
    assert reservations.stock.atp(db, "DC1", "MUG") == 2
    response = shop.post("/v1/orders/o/cancel")
    assert response.status_code == 200
    assert response.get_json()["status"] == "cancelled"
    assert response.get_json()["shipments"][0]["status"] == "cancelled"
    assert reservations.stock.atp(db, "DC1", "MUG") == 5
    assert shop.post("/v1/orders/o/cancel").status_code == 200  # a retry
    messages = db.execute("SELECT event_type FROM outbox ORDER BY created_at").fetchall()
    assert [m[0] for m in messages] == ["fulfillment.requested", "fulfillment.cancelled"]
    assert shop.post("/v1/orders/nope/cancel").status_code == 404


def test_completed_orders_cannot_be_cancelled(shop, db):
    from app.domain import orders
    from app.platform import db as database

    set_stock(shop, "DC1", {"MUG": 5})
    shop.post("/v1/orders", json=order("o", [("MUG", 1, 10.0)]))
    with database.immediate(db):
        orders.set_status(db, "o", "completed", {})
    response = shop.post("/v1/orders/o/cancel")
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "illegal_transition"
    assert shop.get("/v1/orders/o").get_json()["status"] == "completed"


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        ("received", "sourced", True),
        ("received", "completed", False),
        ("sourced", "completed", True),
        ("backordered", "sourced", True),
        ("on_hold", "sourced", True),
        ("cancelled", "sourced", False),
        ("completed", "cancelled", False),
        ("cancelled", "cancelled", False),
    ],
)
def test_state_machine(current, target, allowed):
    from app.domain import orders

    if allowed:
        orders.check_transition("o", current, target)
    else:
        with pytest.raises(orders.IllegalTransition):
            orders.check_transition("o", current, target)


def test_capacity_counts_todays_shipments(shop):
    shop.put(
        "/v1/nodes/DC1", json={**__import__("tests.conftest").conftest.NODE_DC, "daily_capacity": 1}
    )
    set_stock(shop, "DC1", {"MUG": 50})
    first = shop.post("/v1/orders", json=order("a", [("MUG", 1, 10.0)])).get_json()
    set_stock(shop, "ST2", {"MUG": 50})
    second = shop.post("/v1/orders", json=order("b", [("MUG", 1, 10.0)])).get_json()
    assert shipped_from(first) == {"DC1": {"1": 1}}
    assert shipped_from(second) == {"ST2": {"1": 1}}
    assert any(
        e["node_id"] == "DC1" and e["by"][0]["rule"] == "no-capacity-left"
        for e in second["explanation"]["excluded"]
    )


def test_a_cancelled_shipment_frees_its_place_in_the_nodes_day(shop, db):
    shop.put(
        "/v1/nodes/DC1", json={**__import__("tests.conftest").conftest.NODE_DC, "daily_capacity": 1}
    )
    set_stock(shop, "DC1", {"MUG": 50})
    first = shop.post("/v1/orders", json=order("a", [("MUG", 1, 10.0)])).get_json()
    assert shipped_from(first) == {"DC1": {"1": 1}}
    assert shop.post("/v1/orders/a/cancel").status_code == 200
    assert shop.post("/v1/orders/a/cancel").status_code == 200  # twice frees it once
    second = shop.post("/v1/orders", json=order("b", [("MUG", 1, 10.0)])).get_json()
    assert shipped_from(second) == {"DC1": {"1": 1}}
    third = shop.post("/v1/orders", json=order("c", [("MUG", 1, 10.0)])).get_json()
    assert third["status"] == "backordered"
    assert any(
        e["node_id"] == "DC1" and e["by"][0]["rule"] == "no-capacity-left"
        for e in third["explanation"]["excluded"]
    )
    counted = db.execute("SELECT shipments FROM node_day_shipments WHERE node_id = 'DC1'")
    assert counted.fetchone()[0] == 1


def test_a_node_changed_elsewhere_is_seen_by_the_next_decision(shop, db):
    """Each process keeps the nodes it read; a write by any process (here: the row
    changed under it, with a new revision, as another server's write leaves it) is
    seen by the next decision."""
    set_stock(shop, "DC1", {"MUG": 50})
    set_stock(shop, "ST2", {"MUG": 50})
    first = shop.post("/v1/orders", json=order("a", [("MUG", 1, 10.0)])).get_json()
    assert shipped_from(first) == {"DC1": {"1": 1}}
    with database.atomic(db):
        db.execute("UPDATE nodes SET active = 0, revision = revision + 1 WHERE node_id = 'DC1'")
    second = shop.post("/v1/orders", json=order("b", [("MUG", 1, 10.0)])).get_json()
    assert shipped_from(second) == {"ST2": {"1": 1}}
    assert {
        "line_id": "1",
        "reason": "node is inactive",
        "node_ids": ["DC1"],
    } in second["explanation"]["screened"]
    # Through the API, a write changes the revision itself.
    node = shop.get("/v1/nodes/DC1").get_json()
    writable = {k: node[k] for k in nodes.WRITABLE}
    assert shop.put("/v1/nodes/DC1", json={**writable, "active": True}).status_code == 200
    third = shop.post("/v1/orders", json=order("c", [("MUG", 1, 10.0)])).get_json()
    assert shipped_from(third) == {"DC1": {"1": 1}}


def test_backorders_come_back_when_stock_arrives(shop, db):
    set_stock(shop, "DC1", {"MUG": 2})
    first = shop.post("/v1/orders", json=order("old", [("MUG", 5, 10.0)])).get_json()
    assert first["status"] == "partially_sourced"
    waiting = shop.post("/v1/orders", json=order("new", [("MUG", 1, 10.0)])).get_json()
    assert waiting["status"] == "backordered"
    feed = {
        "feed_id": "restock",
        "node_id": "DC1",
        "mode": "delta",
        "as_of": now(),
        "items": [{"sku": "MUG", "delta": 3}],
    }
    response = shop.post("/v1/inventory/feeds", json=feed).get_json()
    assert response["backorders_resumed"] == ["old"]  # oldest first; nothing left for "new"
    old = shop.get("/v1/orders/old").get_json()
    assert old["status"] == "sourced"
    assert [d["kind"] for d in old["decisions"]] == ["order", "backorder"]
    assert old["lines"][0]["qty_allocated"] == 5
    assert shop.get("/v1/orders/new").get_json()["status"] == "backordered"
