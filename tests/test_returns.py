"""Returns end to end: each hand-over method and disposition with real receivers, refunds,
bad input, and quantities that never exceed what was delivered under racing processes.
Then returns on the shared rules machinery: versions of their own kind, validation of
what returns rules may set, experiments with return measures, replays, and decisions
explained."""

from __future__ import annotations

import collections
import copy
import itertools
import json
from pathlib import Path

import pytest

from app import create_app
from app.domain.network import stock
from app.machinery.rules import kinds
from app.platform import auth
from app.platform import db as database
from tests.conftest import Api
from tests.receiver import Receiver
from tests.servers import several, status_of
from tests.sourcing_helpers import LEICESTER, NODES, build_network, order, set_stock
from tests.test_dispatch import FAST, SECRET, drain
from tests.test_experiments import wait_for
from tests.test_integrity_processes import race

MANCHESTER = {
    **LEICESTER,
    "city": "Manchester",
    "postcode": "M1 1AE",
    "lat": 53.4808,
    "lon": -2.2426,
}
_events = itertools.count()


@pytest.fixture
def app(db_path):
    return create_app({"DATABASE": db_path, **FAST})


@pytest.fixture
def receiver():
    served = Receiver([SECRET])
    yield served
    served.close()


@pytest.fixture
def shop(admin, db, client, keys, receiver):
    """The decision-test network with return points that send to a real receiver, node
    keys for each, and a channel subscribed to refunds and order status changes."""
    build_network(admin)
    hook = {"url": receiver.url, "secret": SECRET}
    capabilities = {
        "DC1": ["ship", "returns"],
        "ST1": ["ship", "pickup", "returns"],
        "ST2": ["ship", "returns"],
        "PL1": ["ship", "returns", "refurbish"],
        "SUP1": ["ship", "dropship"],
    }
    for node_id, extra in capabilities.items():
        body = {**NODES[node_id], "capabilities": extra, "webhook": hook}
        assert admin.put(f"/v1/nodes/{node_id}", json=body).status_code == 200
    for sku, body in {
        "PHONE": {"name": "Phone", "weight_kg": 0.3, "category": "electronics"},
        "PEN": {"name": "Pen", "weight_kg": 0.05, "category": "home"},
    }.items():
        assert admin.put(f"/v1/skus/{sku}", json=body).status_code == 201
    channel = Api(client, keys["channel"])
    made = channel.post(
        "/v1/subscriptions",
        json={
            "url": receiver.url,
            "secret": SECRET,
            "event_types": ["order.status_changed", "return.refund_due"],
        },
    )
    assert made.status_code == 201
    nodes = {
        node_id: Api(client, auth.create_key(db, "node", node_id)[1]) for node_id in capabilities
    }
    return {"admin": admin, "channel": channel, "nodes": nodes}


def deliver(shop, order_id, lines, customer="C1", at=None, **extra):
    """Place an order and have every shipment accepted, shipped and delivered."""
    admin = shop["admin"]
    decision = admin.post("/v1/orders", json=order(order_id, lines, customer, **extra))
    assert decision.status_code == 201, decision.get_json()
    for shipment in decision.get_json()["shipments"]:
        node = shop["nodes"][shipment["node_id"]]
        path = f"/v1/shipments/{shipment['shipment_id']}/events"
        for kind in ("accepted", "shipped", "delivered"):
            body = {"event_id": f"e{next(_events)}", "type": kind}
            if kind == "shipped":
                body.update(carrier="DPD", tracking_number=f"T{next(_events)}")
            if at:
                body["at"] = at
            assert node.post(path, json=body).status_code == 201
    assert admin.get(f"/v1/orders/{order_id}").get_json()["status"] == "completed"
    return decision.get_json()


def asked(return_id, order_id, lines, method="drop_off", **extra):
    return {
        "return_id": return_id,
        "order_id": order_id,
        "method": method,
        "lines": [
            {"line_id": line_id, "qty": qty, "reason": reason, "condition": condition}
            for line_id, qty, reason, condition in lines
        ],
        **extra,
    }


def report(shop, node_id, return_id, kind, **extra):
    body = {"event_id": f"r{next(_events)}", "type": kind, **extra}
    answer = shop["nodes"][node_id].post(f"/v1/returns/{return_id}/events", json=body)
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()


def sent(receiver, event_type):
    return [r["body"]["data"] for r in receiver.received if r["body"]["type"] == event_type]


def test_a_drop_off_at_the_store_that_sells_it_restocks_there(shop, app, db, receiver):
    set_stock(shop["admin"], "DC1", {"MUG": 10})
    set_stock(shop["admin"], "ST1", {"MUG": 3})
    deliver(shop, "o1", [("MUG", 2, 12.0)], customer="VIP")
    made = shop["channel"].post(
        "/v1/returns", json=asked("r1", "o1", [("1", 1, "wrong_size", "unopened")])
    )
    assert made.status_code == 201, made.get_json()
    found = made.get_json()
    assert (found["status"], found["decision"], found["point"]) == ("expected", "return", "ST1"), (
        found["explanation"]
    )
    assert found["refund"]["due"] == "at_drop_off"  # a VIP at a drop-off
    assert found["lines"][0]["disposition"] == "restock"
    assert "loyal-refund-at-drop-off" in found["explanation"]["rules_fired"]
    drain(app)
    [expected] = sent(receiver, "return.expected")
    assert expected["lines"] == [
        {"line_id": "1", "sku": "MUG", "qty": 1, "condition": "unopened", "disposition": "restock"}
    ]
    assert all(r["verified"][SECRET] for r in receiver.received)
    assert ("completed", "partially_returned") in [
        (c["from"], c["to"]) for c in sent(receiver, "order.status_changed")
    ]
    assert sent(receiver, "return.refund_due") == []  # not before the drop-off
    report(shop, "ST1", "r1", "received")
    drain(app)
    [refund] = sent(receiver, "return.refund_due")
    assert (refund["amount"], refund["adjustment"]) == (12.0, False)
    before = stock.positions(db, ["MUG"], ["ST1"])[0]["on_hand"]
    inspected = report(
        shop, "ST1", "r1", "inspected", lines=[{"line_id": "1", "condition": "unopened"}]
    )
    assert inspected["lines"][0]["restocked_at"] == "ST1"
    assert stock.positions(db, ["MUG"], ["ST1"])[0]["on_hand"] == before + 1
    assert report(shop, "ST1", "r1", "disposed")["status"] == "closed"
    view = shop["admin"].get("/v1/orders/o1").get_json()
    assert view["status"] == "partially_returned"
    kinds = [e["type"] for e in view["timeline"]]
    for kind in (
        "return_requested",
        "return_received",
        "refund_due",
        "return_inspected",
        "return_disposed",
    ):
        assert kind in kinds
    assert [r["return_id"] for r in view["returns"]] == ["r1"]


def test_drop_shipped_goods_go_back_to_their_supplier_with_a_vendor_instruction(
    shop, app, receiver
):
    set_stock(shop["admin"], "SUP1", {"SOFA": 5})
    deliver(shop, "o2", [("SOFA", 1, 450.0)])
    found = (
        shop["channel"]
        .post(
            "/v1/returns",
            json=asked("r2", "o2", [("1", 1, "defective", "defective")], method="collect"),
        )
        .get_json()
    )
    assert found["point"] == "SUP1"
    assert "dropship-back-to-supplier" in found["explanation"]["rules_fired"]
    assert found["lines"][0]["disposition"] == "return_to_vendor"
    report(shop, "SUP1", "r2", "received")
    done = report(
        shop, "SUP1", "r2", "inspected", lines=[{"line_id": "1", "condition": "defective"}]
    )
    assert done["lines"][0]["vendor"] == "SUP1"
    drain(app)
    [instruction] = sent(receiver, "return.vendor_instruction")
    assert (instruction["sku"], instruction["qty"]) == ("SOFA", 1)
    assert shop["admin"].get("/v1/orders/o2").get_json()["status"] == "returned"


def test_goods_a_store_does_not_sell_are_sent_on_to_a_dc(shop, db):
    set_stock(shop["admin"], "DC1", {"CUP": 10})
    deliver(shop, "o3", [("CUP", 1, 30.0)])
    found = (
        shop["channel"]
        .post(
            "/v1/returns",
            json=asked("r3", "o3", [("1", 1, "wrong_item", "unopened")], **{"from": MANCHESTER}),
        )
        .get_json()
    )
    assert found["point"] == "ST2"  # the only point within drop-off range of Manchester
    assert found["lines"][0]["disposition"] == "send_to_dc"
    report(shop, "ST2", "r3", "received")
    done = report(shop, "ST2", "r3", "inspected", lines=[{"line_id": "1", "condition": "unopened"}])
    assert done["lines"][0]["to"] == "DC1"
    transfer = shop["admin"].get(f"/v1/inventory/transfers/{done['lines'][0]['transfer_id']}")
    assert transfer.get_json()["status"] == "in_transit"
    assert transfer.get_json()["destination_node_id"] == "DC1"


def test_an_inspection_that_downgrades_changes_disposition_and_refund(shop, app, receiver, db):
    set_stock(shop["admin"], "DC1", {"PHONE": 5, "MUG": 5})
    deliver(shop, "o4", [("PHONE", 1, 200.0), ("MUG", 1, 20.0)])
    found = (
        shop["channel"]
        .post(
            "/v1/returns",
            json=asked(
                "r4",
                "o4",
                [("1", 1, "changed_mind", "unopened"), ("2", 1, "changed_mind", "unopened")],
                method="ship_back",
            ),
        )
        .get_json()
    )
    point = found["point"]
    assert [line["refund"] for line in found["lines"]] == [200.0, 20.0]
    deducted = found["refund"]["shipping_deducted"]
    assert deducted > 0  # a standard customer who changed their mind pays the postage
    assert found["refund"]["due"] == "on_receipt"
    report(shop, point, "r4", "received")
    before = stock.positions(db, ["MUG", "PHONE"], [point])
    done = report(
        shop,
        point,
        "r4",
        "inspected",
        lines=[{"line_id": "1", "condition": "opened"}, {"line_id": "2", "condition": "damaged"}],
    )
    lines = {line["line_id"]: line for line in done["lines"]}
    assert lines["1"]["refund"] == 170.0  # opened electronics: a 15% restocking fee
    assert lines["2"]["disposition"] == "dispose"  # damaged homeware is not sold again
    # Said unopened, found damaged: half its value is withheld (the fee above is already
    # more than the 10% for an opened phone, so that is not withheld twice).
    assert lines["2"]["refund"] == 10.0
    assert stock.positions(db, ["MUG", "PHONE"], [point]) != before  # the phone restocked
    mug = [p for p in stock.positions(db, ["MUG"], [point])]
    assert mug == [p for p in before if p["sku"] == "MUG"]
    drain(app)
    refunds = sent(receiver, "return.refund_due")
    assert [(r["amount"], r["adjustment"]) for r in refunds] == [
        (round(220.0 - deducted, 2), False),
        (-40.0, True),
    ]
    record = shop["admin"].get("/v1/returns/r4").get_json()
    assert record["refund"]["total"] == round(180.0 - deducted, 2)
    assert [line["final_disposition"] for line in record["lines"]] == ["restock", "dispose"]


def test_a_cheap_return_is_kept_and_refunded_at_once(shop, app, receiver):
    set_stock(shop["admin"], "DC1", {"PEN": 50})
    deliver(shop, "o5", [("PEN", 3, 2.0)])
    found = (
        shop["channel"]
        .post(
            "/v1/returns",
            json=asked("r5", "o5", [("1", 3, "changed_mind", "opened")], method="ship_back"),
        )
        .get_json()
    )
    assert (found["status"], found["decision"], found["point"]) == ("kept", "keep", None)
    assert found["lines"][0]["disposition"] == "kept"
    drain(app)
    assert sent(receiver, "return.expected") == []
    [refund] = sent(receiver, "return.refund_due")
    assert refund["amount"] == 6.0 and refund["due"] == "at_decision"


def test_a_withdrawn_return_tells_the_point_and_gives_the_goods_back(shop, app, receiver):
    set_stock(shop["admin"], "DC1", {"MUG": 10})
    deliver(shop, "o6", [("MUG", 1, 15.0)])
    assert (
        shop["channel"]
        .post("/v1/returns", json=asked("r6", "o6", [("1", 1, "wrong_size", "unopened")]))
        .status_code
        == 201
    )
    assert shop["admin"].get("/v1/orders/o6").get_json()["status"] == "returned"
    withdrawn = shop["channel"].delete("/v1/returns/r6")
    assert withdrawn.get_json()["status"] == "cancelled"
    assert shop["admin"].get("/v1/orders/o6").get_json()["status"] == "completed"
    drain(app)
    assert [c["return_id"] for c in sent(receiver, "return.cancelled")] == ["r6"]
    # Withdrawn units can be returned again.
    again = asked("r6b", "o6", [("1", 1, "wrong_size", "unopened")])
    assert shop["channel"].post("/v1/returns", json=again).status_code == 201
    assert shop["channel"].delete("/v1/returns/r6b").status_code == 200
    point = shop["channel"].get("/v1/returns/r6b").get_json()["point"]
    late = shop["nodes"][point].post(
        "/v1/returns/r6b/events", json={"event_id": "late", "type": "received"}
    )
    assert late.status_code == 409  # a withdrawn return is never received


def test_bad_returns_are_refused_with_pointers_and_change_nothing(shop, db):
    set_stock(shop["admin"], "DC1", {"MUG": 10, "PHONE": 5})
    deliver(shop, "o7", [("MUG", 2, 10.0), ("PHONE", 1, 300.0)], at="2026-01-02T10:00:00Z")
    admin = shop["admin"]
    admin.post("/v1/orders", json=order("o8", [("MUG", 1, 10.0)]))  # not delivered
    channel = shop["channel"]
    cases = [
        (asked("b1", "o7", [("1", 3, "wrong_size", "unopened")]), "/lines/0/qty"),
        (asked("b2", "o7", [("9", 1, "wrong_size", "unopened")]), "/lines/0/line_id"),
        (
            asked(
                "b3", "o7", [("1", 1, "wrong_size", "unopened"), ("1", 1, "wrong_size", "unopened")]
            ),
            "/lines/1/line_id",
        ),
        (asked("b4", "o8", [("1", 1, "wrong_size", "unopened")]), "/lines/0/line_id"),
        (asked("b5", "nope", [("1", 1, "wrong_size", "unopened")]), "/order_id"),
        (asked("b6", "o7", [("1", 1, "bored", "unopened")]), "/lines/0/reason"),
        (asked("b7", "o7", [("1", 0, "wrong_size", "unopened")]), "/lines/0/qty"),
        ({**asked("b8", "o7", [("1", 1, "wrong_size", "unopened")]), "method": "post"}, "/method"),
    ]
    for body, where in cases:
        answer = channel.post("/v1/returns", json=body)
        assert answer.status_code == 422, (body, answer.get_json())
        pointers = [e["pointer"] for e in answer.get_json()["error"]["errors"]]
        assert where in pointers, (where, pointers)
    assert db.execute("SELECT COUNT(*) FROM returns").fetchone()[0] == 0
    # Delivered in January: the phone's 14-day window has closed, the mug's 30 days too
    # (the order was delivered "at" a date long past).
    late = channel.post("/v1/returns", json=asked("b9", "o7", [("2", 1, "wrong_size", "opened")]))
    assert late.status_code == 422
    assert "return window of 14 days for electronics" in str(late.get_json())
    assert (
        db.execute("SELECT COUNT(*) FROM outbox WHERE event_type LIKE 'return.%'").fetchone()[0]
        == 0
    )


def test_a_return_is_idempotent_and_its_id_cannot_be_reused(shop):
    set_stock(shop["admin"], "DC1", {"MUG": 10})
    deliver(shop, "o9", [("MUG", 2, 10.0)])
    body = asked("r9", "o9", [("1", 1, "wrong_size", "unopened")])
    first = shop["channel"].post("/v1/returns", json=body)
    again = shop["channel"].post("/v1/returns", json=body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.get_json()["return_id"] == again.get_json()["return_id"]
    other = shop["channel"].post("/v1/returns", json={**body, "method": "ship_back"})
    assert other.status_code == 409
    assert other.get_json()["error"]["code"] == "return_id_reused"
    point = first.get_json()["point"]
    event = {"event_id": "same", "type": "received"}
    node = shop["nodes"][point]
    assert node.post("/v1/returns/r9/events", json=event).status_code == 201
    assert node.post("/v1/returns/r9/events", json=event).status_code == 200
    assert (
        node.post("/v1/returns/r9/events", json={**event, "at": "2026-11-20T10:00:00Z"}).status_code
        == 409
    )
    early = node.post("/v1/returns/r9/events", json={"event_id": "d", "type": "disposed"})
    assert early.status_code == 409  # not inspected yet


def test_only_the_point_reports_and_only_its_channel_sees_a_return(shop, client, db):
    set_stock(shop["admin"], "DC1", {"MUG": 10})
    deliver(shop, "o10", [("MUG", 1, 10.0)])
    found = (
        shop["channel"]
        .post("/v1/returns", json=asked("r10", "o10", [("1", 1, "wrong_size", "unopened")]))
        .get_json()
    )
    other_node = "DC1" if found["point"] != "DC1" else "ST1"
    answer = shop["nodes"][other_node].post(
        "/v1/returns/r10/events", json={"event_id": "x", "type": "received"}
    )
    assert answer.status_code in (403, 404)
    assert shop["nodes"][other_node].get("/v1/returns/r10").status_code == 404
    app_channel = Api(client, auth.create_key(db, "channel", channels=["app"])[1])
    assert app_channel.get("/v1/returns/r10").status_code == 404
    assert (
        app_channel.post(
            "/v1/returns", json=asked("r10b", "o10", [("1", 1, "wrong_size", "unopened")])
        ).status_code
        == 404
    )
    why = shop["admin"].get(f"/v1/returns/r10/why-not/{other_node}").get_json()
    assert why["verdict"] in ("dearer", "excluded", "not_a_point")
    assert shop["admin"].get("/v1/returns/r10/why-not/SUP1").get_json()["verdict"] == (
        "not_a_point"
    )


@pytest.mark.slow
def test_racing_returns_from_several_processes_never_exceed_what_was_delivered(shop, db_path):
    set_stock(shop["admin"], "DC1", {"MUG": 10})
    deliver(shop, "o11", [("MUG", 5, 10.0)])
    connection = database.open_from_config({"DATABASE": db_path})
    key = auth.create_key(connection, "channel")[1]
    connection.close()
    with several(db_path, 3, DISPATCH_EMBEDDED="false") as ports:
        statuses = race(
            16,
            8,
            lambda n: status_of(
                ports[n % 3],
                key,
                "POST",
                "/v1/returns",
                asked(f"race{n}", "o11", [("1", 1, "wrong_size", "unopened")]),
            ),
        )
    assert collections.Counter(statuses) == {201: 5, 422: 11}
    connection = database.open_from_config({"DATABASE": db_path})
    total = connection.execute("SELECT SUM(qty) FROM return_lines").fetchone()[0]
    connection.close()
    assert total == 5


# The shared machinery -------------------------------------------------------------

SHIPPED = json.loads((Path(__file__).parent.parent / "rulesets/returns/ruleset.json").read_text())


def version(number: int, keep_below: float | None = None) -> dict:
    """The shipped returns ruleset as another version; ``keep_below`` moves the value under
    which the customer keeps the goods."""
    document = copy.deepcopy(SHIPPED)
    document["version"] = number
    document["change_note"] = f"version {number}"
    if keep_below is not None:
        rule = next(r for r in document["rules"] if r["id"] == "keep-low-value")
        rule["when"][0]["where"]["value"] = {"lt": keep_below}
    return document


@pytest.fixture
def analyst(client, keys):
    return Api(client, keys["analyst"])


def returned(shop, count: int, prefix: str, price: float = 12.0) -> list[dict]:
    """``count`` delivered orders of one mug each, each returned by its own return."""
    set_stock(shop["admin"], "DC1", {"MUG": 1000})
    found = []
    for number in range(count):
        deliver(shop, f"{prefix}{number}", [("MUG", 1, price)])
        body = asked(f"{prefix}r{number}", f"{prefix}{number}", [("1", 1, "wrong_size", "opened")])
        answer = shop["channel"].post("/v1/returns", json=body)
        assert answer.status_code == 201, answer.get_json()
        found.append(answer.get_json())
    return found


@pytest.mark.parametrize(
    "change, pointer, code",
    [
        (lambda d: d.update(kind="sourcing"), "/kind", "wrong_kind"),
        (
            lambda d: d["rules"][6]["then"][0].update(set="dispositon"),
            "/rules/6/then/0/set",
            "unknown_attribute",
        ),
        (
            lambda d: d["rules"][0]["then"][0].update({"for": "nowhere"}),
            "/rules/0/then/0/set",
            "unknown_attribute",
        ),
        (
            lambda d: d["rules"][6]["then"][0].update({"for": "x"}),
            "/rules/6/then/0/for",
            "unbound_alias",
        ),
        (
            lambda d: d["rules"][8]["then"][0].update(value="burn"),
            "/rules/8/then/0/value",
            "value_type",
        ),
        (
            lambda d: d["rules"][1]["then"][0].update(exclude="nobody"),
            "/rules/1/then/0/exclude",
            "unbound_alias",
        ),
        (
            lambda d: d["rules"][1]["when"][0].update(fact="candidate"),
            "/rules/1/when/0/fact",
            "unknown_fact",
        ),
        (lambda d: d["settings"].pop("methods"), "/settings/methods", "schema"),
    ],
)
def test_returns_rules_are_checked_against_their_own_kind(analyst, change, pointer, code):
    document = version(2)
    change(document)
    answer = analyst.post("/v1/rulesets/validate", json=document)
    assert answer.status_code == 422
    found = answer.get_json()["error"]["errors"]
    assert (pointer, code) in [(p["pointer"], p.get("code")) for p in found], found


def test_a_rule_sets_a_disposition_on_the_line_it_matched(analyst):
    facts = [
        {"fact": "return", "return_id": "R", "order_id": "O", "method": "ship_back"},
        {
            "fact": "item",
            "key": "a",
            "line_id": "1",
            "sku": "S",
            "qty": 1,
            "unit_price": 50.0,
            "reason": "defective",
            "condition": "defective",
        },
        {
            "fact": "item",
            "key": "b",
            "line_id": "2",
            "sku": "T",
            "qty": 1,
            "unit_price": 50.0,
            "reason": "wrong_size",
            "condition": "unopened",
        },
    ]
    answer = analyst.post("/v1/rulesets/returns/evaluate", json={"facts": facts}).get_json()
    assert answer["item_attributes"]["a"]["disposition"] == {
        "value": "return_to_vendor",
        "rule": "defective-to-vendor",
    }
    assert (
        "b" not in answer["item_attributes"] or "disposition" not in answer["item_attributes"]["b"]
    )
    wrong = analyst.post(
        "/v1/rulesets/returns/evaluate", json={"facts": [{"fact": "order", "order_id": "O"}]}
    )
    assert wrong.status_code == 422  # a sourcing fact means nothing to returns rules


def test_a_ruleset_keeps_its_kind(analyst):
    sourcing_like = version(2)
    sourcing_like["ruleset"] = "returns-b"
    assert analyst.post("/v1/rulesets/returns-b/versions", json=sourcing_like).status_code == 201
    listed = {r["ruleset"]: r["kind"] for r in analyst.get("/v1/rulesets").get_json()["rulesets"]}
    assert listed == {
        "replenishment": "replenishment",
        "returns": "returns",
        "returns-b": "returns",
        "sourcing": "sourcing",
    }
    other = json.loads(
        (Path(__file__).parent.parent / "rulesets/sourcing/ruleset.json").read_text()
    )
    other.update(ruleset="returns-b", version=2)
    answer = analyst.post("/v1/rulesets/returns-b/versions", json=other)
    assert answer.status_code == 409
    assert answer.get_json()["error"]["code"] == "kind_changed"
    assert kinds.of({"kind": {}}).name == "sourcing"


def test_a_split_experiment_on_returns_reports_return_measures(shop, analyst):
    assert analyst.post("/v1/rulesets/returns/versions", json=version(3, 25)).status_code == 201
    made = analyst.post(
        "/v1/experiments",
        json={
            "experiment_id": "ret-ab",
            "ruleset": "returns",
            "champion": 2,
            "challenger": 3,
            "mode": "split",
            "challenger_share": 0.5,
        },
    )
    assert made.status_code == 201, made.get_json()
    found = returned(shop, 24, "s")
    by_variant = {r["experiment"]["variant"]: [] for r in found}
    for record in found:
        by_variant[record["experiment"]["variant"]].append(record["decision"])
    assert set(by_variant["champion"]) == {"return"}
    assert set(by_variant["challenger"]) == {"keep"}  # 12.0 is under the new 25
    report = analyst.get("/v1/experiments/ret-ab/report").get_json()
    variants = report["variants"]
    assert variants["champion"]["kept_share"] == 0.0
    assert variants["challenger"]["kept_share"] == 1.0
    assert report["challenger_minus_champion"]["kept_share"]["difference"] == 1.0
    assert "fill_rate" not in report["challenger_minus_champion"]
    assert variants["challenger"]["cost_per_return"] == 0.0


def test_a_shadow_experiment_on_returns_finds_the_rule_that_differs(shop, analyst):
    assert analyst.post("/v1/rulesets/returns/versions", json=version(3, 25)).status_code == 201
    analyst.post(
        "/v1/experiments",
        json={
            "experiment_id": "ret-sh",
            "ruleset": "returns",
            "champion": 2,
            "challenger": 3,
            "mode": "shadow",
        },
    )
    found = returned(shop, 6, "h")
    assert {r["decision"] for r in found} == {"return"}  # the champion decides
    report = analyst.get("/v1/experiments/ret-sh/report").get_json()
    assert report["disagreements"] == 6
    assert ["keep-low-value", 6] in report["rules_making_the_difference"]
    assert report["challenger_minus_champion"]["kept_share"]["difference"] == 1.0


def test_returns_are_replayed_like_any_decision(shop, analyst):
    assert analyst.post("/v1/rulesets/returns/versions", json=version(3, 25)).status_code == 201
    found = returned(shop, 5, "p", 12.0) + returned(shop, 3, "q", 40.0)
    started = analyst.post(
        "/v1/replays", json={"ruleset": "returns", "champion": 2, "challenger": 2}
    )
    same = wait_for(analyst, started.get_json()["replay_id"])
    assert same["status"] == "done", same
    assert (same["total"], same["report"]["changed"]) == (8, 0)
    started = analyst.post(
        "/v1/replays", json={"ruleset": "returns", "champion": 2, "challenger": 3, "channel": "web"}
    )
    changed = wait_for(analyst, started.get_json()["replay_id"])
    assert changed["report"]["changed"] == 5  # the 12.0 returns are now kept; 40.0 not
    assert changed["report"]["kind"] == "returns"
    assert {c["challenger"]["status"] for c in changed["changes"]} == {"keep"}
    decision_id = found[0]["decision_id"]
    one = analyst.post(f"/v1/decisions/{decision_id}/replay", json={}).get_json()
    assert one["identical"] is True
    other = analyst.post(f"/v1/decisions/{decision_id}/replay", json={"version": 3}).get_json()
    assert (one["original"]["status"], other["replayed"]["status"]) == ("return", "keep")
    listed = analyst.get("/v1/decisions?kind=return").get_json()["decisions"]
    assert len(listed) == 8
    why = analyst.get(f"/v1/decisions/{decision_id}/why-not/{found[0]['point']}").get_json()
    assert why["verdict"] == "chosen"
    scenario = analyst.post(f"/v1/decisions/{decision_id}/scenario", json={})
    assert scenario.status_code == 201, scenario.get_json()


def test_the_cli_tests_replays_and_compares_returns(shop, analyst, db_path, monkeypatch):
    from click.testing import CliRunner

    from app.edges.cli import main

    assert analyst.post("/v1/rulesets/returns/versions", json=version(3, 25)).status_code == 201
    found = returned(shop, 3, "c")
    monkeypatch.setenv("DOM_DATABASE", db_path)
    tested = CliRunner().invoke(main, ["rules", "test", "returns"])
    assert tested.exit_code == 0, tested.output
    assert "16 passed, 0 failed" in tested.output
    same = CliRunner().invoke(main, ["decisions", "replay", found[0]["decision_id"]])
    assert same.exit_code == 0 and "identical" in same.output, same.output
    other = CliRunner().invoke(
        main, ["decisions", "replay", found[0]["decision_id"], "--version", "3"]
    )
    assert other.exit_code == 1 and "different" in other.output
    compared = CliRunner().invoke(
        main, ["replay", "--ruleset", "returns", "--champion", "2", "--challenger", "3"]
    )
    assert compared.exit_code == 0, compared.output
    assert "kept_share" in compared.output and "3 of 3 decisions changed" in compared.output


def test_a_carrier_brings_it_back_at_the_cheapest_carrier_services_price(shop, app, receiver):
    from app.edges.demo import CARRIER_SERVICES
    from app.kinds.promising import carriers

    for service_id, document in CARRIER_SERVICES.items():
        put = shop["admin"].put(f"/v1/carrier-services/{service_id}", json=document)
        assert put.status_code == 201
    set_stock(shop["admin"], "DC1", {"MUG": 10})
    deliver(shop, "o12", [("MUG", 2, 25.0)])
    found = (
        shop["channel"]
        .post(
            "/v1/returns",
            json=asked("r12", "o12", [("1", 2, "changed_mind", "unopened")], method="ship_back"),
        )
        .get_json()
    )
    chosen = found["explanation"]["chosen"]
    assert chosen["carrier_service"] == "northway-standard"  # the ruleset's standard level
    weight = 2 * 0.4
    price = carriers.cost(
        CARRIER_SERVICES["northway-standard"], chosen["distance_km"], weight, False
    )
    assert chosen["trip_cost"] == round(price, 2)
    # A standard customer who changed their mind pays that postage.
    assert found["refund"]["shipping_deducted"] == chosen["trip_cost"]
    assert found["refund"]["total"] == round(50.0 - chosen["trip_cost"], 2)
    drain(app)
    [expected] = sent(receiver, "return.expected")
    assert expected["carrier_service"] == "northway-standard"


def test_the_higher_priority_sets_a_lines_attribute_and_only_on_the_lines_it_matched():
    from app.machinery.rules import runtime

    document = version(9)
    document["rules"] = [
        {
            "id": f"r{priority}",
            "priority": priority,
            "when": [{"fact": "item", "as": "i", "where": {"category": {"eq": "electronics"}}}],
            "then": [{"set": "disposition", "for": "i", "value": value}],
        }
        for priority, value in ((20, "refurbish"), (10, "dispose"), (30, "return_to_vendor"))
    ]
    document["rules"][2]["when"][0]["where"]["condition"] = {"eq": "defective"}
    facts = [
        {
            "fact": "item",
            "key": k,
            "line_id": k,
            "sku": "S",
            "qty": 1,
            "unit_price": 5.0,
            "reason": "defective",
            "condition": c,
            "category": cat,
        }
        for k, c, cat in (
            ("a", "damaged", "electronics"),
            ("b", "defective", "electronics"),
            ("c", "damaged", "home"),
        )
    ]
    result = runtime.evaluate(runtime.draft_version(document), facts)
    assert result.item_attributes["a"]["disposition"] == {"value": "refurbish", "rule": "r20"}
    assert result.item_attributes["b"]["disposition"]["value"] == "return_to_vendor"
    assert "c" not in result.item_attributes


def test_a_restocked_return_serves_a_waiting_back_order(shop, db):
    set_stock(shop["admin"], "DC1", {"MUG": 1})
    deliver(shop, "o13", [("MUG", 1, 12.0)])  # the last mug anywhere
    waiting = shop["admin"].post("/v1/orders", json=order("o14", [("MUG", 1, 12.0)])).get_json()
    assert waiting["status"] == "backordered"
    body = asked("r13", "o13", [("1", 1, "wrong_size", "unopened")], method="ship_back")
    found = shop["channel"].post("/v1/returns", json=body).get_json()
    point = found["point"]  # the DC that sold it: it sells mugs
    report(shop, point, "r13", "received")
    done = report(
        shop, point, "r13", "inspected", lines=[{"line_id": "1", "condition": "unopened"}]
    )
    assert (point, done["lines"][0]["disposition"]) == ("DC1", "restock")
    served = shop["admin"].get("/v1/orders/o14").get_json()
    assert served["status"] == "sourced"
    assert [s["node_id"] for s in served["shipments"]] == ["DC1"]


def test_damaged_electronics_are_refurbished_at_the_returns_centre(shop, app, receiver, db):
    set_stock(shop["admin"], "DC1", {"PHONE": 3})
    deliver(shop, "o15", [("PHONE", 1, 300.0)])
    found = (
        shop["channel"]
        .post(
            "/v1/returns",
            json=asked(
                "r15", "o15", [("1", 1, "damaged_in_transit", "damaged")], method="ship_back"
            ),
        )
        .get_json()
    )
    assert found["point"] == "PL1"  # the returns centre that refurbishes
    assert "damaged-to-returns-centre" in found["explanation"]["rules_fired"]
    assert found["lines"][0]["disposition"] == "refurbish"
    assert found["lines"][0]["refund"] == 300.0  # no fee: it was damaged on the way
    report(shop, "PL1", "r15", "received")
    before = stock.positions(db, ["PHONE"], ["PL1"])
    done = report(shop, "PL1", "r15", "inspected", lines=[{"line_id": "1", "condition": "damaged"}])
    assert done["lines"][0]["disposition"] == "refurbish"
    assert stock.positions(db, ["PHONE"], ["PL1"]) == before  # not on sale until refurbished
    assert report(shop, "PL1", "r15", "disposed")["status"] == "closed"
    assert shop["admin"].get("/v1/returns/r15").get_json()["status"] == "closed"


def test_a_return_is_simulated_under_a_version_or_a_draft_and_nothing_is_kept(
    shop, analyst, db, client, keys
):
    set_stock(shop["admin"], "DC1", {"MUG": 5})
    deliver(shop, "o16", [("MUG", 1, 12.0)])
    body = asked("s16", "o16", [("1", 1, "wrong_size", "unopened")])
    live = shop["channel"].post("/v1/returns/simulate", json=body).get_json()
    assert (live["status"], live["simulated"]) == ("return", True)
    assert analyst.post("/v1/rulesets/returns/versions", json=version(3, 25)).status_code == 201
    under_two = analyst.post("/v1/returns/simulate", json={**body, "ruleset_version": 3})
    assert under_two.get_json()["status"] == "keep"
    drafted = analyst.post("/v1/returns/simulate", json={**body, "draft_ruleset": version(7, 50)})
    assert drafted.get_json()["ruleset"] == {**drafted.get_json()["ruleset"], "draft": True}
    assert drafted.get_json()["status"] == "keep"
    sourcing = json.loads(
        (Path(__file__).parent.parent / "rulesets/sourcing/ruleset.json").read_text()
    )
    wrong = analyst.post("/v1/returns/simulate", json={**body, "draft_ruleset": sourcing})
    assert wrong.status_code == 422
    refused = shop["channel"].post("/v1/returns/simulate", json={**body, "ruleset_version": 3})
    assert refused.status_code == 403
    too_many = analyst.post(
        "/v1/returns/simulate", json=asked("s17", "o16", [("1", 2, "wrong_size", "unopened")])
    )
    assert too_many.status_code == 422
    assert db.execute("SELECT COUNT(*) FROM returns").fetchone()[0] == 0


def test_an_experiment_reports_goods_sold_again_and_refund_hours(shop, analyst, db):
    assert analyst.post("/v1/rulesets/returns/versions", json=version(3)).status_code == 201
    analyst.post(
        "/v1/experiments",
        json={
            "experiment_id": "ret-ob",
            "ruleset": "returns",
            "champion": 2,
            "challenger": 3,
            "mode": "split",
            "challenger_share": 0.5,
        },
    )
    set_stock(shop["admin"], "ST1", {"MUG": 1})
    found = returned(shop, 4, "ob")
    for record in found:
        point = record["point"]
        report(shop, point, record["return_id"], "received")
        report(
            shop,
            point,
            record["return_id"],
            "inspected",
            lines=[{"line_id": "1", "condition": "unopened"}],
        )
    # The store sells the returned mugs again: one order each, from ST1 (it has them now).
    points = {record["point"] for record in found}
    for number in range(4):
        body = order(
            f"again{number}",
            [("MUG", 1, 12.0)],
            delivery={"method": "pickup", "node_id": sorted(points)[0]},
        )
        assert shop["admin"].post("/v1/orders", json=body).status_code == 201
    for shipment in db.execute(
        "SELECT shipment_id, node_id FROM shipments WHERE order_id LIKE 'again%'"
    ).fetchall():
        node = shop["nodes"][shipment["node_id"]]
        path = f"/v1/shipments/{shipment['shipment_id']}/events"
        node.post(path, json={"event_id": "a", "type": "accepted"})
        node.post(
            path,
            json={"event_id": "s", "type": "shipped", "carrier": "DPD", "tracking_number": "T"},
        )
    result = analyst.get("/v1/experiments/ret-ob/report").get_json()
    both = result["variants"]
    sold = [both[v]["resold_within_30_days"] for v in both if both[v]["decisions"]]
    assert sold and all(value is not None and value > 0 for value in sold), both
    hours = [both[v]["refund_hours"] for v in both if both[v]["decisions"]]
    assert all(value is not None and 0 <= value < 1 for value in hours), both


def test_an_order_is_not_simulated_under_a_returns_draft(shop, analyst):
    set_stock(shop["admin"], "DC1", {"MUG": 5})
    body = {**order("sim1", [("MUG", 1, 12.0)]), "draft_ruleset": version(3)}
    answer = analyst.post("/v1/decisions/simulate", json=body)
    assert answer.status_code == 422
    assert [e["pointer"] for e in answer.get_json()["error"]["errors"]] == ["/draft_ruleset/kind"]


def test_a_drop_off_nobody_in_reach_takes_is_collected_or_refused_with_no_refund(
    shop, analyst, app, receiver
):
    set_stock(shop["admin"], "DC1", {"MUG": 5})
    deliver(shop, "far1", [("MUG", 1, 30.0)])
    deliver(shop, "far2", [("MUG", 1, 30.0)])
    # The Leicester store stops taking returns: the nearest counter is 130 km away.
    body = {**NODES["ST1"], "capabilities": ["ship", "pickup"]}
    assert shop["admin"].put("/v1/nodes/ST1", json=body).status_code == 200
    # The shipped ruleset sends a carrier instead, and says why.
    found = shop["channel"].post(
        "/v1/returns", json=asked("rf1", "far1", [("1", 1, "changed_mind", "unopened")])
    )
    assert found.status_code == 201, found.get_json()
    taken = found.get_json()
    assert taken["status"] == "expected" and taken["method"] == "ship_back"
    assert taken["point"] is not None and taken["refund"]["total"] > 0
    decision = shop["admin"].get(f"/v1/decisions/{taken['decision_id']}").get_json()
    assert decision["fallback"]["from"] == "drop_off" and "40 km" in decision["fallback"]["reason"]
    # A version without a fallback refuses it, and shows no refund anywhere.
    document = version(3)
    document["settings"]["methods"]["drop_off"]["fallback"] = "refuse"
    assert analyst.post("/v1/rulesets/returns/versions", json=document).status_code == 201
    activated = analyst.post("/v1/rulesets/returns/versions/3/activate", json={})
    assert activated.status_code == 201, activated.get_json()
    refused = (
        shop["channel"]
        .post("/v1/returns", json=asked("rf2", "far2", [("1", 1, "changed_mind", "unopened")]))
        .get_json()
    )
    assert (refused["status"], refused["point"]) == ("cancelled", None)
    assert refused["refund"]["total"] == 0.0
    assert [line["refund"] for line in refused["lines"]] == [0.0]
    drain(app)
    assert [r["return_id"] for r in sent(receiver, "return.refund_due")] == []
    view = shop["channel"].get("/v1/orders/far2/tracking").get_json()
    assert view["returns"] == [
        {
            "return_id": "rf2",
            "status": "cancelled",
            "refund_total": None,
            "created_at": view["returns"][0]["created_at"],
        }
    ]
