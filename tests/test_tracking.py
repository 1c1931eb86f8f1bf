"""The customer's view of an order: its status as a customer would say it, every change
told to the channel's subscription (numbered, signed, as documented), the channel's one
read of it, and the signed link to the customer's own page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import time_machine
from jsonschema import Draft202012Validator, FormatChecker

from app import create_app
from app.edges import customer
from app.edges.demo import CARRIER_SERVICES
from app.lifecycle import tracking
from app.platform.vault import Vault
from tests.conftest import NODE_DC, Api
from tests.receiver import Receiver
from tests.sourcing_helpers import build_network, order, set_stock
from tests.test_dispatch import FAST, SECRET, drain
from tests.test_order_life import (
    WEEKDAYS_ONLY,
    at,
    auth_key,
    event,
    hold_express,
    reject,
    stamp,
    sweep,
)

SCHEMA = json.loads(
    (Path(__file__).parent.parent / "schemas" / "customer-events.schema.json").read_text()
)
CUSTOMER_EVENTS = list(tracking.MESSAGES)


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
def channel(client, keys):
    return Api(client, keys["channel"])


@pytest.fixture
def receiver(channel):
    served = Receiver([SECRET])
    made = channel.post(
        "/v1/subscriptions",
        json={"url": served.url, "secret": SECRET, "event_types": CUSTOMER_EVENTS},
    )
    assert made.status_code == 201, made.get_json()
    yield served
    served.close()


def node_api(client, node_id):
    return Api(client, auth_key(client, "node", node_id=node_id))


def told(app, receiver, order_id, when=None):
    """The customer messages the receiver got for the order once the dispatcher ran at
    ``when`` (London; None: now), each checked against its documented schema and its
    signature, in the order of their numbers."""
    if when is None:
        drain(app)
    else:
        with time_machine.travel(at(when)):
            drain(app)
    found = [r for r in receiver.received if r["body"]["data"].get("order_id") == order_id]
    for message in found:
        assert message["verified"] == {SECRET: True}
        body = message["body"]
        schema = {**SCHEMA, "$ref": f"#/$defs/{body['type']}"}
        problems = list(
            Draft202012Validator(schema, format_checker=FormatChecker()).iter_errors(body["data"])
        )
        assert not problems, (body, problems)
    found.sort(key=lambda m: m["body"]["data"]["sequence"])
    numbers = [m["body"]["data"]["sequence"] for m in found]
    assert numbers == list(range(1, len(found) + 1)), numbers
    return [m["body"] for m in found]


def status(channel, order_id):
    answer = channel.get(f"/v1/orders/{order_id}/tracking")
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()["status"]


def post_event(api, shipment_id, event_id, kind, **extra):
    answer = api.post(f"/v1/shipments/{shipment_id}/events", json=event(event_id, kind, **extra))
    assert answer.status_code in (200, 201), answer.get_json()  # 200: the same event again


# The status, table-driven ------------------------------------------------------------------

NONE = {"preparing": 0, "shipped": 0, "ready_for_pickup": 0, "delivered": 0}


@pytest.mark.parametrize(
    ("order_status", "quantity", "at_stage", "allocated", "delayed", "expected"),
    [
        ("received", 2, {}, 0, False, "received"),
        ("on_hold", 2, {}, 0, False, "received"),
        ("backordered", 2, {}, 0, False, "received"),
        ("backordered", 2, {}, 0, True, "delayed"),
        ("sourced", 2, {"preparing": 2}, 2, False, "sourced"),
        ("partially_sourced", 3, {"preparing": 2}, 2, False, "sourced"),
        ("sourced", 2, {"preparing": 2}, 2, True, "delayed"),
        ("sourced", 3, {"shipped": 1, "preparing": 2}, 3, False, "partially_shipped"),
        ("partially_sourced", 3, {"shipped": 2}, 2, False, "partially_shipped"),
        ("sourced", 3, {"shipped": 3}, 3, False, "shipped"),
        ("sourced", 3, {"shipped": 3}, 3, True, "shipped"),  # late, but all on its way
        ("sourced", 3, {"shipped": 1, "preparing": 2}, 3, True, "delayed"),
        ("sourced", 2, {"ready_for_pickup": 2}, 2, False, "ready_for_pickup"),
        ("sourced", 2, {"ready_for_pickup": 1, "delivered": 1}, 2, False, "ready_for_pickup"),
        ("sourced", 3, {"delivered": 1, "shipped": 2}, 3, False, "partially_delivered"),
        ("sourced", 3, {"delivered": 1, "preparing": 2}, 3, True, "delayed"),
        ("completed", 3, {"delivered": 3}, 3, False, "delivered"),
        ("partially_returned", 3, {"delivered": 3}, 3, False, "delivered"),
        ("returned", 3, {"delivered": 3}, 3, False, "returned"),
        ("cancelled", 3, {}, 0, False, "cancelled"),
        ("sourced", 0, {}, 0, False, "cancelled"),  # every unit cancelled
    ],
)
def test_the_customer_status_follows_the_lines_and_parcels(
    order_status, quantity, at_stage, allocated, delayed, expected
):
    found = tracking.status_of(order_status, quantity, {**NONE, **at_stage}, allocated, delayed)
    assert found == expected
    assert found in tracking.STATUSES


@pytest.mark.parametrize(
    ("method", "status", "stage"),
    [
        ("ship", "pending", "preparing"),
        ("ship", "accepted", "preparing"),
        ("ship", "picked", "preparing"),
        ("ship", "shipped", "shipped"),
        ("ship", "delivered", "delivered"),
        ("same_day", "delivered", "delivered"),
        ("pickup", "accepted", "preparing"),
        ("pickup", "picked", "ready_for_pickup"),
        ("pickup", "shipped", "ready_for_pickup"),  # handed over at the counter
        ("pickup", "delivered", "delivered"),
        ("ship_to_store", "shipped", "shipped"),
        ("ship_to_store", "delivered", "ready_for_pickup"),
    ],
)
def test_a_parcels_stage(method, status, stage):
    assert tracking.stage_of({"method": method, "status": status}) == stage


# Messages -----------------------------------------------------------------------------------


def test_a_home_delivery_is_told_shipped_with_tracking_then_delivered(
    shop, channel, client, app, receiver
):
    with time_machine.travel(at("2026-12-14 09:00")):
        set_stock(shop, "DC1", {"MUG": 10})
        placed = channel.post("/v1/orders", json=order("home", [("MUG", 2, 10.0)])).get_json()
        [shipment] = placed["shipments"]
        assert status(channel, "home") == "sourced"
        dc = node_api(client, "DC1")
        post_event(dc, shipment["shipment_id"], "a", "accepted")
        assert status(channel, "home") == "sourced"
    with time_machine.travel(at("2026-12-14 14:00")):
        left = stamp("2026-12-14 14:00")
        post_event(
            dc,
            shipment["shipment_id"],
            "s",
            "shipped",
            carrier="DPD",
            tracking_number="TRK1",
            at=left,
        )
        assert status(channel, "home") == "shipped"
    with time_machine.travel(at("2026-12-15 11:00")):
        post_event(dc, shipment["shipment_id"], "d", "delivered", at=stamp("2026-12-15 11:00"))
        assert status(channel, "home") == "delivered"
        # The same event again changes nothing and tells nothing twice.
        post_event(dc, shipment["shipment_id"], "d", "delivered", at=stamp("2026-12-15 11:00"))
    messages = told(app, receiver, "home", "2026-12-15 11:05")
    assert [m["type"] for m in messages] == ["order.shipped", "order.delivered"]
    shipped, delivered = (m["data"] for m in messages)
    assert (shipped["carrier"], shipped["tracking_number"]) == ("DPD", "TRK1")
    assert shipped["status"] == "shipped" and shipped["promised_date"] == shipment["promised_date"]
    assert delivered["status"] == "delivered"
    assert delivered["delivered_at"] == stamp("2026-12-15 11:00")
    view = channel.get("/v1/orders/home/tracking").get_json()
    assert [(m["sequence"], m["type"]) for m in view["messages"]] == [
        (1, "order.shipped"),
        (2, "order.delivered"),
    ]


def test_two_parcels_make_a_partly_shipped_then_partly_delivered_order(
    shop, channel, client, app, receiver
):
    with time_machine.travel(at("2026-12-14 09:00")):
        set_stock(shop, "DC1", {"MUG": 10})
        set_stock(shop, "PL1", {"CUP": 10})
        body = order("two", [("MUG", 1, 10.0), ("CUP", 1, 5.0)])
        placed = channel.post("/v1/orders", json=body).get_json()
        by_node = {s["node_id"]: s["shipment_id"] for s in placed["shipments"]}
        assert set(by_node) == {"DC1", "PL1"}
        dc, pl = node_api(client, "DC1"), node_api(client, "PL1")
        post_event(dc, by_node["DC1"], "a1", "accepted")
        post_event(pl, by_node["PL1"], "a2", "accepted")
        post_event(dc, by_node["DC1"], "s1", "shipped", carrier="DPD", tracking_number="A")
        view = channel.get("/v1/orders/two/tracking").get_json()
        assert view["status"] == "partially_shipped"
        lines = {line["sku"]: line["status"] for line in view["lines"]}
        assert lines == {"MUG": "shipped", "CUP": "sourced"}
        post_event(dc, by_node["DC1"], "d1", "delivered")
        assert status(channel, "two") == "partially_delivered"
        post_event(pl, by_node["PL1"], "s2", "shipped", carrier="Royal Mail", tracking_number="B")
        assert status(channel, "two") == "partially_delivered"
        post_event(pl, by_node["PL1"], "d2", "delivered")
        assert status(channel, "two") == "delivered"
    messages = told(app, receiver, "two", "2026-12-14 09:05")
    assert [(m["type"], m["data"]["status"]) for m in messages] == [
        ("order.shipped", "partially_shipped"),
        ("order.delivered", "partially_delivered"),
        ("order.shipped", "partially_delivered"),
        ("order.delivered", "delivered"),
    ]


def test_a_pickup_is_told_ready_at_its_store_then_collected(shop, channel, client, app, receiver):
    with time_machine.travel(at("2026-12-14 10:00")):
        set_stock(shop, "ST1", {"MUG": 5})
        body = order("pick", [("MUG", 1, 10.0)], delivery={"method": "pickup", "node_id": "ST1"})
        [shipment] = channel.post("/v1/orders", json=body).get_json()["shipments"]
        st1 = node_api(client, "ST1")
        post_event(st1, shipment["shipment_id"], "a", "accepted")
        post_event(st1, shipment["shipment_id"], "p", "picked")
        assert status(channel, "pick") == "ready_for_pickup"
    with time_machine.travel(at("2026-12-15 17:00")):
        post_event(
            st1, shipment["shipment_id"], "s", "shipped", carrier="counter", tracking_number="-"
        )
        assert status(channel, "pick") == "ready_for_pickup"
        post_event(st1, shipment["shipment_id"], "d", "delivered")
        assert status(channel, "pick") == "delivered"
    messages = told(app, receiver, "pick", "2026-12-15 17:05")
    # The hand-over at the counter is no parcel "on its way".
    assert [m["type"] for m in messages] == ["order.ready_for_pickup", "order.delivered"]
    ready = messages[0]["data"]
    assert ready["store"] == {"node_id": "ST1", "name": "Leicester store", "town": "Leicester"}
    assert ready["collect_by"].startswith("2026-12-21T10:00")


def test_a_back_order_is_told_with_the_day_its_stock_is_expected(
    shop, channel, client, app, receiver
):
    with time_machine.travel(at("2026-12-14 09:00")):
        eta = stamp("2026-12-17 10:00")
        transfer = {
            "transfer_id": "TR1",
            "sku": "MUG",
            "qty": 5,
            "origin": "supplier",
            "destination_node_id": "DC1",
            "eta": eta,
        }
        assert shop.post("/v1/inventory/transfers", json=transfer).status_code == 201
        placed = channel.post("/v1/orders", json=order("wait", [("MUG", 2, 10.0)])).get_json()
        assert placed["status"] == "backordered"
        view = channel.get("/v1/orders/wait/tracking").get_json()
        assert view["status"] == "received"
        assert view["lines"][0]["status"] == "backordered"
        assert view["lines"][0]["qty_backordered"] == 2
    with time_machine.travel(at("2026-12-17 10:00")):
        received = shop.post("/v1/inventory/transfers/TR1/receipt", json={})
        assert received.status_code == 201, received.get_json()
        assert status(channel, "wait") == "sourced"
    messages = told(app, receiver, "wait", "2026-12-17 10:05")
    assert [m["type"] for m in messages] == ["order.backordered"], messages
    backordered = messages[0]["data"]
    assert backordered["expected_date"] == "2026-12-17"
    assert backordered["lines"] == [{"line_id": "1", "sku": "MUG", "qty": 2}]


def test_a_parcel_not_dispatched_on_time_makes_the_order_delayed_until_it_ships(
    shop, channel, client, app, db, receiver
):
    with time_machine.travel(at("2026-12-14 09:00")):
        set_stock(shop, "DC1", {"MUG": 10})
        [shipment] = channel.post("/v1/orders", json=order("late", [("MUG", 1, 10.0)])).get_json()[
            "shipments"
        ]
        dc = node_api(client, "DC1")
        post_event(dc, shipment["shipment_id"], "a", "accepted")
    flagged, _ = sweep(db, app, "2026-12-16 00:30")
    assert flagged == [shipment["shipment_id"]]
    view = channel.get("/v1/orders/late/tracking").get_json()
    assert view["status"] == "delayed"
    assert view["delay"] == {"reason": "not_dispatched", "new_date": None}
    assert view["parcels"][0]["late"] is True
    sweep(db, app, "2026-12-16 09:00")  # nothing new: told once
    with time_machine.travel(at("2026-12-16 11:00")):
        post_event(dc, shipment["shipment_id"], "s", "shipped", carrier="DPD", tracking_number="T")
    assert status(channel, "late") == "shipped"
    messages = told(app, receiver, "late", "2026-12-16 11:05")
    assert [m["type"] for m in messages] == ["order.delayed", "order.shipped"]
    delayed = messages[0]["data"]
    assert delayed["reason"] == "not_dispatched" and delayed["status"] == "delayed"
    assert delayed["shipment_ids"] == [shipment["shipment_id"]]


def test_a_broken_promise_is_told_as_a_delay_with_its_new_date(
    shop, channel, client, keys, app, receiver
):
    with time_machine.travel(at("2026-12-14 09:00")):
        # The 3PL has the goods, but is shut for stocktaking until Thursday.
        shut = {
            "cutoffs": WEEKDAYS_ONLY["cutoffs"],
            "closures": [{"from": "2026-12-14", "to": "2026-12-16", "name": "stocktake"}],
        }
        threepl = {
            **NODE_DC,
            "type": "3pl",
            "name": "3PL",
            "capabilities": ["ship"],
            "fulfilment": shut,
        }
        assert shop.put("/v1/nodes/PL1", json=threepl).status_code == 200
        set_stock(shop, "DC1", {"MUG": 2})
        set_stock(shop, "PL1", {"MUG": 2})
        hold_express(channel)
        decision = channel.post(
            "/v1/orders", json=order("exp", [("MUG", 2, 10.0)], promise_id="P1")
        ).get_json()
        assert decision["shipments"][0]["node_id"] == "DC1"
        reject(client, keys, decision["shipments"][0])
        view = channel.get("/v1/orders/exp/tracking").get_json()
    assert view["status"] == "delayed"
    messages = told(app, receiver, "exp", "2026-12-14 09:05")
    assert [m["type"] for m in messages] == ["order.delayed"], messages
    delayed = messages[0]["data"]
    assert delayed["reason"] == "promise_broken"
    assert delayed["promised_by"] == view["promised_by"]
    assert delayed["new_date"] is not None and delayed["new_date"] > view["promised_by"]
    assert view["delay"] == {"reason": "promise_broken", "new_date": delayed["new_date"]}


def test_a_cancelled_order_is_told_once_and_nothing_else(shop, channel, app, receiver):
    set_stock(shop, "DC1", {"MUG": 10})
    channel.post("/v1/orders", json=order("gone", [("MUG", 1, 10.0)]))
    assert channel.post("/v1/orders/gone/cancel").status_code == 200
    assert channel.post("/v1/orders/gone/cancel").status_code == 200
    assert status(channel, "gone") == "cancelled"
    assert [m["type"] for m in told(app, receiver, "gone")] == ["order.cancelled"]


def test_a_pickup_nobody_collects_is_told_ready_then_its_line_cancelled(
    shop, channel, client, app, db, receiver
):
    with time_machine.travel(at("2026-12-14 10:00")):
        set_stock(shop, "ST1", {"MUG": 5})
        body = order(
            "shelf",
            [("MUG", 1, 10.0), ("CUP", 1, 4.0)],
            delivery={"method": "pickup", "node_id": "ST1"},
        )
        set_stock(shop, "ST1", {"MUG": 5, "CUP": 5})
        [shipment] = channel.post("/v1/orders", json=body).get_json()["shipments"]
        st1 = node_api(client, "ST1")
        post_event(st1, shipment["shipment_id"], "a", "accepted")
        post_event(st1, shipment["shipment_id"], "p", "picked")
    sweep(db, app, "2026-12-21 10:30")
    view = channel.get("/v1/orders/shelf/tracking").get_json()
    assert view["status"] == "cancelled"
    assert [line["status"] for line in view["lines"]] == ["cancelled", "cancelled"]
    messages = told(app, receiver, "shelf", "2026-12-21 10:35")
    assert [m["type"] for m in messages] == ["order.ready_for_pickup", "order.cancelled"]


LINES = [
    {"line_id": "1", "sku": "MUG", "qty": 0, "qty_allocated": 0, "qty_cancelled": 2},
    {"line_id": "2", "sku": "CUP", "qty": 1, "qty_allocated": 1, "qty_cancelled": 0},
]


def parcel(shipment_id, method, status, line_id="2"):
    return {
        "shipment_id": shipment_id,
        "node_id": "ST1",
        "method": method,
        "status": status,
        "lines": [{"line_id": line_id, "sku": "CUP", "qty": 1}],
        "carrier": "DPD",
        "tracking_number": "T",
    }


def told_between(before: dict, order_status: str, shipment_list: list[dict]) -> list:
    order = {"order_id": "o", "status": order_status, "promised_by": None}
    parcel_list = tracking.parcels(shipment_list)
    now = tracking.state(order, LINES, parcel_list, None)
    found = tracking.messages(before, now, order, LINES, parcel_list, {"cancel_reason": "why"})
    return [(kind, payload.get("lines")) for kind, payload in found]


def test_a_line_cancelled_while_the_rest_goes_on_is_told_with_what_is_left():
    found = told_between({}, "sourced", [parcel("s1", "ship", "accepted")])
    assert found == [
        (
            "order.line_cancelled",
            [{"line_id": "1", "sku": "MUG", "qty_cancelled": 2, "qty_left": 0}],
        )
    ]
    # Told once: the same state again says nothing.
    again = {"cancelled": {"1": 2}, "parcels": {}, "backordered": {}, "delay": None}
    assert told_between(again, "sourced", [parcel("s1", "ship", "accepted")]) == []


@pytest.mark.parametrize(
    ("method", "status", "told_stage", "expected"),
    [
        ("ship", "delivered", None, ["order.shipped", "order.delivered"]),
        ("ship", "delivered", "shipped", ["order.delivered"]),
        ("ship", "delivered", "delivered", []),
        ("pickup", "delivered", None, ["order.ready_for_pickup", "order.delivered"]),
        ("pickup", "shipped", "ready_for_pickup", []),
        ("ship_to_store", "delivered", None, ["order.shipped", "order.ready_for_pickup"]),
        ("ship", "accepted", None, []),
    ],
)
def test_a_stage_a_parcel_skipped_is_told_in_its_place(method, status, told_stage, expected):
    before = {
        "cancelled": {"1": 2},
        "parcels": {"s1": told_stage} if told_stage else {},
        "backordered": {},
        "delay": None,
    }
    found = told_between(before, "sourced", [parcel("s1", method, status)])
    assert [kind for kind, _ in found] == expected


# The channel's read and the customer's page ---------------------------------------------------


def test_the_tracking_read_shows_nothing_an_unsigned_customer_should_not_see(
    shop, channel, client, network
):
    set_stock(shop, "DC1", {"MUG": 10})
    channel.post("/v1/orders", json=order("priv", [("MUG", 1, 10.0)]))
    view = channel.get("/v1/orders/priv/tracking").get_json()
    text = json.dumps(view)
    for secret in ("Gallowtree", "LE1 5AD", "52.6369", "C1", "estimated_cost", "rules", "DC1"):
        assert secret not in text, secret
    assert view["delivery"] == {"method": "ship", "town": "Leicester", "store": None}
    # Another channel's key sees no such order; a node's key may not read it at all.
    other = Api(client, auth_key(client, "channel", channels=["app"]))
    assert other.get("/v1/orders/priv/tracking").status_code == 404
    assert Api(client, network["node_key"]).get("/v1/orders/priv/tracking").status_code == 403


def test_a_tracking_link_is_signed_expires_and_opens_the_page(shop, channel, client, app):
    set_stock(shop, "DC1", {"MUG": 10})
    channel.post("/v1/orders", json=order("link", [("MUG", 1, 10.0)]))
    made = channel.post("/v1/orders/link/tracking-link", json={"valid_days": 2})
    assert made.status_code == 200, made.get_json()
    link = made.get_json()
    assert link["url"].startswith("http://localhost/track/")
    path = link["url"][len("http://localhost") :]
    page = client.get(path)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Being prepared" in html and "Mug" in html and "Leicester" in html
    assert "Gallowtree" not in html and "LE1 5AD" not in html
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "script-src" not in page.headers["Content-Security-Policy"]
    # Changed by one character, or for another order: not a link of ours.
    token = path.rsplit("/", 1)[1]
    encoded, expires, signature = token.split(".")
    forged = f"{customer._encode('other')}.{expires}.{signature}"
    assert client.get(f"/track/{forged}").status_code == 404
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    assert client.get(f"/track/{encoded}.{expires}.{flipped}").status_code == 404
    assert client.get(f"/track/{encoded}.{int(expires) + 1}.{signature}").status_code == 404
    assert client.get("/track/nonsense").status_code == 404
    # Past its time it is gone, and says so.
    with time_machine.travel(int(expires) + 5):
        expired = client.get(path)
    assert expired.status_code == 410
    assert "expired" in expired.get_data(as_text=True)
    # At most the configured life; nothing but the documented field; no key, no link.
    longer = channel.post("/v1/orders/link/tracking-link", json={"valid_days": 365})
    assert longer.status_code == 200
    assert longer.get_json()["expires_at"] <= stamp("2100-01-01 00:00")
    wrong = channel.post("/v1/orders/link/tracking-link", json={"valid_days": 0, "x": 1})
    assert wrong.status_code == 422
    assert client.post("/v1/orders/link/tracking-link").status_code == 401


def test_a_link_signed_under_a_retired_key_stops_working():
    old, new = Vault([b"A" * 43 + b"="]), Vault([b"B" * 43 + b"="])
    both = Vault([b"B" * 43 + b"=", b"A" * 43 + b"="])
    token, _ = customer.make_link("o1", 1, old, now=1_000_000)
    assert customer.read_link(token, both, now=1_000_001) == "o1"
    with pytest.raises(customer.BadLink):
        customer.read_link(token, new, now=1_000_001)
    with pytest.raises(customer.ExpiredLink):
        customer.read_link(token, old, now=1_000_000 + 86400)


def test_the_public_url_setting_makes_the_links(db_path, admin, network):
    build_network(admin)
    app = create_app({"DATABASE": db_path, "PUBLIC_URL": "https://track.example.com/"})
    client = app.test_client()
    key = auth_key(client, "channel")
    set_stock(Api(client, auth_key(client, "admin")), "DC1", {"MUG": 3})
    Api(client, key).post("/v1/orders", json=order("pub", [("MUG", 1, 10.0)]))
    made = Api(client, key).post("/v1/orders/pub/tracking-link").get_json()
    assert made["url"].startswith("https://track.example.com/track/")


# Substitution ------------------------------------------------------------------------------


def test_a_short_line_its_customer_allows_is_served_by_a_substitute_and_told(
    shop, channel, app, receiver
):
    cup = {"name": "Cup", "weight_kg": 0.3, "category": "home", "substitutes": ["HAZ", "MUG"]}
    assert shop.put("/v1/skus/CUP", json=cup).status_code == 200
    set_stock(shop, "DC1", {"MUG": 10, "CUP": 0})
    line = {"line_id": "1", "sku": "CUP", "qty": 2, "unit_price": 5.0}
    body = order("sub", [])
    body["lines"] = [{**line, "substitutes_allowed": True}]
    placed = channel.post("/v1/orders", json=body)
    assert placed.status_code == 201, placed.get_json()
    decision = placed.get_json()
    # HAZ has no stock anywhere: the next substitute serves the whole line.
    assert decision["status"] == "sourced"
    assert decision["substitutions"] == [{"line_id": "1", "from_sku": "CUP", "to_sku": "MUG"}]
    assert [x["sku"] for s in decision["shipments"] for x in s["lines"]] == ["MUG"]
    view = channel.get("/v1/orders/sub/tracking").get_json()
    assert (view["lines"][0]["sku"], view["lines"][0]["original_sku"]) == ("MUG", "CUP")
    assert view["status"] == "sourced"
    messages = told(app, receiver, "sub")
    assert [m["type"] for m in messages] == ["order.line_substituted"]
    assert messages[0]["data"]["lines"] == [
        {"line_id": "1", "from_sku": "CUP", "to_sku": "MUG", "qty": 2}
    ]
    # The same order again answers the same decision; nothing is substituted twice.
    again = channel.post("/v1/orders", json=body)
    assert again.status_code == 200 and again.get_json()["substitutions"] == [
        {"line_id": "1", "from_sku": "CUP", "to_sku": "MUG"}
    ]
    # Without the customer's leave the line waits for its own SKU.
    body = order("nosub", [("CUP", 2, 5.0)])
    decision = channel.post("/v1/orders", json=body).get_json()
    assert decision["status"] == "backordered" and "substitutions" not in decision
    # A line partly served keeps its SKU (one line, one SKU).
    assert channel.post("/v1/orders/nosub/cancel").status_code == 200
    set_stock(shop, "DC1", {"MUG": 10, "CUP": 1})
    body = order("part", [])
    body["lines"] = [{**line, "substitutes_allowed": True}]
    decision = channel.post("/v1/orders", json=body).get_json()
    assert decision["status"] == "partially_sourced" and "substitutions" not in decision


def test_a_skus_substitutes_must_exist_and_not_be_itself(shop):
    cup = {"name": "Cup", "weight_kg": 0.3, "category": "home", "substitutes": ["NOPE", "CUP"]}
    answer = shop.put("/v1/skus/CUP", json=cup)
    assert answer.status_code == 422
    pointers = [e["pointer"] for e in answer.get_json()["error"]["errors"]]
    assert pointers == ["/substitutes/0", "/substitutes/1"]
    assert shop.get("/v1/skus/CUP").get_json()["substitutes"] == []
