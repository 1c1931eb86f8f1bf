"""Nodes report back: acceptance, rejection and re-sourcing, shipping, delivery, timeouts."""

from __future__ import annotations

import pytest

from app import create_app
from app.domain.network import stock
from app.edges.dispatch.worker import Dispatcher
from app.platform import db as database
from tests.conftest import Api
from tests.receiver import Receiver
from tests.sourcing_helpers import build_network, order, set_stock
from tests.test_dispatch import FAST, SECRET, drain


@pytest.fixture
def app(db_path):
    return create_app({"DATABASE": db_path, **FAST, "RESOURCING_MAX_ROUNDS": 2})


@pytest.fixture
def shop(admin, network):
    build_network(admin)
    return admin


@pytest.fixture
def node(client, network):
    return Api(client, network["node_key"])  # bound to DC1


def ordered(shop):
    set_stock(shop, "DC1", {"MUG": 10})
    set_stock(shop, "PL1", {"MUG": 10})
    decision = shop.post("/v1/orders", json=order("o", [("MUG", 2, 10.0)])).get_json()
    [shipment] = decision["shipments"]
    assert shipment["node_id"] == "DC1"
    return shipment["shipment_id"]


def event(event_id, kind, **extra):
    return {"event_id": event_id, "type": kind, **extra}


def test_happy_path_to_completion(shop, node, db):
    shipment_id = ordered(shop)
    path = f"/v1/shipments/{shipment_id}/events"
    assert node.post(path, json=event("e1", "accepted")).status_code == 201
    assert node.post(path, json=event("e2", "picked")).status_code == 201
    shipped = node.post(path, json=event("e3", "shipped", carrier="DPD", tracking_number="T1"))
    assert shipped.status_code == 201
    on_hand = stock.positions(db, ["MUG"], ["DC1"])[0]
    assert (on_hand["on_hand"], on_hand["reserved"]) == (8, 0)  # consumed, not just held
    done = node.post(path, json=event("e4", "delivered")).get_json()
    assert done["order_status"] == "completed"
    view = shop.get("/v1/orders/o").get_json()
    assert view["shipments"][0]["status"] == "delivered"
    assert view["shipments"][0]["tracking_number"] == "T1"
    kinds = [e["type"] for e in view["timeline"]]
    assert kinds[-7:] == [
        "shipment.accepted",
        "shipment.picked",
        "shipment.shipped",
        "customer_message",  # order.shipped
        "shipment.delivered",
        "status_changed",
        "customer_message",  # order.delivered
    ]


def test_events_are_idempotent_and_ordered(shop, node):
    shipment_id = ordered(shop)
    path = f"/v1/shipments/{shipment_id}/events"
    first = node.post(path, json=event("e1", "accepted"))
    again = node.post(path, json=event("e1", "accepted"))
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json()["replayed"] is True
    reused = node.post(path, json=event("e1", "picked"))
    assert reused.status_code == 409
    assert reused.get_json()["error"]["code"] == "event_id_reused"
    early = node.post(path, json=event("e2", "delivered"))
    assert early.status_code == 409
    assert early.get_json()["error"]["code"] == "illegal_transition"
    missing = node.post(path, json=event("e3", "shipped"))
    assert missing.status_code == 422  # carrier and tracking number are required


def test_another_nodes_key_is_refused(shop, client, db):
    from app.platform import auth

    shipment_id = ordered(shop)
    other = auth.create_key(db, "node", "PL1")[1]
    response = client.post(
        f"/v1/shipments/{shipment_id}/events",
        json=event("x", "accepted"),
        headers={"Authorization": f"Bearer {other}"},
    )
    assert response.status_code == 403


def test_rejection_sources_the_lines_elsewhere(shop, node, db):
    shipment_id = ordered(shop)
    result = node.post(
        f"/v1/shipments/{shipment_id}/events", json=event("r1", "rejected", reason="damaged stock")
    ).get_json()
    assert result["resourced"]["status"] == "sourced"
    view = shop.get("/v1/orders/o").get_json()
    states = {s["node_id"]: s["status"] for s in view["shipments"]}
    assert states == {"DC1": "rejected", "PL1": "pending"}
    assert [d["kind"] for d in view["decisions"]] == ["order", "resource"]
    assert view["status"] == "sourced"
    assert stock.atp(db, "DC1", "MUG") == 10  # released
    assert stock.atp(db, "PL1", "MUG") == 8
    resource = shop.get(f"/v1/decisions/{result['resourced']['decision_id']}").get_json()
    screened = resource["explanation"]["screened"]
    assert {
        "line_id": "1",
        "reason": "the node rejected this line or let it lapse",
        "node_ids": ["DC1"],
    } in screened
    messages = db.execute("SELECT node_id, event_type FROM outbox ORDER BY created_at").fetchall()
    assert [tuple(m) for m in messages] == [
        ("DC1", "fulfillment.requested"),
        ("PL1", "fulfillment.requested"),
    ]


def test_rounds_are_capped_then_the_order_is_held(shop, node, client, db):
    from app.platform import auth

    set_stock(shop, "ST2", {"MUG": 30})
    shipment_id = ordered(shop)
    node.post(f"/v1/shipments/{shipment_id}/events", json=event("r1", "rejected", reason="x"))
    second = shop.get("/v1/orders/o").get_json()["shipments"][-1]
    pl1 = Api(client, auth.create_key(db, "node", second["node_id"])[1])
    pl1.post(
        f"/v1/shipments/{second['shipment_id']}/events", json=event("r2", "rejected", reason="y")
    )
    third = shop.get("/v1/orders/o").get_json()["shipments"][-1]
    st = Api(client, auth.create_key(db, "node", third["node_id"])[1])
    result = st.post(
        f"/v1/shipments/{third['shipment_id']}/events", json=event("r3", "rejected", reason="z")
    ).get_json()
    assert result["resourced"] is None
    view = shop.get("/v1/orders/o").get_json()
    assert view["status"] == "on_hold"
    assert "re-sourcing stopped after 2 rounds" in view["timeline"][-1]["reason"]


def test_no_acknowledgement_in_time_counts_as_rejection(shop, app, db):
    receiver = Receiver([SECRET])
    try:
        from tests.conftest import NODE_DC

        shop.put(
            "/v1/nodes/DC1", json={**NODE_DC, "webhook": {"url": receiver.url, "secret": SECRET}}
        )
        shipment_id = ordered(shop)
        drain(app)
        assert shop.get("/v1/orders/o").get_json()["shipments"][0]["status"] == "requested"
        # The node was asked long ago (beyond the ruleset's 7,200 s) and never answered.
        with database.immediate(db):
            db.execute(
                "UPDATE shipments SET requested_at = '2000-01-01T00:00:00.000000Z'"
                " WHERE shipment_id = ?",
                [shipment_id],
            )
        Dispatcher(app.config).sweep(db)
        view = shop.get("/v1/orders/o").get_json()
        states = {s["node_id"]: s["status"] for s in view["shipments"]}
        assert states == {"DC1": "rejected", "PL1": "pending"}
        assert "no acceptance within 7200 s" in str(view["timeline"])
    finally:
        receiver.close()


def test_channels_hear_about_status_changes(shop, app, client, keys):
    receiver = Receiver([SECRET])
    try:
        channel = Api(client, keys["channel"])
        made = channel.post(
            "/v1/subscriptions",
            json={"url": receiver.url, "secret": SECRET, "event_types": ["order.status_changed"]},
        )
        assert made.status_code == 201
        assert "secret" not in made.get_json()
        ordered(shop)
        shop.post("/v1/orders/o/cancel")
        drain(app)
        changes = [
            (r["body"]["data"]["from"], r["body"]["data"]["to"])
            for r in receiver.received
            if r["body"]["type"] == "order.status_changed"
        ]
        assert changes == [("received", "sourced"), ("sourced", "cancelled")]
        assert all(r["verified"][SECRET] for r in receiver.received)
        listed = channel.get("/v1/subscriptions").get_json()["subscriptions"]
        assert [s["subscription_id"] for s in listed] == [made.get_json()["subscription_id"]]
        generated = channel.post(
            "/v1/subscriptions", json={"url": receiver.url, "event_types": ["order.status_changed"]}
        ).get_json()
        assert generated["secret"].startswith("whsec_")
        assert (
            channel.client.delete(
                f"/v1/subscriptions/{generated['subscription_id']}", headers=channel.headers
            ).status_code
            == 204
        )
        unsafe = channel.post(
            "/v1/subscriptions",
            json={"url": "http://10.0.0.8/x", "event_types": ["order.status_changed"]},
        )
        assert unsafe.status_code == 422
    finally:
        receiver.close()
