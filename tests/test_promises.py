"""Promises: the options a channel is answered, holds that orders keep, holds that lapse,
in-transit supply, carrier choice in sourcing, and sourcing that keeps a promised date."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.domain.network import stock
from app.edges.demo import CARRIER_SERVICES
from app.kinds.promising import carriers
from app.lifecycle import backorders, holds
from app.platform import auth
from app.platform import db as database
from tests.conftest import Api
from tests.rules_helpers import shipped
from tests.sourcing_helpers import LEICESTER, build_network, order, set_stock

LONDON = ZoneInfo("Europe/London")


@pytest.fixture
def shop(client, keys, admin):
    build_network(admin)
    for service_id, document in CARRIER_SERVICES.items():
        assert admin.put(f"/v1/carrier-services/{service_id}", json=document).status_code == 201
    return admin


@pytest.fixture
def channel(client, keys):
    return Api(client, keys["channel"])


def ask(lines, **extra) -> dict:
    return {
        "lines": [{"sku": sku, "qty": qty, "unit_price": price} for sku, qty, price in lines],
        "destination": {k: LEICESTER[k] for k in ("postcode", "country", "lat", "lon")},
        **extra,
    }


def by_id(answer: dict) -> dict:
    return {o["option_id"]: o for o in answer["options"]}


def today() -> date:
    return datetime.now(LONDON).date()


def test_a_cart_is_answered_every_way_it_can_be_delivered(shop, channel):
    set_stock(shop, "DC1", {"MUG": 10})
    set_stock(shop, "ST1", {"MUG": 10})
    response = channel.post("/v1/promises", json=ask([("MUG", 1, 20.0)]))
    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    options = by_id(answer)
    assert {"ship:standard", "ship:express", "pickup:ST1"} <= set(options)
    standard, express, pickup = (
        options["ship:standard"],
        options["ship:express"],
        options["pickup:ST1"],
    )
    # dates: never before today, next day no later than standard, standard 2 days' transit
    assert express["delivery_date"] <= standard["delivery_date"]
    for option in (standard, express):
        shipment = option["shipments"][0]
        assert shipment["dispatch_date"] >= today().isoformat()
        assert shipment["delivery_date"] > shipment["dispatch_date"]
        window = [
            datetime.fromisoformat(option["window"][end]).astimezone(LONDON)
            for end in ("from", "to")
        ]
        assert (window[0].hour, window[1].hour) == (8, 18)
    assert pickup["nodes"] == ["ST1"] and pickup["price"] == 0
    # cost: the carrier service's rate card; price: the ruleset's (standard free over 50)
    shipment = standard["shipments"][0]
    assert shipment["carrier_service"] == "northway-standard"
    distance = {"DC1": 20.5, "ST1": 0.0}
    service = CARRIER_SERVICES["northway-standard"]
    assert shipment["cost"] == pytest.approx(
        carriers.cost(service, distance.get(shipment["node_id"], 0.0), 0.4, False), abs=0.2
    )
    assert standard["price"] == 3.95 and express["price"] == 6.95
    assert [o["recommended"] for o in answer["options"]].count(True) == 1
    froms = [o["window"]["from"] for o in answer["options"]]
    assert froms == sorted(froms)
    assert answer["ruleset"]["name"] == "sourcing"
    # over the free-delivery value, standard costs the customer nothing
    rich = by_id(channel.post("/v1/promises", json=ask([("MUG", 3, 20.0)])).get_json())
    assert rich["ship:standard"]["price"] == 0


def test_rules_set_prices_and_lines_nobody_stocks_are_not_offered(shop, channel):
    set_stock(shop, "DC1", {"MUG": 10})
    vip = by_id(
        channel.post("/v1/promises", json=ask([("MUG", 1, 20.0)], customer_id="VIP")).get_json()
    )
    assert vip["ship:express"]["price"] == 3.95  # VIP: express at the standard price
    assert "vip-standard-price" in vip["ship:express"]["rules_fired"]
    answer = channel.post("/v1/promises", json=ask([("CUP", 1, 5.0)])).get_json()
    assert answer["options"] == []
    assert {o["option_id"] for o in answer["not_offered"]} >= {"ship:standard", "ship:express"}
    assert all(o["reason"] for o in answer["not_offered"])


def test_a_postcode_alone_is_placed_among_the_nodes_of_its_area(shop, channel):
    set_stock(shop, "DC1", {"MUG": 10})
    body = {
        "lines": [{"sku": "MUG", "qty": 1}],
        "destination": {"postcode": "LE2 1AA", "country": "GB"},
    }
    response = channel.post("/v1/promises", json=body)
    assert response.status_code == 200
    assert "ship:standard" in by_id(response.get_json())
    far = {**body, "destination": {"postcode": "ZE1 0AA", "country": "GB"}}
    refused = channel.post("/v1/promises", json=far)
    assert refused.status_code == 422
    assert [e["pointer"] for e in refused.get_json()["error"]["errors"]] == [
        "/destination/postcode"
    ]


@pytest.mark.parametrize(
    ("change", "pointers"),
    [
        ({"lines": []}, ["/lines"]),
        ({"lines": [{"sku": "MUG", "qty": 0}]}, ["/lines/0/qty"]),
        ({"lines": [{"sku": "NOPE", "qty": 1}]}, ["/lines/0/sku"]),
        ({"lines": [{"sku": "MUG", "qty": 1}] * 51}, ["/lines"]),
        ({"lines": [{"sku": "MUG", "qty": 1, "line_id": "a"}] * 2}, ["/lines/1/line_id"]),
        ({"hold": True}, ["/promise_id"]),
        ({"customer_id": "ghost"}, ["/customer_id"]),
        ({"methods": ["teleport"]}, ["/methods/0"]),
        ({"destination": {"postcode": "LE1", "country": "GB", "lat": 52.6}}, ["/destination"]),
        (
            {"destination": {"postcode": "LE1", "country": "GB", "timezone": "Mars/Base"}},
            ["/destination/timezone"],
        ),
    ],
)
def test_a_bad_request_is_refused_with_pointers_and_holds_nothing(
    shop, channel, db, change, pointers
):
    set_stock(shop, "DC1", {"MUG": 10})
    body = {**ask([("MUG", 1, 20.0)]), **change}
    response = channel.post("/v1/promises", json=body)
    assert response.status_code == 422, response.get_json()
    got = [e["pointer"] for e in response.get_json()["error"]["errors"]]
    assert got == pointers
    assert db.execute("SELECT COUNT(*) FROM promises").fetchone()[0] == 0
    assert stock.atp(db, "DC1", "MUG") == 10


def test_a_held_promise_is_kept_by_the_order_that_quotes_it(shop, channel, db):
    # Only the 3PL has mugs when the promise is held...
    set_stock(shop, "PL1", {"MUG": 5})
    body = ask([("MUG", 2, 20.0)], hold=True, promise_id="P1", methods=["ship"])
    held = channel.post("/v1/promises", json=body)
    assert held.status_code == 201, held.get_json()
    promise = held.get_json()
    assert promise["status"] == "held" and promise["held_option"]["nodes"] == ["PL1"]
    assert stock.atp(db, "PL1", "MUG") == 3
    # the same request again is the same promise; another body under its id is refused
    again = channel.post("/v1/promises", json=body)
    assert again.status_code == 200 and again.get_json()["expires_at"] == promise["expires_at"]
    other = channel.post("/v1/promises", json={**body, "lines": [{"sku": "MUG", "qty": 1}]})
    assert other.status_code == 409 and other.get_json()["error"]["code"] == "promise_conflict"
    # ...then the DC gets mugs, and would serve a new order
    set_stock(shop, "DC1", {"MUG": 10})
    plain = channel.post("/v1/orders", json=order("plain", [("MUG", 1, 20.0)])).get_json()
    assert [s["node_id"] for s in plain["shipments"]] == ["DC1"]
    # the order that quotes the promise lands on the node that held it
    kept = channel.post("/v1/orders", json=order("kept", [("MUG", 2, 20.0)], promise_id="P1"))
    assert kept.status_code == 201, kept.get_json()
    decision = kept.get_json()
    assert [s["node_id"] for s in decision["shipments"]] == ["PL1"]
    assert decision["promise"]["promise_id"] == "P1" and decision["promise"]["kept"] is True
    assert decision["shipments"][0]["promised_date"] <= promise["held_option"]["delivery_date"]
    # the hold changed hands: PL1 still has 3 to promise, held by the order now
    assert stock.atp(db, "PL1", "MUG") == 3
    assert channel.get("/v1/promises/P1").get_json()["status"] == "used"
    refs = db.execute(
        "SELECT reference, status FROM reservations WHERE node_id = 'PL1' ORDER BY reference"
    ).fetchall()
    assert [tuple(r) for r in refs] == [("kept/1", "active"), ("promise:P1", "released")]
    # another order cannot quote a used promise; the same order again is its decision
    stolen = channel.post("/v1/orders", json=order("stolen", [("MUG", 1, 20.0)], promise_id="P1"))
    assert stolen.status_code == 422
    assert stolen.get_json()["error"]["errors"][0]["pointer"] == "/promise_id"
    replay = channel.post("/v1/orders", json=order("kept", [("MUG", 2, 20.0)], promise_id="P1"))
    assert replay.status_code == 200
    assert replay.get_json()["decision_id"] == decision["decision_id"]
    unknown = channel.post("/v1/orders", json=order("x", [("MUG", 1, 20.0)], promise_id="nope"))
    assert unknown.status_code == 422


def test_a_hold_that_lapses_frees_its_stock_for_the_orders_waiting(shop, channel, db, app):
    set_stock(shop, "DC1", {"MUG": 2})
    body = ask([("MUG", 2, 20.0)], hold=True, promise_id="P2", methods=["ship"])
    assert channel.post("/v1/promises", json=body).status_code == 201
    waiting = channel.post("/v1/orders", json=order("waiting", [("MUG", 1, 20.0)])).get_json()
    assert waiting["status"] == "backordered"
    later = database.format_time(datetime.now(UTC) + timedelta(minutes=16))
    holds.lapse(db, app.config, later)
    assert channel.get("/v1/promises/P2").get_json()["status"] == "expired"
    assert backorders.resume_raised(db) == ["waiting"]
    assert stock.atp(db, "DC1", "MUG") == 1
    # an order quoting the lapsed promise is sourced like any other, from what is left
    late = channel.post("/v1/orders", json=order("late", [("MUG", 1, 20.0)], promise_id="P2"))
    assert late.get_json()["status"] == "sourced"


def test_a_released_promise_gives_its_stock_back(shop, channel, db):
    set_stock(shop, "DC1", {"MUG": 4})
    body = ask([("MUG", 3, 20.0)], hold=True, promise_id="P3", methods=["ship"])
    assert channel.post("/v1/promises", json=body).status_code == 201
    assert stock.atp(db, "DC1", "MUG") == 1
    released = channel.delete("/v1/promises/P3")
    assert released.status_code == 200 and released.get_json()["status"] == "released"
    assert stock.atp(db, "DC1", "MUG") == 4
    assert channel.get("/v1/promises/nope").status_code == 404


def test_racing_holds_never_hold_more_than_there_is(shop, app, keys, db):
    set_stock(shop, "DC1", {"MUG": 3})
    results = []

    def hold(number: int) -> None:
        client = Api(app.test_client(), keys["channel"])
        body = ask([("MUG", 2, 20.0)], hold=True, promise_id=f"R{number}", methods=["ship"])
        results.append(client.post("/v1/promises", json=body).status_code)

    threads = [threading.Thread(target=hold, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [201, 409, 409, 409]
    held = db.execute(
        "SELECT COALESCE(SUM(qty), 0) FROM reservations WHERE status = 'active'"
    ).fetchone()[0]
    assert held == 2 and stock.atp(db, "DC1", "MUG") == 1


def test_a_promise_for_goods_only_in_transit_is_dated_by_their_arrival(shop, channel, db):
    analyst = Api(shop.client, auth.create_key(db, "analyst")[1])
    two = shipped(version=2)
    two["settings"]["use_in_transit"] = True
    assert analyst.post("/v1/rulesets/sourcing/versions", json=two).status_code == 201
    assert analyst.post("/v1/rulesets/sourcing/versions/2/activate", json={}).status_code == 201
    eta = datetime.now(UTC) + timedelta(days=4)
    transfer = {"transfer_id": "T1", "sku": "MUG", "qty": 5, "destination_node_id": "DC1"}
    assert (
        shop.post("/v1/inventory/transfers", json={**transfer, "eta": eta.isoformat()}).status_code
        == 201
    )
    options = by_id(channel.post("/v1/promises", json=ask([("MUG", 1, 20.0)])).get_json())
    standard = options["ship:standard"]
    assert standard["shipments"][0]["lines"][0]["supply"] == "in_transit"
    assert standard["shipments"][0]["dispatch_date"] >= eta.astimezone(LONDON).date().isoformat()
    assert standard["delivery_date"] > eta.astimezone(LONDON).date().isoformat()


def test_sourcing_chooses_the_cheapest_carrier_and_dates_each_shipment(shop, channel, db):
    set_stock(shop, "DC1", {"MUG": 10})
    decision = channel.post("/v1/orders", json=order("o1", [("MUG", 1, 20.0)])).get_json()
    shipment = decision["shipments"][0]
    assert shipment["carrier_service"] == "northway-standard"
    assert shipment["carrier"] == "Northway Parcels"
    expected = carriers.cost(
        CARRIER_SERVICES["northway-standard"], shipment["distance_km"], 0.4, False
    )
    assert shipment["estimated_cost"] == expected
    assert shipment["dispatch_date"] < shipment["promised_date"]
    stored = db.execute(
        "SELECT carrier_service, promised_date FROM shipments WHERE order_id = 'o1'"
    ).fetchone()
    assert tuple(stored) == ("northway-standard", shipment["promised_date"])
    # a rule that excludes the carrier leaves the shipment to the rate card, and says why
    high = channel.post(
        "/v1/orders",
        json=order(
            "o2", [("MUG", 1, 900.0)], delivery={"method": "same_day", "address": LEICESTER}
        ),
    )
    carriers_seen = high.get_json()["explanation"]["carriers"]
    assert carriers_seen == [] or all(c["service_id"] for c in carriers_seen)


def test_sourcing_keeps_a_promised_date_and_records_a_miss(shop, channel, db):
    # DC1 is closed for a fortnight; Manchester's store can deliver in days
    start = today()
    closed = {
        "closures": [{"from": start.isoformat(), "to": (start + timedelta(days=14)).isoformat()}]
    }
    from tests.sourcing_helpers import NODES

    assert shop.put("/v1/nodes/DC1", json={**NODES["DC1"], "fulfilment": closed}).status_code == 200
    set_stock(shop, "DC1", {"MUG": 10})
    set_stock(shop, "ST2", {"MUG": 10})
    by = (datetime.now(UTC) + timedelta(days=9)).isoformat()
    kept = channel.post(
        "/v1/orders", json=order("k", [("MUG", 1, 20.0)], promised_by=by)
    ).get_json()
    assert [s["node_id"] for s in kept["shipments"]] == ["ST2"]
    assert kept["promise"]["kept"] is True
    late = kept["explanation"]["late"]
    assert [entry["node_id"] for entry in late] == ["DC1"]
    assert late[0]["delivery_date"] > kept["shipments"][0]["promised_date"]
    # nobody can make it by tomorrow: sourced anyway, and the miss is on record
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    missed = channel.post(
        "/v1/orders", json=order("m", [("MUG", 1, 20.0)], promised_by=soon)
    ).get_json()
    assert missed["status"] == "sourced"
    assert missed["promise"]["kept"] is False and missed["promise"]["missed_lines"] == ["1"]


def test_the_report_says_which_promises_were_kept_by_channel_node_and_week(shop, channel, db):
    set_stock(shop, "DC1", {"MUG": 10})
    node = Api(shop.client, auth.create_key(db, "node", "DC1")[1])
    delivered = {}
    for order_id in ("on-time", "late", "open"):
        decision = channel.post("/v1/orders", json=order(order_id, [("MUG", 1, 20.0)])).get_json()
        delivered[order_id] = decision["shipments"][0]
    # the late one was promised for a day that has passed
    past = datetime.now(UTC) - timedelta(days=3)
    with database.atomic(db):
        db.execute(
            "UPDATE shipments SET promised_date = ?, promised_until = ? WHERE order_id = 'late'",
            [past.date().isoformat(), database.format_time(past)],
        )
    for order_id in ("on-time", "late"):
        path = f"/v1/shipments/{delivered[order_id]['shipment_id']}/events"
        tracked = {"carrier": "Northway Parcels", "tracking_number": f"T-{order_id}"}
        for number, kind in enumerate(("accepted", "shipped", "delivered")):
            extra = tracked if kind == "shipped" else {}
            sent = node.post(path, json={"event_id": f"{order_id}{number}", "type": kind, **extra})
            assert sent.status_code == 201, sent.get_json()
    stored = db.execute("SELECT delivered_at FROM shipments WHERE order_id = 'late'").fetchone()
    assert stored[0] is not None
    since = (datetime.now(UTC) - timedelta(days=10)).date().isoformat()
    report = channel.get(
        f"/v1/reports/promises?per=shipment&group_by=channel,node&since={since}"
    ).get_json()
    assert report["rows"] == [
        {
            "channel": "web",
            "node_id": "DC1",
            "promised": 3,
            "delivered": 2,
            "kept": 1,
            "overdue": 0,
            "kept_share": 0.5,
            "mean_lateness_days": pytest.approx(1.5, abs=0.01),
        }
    ]
    weekly = channel.get(f"/v1/reports/promises?per=shipment&since={since}").get_json()["rows"]
    assert sum(row["promised"] for row in weekly) == 3
    assert all(row["week"].startswith(("2026-W", "2027-W")) for row in weekly)
    bad = channel.get("/v1/reports/promises?group_by=colour&since=yesterday")
    assert bad.status_code == 422
    assert {e["pointer"] for e in bad.get_json()["error"]["errors"]} == {"/group_by", "/since"}


def test_a_carrier_at_its_daily_limit_carries_nothing_more_today(shop, channel):
    limited = {**CARRIER_SERVICES["northway-standard"], "daily_collection_limit": 1}
    assert shop.put("/v1/carrier-services/northway-standard", json=limited).status_code == 200
    set_stock(shop, "DC1", {"MUG": 10})
    first = channel.post("/v1/orders", json=order("c1", [("MUG", 1, 20.0)])).get_json()
    assert first["shipments"][0]["carrier_service"] == "northway-standard"
    second = channel.post("/v1/orders", json=order("c2", [("MUG", 1, 20.0)])).get_json()
    if first["shipments"][0]["dispatch_date"] != datetime.now(UTC).date().isoformat():
        # after the cut-off the first parcel counts against tomorrow's collections
        assert second["shipments"][0]["carrier_service"] == "northway-standard"
    else:
        # collected today already: the rule leaves it out, another standard service takes it
        assert second["shipments"][0]["carrier_service"] == "safeline-hazmat"
        assert second["explanation"]["carriers"] == [
            {
                "service_id": "northway-standard",
                "excluded_by": [
                    {"rule": "carrier-daily-limit", "reason": "its collections for today are full"}
                ],
                "score": 0,
            }
        ]
