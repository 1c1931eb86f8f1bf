"""The order's life after its decision: holds that live by the node's dispatch date,
re-sourcing that keeps the promise, and orders that are never stranded.

Each test runs on a controlled clock (time-machine) where days of the week matter."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from app import create_app
from app.edges.demo import CARRIER_SERVICES
from app.lifecycle import holds
from app.platform import db as database
from tests.conftest import NODE_DC, Api, store
from tests.receiver import Receiver
from tests.sourcing_helpers import CUSTOMERS, LEICESTER, build_network, order, set_stock
from tests.test_dispatch import FAST, SECRET, drain

LONDON = ZoneInfo("Europe/London")
# The DC dispatches Monday to Friday; the test weeks are in December 2026.
WEEKDAYS_ONLY = {"cutoffs": {day: "15:00" for day in ("mon", "tue", "wed", "thu", "fri")}}


def at(text: str) -> datetime:
    """A moment on London's clock: ``'2026-12-11 16:00'``."""
    return datetime.fromisoformat(text).replace(tzinfo=LONDON)


def stamp(text: str) -> str:
    return database.format_time(at(text))


@pytest.fixture
def app(db_path):
    return create_app({"DATABASE": db_path, **FAST})


@pytest.fixture
def shop(admin, network):
    build_network(admin)
    node = {**NODE_DC, "fulfilment": WEEKDAYS_ONLY}
    assert admin.put("/v1/nodes/DC1", json=node).status_code == 200
    for service_id, document in CARRIER_SERVICES.items():
        assert admin.put(f"/v1/carrier-services/{service_id}", json=document).status_code == 201
    return admin


@pytest.fixture
def node(client, network):
    return Api(client, network["node_key"])  # bound to DC1


def event(event_id, kind, **extra):
    return {"event_id": event_id, "type": kind, **extra}


def outbox_types(db, shipment_id):
    rows = db.execute(
        "SELECT event_type FROM outbox WHERE shipment_id = ? ORDER BY created_at", [shipment_id]
    )
    return [row[0] for row in rows]


def placed_friday_evening(shop, node, accept_at="2026-12-11 17:00"):
    """An order placed after Friday's cut-off at the DC, accepted that evening."""
    with time_machine.travel(at("2026-12-11 16:00")):
        set_stock(shop, "DC1", {"MUG": 10})
        set_stock(shop, "PL1", {"MUG": 10})
        decision = shop.post("/v1/orders", json=order("fri", [("MUG", 2, 10.0)])).get_json()
    [shipment] = decision["shipments"]
    assert shipment["node_id"] == "DC1"
    assert shipment["dispatch_date"] == "2026-12-14"  # Monday: the DC does not dispatch weekends
    with time_machine.travel(at(accept_at)):
        path = f"/v1/shipments/{shipment['shipment_id']}/events"
        assert node.post(path, json=event("acc", "accepted")).status_code == 201
    return shipment["shipment_id"]


def sweep(db, app, when: str) -> tuple[list, list]:
    """The dispatcher's two sweeps for accepted shipments, at ``when``."""
    now = stamp(when)
    with time_machine.travel(at(when)):
        return holds.flag_at_risk(db, now), holds.lapse(db, app.config, now)


# 1. A hold lives with its shipment; the node's silence is handled by dates --------------


def test_a_shipment_accepted_on_friday_for_monday_is_not_withdrawn_over_the_weekend(
    shop, node, db, app, client
):
    shipment_id = placed_friday_evening(shop, node)
    # Grace of one working day after Monday's dispatch: at risk from the end of Tuesday,
    # withdrawn two working days after that.
    row = db.execute(
        "SELECT ship_by, withdraw_by FROM shipments WHERE shipment_id = ?", [shipment_id]
    ).fetchone()
    assert tuple(row) == (stamp("2026-12-16 00:00"), stamp("2026-12-18 00:00"))
    # The old 24-hour timer would have withdrawn it on Saturday evening.
    for moment in ("2026-12-12 18:00", "2026-12-13 23:00", "2026-12-14 18:00", "2026-12-15 23:59"):
        assert sweep(db, app, moment) == ([], []), moment
    status = db.execute("SELECT status FROM shipments WHERE shipment_id = ?", [shipment_id])
    assert status.fetchone()[0] == "accepted"
    # Wednesday: at risk; the node is asked and the order's timeline says so, once.
    assert sweep(db, app, "2026-12-16 00:30") == ([shipment_id], [])
    assert sweep(db, app, "2026-12-16 09:00") == ([], [])
    assert outbox_types(db, shipment_id).count("fulfillment.at_risk") == 1
    view = shop.get("/v1/orders/fri").get_json()
    assert [e["type"] for e in view["timeline"]].count("shipment.at_risk") == 1
    assert view["shipments"][0]["at_risk_at"] == stamp("2026-12-16 00:30")
    # Friday: still not shipped, so it is withdrawn and its line goes to the 3PL.
    _, withdrawn = sweep(db, app, "2026-12-18 00:30")
    assert withdrawn == [shipment_id]
    view = shop.get("/v1/orders/fri").get_json()
    states = {s["node_id"]: (s["status"], s["withdrawn_reason"]) for s in view["shipments"]}
    assert states == {"DC1": ("cancelled", "dispatch_overdue"), "PL1": ("pending", None)}
    assert outbox_types(db, shipment_id)[-1] == "fulfillment.cancelled"


def test_the_nodes_closed_days_do_not_count_toward_its_deadlines(shop, node, db, app):
    closed = {**WEEKDAYS_ONLY, "closures": [{"from": "2026-12-15", "name": "stocktake"}]}
    assert shop.put("/v1/nodes/DC1", json={**NODE_DC, "fulfilment": closed}).status_code == 200
    shipment_id = placed_friday_evening(shop, node)
    row = db.execute(
        "SELECT ship_by, withdraw_by FROM shipments WHERE shipment_id = ?", [shipment_id]
    ).fetchone()
    # Tuesday is closed: the grace day is Wednesday, then Thursday and Friday.
    assert tuple(row) == (stamp("2026-12-17 00:00"), stamp("2026-12-19 00:00"))
    assert sweep(db, app, "2026-12-16 08:00") == ([], [])


def test_a_shipment_shipped_by_its_dispatch_date_is_never_at_risk(shop, node, db, app):
    shipment_id = placed_friday_evening(shop, node)
    with time_machine.travel(at("2026-12-14 11:00")):
        path = f"/v1/shipments/{shipment_id}/events"
        left = stamp("2026-12-14 11:00")
        shipped = event("s", "shipped", carrier="DPD", tracking_number="T", at=left)
        assert node.post(path, json=shipped).status_code == 201
    assert sweep(db, app, "2026-12-30 12:00") == ([], [])
    assert "fulfillment.at_risk" not in outbox_types(db, shipment_id)


def test_a_request_nobody_answers_still_lapses_by_its_ttl(shop, db, app):
    with time_machine.travel(at("2026-12-11 10:00")):
        set_stock(shop, "DC1", {"MUG": 10})
        set_stock(shop, "PL1", {"MUG": 10})
        decision = shop.post("/v1/orders", json=order("quiet", [("MUG", 1, 10.0)])).get_json()
    [shipment] = decision["shipments"]
    # The ruleset holds an unanswered request for 24 hours.
    assert sweep(db, app, "2026-12-12 09:00") == ([], [])
    assert sweep(db, app, "2026-12-12 10:30")[1] == [shipment["shipment_id"]]
    view = shop.get("/v1/orders/quiet").get_json()
    assert view["shipments"][0]["withdrawn_reason"] == "hold_lapsed"


# 2. Re-sourcing keeps the promise ----------------------------------------------------------


@pytest.fixture
def channel(client, keys):
    return Api(client, keys["channel"])


def hold_express(channel, promise_id="P1", qty=2):
    body = {
        "lines": [{"sku": "MUG", "qty": qty, "unit_price": 10.0}],
        "destination": {"postcode": "LE1 5AD", "country": "GB", "lat": 52.6369, "lon": -1.1398},
        "methods": ["ship"],
        "service_levels": ["express"],
        "hold": True,
        "promise_id": promise_id,
    }
    held = channel.post("/v1/promises", json=body)
    assert held.status_code == 201, held.get_json()
    return held.get_json()


def reject(client, keys, shipment, event_id="rej"):
    """The shipment's node says no (a node key bound to that node)."""
    secret = auth_key(client, "node", node_id=shipment["node_id"])
    path = f"/v1/shipments/{shipment['shipment_id']}/events"
    answer = Api(client, secret).post(path, json=event(event_id, "rejected", reason="damaged"))
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()


def test_an_order_carries_its_promise_and_a_rejection_is_decided_for_the_same_one(
    shop, channel, client, keys, db
):
    with time_machine.travel(at("2026-12-14 09:00")):
        set_stock(shop, "DC1", {"MUG": 10})
        set_stock(shop, "PL1", {"MUG": 10})
        promise = hold_express(channel)
        placed = channel.post("/v1/orders", json=order("exp", [("MUG", 2, 10.0)], promise_id="P1"))
        assert placed.status_code == 201, placed.get_json()
        [first] = placed.get_json()["shipments"]
        assert first["service_level"] == "express"
        view = channel.get("/v1/orders/exp").get_json()
        promised_by = promise["held_option"]["window"]["to"]
        assert (view["promised_by"], view["requested_service"]) == (promised_by, "express")
        assert view["promise_id"] == "P1"
        reject(client, keys, first)
        view = channel.get("/v1/orders/exp").get_json()
    second = [s for s in view["shipments"] if s["status"] == "pending"]
    assert [s["node_id"] for s in second] != [first["node_id"]]
    # Express again, by the same date: the promise holds, nothing is broken.
    assert [s["service_level"] for s in second] == ["express"]
    assert all(s["promised_until"] <= promised_by for s in second)
    assert view["promised_by"] == promised_by and view["promise_broken_at"] is None
    assert "promise_broken" not in [e["type"] for e in view["timeline"]]


def test_a_promise_no_node_can_keep_is_broken_out_loud(shop, channel, client, keys, app, db):
    receiver = Receiver([SECRET])
    try:
        made = channel.post(
            "/v1/subscriptions",
            json={"url": receiver.url, "secret": SECRET, "event_types": ["order.promise_broken"]},
        )
        assert made.status_code == 201, made.get_json()
        with time_machine.travel(at("2026-12-14 09:00")):
            set_stock(shop, "DC1", {"MUG": 2})
            hold_express(channel)
            decision = channel.post(
                "/v1/orders", json=order("one", [("MUG", 2, 10.0)], promise_id="P1")
            ).get_json()
            reject(client, keys, decision["shipments"][0])
            view = channel.get("/v1/orders/one").get_json()
            drain(app)
        assert view["status"] == "backordered"
        assert view["promise_broken_at"] is not None
        [broken] = [e for e in view["timeline"] if e["type"] == "promise_broken"]
        assert broken["promised_by"] == view["promised_by"] and broken["new_date"] is None
        assert broken["unserved_lines"] == ["1"]
        sent = [r["body"] for r in receiver.received if r["body"]["type"] == "order.promise_broken"]
        assert [body["data"]["order_id"] for body in sent] == ["one"]
    finally:
        receiver.close()


# 3. No order is stranded -----------------------------------------------------------------


def test_a_held_order_is_released_by_its_channel_and_decided_again(shop, channel, client, db):
    set_stock(shop, "DC1", {"MUG": 300})
    held = channel.post("/v1/orders", json=order("big", [("MUG", 200, 10.0)], customer="NEW"))
    assert held.get_json()["status"] == "on_hold"
    # A channel key of another channel does not see it; a body with a typo is refused.
    other = Api(client, auth_key(client, "channel", channels=["app"]))
    assert other.post("/v1/orders/big/release", json={}).status_code == 404
    bad = channel.post("/v1/orders/big/release", json={"notes": "ok"})
    assert bad.status_code == 422 and bad.get_json()["error"]["errors"][0]["pointer"] == "/notes"
    assert channel.get("/v1/orders/big").get_json()["status"] == "on_hold"
    released = channel.post("/v1/orders/big/release", json={"note": "fraud review passed"})
    assert released.status_code == 200, released.get_json()
    view = released.get_json()
    assert view["status"] == "sourced"
    assert [s["node_id"] for s in view["shipments"]] == ["DC1"]
    [entry] = [e for e in view["timeline"] if e["type"] == "released"]
    assert entry["note"] == "fraud review passed"
    # The rules that held it did not hold it again; a retry changes nothing.
    assert view["decisions"][-1]["status"] == "sourced"
    again = channel.post("/v1/orders/big/release", json={"note": "fraud review passed"})
    assert again.status_code == 200 and len(again.get_json()["shipments"]) == 1
    # An order that was never on hold cannot be released.
    set_stock(shop, "DC1", {"MUG": 300})
    channel.post("/v1/orders", json=order("small", [("MUG", 1, 10.0)]))
    refused = channel.post("/v1/orders/small/release")
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "not_on_hold"


def test_a_held_order_can_be_cancelled(shop, channel):
    set_stock(shop, "DC1", {"MUG": 300})
    channel.post("/v1/orders", json=order("big", [("MUG", 200, 10.0)], customer="NEW"))
    cancelled = channel.post("/v1/orders/big/cancel")
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"


def auth_key(client, role, **bound):
    from app.platform import auth

    db = database.open_from_config(client.application.config)
    try:
        return auth.create_key(db, role, **bound)[1]
    finally:
        db.close()


def open_report(api, **query):
    answer = api.get("/v1/reports/open-orders", query_string=query)
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def test_every_open_order_has_a_reason_and_a_next_action(shop, channel, node):
    with time_machine.travel(at("2026-12-14 09:00")):
        set_stock(shop, "DC1", {"MUG": 300, "CUP": 0})
        channel.post("/v1/orders", json=order("held", [("MUG", 200, 10.0)], customer="NEW"))
        channel.post("/v1/orders", json=order("nocup", [("CUP", 1, 10.0)]))
        transfer = {
            "transfer_id": "T1",
            "sku": "HAZ",
            "qty": 5,
            "origin": "supplier",
            "destination_node_id": "DC1",
            "eta": stamp("2026-12-17 10:00"),
        }
        assert shop.post("/v1/inventory/transfers", json=transfer).status_code == 201
        channel.post("/v1/orders", json=order("haz", [("HAZ", 1, 10.0)]))
        placed = channel.post("/v1/orders", json=order("mug", [("MUG", 1, 10.0)])).get_json()
        path = f"/v1/shipments/{placed['shipments'][0]['shipment_id']}/events"
        assert node.post(path, json=event("a", "accepted")).status_code == 201
        report = open_report(channel)
    found = {o["order_id"]: o for o in report["orders"]}
    assert {o: found[o]["reason"] for o in found} == {
        "held": "on_hold",
        "nocup": "no_supply",
        "haz": "awaiting_supply",
        "mug": "awaiting_dispatch",
    }
    assert all(o["next_action"] and o["message"] for o in report["orders"])
    assert found["held"]["message"] == "first order over 1,500 needs a fraud review"
    assert found["haz"]["expected_date"] == "2026-12-17"
    assert found["nocup"]["deadline"] > stamp("2026-12-21 08:59")
    assert found["mug"]["deadline"] == stamp("2026-12-16 00:00")
    counts = {row["reason"]: row["orders"] for row in report["by_reason"]}
    assert counts == {"on_hold": 1, "no_supply": 1, "awaiting_supply": 1, "awaiting_dispatch": 1}
    assert [o["order_id"] for o in open_report(channel, reason="no_supply")["orders"]] == ["nocup"]
    bad = channel.get("/v1/reports/open-orders", query_string={"reason": "bored"})
    assert bad.status_code == 422


def test_the_channel_is_asked_once_about_an_order_that_waits_too_long(shop, channel, app, db):
    from app.lifecycle import waiting

    receiver = Receiver([SECRET])
    try:
        made = channel.post(
            "/v1/subscriptions",
            json={"url": receiver.url, "secret": SECRET, "event_types": ["order.action_needed"]},
        )
        assert made.status_code == 201
        with time_machine.travel(at("2026-12-14 09:00")):
            set_stock(shop, "DC1", {"CUP": 0})
            channel.post("/v1/orders", json=order("nocup", [("CUP", 1, 10.0)]))
        with time_machine.travel(at("2026-12-20 09:00")):
            assert waiting.escalate(db) == []  # six days: within the ruleset's seven
        with time_machine.travel(at("2026-12-21 09:30")):
            assert waiting.escalate(db) == ["nocup"]
            assert waiting.escalate(db) == []
            drain(app)
        view = channel.get("/v1/orders/nocup").get_json()
        [asked] = [e for e in view["timeline"] if e["type"] == "action_needed"]
        assert asked["reason"] == "no_supply"
        sent = [r["body"] for r in receiver.received if r["body"]["type"] == "order.action_needed"]
        assert [(b["data"]["order_id"], b["data"]["reason"]) for b in sent] == [
            ("nocup", "no_supply")
        ]
        escalated = open_report(channel)["orders"][0]
        assert escalated["escalated_at"] is not None
    finally:
        receiver.close()


def with_settings(client, db, **settings):
    """Publish and activate the shipped sourcing ruleset with these settings."""
    from app.platform import auth
    from tests.rules_helpers import shipped

    analyst = Api(client, auth.create_key(db, "analyst")[1])
    listed = analyst.get("/v1/rulesets/sourcing/versions").get_json()["versions"]
    latest = max(v["version"] for v in listed)
    document = shipped(version=latest + 1)
    document["settings"].update(settings)
    assert analyst.post("/v1/rulesets/sourcing/versions", json=document).status_code == 201
    activated = analyst.post(f"/v1/rulesets/sourcing/versions/{latest + 1}/activate", json={})
    assert activated.status_code == 201, activated.get_json()


def pickup_at_st1(shop, channel, client, keys, order_id="pick", qty=1):
    near = {**store(52.64, -1.13, "Leicester East"), "capabilities": ["ship", "pickup"]}
    assert shop.put("/v1/nodes/ST3", json=near).status_code in (200, 201)
    set_stock(shop, "ST1", {"MUG": 5})
    set_stock(shop, "ST3", {"MUG": 5})
    body = order(order_id, [("MUG", qty, 10.0)], delivery={"method": "pickup", "node_id": "ST1"})
    placed = channel.post("/v1/orders", json=body).get_json()
    [shipment] = placed["shipments"]
    assert shipment["node_id"] == "ST1"
    return reject(client, keys, shipment)


def test_a_pickup_whose_store_rejects_is_offered_at_the_nearest_store_that_can(
    shop, channel, client, keys
):
    rejected = pickup_at_st1(shop, channel, client, keys)
    assert rejected["order_status"] == "on_hold"
    view = channel.get("/v1/orders/pick").get_json()
    [asked] = [e for e in view["timeline"] if e["type"] == "action_needed"]
    assert asked["reason"] == "pickup_offer" and asked["offer"]["pickup_node_id"] == "ST3"
    [row] = open_report(channel)["orders"]
    assert row["reason"] == "pickup_offer" and "ST3" in row["next_action"]
    # The customer takes it up: collected at ST3 from ST3's stock.
    taken = channel.post("/v1/orders/pick/release", json={"pickup_node_id": "ST3"})
    assert taken.status_code == 200, taken.get_json()
    view = taken.get_json()
    assert view["status"] == "sourced" and view["delivery"]["node_id"] == "ST3"
    live = [s for s in view["shipments"] if s["status"] == "pending"]
    assert [s["node_id"] for s in live] == ["ST3"]
    # A store that does not hand over pickups cannot be chosen.
    channel.post("/v1/orders", json=order("x", [("MUG", 200, 10.0)], customer="NEW"))
    wrong = channel.post("/v1/orders/x/release", json={"pickup_node_id": "DC1"})
    assert wrong.status_code == 422
    assert wrong.get_json()["error"]["errors"][0]["pointer"] == "/pickup_node_id"


def test_a_pickup_nobody_else_can_hand_over_is_shipped_or_cancelled_as_the_ruleset_says(
    shop, channel, client, keys, db
):
    address = {"address_id": "home", **{k: LEICESTER[k] for k in LEICESTER}}
    customer = {**CUSTOMERS["C1"], "addresses": [address], "default_address_id": "home"}
    assert shop.put("/v1/customers/C1", json=customer).status_code == 200
    with_settings(client, db, pickup_rejected="ship_to_customer")
    pickup_at_st1(shop, channel, client, keys)
    view = channel.get("/v1/orders/pick").get_json()
    assert view["status"] == "sourced" and view["delivery"]["method"] == "ship"
    assert [s["method"] for s in view["shipments"] if s["status"] == "pending"] == ["ship"]
    with_settings(client, db, pickup_rejected="cancel_line")
    rejected = pickup_at_st1(shop, channel, client, keys, "gone", qty=2)
    assert rejected["order_status"] == "cancelled"
    view = channel.get("/v1/orders/gone").get_json()
    assert view["lines"][0]["qty_cancelled"] == 2
    assert [e["type"] for e in view["timeline"]].count("lines_cancelled") == 1


def test_a_ship_complete_order_no_single_node_can_ship_is_split_or_held_not_parked(
    shop, channel, client, db
):
    # Bob Ltd is a business customer: the shipped rules make his orders ship complete.
    set_stock(shop, "DC1", {"MUG": 5})
    set_stock(shop, "PL1", {"CUP": 5})
    lines = [("MUG", 1, 10.0), ("CUP", 1, 10.0)]
    # A ruleset that holds it asks the channel after the hold's deadline.
    with_settings(client, db, ship_complete_unmet="hold")
    held = channel.post("/v1/orders", json=order("b2b-2", lines, customer="B2B")).get_json()
    assert held["status"] == "on_hold" and held["shipments"] == []
    [row] = [o for o in open_report(channel)["orders"] if o["order_id"] == "b2b-2"]
    assert row["reason"] == "on_hold" and "DC1, PL1" in row["message"]
    released = channel.post("/v1/orders/b2b-2/release").get_json()
    assert released["status"] == "sourced" and len(released["shipments"]) == 2
    # A ruleset that splits them ships it from both nodes at once.
    with_settings(client, db, ship_complete_unmet="split")
    split = channel.post("/v1/orders", json=order("b2b", lines, customer="B2B")).get_json()
    assert split["status"] == "sourced"
    assert sorted(s["node_id"] for s in split["shipments"]) == ["DC1", "PL1"]
    assert split["ship_complete_unmet"]["choice"] == "split"


# 4. The promise report counts what the customer was promised ----------------------------


def deliver(node_api, shipment_id, when, prefix):
    """The node accepts, ships and delivers at ``when`` (London)."""
    path = f"/v1/shipments/{shipment_id}/events"
    with time_machine.travel(at(when)):
        moment = stamp(when)
        for number, kind in enumerate(("accepted", "shipped", "delivered")):
            extra = (
                {"carrier": "N", "tracking_number": "T", "at": moment} if kind == "shipped" else {}
            )
            if kind == "delivered":
                extra = {"at": moment}
            sent = node_api.post(path, json=event(f"{prefix}{number}", kind, **extra))
            assert sent.status_code == 201, sent.get_json()


def test_the_report_judges_each_order_by_the_date_its_customer_was_quoted(
    shop, channel, client, keys, db
):
    with time_machine.travel(at("2026-12-14 09:00")):
        set_stock(shop, "DC1", {"MUG": 10})
        set_stock(shop, "PL1", {"MUG": 10})
        set_stock(shop, "ST1", {"MUG": 5})
        hold_express(channel)
        kept = channel.post("/v1/orders", json=order("kept", [("MUG", 2, 10.0)], promise_id="P1"))
        first = kept.get_json()["shipments"][0]
        reject(client, keys, first, "r1")
        late = channel.post("/v1/orders", json=order("late", [("MUG", 1, 10.0)])).get_json()
        body = order("pick", [("MUG", 1, 10.0)], delivery={"method": "pickup", "node_id": "ST1"})
        pick = channel.post("/v1/orders", json=body).get_json()
    view = channel.get("/v1/orders/kept").get_json()
    [second] = [s for s in view["shipments"] if s["status"] == "pending"]
    node_of = {
        s["node_id"]: Api(client, auth_key(client, "node", node_id=s["node_id"]))
        for s in (second, late["shipments"][0], pick["shipments"][0])
    }
    # Re-sourced, and delivered by the date the customer was quoted: kept.
    deliver(node_of[second["node_id"]], second["shipment_id"], "2026-12-15 12:00", "k")
    # Delivered two days after the window its first decision gave: broken, the node late.
    window_end = datetime.fromisoformat(late["shipments"][0]["delivery_window"]["to"])
    two_days_late = (window_end + timedelta(days=2)).astimezone(LONDON)
    late_id = late["shipments"][0]["shipment_id"]
    deliver(node_of["DC1"], late_id, two_days_late.strftime("%Y-%m-%d %H:%M"), "l")
    # Ready at the store in time, collected days later: kept.
    store_api = node_of["ST1"]
    path = f"/v1/shipments/{pick['shipments'][0]['shipment_id']}/events"
    with time_machine.travel(at("2026-12-14 12:00")):
        assert store_api.post(path, json=event("p0", "accepted")).status_code == 201
        assert store_api.post(path, json=event("p1", "picked")).status_code == 201
    with time_machine.travel(at("2026-12-22 12:00")):
        left = stamp("2026-12-22 12:00")
        shipped = event("p2", "shipped", carrier="-", tracking_number="-", at=left)
        assert store_api.post(path, json=shipped).status_code == 201
        assert store_api.post(path, json=event("p3", "delivered", at=left)).status_code == 201
        report = channel.get(
            "/v1/reports/promises?group_by=channel&since=2026-12-01&until=2027-01-01"
        ).get_json()
        causes = channel.get(
            "/v1/reports/promises?group_by=cause&since=2026-12-01&until=2027-01-01"
        ).get_json()
    assert report["per"] == "order"
    [row] = report["rows"]
    assert (row["orders"], row["kept"], row["broken"], row["pending"]) == (3, 2, 1, 0)
    assert row["causes"] == {"node_late": 1}
    assert {r["cause"]: r["orders"] for r in causes["rows"]} == {None: 2, "node_late": 1}


def test_the_dom_command_lists_open_orders_and_releases_a_held_one(
    shop, channel, db_path, monkeypatch
):
    from click.testing import CliRunner

    from app.edges.cli import main

    monkeypatch.setenv("DOM_DATABASE", db_path)
    set_stock(shop, "DC1", {"MUG": 300, "CUP": 0})
    channel.post("/v1/orders", json=order("held", [("MUG", 200, 10.0)], customer="NEW"))
    channel.post("/v1/orders", json=order("nocup", [("CUP", 1, 10.0)]))
    listed = CliRunner().invoke(main, ["orders", "open"])
    assert listed.exit_code == 0, listed.output
    assert "2 open order(s)" in listed.output
    assert (
        "held  on_hold  on_hold" in listed.output
        and "nocup  backordered  no_supply" in listed.output
    )
    as_json = CliRunner().invoke(main, ["orders", "open", "--reason", "on_hold", "--json"])
    assert [o["order_id"] for o in json.loads(as_json.stdout)["orders"]] == ["held"]
    released = CliRunner().invoke(main, ["orders", "release", "held", "--note", "checked"])
    assert released.exit_code == 0, released.output
    assert "held: sourced, 1 shipment(s)" in released.output
    refused = CliRunner().invoke(main, ["orders", "release", "nocup"])
    assert refused.exit_code == 1 and "not on hold" in refused.output


def test_a_drop_ship_line_whose_only_supplier_went_silent_is_asked_of_it_again(
    shop, channel, client, keys, db, app
):
    with time_machine.travel(at("2026-12-14 09:00")):
        set_stock(shop, "SUP1", {"SOFA": 10})
        placed = channel.post("/v1/orders", json=order("sofa", [("SOFA", 1, 400.0)])).get_json()
    [first] = placed["shipments"]
    assert first["node_id"] == "SUP1"
    # The supplier never answered: its request lapses, and it is asked again, not parked.
    assert sweep(db, app, "2026-12-15 09:30")[1] == [first["shipment_id"]]
    view = channel.get("/v1/orders/sofa").get_json()
    assert view["status"] == "sourced"
    assert [(s["node_id"], s["status"]) for s in view["shipments"]] == [
        ("SUP1", "cancelled"),
        ("SUP1", "pending"),
    ]
    # A supplier that says no is not asked again: that line waits, with its reason.
    reject(client, keys, view["shipments"][1])
    view = channel.get("/v1/orders/sofa").get_json()
    assert view["status"] == "backordered"


# 5. Carriers that carry what the network sells ------------------------------------------


def test_hazardous_and_heavy_parcels_have_a_carrier_and_one_none_takes_is_said(shop, channel):
    drum = {"name": "Solvent drum", "weight_kg": 35.0, "category": "home", "hazmat": True}
    assert shop.put("/v1/skus/DRUM", json=drum).status_code == 201
    with time_machine.travel(at("2026-12-14 09:00")):
        set_stock(shop, "DC1", {"HAZ": 5, "BIG": 5, "DRUM": 5})
        decided = {
            sku: channel.post("/v1/orders", json=order(sku, [(sku, 1, 50.0)])).get_json()
            for sku in ("HAZ", "BIG", "DRUM")
        }
    carried = {sku: d["shipments"][0]["carrier_service"] for sku, d in decided.items()}
    assert carried == {"HAZ": "safeline-hazmat", "BIG": "hometeam-two-person", "DRUM": None}
    assert decided["HAZ"]["shipments"][0]["promised_date"] is not None
    drum = decided["DRUM"]
    assert drum["shipments"][0]["promised_date"] is None
    [said] = drum["explanation"]["no_carrier"]
    assert said["node_id"] == "DC1" and "35 kg hazardous parcel" in said["reason"]
    assert "no_carrier" not in decided["HAZ"]["shipments"][0]


def test_a_hazardous_item_on_the_pickup_stores_shelf_is_handed_over_there(shop, channel):
    set_stock(shop, "ST1", {"HAZ": 5})
    body = order("aero", [("HAZ", 1, 5.0)], delivery={"method": "pickup", "node_id": "ST1"})
    decision = channel.post("/v1/orders", json=body).get_json()
    assert decision["status"] == "sourced"
    assert [s["node_id"] for s in decision["shipments"]] == ["ST1"]


def test_boxing_day_on_a_saturday_is_no_delivery_day(shop, channel):
    from app.edges.demo import BANK_HOLIDAYS

    assert shop.put("/v1/calendars/network", json=BANK_HOLIDAYS).status_code in (200, 201)
    with time_machine.travel(at("2026-12-24 10:00")):
        set_stock(shop, "DC1", {"MUG": 5})
        body = order("xmas", [("MUG", 1, 10.0)], requested_service="express")
        [shipment] = channel.post("/v1/orders", json=body).get_json()["shipments"]
    # Collected Thursday 24th; Friday, Saturday (Boxing Day) and Monday are holidays.
    assert shipment["carrier_service"] == "northway-next-day"
    assert shipment["promised_date"] == "2026-12-29"


def test_a_delivery_window_is_on_the_customers_clock_not_the_serving_nodes(shop, channel):
    paris = {**NODE_DC, "name": "DC on Paris time", "timezone": "Europe/Paris", "priority": 1}
    assert shop.put("/v1/nodes/DC1", json={**paris, "fulfilment": WEEKDAYS_ONLY}).status_code == 200
    with time_machine.travel(at("2026-12-14 09:00")):
        set_stock(shop, "DC1", {"MUG": 5})
        [shipment] = channel.post("/v1/orders", json=order("tz", [("MUG", 1, 10.0)])).get_json()[
            "shipments"
        ]
    # The address names no time zone; it is in Great Britain: 08:00 to 18:00 London time.
    window = shipment["delivery_window"]
    assert window["to"].endswith("T18:00:00.000000Z") and window["from"].endswith(
        "T08:00:00.000000Z"
    )


def test_a_pickup_on_the_shelf_is_never_at_risk_and_goes_back_when_nobody_collects(
    shop, channel, client, db, app
):
    with time_machine.travel(at("2026-12-14 10:00")):
        set_stock(shop, "ST1", {"MUG": 5})
        body = order("shelf", [("MUG", 1, 10.0)], delivery={"method": "pickup", "node_id": "ST1"})
        [shipment] = channel.post("/v1/orders", json=body).get_json()["shipments"]
        store = Api(client, auth_key(client, "node", node_id="ST1"))
        path = f"/v1/shipments/{shipment['shipment_id']}/events"
        assert store.post(path, json=event("a", "accepted")).status_code == 201
        assert store.post(path, json=event("p", "picked")).status_code == 201
    # Ready on the shelf: the store did its part, whatever the days that pass.
    assert sweep(db, app, "2026-12-18 10:00") == ([], [])
    # A week later nobody came: back on the shelf, the line cancelled, the channel asked.
    _, withdrawn = sweep(db, app, "2026-12-21 10:30")
    assert withdrawn == [shipment["shipment_id"]]
    view = channel.get("/v1/orders/shelf").get_json()
    assert view["status"] == "cancelled" and view["lines"][0]["qty_cancelled"] == 1
    assert view["shipments"][0]["withdrawn_reason"] == "uncollected"
    [asked] = [e for e in view["timeline"] if e["type"] == "action_needed"]
    assert asked["reason"] == "lines_cancelled"


def consolidated_order(shop, channel, client, db, order_id):
    set_stock(shop, "DC1", {"MUG": 5})
    set_stock(shop, "PL1", {"CUP": 5})
    lines = [("MUG", 1, 10.0), ("CUP", 1, 10.0)]
    decision = channel.post("/v1/orders", json=order(order_id, lines, customer="B2B")).get_json()
    assert decision["status"] == "sourced", decision
    return decision


def test_a_ship_complete_order_is_consolidated_at_one_node_by_a_transfer(shop, channel, client, db):
    from app.domain.network import stock

    # The shipped ruleset consolidates.
    with time_machine.travel(at("2026-12-14 09:00")):
        decision = consolidated_order(shop, channel, client, db, "one-box")
    assert decision["ship_complete_unmet"]["hub"] == "DC1"
    by_node = {s["node_id"]: s for s in decision["shipments"]}
    hub, leg = by_node["DC1"], by_node["PL1"]
    assert (hub["method"], leg["method"]) == ("ship", "transfer")
    assert [(line["sku"], line["supply"]) for line in hub["lines"]] == [
        ("MUG", "on_hand"),
        ("CUP", "consolidated"),
    ]
    # The leg leaves Monday and is at the DC two working days later; the parcel follows.
    assert leg["dispatch_date"] == "2026-12-14" and leg["promised_date"] == "2026-12-16"
    assert hub["dispatch_date"] >= "2026-12-16"
    lines = channel.get("/v1/orders/one-box").get_json()["lines"]
    assert [(line["qty"], line["qty_allocated"]) for line in lines] == [(1, 1), (1, 1)]
    [transfer] = db.execute(
        "SELECT origin_node_id, destination_node_id, status FROM transfers WHERE shipment_id = ?",
        [leg["shipment_id"]],
    ).fetchall()
    assert tuple(transfer) == ("PL1", "DC1", "in_transit")
    # The 3PL sends its part; the DC receives it and ships the whole order.
    with time_machine.travel(at("2026-12-14 15:00")):
        threepl = Api(client, auth_key(client, "node", node_id="PL1"))
        path = f"/v1/shipments/{leg['shipment_id']}/events"
        for kind in ("accepted", "shipped"):
            extra = {"carrier": "trunk", "tracking_number": "T"} if kind == "shipped" else {}
            assert threepl.post(path, json=event(f"l-{kind}", kind, **extra)).status_code == 201
    with time_machine.travel(at("2026-12-16 09:00")):
        assert threepl.post(path, json=event("l-in", "delivered")).status_code == 201
        [position] = stock.positions(db, ["CUP"], ["DC1"])
        assert (position["on_hand"], position["reserved"]) == (1, 1)
        deliver(
            Api(client, auth_key(client, "node", node_id="DC1")),
            hub["shipment_id"],
            "2026-12-16 16:00",
            "h",
        )
    view = channel.get("/v1/orders/one-box").get_json()
    assert view["status"] == "completed"
    [position] = stock.positions(db, ["CUP"], ["PL1"])
    assert position["on_hand"] == 4


def test_a_consolidation_whose_leg_fails_is_taken_back_whole_and_decided_again(
    shop, channel, client, keys, db
):
    from app.domain.network import stock

    decision = consolidated_order(shop, channel, client, db, "broken-box")
    by_node = {s["node_id"]: s for s in decision["shipments"]}
    reject(client, keys, by_node["PL1"])
    view = channel.get("/v1/orders/broken-box").get_json()
    states = [(s["node_id"], s["status"], s["withdrawn_reason"]) for s in view["shipments"]]
    assert states == [("DC1", "cancelled", "consolidation_broken"), ("PL1", "rejected", None)]
    assert view["status"] == "backordered"  # nobody else has cups: it waits, whole
    status = db.execute("SELECT status FROM transfers").fetchall()
    assert [row[0] for row in status] == ["cancelled"]
    assert stock.atp(db, "DC1", "MUG") == 5 and stock.atp(db, "DC1", "CUP") == 0
    # Cancelling a consolidated order withdraws each of its shipments once.
    other = consolidated_order(shop, channel, client, db, "cancel-box")
    assert channel.post("/v1/orders/cancel-box/cancel").status_code == 200
    for shipment in other["shipments"]:
        assert outbox_types(db, shipment["shipment_id"]).count("fulfillment.cancelled") == 1
