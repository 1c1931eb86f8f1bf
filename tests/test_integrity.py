"""Integrity at the edges of time: holds, counts, freed stock, cancellations, node events.

Each test reproduces a way the service once promised stock twice, lost or doubled an
instruction, or left something stuck; it fails on a service that does it again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app import create_app
from app.domain.network import stock
from app.edges.dispatch.worker import Dispatcher
from app.lifecycle import backorders, holds
from app.lifecycle import orders as lifecycle
from app.platform import db as database
from app.platform.messaging import outbox
from tests.conftest import Api
from tests.sourcing_helpers import build_network, order, set_stock
from tests.test_dispatch import FAST


@pytest.fixture
def app(db_path):
    return create_app({"DATABASE": db_path, **FAST})


@pytest.fixture
def shop(admin, network):
    build_network(admin)
    return admin


@pytest.fixture
def node(client, network):
    return Api(client, network["node_key"])  # bound to DC1


def event(event_id, kind, **extra):
    return {"event_id": event_id, "type": kind, **extra}


def shipped(event_id, **extra):
    return event(event_id, "shipped", carrier="DPD", tracking_number="T1", **extra)


def place(shop, order_id, qty, sku="MUG"):
    return shop.post("/v1/orders", json=order(order_id, [(sku, qty, 10.0)])).get_json()


def age_holds(db, shipment_id):
    """The shipment's holds were made long ago: their time is up."""
    with database.immediate(db):
        db.execute(
            "UPDATE reservations SET expires_at = '2000-01-01T00:00:00.000000Z'"
            " WHERE shipment_id = ?",
            [shipment_id],
        )


def cancellations(db, shipment_id):
    return db.execute(
        "SELECT COUNT(*) FROM outbox WHERE event_type = 'fulfillment.cancelled'"
        " AND shipment_id = ?",
        [shipment_id],
    ).fetchone()[0]


def position(db, node_id, sku="MUG"):
    [row] = stock.positions(db, [sku], [node_id])
    return row


# 1. A hold lives as long as its shipment ------------------------------------------------


def test_a_lapsed_hold_is_never_free_stock_while_its_shipment_lives(shop, node, db, app):
    set_stock(shop, "DC1", {"MUG": 10})
    first = place(shop, "first", 10)
    [shipment] = first["shipments"]
    age_holds(db, shipment["shipment_id"])
    # The hold's time is up but its shipment is live: the stock is still promised.
    assert position(db, "DC1")["atp"] == 0
    second = place(shop, "second", 10)
    assert second["status"] == "backordered"
    path = f"/v1/shipments/{shipment['shipment_id']}/events"
    assert node.post(path, json=event("a", "accepted")).status_code == 201
    # Acceptance extended the hold: the sweep withdraws nothing.
    assert holds.lapse(db, app.config) == []
    assert node.post(path, json=shipped("s")).status_code == 201
    assert position(db, "DC1")["on_hand"] == 0
    assert shop.get("/v1/orders/second").get_json()["status"] == "backordered"


def test_a_lapsed_hold_withdraws_its_shipment_tells_the_node_and_sources_again(shop, db, app):
    set_stock(shop, "DC1", {"MUG": 10})
    set_stock(shop, "PL1", {"MUG": 10})
    first = place(shop, "first", 4)
    [shipment] = first["shipments"]
    assert shipment["node_id"] == "DC1"
    # Its request was never delivered (the message is still pending, or died).
    age_holds(db, shipment["shipment_id"])
    assert holds.lapse(db, app.config) == [shipment["shipment_id"]]
    view = shop.get("/v1/orders/first").get_json()
    states = {s["node_id"]: (s["status"], s["withdrawn_reason"]) for s in view["shipments"]}
    assert states == {"DC1": ("cancelled", "hold_lapsed"), "PL1": ("pending", None)}
    assert view["status"] == "sourced"
    assert cancellations(db, shipment["shipment_id"]) == 1
    assert position(db, "DC1")["atp"] == 10
    held = db.execute(
        "SELECT status FROM reservations WHERE shipment_id = ?", [shipment["shipment_id"]]
    ).fetchall()
    assert [row[0] for row in held] == ["expired"]


# 2. A count that already reflects a shipment ---------------------------------------------


def counted(shop, feed_id, on_hand, as_of):
    feed = {
        "feed_id": feed_id,
        "node_id": "DC1",
        "mode": "snapshot",
        "as_of": as_of,
        "items": [{"sku": "MUG", "on_hand": on_hand}],
    }
    response = shop.post("/v1/inventory/feeds", json=feed)
    assert response.status_code == 201, response.get_json()


def ship_after_count(shop, node, count, event_at, count_at):
    counted(shop, "start", 10, hours_ago(5))
    [shipment] = place(shop, "o", 2)["shipments"]
    path = f"/v1/shipments/{shipment['shipment_id']}/events"
    node.post(path, json=event("a", "accepted"))
    node.post(path, json=event("p", "picked"))
    counted(shop, "count", count, count_at)
    return node.post(path, json=shipped("s", at=event_at))


def hours_ago(hours: int) -> str:
    return database.format_time(datetime.now(UTC) - timedelta(hours=hours))


@pytest.mark.parametrize(
    ("count", "event_hours_ago", "count_hours_ago", "on_hand"),
    [
        # The count was taken after the goods left: it already reflects them.
        (0, 3, 2, 0),
        (3, 3, 2, 3),
        # The count was taken before they left: they still leave on hand.
        (8, 1, 2, 6),
    ],
)
def test_a_count_taken_after_a_shipment_already_reflects_it(
    shop, node, db, count, event_hours_ago, count_hours_ago, on_hand
):
    response = ship_after_count(
        shop, node, count, hours_ago(event_hours_ago), hours_ago(count_hours_ago)
    )
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["status"] == "shipped"
    row = position(db, "DC1")
    assert (row["on_hand"], row["reserved"]) == (on_hand, 0)


def test_a_late_count_taken_before_a_shipment_does_not_bring_its_goods_back(shop, node, db):
    counted(shop, "start", 10, hours_ago(5))
    [shipment] = place(shop, "o", 2)["shipments"]
    path = f"/v1/shipments/{shipment['shipment_id']}/events"
    node.post(path, json=event("a", "accepted"))
    node.post(path, json=shipped("s", at=hours_ago(1)))
    assert position(db, "DC1")["on_hand"] == 8
    # A count from before the goods left arrives late: it still sees them.
    counted(shop, "late", 10, hours_ago(2))
    assert position(db, "DC1")["on_hand"] == 8


def test_a_count_below_the_holds_withdraws_the_newest_promises(shop, node, db):
    set_stock(shop, "DC1", {"MUG": 10})
    older = place(shop, "older", 4)["shipments"][0]
    newer = place(shop, "newer", 4)["shipments"][0]
    assert older["node_id"] == newer["node_id"] == "DC1"
    count = {
        "feed_id": "shrink",
        "node_id": "DC1",
        "mode": "snapshot",
        "as_of": database.now(),
        "items": [{"sku": "MUG", "on_hand": 5}],
    }
    assert shop.post("/v1/inventory/feeds", json=count).status_code == 201
    row = position(db, "DC1")
    assert row["reserved"] <= row["on_hand"]
    assert shop.get("/v1/orders/older").get_json()["shipments"][0]["status"] == "pending"
    newer_view = shop.get("/v1/orders/newer").get_json()
    assert newer_view["shipments"][0]["withdrawn_reason"] == "recount"
    assert cancellations(db, newer["shipment_id"]) == 1


# 4 and 5. Freed stock reaches the orders that wait, oldest first, durably ---------------


@pytest.mark.parametrize("free", ["cancel", "reject", "lapse"])
def test_freed_stock_goes_to_the_oldest_waiting_order(shop, node, db, app, free):
    set_stock(shop, "DC1", {"MUG": 5})
    [shipment] = place(shop, "first", 5)["shipments"]
    assert place(shop, "waiting", 5)["status"] == "backordered"
    path = f"/v1/shipments/{shipment['shipment_id']}/events"
    if free == "cancel":
        assert shop.post("/v1/orders/first/cancel").status_code == 200
    elif free == "reject":
        assert node.post(path, json=event("r", "rejected", reason="damaged")).status_code == 201
    else:
        age_holds(db, shipment["shipment_id"])
        Dispatcher(app.config).sweep(db)
    waiting = shop.get("/v1/orders/waiting").get_json()
    assert waiting["status"] == "sourced"
    assert [s["node_id"] for s in waiting["shipments"]] == ["DC1"]


def test_a_new_order_never_takes_freed_stock_ahead_of_an_older_back_order(shop, db):
    set_stock(shop, "DC1", {"MUG": 5})
    place(shop, "first", 5)
    assert place(shop, "waiting", 5)["status"] == "backordered"
    # The stock is freed, and the step that resumes back-orders has not run yet.
    lifecycle.cancel(db, "first")
    assert stock.raised(db, ["MUG"])
    assert place(shop, "newcomer", 5)["status"] == "backordered"
    assert shop.get("/v1/orders/waiting").get_json()["status"] == "sourced"
    assert not stock.raised(db, ["MUG"])


def test_a_back_order_never_goes_back_to_a_node_that_rejected_its_line(shop, node, db):
    set_stock(shop, "DC1", {"MUG": 5})
    [shipment] = place(shop, "o", 5)["shipments"]
    path = f"/v1/shipments/{shipment['shipment_id']}/events"
    node.post(path, json=event("r", "rejected", reason="cannot find it"))
    assert shop.get("/v1/orders/o").get_json()["status"] == "backordered"
    set_stock(shop, "DC1", {"MUG": 50})
    assert shop.get("/v1/orders/o").get_json()["status"] == "backordered"
    set_stock(shop, "PL1", {"MUG": 5})
    view = shop.get("/v1/orders/o").get_json()
    assert view["status"] == "sourced"
    assert [s["node_id"] for s in view["shipments"] if s["status"] == "pending"] == ["PL1"]


def test_a_feed_answers_201_when_resuming_fails_and_the_sweep_resumes_later(
    shop, db, app, monkeypatch
):
    set_stock(shop, "DC1", {"MUG": 0})
    assert place(shop, "waiting", 2)["status"] == "backordered"
    real = backorders.resume

    def broken(*args):
        raise RuntimeError("the back-order step failed")

    monkeypatch.setattr(backorders, "resume", broken)
    feed = {
        "feed_id": "restock",
        "node_id": "DC1",
        "mode": "delta",
        "as_of": database.now(),
        "items": [{"sku": "MUG", "delta": 5}],
    }
    response = shop.post("/v1/inventory/feeds", json=feed)
    assert response.status_code == 201
    assert response.get_json()["backorders_resumed"] == []
    assert stock.raised(db, ["MUG"])  # recorded with the feed, not lost
    again = shop.post("/v1/inventory/feeds", json=feed)
    assert again.status_code == 200 and again.get_json()["replayed"] is True
    monkeypatch.setattr(backorders, "resume", real)
    Dispatcher(app.config).sweep(db)
    assert shop.get("/v1/orders/waiting").get_json()["status"] == "sourced"
    assert not stock.raised(db)


# 6. Shipped goods cannot be cancelled ----------------------------------------------------


def test_an_order_with_shipped_goods_cannot_be_cancelled(shop, node):
    set_stock(shop, "DC1", {"MUG": 5})
    [shipment] = place(shop, "o", 1)["shipments"]
    path = f"/v1/shipments/{shipment['shipment_id']}/events"
    node.post(path, json=event("a", "accepted"))
    node.post(path, json=shipped("s"))
    refused = shop.post("/v1/orders/o/cancel")
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "already_shipped"
    assert node.post(path, json=event("d", "delivered")).get_json()["order_status"] == "completed"


# 9. Event ids are per shipment -----------------------------------------------------------


def test_an_event_id_reused_on_another_shipment_is_a_new_event(shop, node, db):
    set_stock(shop, "DC1", {"MUG": 5})
    a = place(shop, "a", 1)["shipments"][0]["shipment_id"]
    b = place(shop, "b", 1)["shipments"][0]["shipment_id"]
    first = node.post(f"/v1/shipments/{a}/events", json=event("accept-1", "accepted"))
    assert first.status_code == 201
    second = node.post(f"/v1/shipments/{b}/events", json=event("accept-1", "accepted"))
    assert second.status_code == 201
    assert second.get_json()["order_id"] == "b"
    assert second.get_json()["replayed"] is False
    again = node.post(f"/v1/shipments/{b}/events", json=event("accept-1", "accepted"))
    assert (again.status_code, again.get_json()["replayed"]) == (200, True)


# 10. A withdrawn request is withdrawn at the node ----------------------------------------


def test_a_missed_acknowledgement_deadline_sends_the_node_a_cancellation(shop, db, app):
    set_stock(shop, "DC1", {"MUG": 5})
    set_stock(shop, "PL1", {"MUG": 5})
    [shipment] = place(shop, "o", 1)["shipments"]
    with database.immediate(db):
        db.execute(
            "UPDATE shipments SET status = 'requested', requested_at = '2000-01-01T00:00:00Z'"
            " WHERE shipment_id = ?",
            [shipment["shipment_id"]],
        )
    Dispatcher(app.config).sweep(db)
    view = shop.get("/v1/orders/o").get_json()
    states = {s["node_id"]: s["status"] for s in view["shipments"]}
    assert states == {"DC1": "rejected", "PL1": "pending"}
    assert cancellations(db, shipment["shipment_id"]) == 1
    [message] = [m for m in outbox.for_order(db, "o") if m["event_type"] == "fulfillment.cancelled"]
    assert message["body"]["data"]["reason"] == "ack_timeout"


# 12. One bad message never holds up another ----------------------------------------------


def test_a_send_that_raises_is_an_attempt_and_holds_up_nothing(
    shop, app, client, keys, db, monkeypatch
):
    from tests.conftest import NODE_DC
    from tests.receiver import Receiver
    from tests.test_dispatch import SECRET, drain

    receiver = Receiver([SECRET])
    try:
        shop.put(
            "/v1/nodes/DC1", json={**NODE_DC, "webhook": {"url": receiver.url, "secret": SECRET}}
        )
        channel = Api(client, keys["channel"])
        bad_url = receiver.url.replace("/hooks", "/\u00fc")
        events = ["order.status_changed"]
        refused = channel.post("/v1/subscriptions", json={"url": bad_url, "event_types": events})
        assert refused.status_code == 422  # refused when set...
        made = channel.post(
            "/v1/subscriptions", json={"url": receiver.url, "secret": SECRET, "event_types": events}
        )
        assert made.status_code == 201
        # ...but one stored before that check, or any send that raises, must still hold up nothing.
        with database.immediate(db):
            db.execute(
                "UPDATE subscriptions SET url = ? WHERE subscription_id = ?",
                [bad_url, made.get_json()["subscription_id"]],
            )
        from app.platform.messaging import deliver

        checked = deliver.urls.check

        def raising(url, allow):
            if url == bad_url:  # whatever a send may raise, however unexpected
                "\u00fc".encode("ascii")
            return checked(url, allow)

        monkeypatch.setattr(deliver.urls, "check", raising)
        set_stock(shop, "DC1", {"MUG": 10})
        for number in range(5):
            place(shop, f"o{number}", 1)
        drain(app, rounds=3)
        requests = [m for m in outbox.search(db, {"event": "fulfillment.requested"})]
        assert {m["status"] for m in requests} == {"delivered"}
        assert len(receiver.delivered_ids()) == 5
        changes = outbox.search(db, {"event": "order.status_changed"})
        assert len(changes) == 5
        for message in changes:
            logged = outbox.get(db, message["message_id"])
            assert logged["status"] == "pending" and logged["attempts"] >= 1
            assert logged["attempt_log"][0]["error_class"] == "error"
            assert "UnicodeEncodeError" in logged["attempt_log"][0]["excerpt"]
    finally:
        receiver.close()
