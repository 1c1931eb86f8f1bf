"""Replenishment end to end: demand feeds and supplier catalogues (bad input changes
nothing), runs that order for positions below target and nothing above, batching that
follows the cost of a delivery, approval by rule and by analyst, signed instructions to a
real receiver, rejections planned again elsewhere, receipts that resume waiting customer
orders, transfers from DCs, and runs racing from several processes that order each
position once. Then the decision on the shared rules machinery: replayed and explained.
"""

from __future__ import annotations

import collections
import itertools
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app import create_app
from app.kinds.replenishment import plan
from app.platform import auth
from app.platform import db as database
from tests.conftest import Api
from tests.receiver import Receiver
from tests.servers import several, status_of
from tests.sourcing_helpers import NODES, build_network, order, set_stock
from tests.test_dispatch import FAST, SECRET, drain
from tests.test_integrity_processes import race

TODAY = datetime.now(UTC).date()
_ids = itertools.count()
SUPPLIER = {**NODES["SUP1"], "capabilities": ["ship"]}
SKUS = {
    "TEE": {"name": "T-shirt", "weight_kg": 0.3, "category": "apparel"},
    "KETTLE": {"name": "Kettle", "weight_kg": 1.5, "category": "home"},
}


@pytest.fixture
def app(db_path):
    return create_app({"DATABASE": db_path, **FAST})


@pytest.fixture
def receiver():
    served = Receiver([SECRET])
    yield served
    served.close()


@pytest.fixture
def chain(admin, analyst, db, client, receiver):
    """The decision-test network, two wholesale suppliers (A cheap, B dearer) with
    catalogues, webhooks to a real receiver, and node keys for each node."""
    build_network(admin)
    hook = {"url": receiver.url, "secret": SECRET}
    for node_id in ("DC1", "ST1", "ST2"):
        body = {**NODES[node_id], "webhook": hook}
        assert admin.put(f"/v1/nodes/{node_id}", json=body).status_code == 200
    for node_id in ("SUPA", "SUPB"):
        body = {**SUPPLIER, "name": f"Wholesaler {node_id}", "webhook": hook}
        assert admin.put(f"/v1/nodes/{node_id}", json=body).status_code == 201
    for sku, body in SKUS.items():
        assert admin.put(f"/v1/skus/{sku}", json=body).status_code == 201
    catalogue(admin, "SUPA", {"TEE": 4.0, "KETTLE": 12.0}, cost_per_delivery=20)
    catalogue(admin, "SUPB", {"TEE": 5.0, "KETTLE": 14.0}, cost_per_delivery=20)
    nodes = {
        node_id: Api(client, auth.create_key(db, "node", node_id)[1])
        for node_id in ("DC1", "ST1", "ST2", "SUPA", "SUPB")
    }
    return {"admin": admin, "analyst": analyst, "nodes": nodes, "receiver": receiver}


@pytest.fixture
def analyst(client, keys):
    return Api(client, keys["analyst"])


def catalogue(admin, supplier, prices: dict, pack=1, moq=0, **terms):
    body = {
        "terms": {"direct_to_store": True, "lead_time_days": 2, "cost_per_delivery": 20, **terms},
        "items": [
            {"sku": sku, "unit_cost": price, "pack_size": pack, "min_order_qty": moq}
            for sku, price in prices.items()
        ],
    }
    response = admin.put(f"/v1/suppliers/{supplier}/catalogue", json=body)
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()


def sales(admin, node_id: str, sku: str, per_day, days: int = 28) -> None:
    """Report ``days`` days of sales before today (``per_day``: a number, or a list)."""
    series = per_day if isinstance(per_day, list) else [per_day] * days
    items = [
        {
            "node_id": node_id,
            "sku": sku,
            "day": (TODAY - timedelta(days=len(series) - i)).isoformat(),
            "units": units,
        }
        for i, units in enumerate(series)
    ]
    response = admin.post("/v1/demand/feeds", json={"feed_id": f"s{next(_ids)}", "items": items})
    assert response.status_code == 201, response.get_json()


def run(analyst, **body):
    response = analyst.post("/v1/replenishment/runs", json={"run_id": f"r{next(_ids)}", **body})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def positions(db, run_body) -> dict[str, dict]:
    decision_id = run_body["summary"]["decision_id"]
    row = db.execute("SELECT result FROM decisions WHERE decision_id = ?", [decision_id]).fetchone()
    from app.platform import jsontext

    return {entry["position"]: entry for entry in jsontext.loads(row[0])["positions"]}


# Demand feeds and catalogues ----------------------------------------------------------


def test_demand_feeds_are_idempotent_and_a_later_day_figure_corrects(chain, db):
    admin = chain["admin"]
    day = (TODAY - timedelta(days=1)).isoformat()
    feed = {"feed_id": "d1", "items": [{"node_id": "ST1", "sku": "TEE", "day": day, "units": 5}]}
    first = admin.post("/v1/demand/feeds", json=feed)
    assert first.status_code == 201
    assert first.get_json()["units"] == 5
    again = admin.post("/v1/demand/feeds", json=feed)
    assert again.status_code == 200 and again.get_json()["replayed"] is True
    other = admin.post(
        "/v1/demand/feeds", json={**feed, "items": [{**feed["items"][0], "units": 6}]}
    )
    assert other.status_code == 409
    assert other.get_json()["error"]["code"] == "feed_id_reused"
    corrected = {"feed_id": "d2", "items": [{**feed["items"][0], "units": 3}]}
    assert admin.post("/v1/demand/feeds", json=corrected).status_code == 201
    assert [tuple(row) for row in db.execute("SELECT units FROM demand")] == [(3,)]


def test_invalid_demand_feeds_say_where_and_record_nothing(chain, db):
    admin = chain["admin"]
    good = {"node_id": "ST1", "sku": "TEE", "day": TODAY.isoformat(), "units": 1}
    cases = [
        ({**good, "node_id": "NOPE"}, "/items/1/node_id", "invalid_input"),
        ({**good, "sku": "NOPE"}, "/items/1/sku", "invalid_input"),
        ({**good, "node_id": "SUPA"}, "/items/1/node_id", "invalid_input"),
        ({**good, "day": (TODAY + timedelta(days=5)).isoformat()}, "/items/1/day", "invalid_input"),
        ({**good, "day": "2026-02-30"}, "/items/1/day", "invalid_input"),
        (good, "/items/1", "invalid_input"),  # listed twice
        ({**good, "units": -1}, "/items/1/units", "invalid_input"),
        ({**good, "units": 10**12}, "/items/1/units", "invalid_input"),
        ({**good, "day": "yesterday"}, "/items/1/day", "invalid_input"),
        ({**good, "extra": 1}, "/items/1/extra", "invalid_input"),
    ]
    for bad, pointer, code in cases:
        response = admin.post(
            "/v1/demand/feeds", json={"feed_id": f"bad{next(_ids)}", "items": [good, bad]}
        )
        assert response.status_code == 422, (bad, response.get_json())
        error = response.get_json()["error"]
        assert error["code"] == code
        assert pointer in [e["pointer"] for e in error["errors"]], (bad, error)
    assert db.execute("SELECT COUNT(*) FROM demand").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM demand_feeds").fetchone()[0] == 0
    # A node reports its own sales only.
    store = chain["nodes"]["ST1"]
    other = {"feed_id": "x", "items": [{**good, "node_id": "ST2"}]}
    assert store.post("/v1/demand/feeds", json=other).status_code == 403
    assert store.post("/v1/demand/feeds", json={**other, "items": [good]}).status_code == 201


def test_invalid_catalogues_say_where_and_change_nothing(chain, db):
    admin = chain["admin"]
    before = admin.get("/v1/suppliers/SUPA/catalogue").get_json()
    terms = {"cost_per_delivery": 10}
    cases = [
        ({"terms": terms, "items": [{"sku": "NOPE", "unit_cost": 1}]}, "/items/0/sku"),
        (
            {
                "terms": terms,
                "items": [{"sku": "TEE", "unit_cost": 1}, {"sku": "TEE", "unit_cost": 2}],
            },
            "/items/1/sku",
        ),
        (
            {
                "terms": terms,
                "items": [{"sku": "TEE", "unit_cost": 1, "pack_size": 6, "min_order_qty": 8}],
            },
            "/items/0/min_order_qty",
        ),
        ({"terms": terms, "items": [{"sku": "TEE", "unit_cost": -1}]}, "/items/0/unit_cost"),
        (
            {"terms": terms, "items": [{"sku": "TEE", "unit_cost": 1, "pack_size": 0}]},
            "/items/0/pack_size",
        ),
        ({"terms": {**terms, "delivery_days": ["someday"]}, "items": []}, "/terms/delivery_days/0"),
        ({"terms": {}, "items": []}, "/terms/cost_per_delivery"),
        ({"terms": {**terms, "status": "paused"}, "items": []}, "/terms/status"),
    ]
    for body, pointer in cases:
        response = admin.put("/v1/suppliers/SUPA/catalogue", json=body)
        assert response.status_code == 422, (body, response.get_json())
        assert pointer in [e["pointer"] for e in response.get_json()["error"]["errors"]], body
    assert admin.get("/v1/suppliers/SUPA/catalogue").get_json() == before
    assert (
        admin.put("/v1/suppliers/DC1/catalogue", json={"terms": terms, "items": []}).status_code
        == 404
    )
    supplier = chain["nodes"]["SUPA"]
    assert (
        supplier.put("/v1/suppliers/SUPB/catalogue", json={"terms": terms, "items": []}).status_code
        == 403
    )
    assert supplier.get("/v1/suppliers/SUPA/catalogue").status_code == 200


# Runs -------------------------------------------------------------------------------


def test_a_run_orders_for_positions_below_target_and_nothing_above(chain, db):
    admin, analyst = chain["admin"], chain["analyst"]
    set_stock(admin, "ST1", {"TEE": 1})
    set_stock(admin, "ST2", {"TEE": 400})
    sales(admin, "ST1", "TEE", 3)
    sales(admin, "ST2", "TEE", 3)
    made = run(analyst, nodes=["ST1", "ST2"], skus=["TEE"])
    seen = positions(db, made)
    below, above = seen["ST1/TEE"], seen["ST2/TEE"]
    assert above["status"] == "above_target"
    assert above["inventory_position"] >= above["target"]["reorder_point"]
    assert below["status"] == "ordered" and below["source_id"] == "SUPA"
    assert below["daily_mean"] == 3.0 and below["target"]["policy"] == "service_level"
    # Ordered up to cover lead time and a cycle: more than the reorder point's shortfall.
    assert below["qty"] >= below["target"]["reorder_point"] - below["inventory_position"]
    [order_] = made["orders"]
    assert order_["type"] == "purchase_order" and order_["source_node_id"] == "SUPA"
    assert order_["lines"] == [
        {
            "sku": "TEE",
            "qty": below["qty"],
            "unit_cost": 4.0,
            "landed_unit_cost": pytest.approx(4.0 + 20 / below["qty"], abs=1e-3),
            "transfer_id": None,
            "received_qty": None,
        }
    ]
    # Its explanation: the sources considered with their landed cost, and why the quantity.
    explained = analyst.get(f"/v1/replenishment/orders/{order_['order_id']}").get_json()
    [line] = explained["explanation"]
    assert {s["source_id"] for s in line["sources"]} == {"SUPA", "SUPB"}
    assert "below the reorder point" in line["reason"]
    # The same run id and body again is the same run; another body is refused.
    again = analyst.post(
        "/v1/replenishment/runs",
        json={"run_id": made["run_id"], "nodes": ["ST1", "ST2"], "skus": ["TEE"]},
    )
    assert again.status_code == 200 and again.get_json()["orders"] == made["orders"]
    other = analyst.post("/v1/replenishment/runs", json={"run_id": made["run_id"]})
    assert other.status_code == 409
    # A second run the same day orders nothing more for the planned position.
    second = run(analyst, nodes=["ST1"], skus=["TEE"])
    assert second["orders"] == [] and second["summary"]["lines"] == 0


def test_invalid_runs_say_where(chain, analyst):
    cases = [
        ({"nodes": ["NOPE"]}, "/nodes/0"),
        ({"nodes": ["SUPA"]}, "/nodes/0"),
        ({"skus": ["NOPE"]}, "/skus/0"),
        ({"horizon": "soon"}, "/horizon"),
        ({"horizon": "0000-00-00"}, "/horizon"),
        ({"horizon": "2026-02-30"}, "/horizon"),
        ({"horizon": (TODAY + timedelta(days=400)).isoformat()}, "/horizon"),
        ({"dry_run": "yes"}, "/dry_run"),
    ]
    for body, pointer in cases:
        response = analyst.post("/v1/replenishment/runs", json=body)
        assert response.status_code == 422, body
        assert pointer in [e["pointer"] for e in response.get_json()["error"]["errors"]]
    assert chain["admin"].get("/v1/replenishment/runs").get_json()["runs"] == []


def test_an_open_order_counts_toward_its_position(chain, db):
    admin, analyst = chain["admin"], chain["analyst"]
    set_stock(admin, "ST1", {"TEE": 0})
    sales(admin, "ST1", "TEE", 2)
    first = run(analyst, nodes=["ST1"], skus=["TEE"])
    ordered = positions(db, first)["ST1/TEE"]["qty"]
    # Tomorrow's run sees today's order on order and asks for nothing more.
    tomorrow = (TODAY + timedelta(days=1)).isoformat()
    later = run(analyst, nodes=["ST1"], skus=["TEE"], horizon=tomorrow)
    entry = positions(db, later)["ST1/TEE"]
    assert entry["on_order"] == ordered and entry["status"] == "above_target"


@pytest.mark.parametrize(
    ("delivery_cost", "shortest"),
    [(1.0, True), (400.0, False)],
    ids=["cheap-deliveries-come-often", "dear-deliveries-come-rarely"],
)
def test_batches_follow_the_cost_of_a_delivery(chain, db, delivery_cost, shortest):
    admin, analyst = chain["admin"], chain["analyst"]
    catalogue(admin, "SUPA", {"TEE": 40.0}, cost_per_delivery=delivery_cost)
    catalogue(admin, "SUPB", {"TEE": 50.0}, cost_per_delivery=delivery_cost)
    set_stock(admin, "ST1", {"TEE": 0})
    sales(admin, "ST1", "TEE", 10)
    entry = positions(db, run(analyst, nodes=["ST1"], skus=["TEE"]))["ST1/TEE"]
    cycles = sorted({s["cycle_days"] for s in entry["sources"]})
    assert len(cycles) > 1
    assert entry["cycle_days"] == (cycles[0] if shortest else cycles[-1])


def test_packs_and_minimums_round_the_quantity_up(chain, db):
    admin, analyst = chain["admin"], chain["analyst"]
    catalogue(admin, "SUPA", {"TEE": 4.0}, pack=12, moq=24)
    catalogue(admin, "SUPB", {"TEE": 9.0})
    set_stock(admin, "ST1", {"TEE": 0})
    sales(admin, "ST1", "TEE", 1)
    entry = positions(db, run(analyst, nodes=["ST1"], skus=["TEE"]))["ST1/TEE"]
    assert entry["source_id"] == "SUPA"
    assert entry["qty"] % 12 == 0 and entry["qty"] >= 24
    assert "packs of 12" in entry["reason"]


def test_a_minimum_order_value_moves_lines_elsewhere(chain, db):
    admin, analyst = chain["admin"], chain["analyst"]
    catalogue(admin, "SUPA", {"TEE": 4.0}, min_order_value=100_000)
    set_stock(admin, "ST1", {"TEE": 0})
    sales(admin, "ST1", "TEE", 2)
    made = run(analyst, nodes=["ST1"], skus=["TEE"])
    assert positions(db, made)["ST1/TEE"]["source_id"] == "SUPB"


# Approval and instruction ------------------------------------------------------------


def test_orders_under_the_threshold_go_by_rule_the_rest_wait_and_can_be_cut(chain, db, app):
    admin, analyst, receiver = chain["admin"], chain["analyst"], chain["receiver"]
    set_stock(admin, "ST1", {"TEE": 0})
    set_stock(admin, "ST2", {"TEE": 0})
    sales(admin, "ST1", "TEE", 1)  # a small order: under 500, approved by rule
    sales(admin, "ST2", "TEE", 30)  # hundreds of T-shirts: waits for an analyst
    made = run(analyst, nodes=["ST1", "ST2"])
    by_destination = {o["destination_node_id"]: o for o in made["orders"]}
    small, big = by_destination["ST1"], by_destination["ST2"]
    assert small["status"] == "requested" and small["approved_by"] == "rule"
    assert big["status"] == "proposed" and big["value"] >= 500
    # Cut down beyond what was proposed: refused, with the pointer.
    [line] = big["lines"]
    too_many = {
        "orders": [{"order_id": big["order_id"], "lines": [{"sku": "TEE", "qty": line["qty"] + 1}]}]
    }
    refused = analyst.post(f"/v1/replenishment/runs/{made['run_id']}/approve", json=too_many)
    assert refused.status_code == 422
    assert refused.get_json()["error"]["errors"][0]["pointer"] == "/orders/0/lines/0/qty"
    cut = {"orders": [{"order_id": big["order_id"], "lines": [{"sku": "TEE", "qty": 40}]}]}
    approved = analyst.post(f"/v1/replenishment/runs/{made['run_id']}/approve", json=cut)
    assert approved.status_code == 200, approved.get_json()
    [sent] = approved.get_json()["orders"]
    assert sent["status"] == "requested" and sent["lines"][0]["qty"] == 40
    assert sent["value"] == pytest.approx(40 * 4.0)
    again = analyst.post(f"/v1/replenishment/runs/{made['run_id']}/approve", json=cut)
    assert again.get_json()["approved"] == [] and big["order_id"] in again.get_json()["unchanged"]
    # Both went to the supplier, signed.
    drain(app)
    requested = [m for m in receiver.received if m["body"]["type"] == "purchase_order.requested"]
    assert sorted(m["body"]["data"]["order_id"] for m in requested) == sorted(
        [small["order_id"], big["order_id"]]
    )
    assert all(m["verified"][SECRET] for m in requested)
    shirts = next(m for m in requested if m["body"]["data"]["order_id"] == big["order_id"])
    assert shirts["body"]["data"]["lines"] == [{"sku": "TEE", "qty": 40, "unit_cost": 4.0}]
    # Cancelled after it was sent: the supplier is told.
    assert analyst.delete(f"/v1/replenishment/orders/{big['order_id']}").status_code == 200
    drain(app)
    assert [
        m["body"]["data"]["order_id"]
        for m in receiver.received
        if m["body"]["type"] == "purchase_order.cancelled"
    ] == [big["order_id"]]


def test_a_dry_run_orders_nothing(chain, db):
    admin, analyst = chain["admin"], chain["analyst"]
    set_stock(admin, "ST1", {"TEE": 0})
    sales(admin, "ST1", "TEE", 2)
    dry = run(analyst, nodes=["ST1"], dry_run=True)
    assert dry["orders"] and all(o["status"] == "proposed" for o in dry["orders"])
    assert db.execute("SELECT COUNT(*) FROM replenishment_orders").fetchone()[0] == 0
    assert analyst.post(f"/v1/replenishment/runs/{dry['run_id']}/approve").status_code == 409
    assert run(analyst, nodes=["ST1"])["orders"]  # not planned: a real run still orders


def test_a_rejected_order_is_planned_again_with_another_supplier(chain, db, app):
    admin, analyst = chain["admin"], chain["analyst"]
    set_stock(admin, "ST1", {"TEE": 0})
    sales(admin, "ST1", "TEE", 2)
    [first] = run(analyst, nodes=["ST1"])["orders"]
    assert first["source_node_id"] == "SUPA" and first["status"] == "requested"
    supplier = chain["nodes"]["SUPA"]
    path = f"/v1/replenishment/orders/{first['order_id']}/events"
    rejected = supplier.post(
        path, json={"event_id": "x1", "type": "rejected", "reason": "out of stock"}
    )
    assert rejected.status_code == 201, rejected.get_json()
    replan = rejected.get_json()["replanned_by"]
    again = analyst.get(f"/v1/replenishment/runs/{replan}").get_json()
    [second] = again["orders"]
    assert second["source_node_id"] == "SUPB" and second["lines"][0]["sku"] == "TEE"
    entry = positions(db, again)["ST1/TEE"]
    [refused] = entry["excluded_sources"]
    assert refused["source_id"] == "SUPA" and "rejected" in refused["reasons"][0]["reason"]
    # Out of order now: a rejected order cannot be accepted; the same event is a replay.
    late = supplier.post(path, json={"event_id": "x2", "type": "accepted"})
    assert late.status_code == 409 and late.get_json()["error"]["code"] == "illegal_transition"
    assert (
        supplier.post(
            path, json={"event_id": "x1", "type": "rejected", "reason": "out of stock"}
        ).status_code
        == 200
    )
    # Another supplier's key cannot report on it.
    assert (
        chain["nodes"]["SUPB"].post(path, json={"event_id": "x3", "type": "accepted"}).status_code
        == 404
    )


def test_a_receipt_raises_stock_and_resumes_waiting_customer_orders(chain, db):
    admin, analyst = chain["admin"], chain["analyst"]
    waiting = admin.post(
        "/v1/orders",
        json={**order("w1", [("TEE", 3, 9.0)]), "delivery": {"method": "pickup", "node_id": "ST1"}},
    )
    assert waiting.get_json()["status"] == "backordered", waiting.get_json()
    sales(admin, "ST1", "TEE", 1)
    made = run(analyst, nodes=["ST1"], skus=["TEE"])
    entry = positions(db, made)["ST1/TEE"]
    assert (
        entry["backorders"] == 3
        and entry["target"]["set_by"]["service_level"] == "waiting-customers-first"
    )
    [po] = made["orders"]
    supplier, store = chain["nodes"]["SUPA"], chain["nodes"]["ST1"]
    path = f"/v1/replenishment/orders/{po['order_id']}/events"
    eta = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    accepted = supplier.post(path, json={"event_id": "a", "type": "accepted", "eta": eta})
    assert accepted.status_code == 201
    transfer_id = analyst.get(f"/v1/replenishment/orders/{po['order_id']}").get_json()["lines"][0][
        "transfer_id"
    ]
    in_transit = admin.get(f"/v1/inventory/transfers/{transfer_id}").get_json()
    assert in_transit["status"] == "in_transit" and in_transit["origin_node_id"] == "SUPA"
    assert supplier.post(path, json={"event_id": "b", "type": "shipped"}).status_code == 201
    # Only the destination reports the receipt.
    assert supplier.post(path, json={"event_id": "c", "type": "received"}).status_code == 403
    received = store.post(path, json={"event_id": "c", "type": "received"})
    assert received.status_code == 201, received.get_json()
    assert received.get_json()["backorders_resumed"] == ["w1"]
    assert admin.get("/v1/orders/w1").get_json()["status"] == "sourced"
    assert admin.get(f"/v1/inventory/transfers/{transfer_id}").get_json()["status"] == "received"
    on_hand = db.execute(
        "SELECT on_hand FROM stock WHERE node_id = 'ST1' AND sku = 'TEE'"
    ).fetchone()[0]
    assert on_hand == po["lines"][0]["qty"]


def approved_transfer(chain) -> dict:
    """A store out of kettles with a DC that has plenty: the run's transfer, approved."""
    admin, analyst = chain["admin"], chain["analyst"]
    set_stock(admin, "DC1", {"KETTLE": 500})
    set_stock(admin, "ST1", {"KETTLE": 0})
    sales(admin, "ST1", "KETTLE", 2)
    made = run(analyst, nodes=["ST1"], skus=["KETTLE"])
    [transfer] = made["orders"]
    assert transfer["type"] == "transfer" and transfer["source_node_id"] == "DC1"
    assert analyst.post(f"/v1/replenishment/runs/{made['run_id']}/approve").status_code == 200
    return transfer


def test_a_transfer_from_a_dc_with_units_to_spare(chain, db):
    transfer = approved_transfer(chain)
    qty = transfer["lines"][0]["qty"]
    dc = chain["nodes"]["DC1"]
    path = f"/v1/replenishment/orders/{transfer['order_id']}/events"
    assert dc.post(path, json={"event_id": "a", "type": "accepted"}).status_code == 201
    # The DC's units left its stock for the store: customers no longer count on them.
    assert db.execute("SELECT on_hand FROM stock WHERE node_id = 'DC1'").fetchone()[0] == 500 - qty
    store = chain["nodes"]["ST1"]
    half = {"event_id": "r", "type": "received", "lines": [{"sku": "KETTLE", "qty": qty - 1}]}
    assert store.post(path, json=half).status_code == 201
    assert db.execute("SELECT on_hand FROM stock WHERE node_id = 'ST1'").fetchone()[0] == qty - 1


def test_runs_racing_from_two_processes_order_each_position_once(chain, db_path):
    admin = chain["admin"]
    for node_id in ("ST1", "ST2", "DC1"):
        set_stock(admin, node_id, {"TEE": 0, "KETTLE": 0})
        sales(admin, node_id, "TEE", 2)
        sales(admin, node_id, "KETTLE", 1)
    connection = database.open_from_config({"DATABASE": db_path})
    key = auth.create_key(connection, "analyst")[1]
    connection.close()
    with several(db_path, 2, DISPATCH_EMBEDDED="false") as ports:
        statuses = race(
            6,
            6,
            lambda n: status_of(
                ports[n % 2], key, "POST", "/v1/replenishment/runs", {"run_id": f"race{n}"}
            ),
        )
    assert statuses == [201] * 6
    connection = database.open_from_config({"DATABASE": db_path})
    rows = connection.execute(
        "SELECT o.destination_node_id, l.sku, COUNT(*) FROM replenishment_orders o"
        " JOIN replenishment_lines l ON l.order_id = o.order_id"
        " GROUP BY o.destination_node_id, l.sku"
    ).fetchall()
    connection.close()
    # Kettles reach stores through a DC (the shipped rules), and the DC has none to spare.
    assert sorted((r[0], r[1]) for r in rows) == [
        ("DC1", "KETTLE"),
        ("DC1", "TEE"),
        ("ST1", "TEE"),
        ("ST2", "TEE"),
    ]
    assert all(r[2] == 1 for r in rows)


# The shared machinery -----------------------------------------------------------------


def test_a_run_is_replayed_and_a_source_explained(chain, db):
    admin, analyst = chain["admin"], chain["analyst"]
    catalogue(admin, "SUPB", {"TEE": 5.0}, status="quality_hold")
    set_stock(admin, "ST1", {"TEE": 0})
    sales(admin, "ST1", "TEE", 2)
    made = run(analyst, nodes=["ST1"])
    decision_id = made["summary"]["decision_id"]
    replayed = analyst.post(f"/v1/decisions/{decision_id}/replay", json={})
    assert replayed.status_code == 200, replayed.get_json()
    assert replayed.get_json()["identical"] is True
    why = analyst.get(f"/v1/decisions/{decision_id}/why-not/SUPB").get_json()
    [line] = why["lines"]
    assert line["line_id"] == "ST1/TEE" and line["outcome"] == "excluded"
    assert line["by"] == ["supplier-quality-hold"]
    chosen = analyst.get(f"/v1/decisions/{decision_id}/why-not/SUPA").get_json()
    assert chosen["chosen"] is True


def test_the_demo_network_orders_for_every_position_below_target_and_none_above(tmp_path):
    from app.edges import demo
    from app.kinds.replenishment import runs

    connection = database.open_from_config({"DATABASE": str(tmp_path / "demo.db")})
    database.migrate(connection, "migrations")
    demo.load(connection)
    from app.machinery.rules import runtime
    from app.platform.schemas import catalogue as schema_catalogue

    runtime.load_shipped(connection, "rulesets", schema_catalogue("schemas"))
    made, _ = runs.start(connection, {"run_id": "demo", "dry_run": True}, "test")
    from app.machinery import decisions

    decision = decisions.get(connection, made["summary"]["decision_id"])["decision"]
    connection.close()
    statuses = collections.Counter(entry["status"] for entry in decision["positions"])
    assert statuses["ordered"] > 100 and statuses["above_target"] > 100
    for entry in decision["positions"]:
        target = entry.get("target")
        if entry["status"] == "above_target":
            assert entry["inventory_position"] >= target["reorder_point"]
        elif entry["status"] == "ordered":
            assert entry["inventory_position"] < target["reorder_point"]
            assert entry["qty"] > 0
        elif entry["status"] == "unplaced":
            # Below target with no source left: said so, never silently skipped.
            assert entry["inventory_position"] < target["reorder_point"] and entry["reason"]
        else:
            assert entry["status"] == "not_replenished"


# The plan, on random instances -------------------------------------------------------


def _instance(data) -> plan.Problem:
    destinations = data.draw(st.integers(1, 3))
    sources = data.draw(st.integers(1, 4))
    options = {}
    spare = {}
    for d in range(destinations):
        for p in range(data.draw(st.integers(1, 5))):
            key = f"D{d}/P{p}"
            choices = []
            for s in range(sources):
                if data.draw(st.booleans()):
                    continue
                dc = s == 0
                for cycle in (7, 14, 28):
                    qty = data.draw(st.integers(1, 50))
                    choices.append(
                        plan.Option(
                            key,
                            f"D{d}",
                            f"P{p}",
                            f"S{s}",
                            cycle,
                            qty,
                            cost=data.draw(st.floats(1, 500)),
                            value=0.0 if dc else data.draw(st.floats(0, 300)),
                            uses_spare=qty if dc else 0,
                        )
                    )
                if dc:
                    spare.setdefault("S0", {})[f"P{p}"] = data.draw(st.integers(0, 80))
            options[key] = choices
    return plan.Problem(
        horizon_days=28,
        options=options,
        delivery_cost={f"S{s}": data.draw(st.floats(0, 200)) for s in range(sources)},
        min_order_value={
            f"S{s}": data.draw(st.sampled_from([0, 0, 100, 400])) for s in range(sources)
        },
        spare=spare,
    )


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_every_plan_keeps_every_constraint(data):
    problem = _instance(data)
    solved = plan.solve(problem)
    assert plan.violations(problem, solved.chosen) == []
    assert solved.cost == pytest.approx(plan.cost(problem, solved.chosen))
    for key, option in solved.chosen.items():
        if option is None:
            assert key in solved.unplaced


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_without_minimums_or_shared_spare_the_plan_is_optimal(data):
    problem = _instance(data)
    problem.min_order_value = dict.fromkeys(problem.min_order_value, 0)
    problem.spare = {s: {sku: 10**6 for sku in units} for s, units in problem.spare.items()}
    solved = plan.solve(problem)
    best = (
        min(
            plan.cost(problem, dict(zip(problem.options, combo, strict=True)))
            for combo in itertools.product(*[[*o, None] for o in problem.options.values()])
            if not plan.violations(problem, dict(zip(problem.options, combo, strict=True)))
        )
        if sum(len(o) + 1 for o in problem.options.values()) < 40 and len(problem.options) <= 4
        else None
    )
    if best is not None:
        assert solved.cost == pytest.approx(best)


def test_targets_from_demand_lead_time_and_service_level():
    position = {"daily_mean": 10.0, "daily_sd": 4.0}
    settings_ = {"review_days": 7, "service_level": 0.95}
    target = plan.targets(position, {}, settings_, lead_time=2)
    z = plan.z_score(0.95)
    assert target["safety_stock"] == pytest.approx(z * 4.0 * 3.0, abs=1e-3)
    assert target["reorder_point"] == pytest.approx(10 * 9 + z * 12, abs=1e-3)
    assert plan.order_up_to(target, 10.0, 4.0, 2, 14) == pytest.approx(10 * 16 + z * 4 * 3)
    higher = plan.targets(position, {"service_level": 0.99}, settings_, lead_time=2)
    assert higher["reorder_point"] > target["reorder_point"]
    fixed = plan.targets(position, {"policy": "min_max", "min_qty": 5, "max_qty": 9}, settings_, 2)
    assert (fixed["reorder_point"], fixed["order_up_to"]) == (5, 9)
    assert plan.targets(position, {"policy": "none"}, settings_, 2)["policy"] == "none"
    assert (
        plan.quantity(13.2, 6, 0) == 18
        and plan.quantity(1, 6, 24) == 24
        and plan.quantity(0, 1, 0) == 1
    )
    assert date.fromisoformat(TODAY.isoformat()) == TODAY


# Schedule and command line -----------------------------------------------------------


def test_the_schedule_runs_once_a_day_across_servers(chain, db_path):
    from app.kinds.replenishment import runs

    admin = chain["admin"]
    set_stock(admin, "ST1", {"TEE": 0})
    sales(admin, "ST1", "TEE", 2)
    first, second = (database.open_from_config({"DATABASE": db_path}) for _ in range(2))
    at = datetime.now(UTC).replace(hour=3, minute=0)
    assert runs.run_scheduled(first, "03:00", at - timedelta(minutes=1)) is None
    assert runs.run_scheduled(first, "", at) is None
    made = runs.run_scheduled(first, "03:00", at)
    assert made["run_id"] == f"scheduled-{at.date()}" and made["orders"]
    assert runs.run_scheduled(second, "03:00", at + timedelta(hours=2)) is None
    tomorrow = runs.run_scheduled(second, "03:00", at + timedelta(days=1))
    assert tomorrow["run_id"] == f"scheduled-{at.date() + timedelta(days=1)}"
    first.close()
    second.close()


def test_dom_replenish_run_shows_progress_and_the_orders(chain, db_path, monkeypatch):
    from click.testing import CliRunner

    from app.edges.cli import main

    admin = chain["admin"]
    set_stock(admin, "ST1", {"TEE": 0})
    sales(admin, "ST1", "TEE", 2)
    monkeypatch.setenv("DOM_DATABASE", db_path)
    result = CliRunner().invoke(main, ["replenish", "run", "--node", "ST1", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "positions" in result.output and "1 positions, 1 lines in 1 orders" in result.output
    assert "purchase_order" in result.output and "SUPA -> ST1" in result.output
    assert "dry run: nothing ordered" in result.output
    bad = CliRunner().invoke(main, ["replenish", "run", "--node", "NOPE"])
    assert bad.exit_code != 0 and "/nodes/0" in bad.output
    bad = CliRunner().invoke(main, ["replenish", "run", "--horizon", "soon"])
    assert bad.exit_code != 0 and "/horizon" in bad.output


def test_progress_is_reported_as_batches_are_evaluated(chain, db):
    from app.kinds.replenishment import runs

    admin = chain["admin"]
    set_stock(admin, "ST1", {"TEE": 0, "KETTLE": 3})
    set_stock(admin, "DC1", {"TEE": 9, "KETTLE": 0})
    seen = []
    made, _ = runs.start(
        db, {"run_id": "p1"}, "test", lambda done, total: seen.append((done, total))
    )
    assert seen[-1] == (4, 4) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert made["progress"] == {"positions_done": 4, "positions_total": 4, "percent": 100.0}


def test_a_shadow_experiment_and_a_replay_compare_replenishment_versions(chain, db):
    import json
    from pathlib import Path

    from tests.test_experiments import wait_for

    admin, analyst = chain["admin"], chain["analyst"]
    shipped = json.loads(
        (Path(__file__).parent.parent / "rulesets/replenishment/ruleset.json").read_text()
    )
    often = {**shipped, "version": 2, "change_note": "deliveries every three days"}
    often["settings"] = {**shipped["settings"], "cycle_days": [3]}
    made = analyst.post("/v1/rulesets/replenishment/versions", json=often)
    assert made.status_code == 201, made.get_json()
    started = analyst.post(
        "/v1/experiments",
        json={
            "experiment_id": "rep-sh",
            "ruleset": "replenishment",
            "champion": 1,
            "challenger": 2,
            "mode": "shadow",
        },
    )
    assert started.status_code == 201, started.get_json()
    set_stock(admin, "ST1", {"TEE": 0})
    set_stock(admin, "ST2", {"TEE": 0})
    sales(admin, "ST1", "TEE", 9)
    sales(admin, "ST2", "TEE", 1)
    for day in range(3):
        horizon = (TODAY + timedelta(days=day)).isoformat()
        run(analyst, nodes=["ST1", "ST2"], horizon=horizon, dry_run=True)
    report = analyst.get("/v1/experiments/rep-sh/report").get_json()
    assert report["variants"]["champion"]["decisions"] == 3
    differences = report["challenger_minus_champion"]
    # Cheap goods: the shipped plan covers four weeks at a time; every three days costs
    # more deliveries and less holding.
    assert differences["delivery_cost"]["difference"] > 0
    assert differences["holding_cost"]["difference"] < 0
    assert report["disagreements"] == 3
    assert "fill_rate" not in differences and "landed_cost_per_unit" in differences
    replay = analyst.post(
        "/v1/replays", json={"ruleset": "replenishment", "champion": 1, "challenger": 2}
    )
    assert replay.status_code == 202, replay.get_json()
    done = wait_for(analyst, replay.get_json()["replay_id"])
    assert done["status"] == "done", done
    assert done["report"]["kind"] == "replenishment" and done["report"]["changed"] == 3


def test_a_dc_cannot_send_units_customers_hold(chain, db):
    admin, analyst = chain["admin"], chain["analyst"]
    transfer = approved_transfer(chain)
    # Meanwhile customers take all but a few of the DC's kettles.
    set_stock(admin, "DC1", {"KETTLE": transfer["lines"][0]["qty"] + 2})
    held = admin.post("/v1/orders", json=order("c1", [("KETTLE", 3, 20.0)]))
    assert held.get_json()["status"] == "sourced", held.get_json()
    path = f"/v1/replenishment/orders/{transfer['order_id']}/events"
    refused = chain["nodes"]["DC1"].post(path, json={"event_id": "a", "type": "accepted"})
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "insufficient_stock"
    assert analyst.get(path.removesuffix("/events")).get_json()["status"] == "requested"
    on_hand = db.execute("SELECT on_hand FROM stock WHERE node_id = 'DC1'").fetchone()[0]
    assert on_hand == transfer["lines"][0]["qty"] + 2
    assert db.execute("SELECT COUNT(*) FROM transfers").fetchone()[0] == 0


def test_a_run_that_failed_or_was_abandoned_runs_again_when_asked_again(chain, db, monkeypatch):
    from app.kinds.replenishment import decide

    admin, analyst = chain["admin"], chain["analyst"]
    set_stock(admin, "ST1", {"TEE": 0})
    sales(admin, "ST1", "TEE", 2)
    planned = decide.run

    def broken(*args, **kwargs):
        raise RuntimeError("the plan broke")

    monkeypatch.setattr(decide, "run", broken)
    body = {"run_id": "again", "nodes": ["ST1"]}
    assert analyst.post("/v1/replenishment/runs", json=body).status_code == 500
    failed = analyst.get("/v1/replenishment/runs/again").get_json()
    assert failed["status"] == "failed" and "the plan broke" in failed["error"]
    assert db.execute("SELECT COUNT(*) FROM replenishment_orders").fetchone()[0] == 0
    monkeypatch.setattr(decide, "run", planned)
    retried = analyst.post("/v1/replenishment/runs", json=body)
    assert retried.status_code == 201 and retried.get_json()["status"] == "proposed"
    assert len(retried.get_json()["orders"]) == 1
    # A run left running by a process that died long ago runs again; a recent one does not.
    with database.immediate(db):
        db.execute(
            "INSERT INTO replenishment_runs (run_id, status, dry_run, scope, horizon,"
            " body_hash, created_at) VALUES ('left', 'running', 1, '{}', ?, ?, ?)",
            [TODAY.isoformat(), "x", "2020-01-01T00:00:00Z"],
        )
    from app.domain.network import stock as stock_module

    left = {"run_id": "left", "dry_run": True}
    digest = stock_module.body_hash(left)
    with database.immediate(db):
        db.execute("UPDATE replenishment_runs SET body_hash = ? WHERE run_id = 'left'", [digest])
    again = analyst.post("/v1/replenishment/runs", json=left)
    assert again.status_code == 201 and again.get_json()["status"] == "proposed"
    recent = analyst.post("/v1/replenishment/runs", json=left)
    assert recent.status_code == 200


def test_runs_are_listed_with_the_other_decisions(chain):
    admin, analyst = chain["admin"], chain["analyst"]
    set_stock(admin, "ST1", {"TEE": 0})
    sales(admin, "ST1", "TEE", 2)
    made = run(analyst, nodes=["ST1"])
    listed = analyst.get("/v1/decisions?kind=replenishment").get_json()
    assert [d["decision_id"] for d in listed["decisions"]] == [made["summary"]["decision_id"]]
    assert analyst.get("/v1/replenishment/runs").get_json()["runs"][0]["run_id"] == made["run_id"]


@pytest.mark.parametrize(
    ("action", "pointer", "code", "says"),
    [
        ({"set": "policy", "for": "p", "value": "min-max"}, "value", "value_type", "min_max"),
        ({"set": "service_level", "for": "p", "value": 1.5}, "value", "value_type", "0.5 to"),
        ({"set": "review_days", "for": "p", "value": 0}, "value", "value_type", "1 to 90"),
        ({"set": "review_days", "for": "s", "value": 2}, "for", "alias_type", "a source"),
        ({"set": "keep_it", "value": True}, "set", "unknown_attribute", "keep_it"),
        ({"exclude": "p", "reason": "x"}, "exclude", "alias_type", "not a source"),
    ],
)
def test_what_replenishment_rules_may_set_is_checked(analyst, action, pointer, code, says):
    import json
    from pathlib import Path

    document = json.loads(
        (Path(__file__).parent.parent / "rulesets/replenishment/ruleset.json").read_text()
    )
    document["rules"].append(
        {
            "id": "under-test",
            "description": "A rule with one bad action.",
            "priority": 1,
            "when": [
                {"fact": "position", "as": "p", "where": {"node_type": {"eq": "store"}}},
                {"fact": "source", "as": "s", "where": {"position_key": {"eq": {"ref": "p.key"}}}},
            ],
            "then": [action],
        }
    )
    response = analyst.post("/v1/rulesets/validate", json=document)
    assert response.status_code == 422, response.get_json()
    found = response.get_json()["error"]
    problems = [p for p in found["errors"] if p["pointer"].startswith("/rules/17/")]
    assert problems, found
    assert problems[0]["pointer"].endswith(f"/then/0/{pointer}"), problems
    assert problems[0]["code"] == code and says in problems[0]["message"], problems
