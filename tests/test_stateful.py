"""A stateful property test: orders, cancels, counts, node events, promises held and
quoted, returns and their points' reports, replenishment runs and their suppliers' and DCs'
answers, lapses, shipments at risk, escalations and back-orders interleaved at random,
with the invariants of the design checked after every step (among them: every open order
has a reason and a next action, an accepted shipment is withdrawn only after its node's
deadlines, and the promise an order carries never changes silently).

The service runs for real (Flask, a SQLite file, the rules engine, the dispatcher
against a receiver on 127.0.0.1); time is the test's to move for holds and
acknowledgement deadlines. ``make test`` runs a few hundred steps; ``make soak`` runs
thousands (``DOM_SOAK_EXAMPLES``, ``DOM_SOAK_STEPS``) and prints the seed to replay.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from app import create_app
from app.edges.demo import CARRIER_SERVICES
from app.edges.dispatch.worker import Dispatcher
from app.lifecycle import backorders, fulfilment, holds, tracking, waiting
from app.platform import auth
from app.platform import db as database
from tests.conftest import Api
from tests.databases import ON_POSTGRES, POSTGRES
from tests.receiver import Receiver
from tests.sourcing_helpers import CUSTOMERS, NODES, SKUS, order
from tests.test_dispatch import SECRET

NODE_IDS = ("DC1", "PL1", "ST1")
SKU_IDS = ("MUG", "CUP")
LIVE = ("pending", "requested", "accepted", "picked")
SERVED = (*LIVE, "shipped", "delivered")
EVENTS = ("accepted", "rejected", "picked", "shipped", "delivered")
CONDITIONS = ("unopened", "opened", "damaged", "defective")
RETURN_EVENTS = ("received", "inspected", "disposed")

RECEIVER = None
# One or two lines of different SKUs, 1 to 6 units each.
LINES = st.lists(
    st.tuples(st.sampled_from(SKU_IDS), st.integers(1, 6)),
    min_size=1,
    max_size=2,
    unique_by=lambda line: line[0],
)


def receiver() -> Receiver:
    """One receiver on 127.0.0.1 for every example: the nodes' webhook endpoint."""
    global RECEIVER
    if RECEIVER is None:
        RECEIVER = Receiver([SECRET])
    return RECEIVER


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Integrity(RuleBasedStateMachine):
    @initialize()
    def open_shop(self):
        self.folder = tempfile.mkdtemp(prefix="dom-stateful-")
        # Each example on a database of its own: a file, or a PostgreSQL database.
        self.url = POSTGRES.create() if ON_POSTGRES else os.path.join(self.folder, "dom.db")
        self.app = create_app(
            {
                "DATABASE": self.url,
                "WEBHOOK_ALLOW": "127.0.0.1",
                "WEBHOOK_TIMEOUT_SECONDS": 1.0,
                "RETRY_SCHEDULE": (0.0, 0.0),
                "RETRY_JITTER": 0.0,
                "RESOURCING_MAX_ROUNDS": 3,
            }
        )
        self.db = database.open_from_config(self.app.config)
        self.api = Api(self.app.test_client(), auth.create_key(self.db, "admin")[1])
        webhook = {"url": receiver().url, "secret": SECRET}
        for node_id in NODE_IDS:
            # Every node takes returns: a returned unit may come back to any of them.
            capabilities = [*NODES[node_id]["capabilities"], "returns"]
            body = {**NODES[node_id], "capabilities": capabilities, "webhook": webhook}
            assert self.api.put(f"/v1/nodes/{node_id}", json=body).status_code == 201
        for sku in SKU_IDS:
            assert self.api.put(f"/v1/skus/{sku}", json=SKUS[sku]).status_code == 201
        assert self.api.put("/v1/customers/C1", json=CUSTOMERS["C1"]).status_code == 201
        for service_id, document in CARRIER_SERVICES.items():
            response = self.api.put(f"/v1/carrier-services/{service_id}", json=document)
            assert response.status_code == 201
        self.started = datetime.now(UTC).replace(microsecond=0)
        self.hours_passed = 0
        self.count = 0
        self.feeds: list[dict] = []
        self.last_event: tuple[str, dict] | None = None
        # When the sweep withdrew each shipment, and the promise each order was placed with.
        self.withdrawn_at: dict[str, str] = {}
        self.promises: dict[str, tuple] = {}
        # The model of on hand: what each count, delta, receipt and shipment should leave.
        self.expected = {(n, s): 0 for n in NODE_IDS for s in SKU_IDS}
        self.snapshot_as_of: dict[tuple, str] = {}
        self.movements: dict[tuple, list[tuple[str, int]]] = {k: [] for k in self.expected}
        for node_id in NODE_IDS:
            self.feed(node_id, "snapshot", {"MUG": 8, "CUP": 5}, 180)
        # A wholesaler that replenishes them (home goods reach the store through the DC).
        supplier = {**NODES["SUP1"], "name": "Wholesaler", "capabilities": ["ship"]}
        assert (
            self.api.put("/v1/nodes/SUPW", json={**supplier, "webhook": webhook}).status_code == 201
        )
        catalogue = {
            "terms": {"cost_per_delivery": 15, "lead_time_days": 2, "direct_to_store": True},
            "items": [{"sku": sku, "unit_cost": 3.0, "pack_size": 2} for sku in SKU_IDS],
        }
        assert self.api.put("/v1/suppliers/SUPW/catalogue", json=catalogue).status_code == 201

    def teardown(self):
        if hasattr(self, "db"):
            self.db.close()
            shutil.rmtree(self.folder, ignore_errors=True)
            if ON_POSTGRES:
                POSTGRES.drop(self.url)

    # Helpers -------------------------------------------------------------------------

    def next_id(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def when(self, minutes_ago: int) -> str:
        return stamp(self.started - timedelta(minutes=minutes_ago))

    def feed(self, node_id: str, mode: str, items: dict[str, int], minutes_ago: int) -> None:
        key = "on_hand" if mode == "snapshot" else "delta"
        body = {
            "feed_id": self.next_id("f"),
            "node_id": node_id,
            "mode": mode,
            "as_of": self.when(minutes_ago),
            "items": [{"sku": sku, key: qty} for sku, qty in items.items()],
        }
        self.send_feed(body)
        self.feeds.append(body)

    def send_feed(self, body: dict) -> None:
        response = self.api.post("/v1/inventory/feeds", json=body)
        assert response.status_code in (200, 201, 422), response.get_json()
        if response.status_code != 201:
            return
        result = response.get_json()
        skipped = {item["sku"] for item in result["skipped"]}
        as_of = result["as_of"]
        for item in body["items"]:
            position = (body["node_id"], item["sku"])
            if item["sku"] in skipped:
                continue
            if body["mode"] == "snapshot":
                later = sum(q for at, q in self.movements[position] if at > as_of)
                self.expected[position] = max(0, item["on_hand"] + later)
                self.snapshot_as_of[position] = as_of
            else:
                self.expected[position] += item["delta"]

    def move(self, position: tuple, qty: int, at: str) -> None:
        """Goods moved at the node: on hand follows unless a newer count already saw it."""
        self.movements[position].append((at, qty))
        if self.snapshot_as_of.get(position, "") <= at:
            self.expected[position] += qty

    def pick(self, rows: list, index: int):
        return rows[index % len(rows)] if rows else None

    def shipments(self) -> list:
        return self.db.execute(
            "SELECT * FROM shipments ORDER BY created_at, shipment_id"
        ).fetchall()

    # Steps ---------------------------------------------------------------------------

    @rule(lines=LINES)
    def place_order(self, lines):
        body = order(self.next_id("o"), [(sku, qty, 10.0) for sku, qty in lines])
        response = self.api.post("/v1/orders", json=body)
        assert response.status_code == 201, response.get_json()

    @rule(lines=LINES)
    def hold_promise(self, lines):
        body = {
            "lines": [{"sku": sku, "qty": qty, "unit_price": 10.0} for sku, qty in lines],
            "destination": {"postcode": "LE1 5AD", "country": "GB", "lat": 52.6369, "lon": -1.1398},
            "methods": ["ship"],
            "hold": True,
            "promise_id": self.next_id("p"),
        }
        response = self.api.post("/v1/promises", json=body)
        assert response.status_code in (201, 409), response.get_json()

    @rule(index=st.integers(0, 10_000))
    def order_quoting_a_promise(self, index):
        rows = self.db.execute(
            "SELECT promise_id, request FROM promises WHERE status = 'held' ORDER BY created_at"
        ).fetchall()
        picked = self.pick(rows, index)
        if picked is None:
            return
        request = json.loads(picked[1])
        lines = [(line["sku"], line["qty"], 10.0) for line in request["lines"]]
        body = order(self.next_id("o"), lines, promise_id=picked[0])
        response = self.api.post("/v1/orders", json=body)
        assert response.status_code == 201, response.get_json()

    @rule(index=st.integers(0, 10_000))
    def cancel(self, index):
        rows = self.db.execute("SELECT order_id FROM orders ORDER BY created_at").fetchall()
        picked = self.pick(rows, index)
        if picked is None:
            return
        response = self.api.post(f"/v1/orders/{picked[0]}/cancel")
        assert response.status_code in (200, 409), response.get_json()

    @rule(
        node_id=st.sampled_from(NODE_IDS),
        sku=st.sampled_from(SKU_IDS),
        count=st.integers(0, 15),
        minutes_ago=st.integers(0, 180),
    )
    def count_stock(self, node_id, sku, count, minutes_ago):
        self.feed(node_id, "snapshot", {sku: count}, minutes_ago)

    @rule(
        node_id=st.sampled_from(NODE_IDS),
        sku=st.sampled_from(SKU_IDS),
        delta=st.one_of(st.integers(-5, -1), st.integers(1, 8)),
        minutes_ago=st.integers(0, 180),
    )
    def adjust_stock(self, node_id, sku, delta, minutes_ago):
        self.feed(node_id, "delta", {sku: delta}, minutes_ago)

    @rule(index=st.integers(0, 10_000))
    def repeat_feed(self, index):
        body = self.pick(self.feeds, index)
        if body is not None:
            self.send_feed(body)

    @rule(
        node_id=st.sampled_from(NODE_IDS),
        sku=st.sampled_from(SKU_IDS),
        qty=st.integers(1, 5),
        minutes_ago=st.integers(0, 180),
    )
    def receive_transfer(self, node_id, sku, qty, minutes_ago):
        transfer_id = self.next_id("t")
        body = {
            "transfer_id": transfer_id,
            "sku": sku,
            "qty": qty,
            "origin": "supplier",
            "destination_node_id": node_id,
            "eta": self.when(0),
        }
        assert self.api.post("/v1/inventory/transfers", json=body).status_code == 201
        at = self.when(minutes_ago)
        receipt = self.api.post(
            f"/v1/inventory/transfers/{transfer_id}/receipt", json={"received_at": at}
        )
        assert receipt.status_code == 201, receipt.get_json()
        self.move((node_id, sku), qty, receipt.get_json()["received_at"])

    @rule(
        index=st.integers(0, 10_000),
        kind=st.sampled_from(EVENTS),
        minutes_ago=st.integers(0, 180),
    )
    def node_reports(self, index, kind, minutes_ago):
        shipment = self.pick(self.shipments(), index)
        if shipment is None:
            return
        body = {"event_id": self.next_id("e"), "type": kind}
        if kind == "rejected":
            body["reason"] = "cannot fulfil"
        if kind == "shipped":
            body.update(carrier="DPD", tracking_number="T", at=self.when(minutes_ago))
        self.report(shipment["shipment_id"], body)

    @rule(index=st.integers(0, 10_000), minutes_ago=st.integers(0, 180))
    def node_delivers(self, index, minutes_ago):
        """A node's whole happy path at once, so that goods reach customers (and come back)."""
        live = [s for s in self.shipments() if s["status"] in LIVE]
        shipment = self.pick(live, index)
        if shipment is None:
            return
        for kind in ("accepted", "shipped", "delivered"):
            body = {"event_id": self.next_id("e"), "type": kind}
            if kind == "shipped":
                body.update(carrier="DPD", tracking_number="T", at=self.when(minutes_ago))
            self.report(shipment["shipment_id"], body)

    @rule()
    def node_repeats_itself(self):
        if self.last_event is not None:
            self.report(*self.last_event)

    def report(self, shipment_id: str, body: dict) -> None:
        held = self.db.execute(
            "SELECT node_id, sku, qty, counted_at FROM reservations WHERE shipment_id = ?"
            " AND status IN ('active', 'expired')",
            [shipment_id],
        ).fetchall()
        response = self.api.post(f"/v1/shipments/{shipment_id}/events", json=body)
        assert response.status_code in (200, 201, 409), response.get_json()
        self.last_event = (shipment_id, body)
        if response.status_code == 201 and body["type"] == "shipped":
            at = database.normalize_time(body["at"])
            for hold in held:
                if hold["counted_at"] is None:
                    self.move((hold["node_id"], hold["sku"]), -hold["qty"], at)

    @rule(
        index=st.integers(0, 10_000),
        qty=st.integers(1, 4),
        condition=st.sampled_from(CONDITIONS),
        method=st.sampled_from(("drop_off", "ship_back", "collect")),
        handled=st.integers(0, 3),
    )
    def return_goods(self, index, qty, condition, method, handled):
        """A customer returns goods; the point may at once report the first ``handled`` of
        received, inspected and disposed (or leave them to ``point_reports``)."""
        delivered = self.db.execute(
            "SELECT order_id, lines FROM shipments WHERE status = 'delivered' ORDER BY shipment_id"
        ).fetchall()
        shipment = self.pick(delivered, index)
        if shipment is None:
            # Nothing delivered yet: a node delivers first, so that returns are frequent.
            self.node_delivers(index, 0)
            return
        line = json.loads(shipment["lines"])[0]
        body = {
            "return_id": self.next_id("r"),
            "order_id": shipment["order_id"],
            "method": method,
            "lines": [
                {
                    "line_id": line["line_id"],
                    "qty": qty,
                    "reason": "wrong_size",
                    "condition": condition,
                }
            ],
        }
        response = self.api.post("/v1/returns", json=body)
        # 422: more than was delivered and not yet returned.
        assert response.status_code in (201, 422), response.get_json()
        event(f"return asked: {response.status_code}")
        if response.status_code == 201 and response.get_json()["point"]:
            for kind in RETURN_EVENTS[:handled]:
                self.point_reports(0, kind, condition, 0, body["return_id"])

    @rule(
        index=st.integers(0, 10_000),
        kind=st.sampled_from(RETURN_EVENTS),
        condition=st.sampled_from(CONDITIONS),
        minutes_ago=st.integers(0, 180),
    )
    def point_reports(self, index, kind, condition, minutes_ago, return_id=None):
        found = self.db.execute(
            "SELECT return_id, point_node_id, status FROM returns"
            " WHERE point_node_id IS NOT NULL AND return_id = COALESCE(?, return_id)"
            " ORDER BY return_id",
            [return_id],
        ).fetchall()
        # Mostly a return whose state takes this report; otherwise any (refused with 409).
        ready = {"received": "expected", "inspected": "received", "disposed": "inspected"}
        fitting = [row for row in found if row["status"] == ready[kind]]
        chosen = self.pick(fitting if fitting and index % 4 else found, index)
        if chosen is None:
            return
        return_id, point = chosen["return_id"], chosen["point_node_id"]
        lines = self.db.execute(
            "SELECT line_id, sku, qty FROM return_lines WHERE return_id = ?", [return_id]
        ).fetchall()
        at = self.when(minutes_ago)
        body = {"event_id": self.next_id("re"), "type": kind, "at": at}
        if kind == "inspected":
            body["lines"] = [{"line_id": line["line_id"], "condition": condition} for line in lines]
        response = self.api.post(f"/v1/returns/{return_id}/events", json=body)
        assert response.status_code in (201, 409), response.get_json()
        event(f"return {kind}: {response.status_code}")
        if response.status_code == 201 and kind == "inspected":
            skus = {line["line_id"]: line["sku"] for line in lines}
            for line in response.get_json()["lines"]:
                if "restocked_at" in line:
                    self.move(
                        (point, skus[line["line_id"]]), line["qty"], database.normalize_time(at)
                    )

    @rule(sold=st.integers(0, 6), approve=st.booleans())
    def replenish(self, sold, approve):
        """Yesterday's sales are reported and a replenishment run plans today (again, on a
        day already planned: nothing more for the positions planned)."""
        today = (self.started + timedelta(hours=self.hours_passed)).date()
        items = [
            {
                "node_id": node_id,
                "sku": sku,
                # The service's clock, not the test's: it refuses sales on days to come.
                "day": (datetime.now(UTC).date() - timedelta(days=1)).isoformat(),
                "units": sold,
            }
            for node_id in NODE_IDS
            for sku in SKU_IDS
        ]
        feed = {"feed_id": self.next_id("d"), "items": items}
        assert self.api.post("/v1/demand/feeds", json=feed).status_code == 201
        run = {"run_id": self.next_id("run"), "horizon": today.isoformat()}
        response = self.api.post("/v1/replenishment/runs", json=run)
        assert response.status_code == 201, response.get_json()
        event(f"replenishment orders: {len(response.get_json()['orders'])}")
        if approve:
            approved = self.api.post(f"/v1/replenishment/runs/{run['run_id']}/approve")
            assert approved.status_code == 200, approved.get_json()

    @rule(
        index=st.integers(0, 10_000),
        kind=st.sampled_from(("accepted", "rejected", "shipped", "received")),
        minutes_ago=st.integers(0, 180),
    )
    def source_answers(self, index, kind, minutes_ago, order_id=None):
        """A supplier or DC answers an order it was sent (or the destination receives it);
        out of order, it is refused and changes nothing."""
        rows = self.db.execute(
            "SELECT order_id, type, source_node_id, destination_node_id, status"
            " FROM replenishment_orders WHERE order_id = COALESCE(?, order_id)"
            " ORDER BY created_at, order_id",
            [order_id],
        ).fetchall()
        chosen = self.pick(rows, index)
        if chosen is None:
            return
        lines = self.db.execute(
            "SELECT sku, qty FROM replenishment_lines WHERE order_id = ?", [chosen["order_id"]]
        ).fetchall()
        at = self.when(minutes_ago)
        body = {"event_id": self.next_id("oe"), "type": kind, "at": at}
        response = self.api.post(f"/v1/replenishment/orders/{chosen['order_id']}/events", json=body)
        # 409: out of order, or a DC that no longer holds what it would send.
        assert response.status_code in (201, 409), response.get_json()
        event(f"replenishment {kind}: {response.status_code}")
        if response.status_code != 201:
            return
        moment = database.normalize_time(at)
        leaves = kind == "accepted" or (kind == "shipped" and chosen["status"] == "requested")
        if leaves and chosen["type"] == "transfer":
            for line in lines:
                self.move((chosen["source_node_id"], line["sku"]), -line["qty"], moment)
        if kind == "received":
            for line in lines:
                self.move((chosen["destination_node_id"], line["sku"]), line["qty"], moment)

    @rule(index=st.integers(0, 10_000), minutes_ago=st.integers(0, 180))
    def order_arrives(self, index, minutes_ago):
        """A requested order's whole path at once, so that replenishment reaches the shelf."""
        requested = self.db.execute(
            "SELECT order_id FROM replenishment_orders WHERE status = 'requested'"
            " ORDER BY created_at, order_id"
        ).fetchall()
        chosen = self.pick(requested, index)
        if chosen is None:
            return
        for kind in ("accepted", "shipped", "received"):
            self.source_answers(0, kind, minutes_ago, chosen["order_id"])

    @rule()
    def dispatch(self):
        dispatcher = Dispatcher(self.app.config, worker="stateful", rng=random.Random(0))
        for _ in range(3):
            if dispatcher.run_once(self.db) == 0:
                break

    @rule(hours=st.integers(1, 30))
    def time_passes(self, hours):
        self.hours_passed += hours
        moment = datetime.now(UTC) + timedelta(hours=self.hours_passed)
        now = database.format_time(moment)
        holds.flag_at_risk(self.db, now)
        for shipment_id in holds.lapse(self.db, self.app.config, now):
            self.withdrawn_at[shipment_id] = now
        fulfilment.expire_acknowledgements(self.db, self.app.config, moment)
        waiting.escalate(self.db, now)

    @rule()
    def backorders_run(self):
        backorders.resume_raised(self.db)

    # Invariants ----------------------------------------------------------------------

    @invariant()
    def each_position_is_ordered_once_a_day(self):
        rows = self.db.execute(
            "SELECT o.destination_node_id, l.sku, r.horizon, COUNT(*) FROM replenishment_orders o"
            " JOIN replenishment_lines l ON l.order_id = o.order_id"
            " JOIN replenishment_runs r ON r.run_id = o.run_id"
            " WHERE o.status NOT IN ('rejected', 'cancelled')"
            " GROUP BY o.destination_node_id, l.sku, r.horizon HAVING COUNT(*) > 1"
        ).fetchall()
        assert not rows, [tuple(row) for row in rows]

    @invariant()
    def replenishment_in_transit_matches_its_orders(self):
        rows = self.db.execute(
            "SELECT o.order_id, o.status, l.qty, l.received_qty, t.status, t.qty, t.received_qty"
            " FROM replenishment_orders o JOIN replenishment_lines l ON l.order_id = o.order_id"
            " LEFT JOIN transfers t ON t.transfer_id = l.transfer_id"
        ).fetchall()
        for order_id, status, qty, received, transfer, moving, arrived in rows:
            if status in ("accepted", "shipped"):
                assert (transfer, moving) == ("in_transit", qty), order_id
            elif status == "received":
                assert (transfer, arrived) == ("received", received), order_id
            else:
                assert transfer is None, order_id

    @invariant()
    def holds_fit_on_hand(self):
        rows = self.db.execute(
            "SELECT r.node_id, r.sku, SUM(r.qty), COALESCE(s.on_hand, 0) FROM reservations r"
            " LEFT JOIN stock s ON s.node_id = r.node_id AND s.sku = r.sku"
            " WHERE r.status = 'active' AND r.supply = 'on_hand' AND r.counted_at IS NULL"
            " GROUP BY r.node_id, r.sku, s.on_hand"
        ).fetchall()
        for node_id, sku, held, on_hand in rows:
            assert held <= on_hand, f"{node_id}/{sku}: {held} held, {on_hand} on hand"

    @invariant()
    def only_held_promises_hold_stock(self):
        rows = self.db.execute(
            "SELECT p.promise_id, p.status FROM promises p JOIN reservations r"
            " ON r.reference = 'promise:' || p.promise_id WHERE r.status = 'active'"
        ).fetchall()
        for promise_id, status in rows:
            assert status == "held", f"promise {promise_id} is {status} and still holds stock"

    @invariant()
    def stock_is_conserved(self):
        actual = {
            (row[0], row[1]): row[2]
            for row in self.db.execute("SELECT node_id, sku, on_hand FROM stock")
        }
        for position, expected in self.expected.items():
            assert actual.get(position, 0) == expected, (position, actual.get(position), expected)

    @invariant()
    def orders_agree_with_their_lines_and_shipments(self):
        served: dict[tuple, int] = {}
        live: dict[str, int] = {}
        for shipment in self.shipments():
            if shipment["status"] in LIVE:
                live[shipment["order_id"]] = live.get(shipment["order_id"], 0) + 1
            if shipment["status"] not in SERVED:
                continue
            for line in json.loads(shipment["lines"]):
                key = (shipment["order_id"], line["line_id"])
                served[key] = served.get(key, 0) + line["qty"]
        totals: dict[str, list[int]] = {}
        for line in self.db.execute("SELECT * FROM order_lines"):
            key = (line["order_id"], line["line_id"])
            assert line["qty_allocated"] == served.get(key, 0), (key, dict(line))
            total = totals.setdefault(line["order_id"], [0, 0])
            total[0] += line["qty_allocated"]
            total[1] += line["qty"]
        for order_id, status in self.db.execute("SELECT order_id, status FROM orders"):
            allocated, wanted = totals[order_id]
            if status == "cancelled":
                assert not live.get(order_id), order_id
            elif status in ("sourced", "completed", "partially_returned", "returned"):
                assert allocated == wanted, (order_id, status, allocated, wanted)
            elif status == "partially_sourced":
                assert 0 < allocated < wanted, (order_id, status, allocated, wanted)
            elif status == "backordered":
                assert allocated == 0, (order_id, allocated)

    @invariant()
    def the_customer_sees_what_the_lines_and_parcels_say(self):
        # Counted here unit by unit from the rows, apart from the product's own derivation.
        for order_id, status, broken in self.db.execute(
            "SELECT order_id, status, promise_broken_at FROM orders"
        ).fetchall():
            lines = self.db.execute(
                "SELECT qty - qty_cancelled, qty_allocated FROM order_lines WHERE order_id = ?",
                [order_id],
            ).fetchall()
            left = sum(row[0] for row in lines)
            short = any(row[1] < row[0] for row in lines)
            units = {"on_its_way": 0, "at_store": 0, "with_customer": 0, "waiting": 0}
            late = False
            for s in self.shipments():
                if s["order_id"] != order_id or s["method"] == "transfer":
                    continue
                if s["status"] in ("cancelled", "rejected"):
                    continue
                qty = sum(line["qty"] for line in json.loads(s["lines"]))
                where = {
                    ("pickup", "picked"): "at_store",
                    ("pickup", "shipped"): "at_store",
                    ("pickup", "delivered"): "with_customer",
                    ("ship_to_store", "shipped"): "on_its_way",
                    ("ship_to_store", "delivered"): "at_store",
                }.get((s["method"], s["status"]))
                if where is None:
                    where = {"shipped": "on_its_way", "delivered": "with_customer"}.get(
                        s["status"], "waiting"
                    )
                units[where] += qty
                late = late or (where == "waiting" and s["at_risk_at"] is not None)
            moving = units["on_its_way"] + units["at_store"] + units["with_customer"]
            unsent = units["waiting"] > 0 or short
            if status == "cancelled" or left == 0:
                expected = "cancelled"
            elif status == "returned":
                expected = "returned"
            elif units["with_customer"] >= left:
                expected = "delivered"
            elif unsent and (late or broken):
                expected = "delayed"
            elif units["at_store"]:
                expected = "ready_for_pickup"
            elif units["with_customer"]:
                expected = "partially_delivered"
            elif units["on_its_way"]:
                expected = "shipped" if moving >= left else "partially_shipped"
            elif any(row[1] for row in lines):
                expected = "sourced"
            else:
                expected = "received"
            view = tracking.view(self.db, order_id)
            assert view["status"] == expected, (order_id, status, units, view["status"])
            # What the customer was told: numbered from 1 with no gap, each parcel's
            # stages in order, and nothing after the order was cancelled.
            told = [
                json.loads(row[0])
                for row in self.db.execute(
                    "SELECT detail FROM order_events WHERE order_id = ?"
                    " AND type = 'customer_message' ORDER BY event_id",
                    [order_id],
                )
            ]
            assert [m["sequence"] for m in told] == list(range(1, len(told) + 1)), order_id
            assert [m["message"] for m in told].count("order.cancelled") <= 1, order_id
            if told and "order.cancelled" in [m["message"] for m in told]:
                assert told[-1]["message"] == "order.cancelled", (order_id, told)
            for parcel in view["parcels"]:
                said = [m["message"] for m in told if m.get("shipment_id") == parcel["shipment_id"]]
                if status == "cancelled":
                    continue
                path = {
                    "pickup": ["order.ready_for_pickup", "order.delivered"],
                    "ship_to_store": ["order.shipped", "order.ready_for_pickup"],
                }.get(parcel["method"], ["order.shipped", "order.delivered"])
                stages = ["preparing", *[m.split(".")[1] for m in path]]
                reached = stages.index(parcel["stage"])
                assert said == path[:reached], (order_id, parcel["shipment_id"], said)

    @invariant()
    def returns_never_exceed_deliveries(self):
        delivered: dict[tuple, int] = {}
        for shipment in self.shipments():
            if shipment["status"] == "delivered":
                for line in json.loads(shipment["lines"]):
                    key = (shipment["order_id"], line["line_id"])
                    delivered[key] = delivered.get(key, 0) + line["qty"]
        for order_id, line_id, back in self.db.execute(
            "SELECT l.order_id, l.line_id, SUM(l.qty) FROM return_lines l JOIN returns r"
            " ON r.return_id = l.return_id WHERE r.status <> 'cancelled'"
            " GROUP BY l.order_id, l.line_id"
        ):
            assert back <= delivered.get((order_id, line_id), 0), (order_id, line_id, back)
        # A finished order's status says how much came back.
        for order_id, status, ordered, back in self.db.execute(
            "SELECT o.order_id, o.status, (SELECT SUM(qty) FROM order_lines x"
            " WHERE x.order_id = o.order_id), (SELECT COALESCE(SUM(l.qty), 0) FROM return_lines"
            " l JOIN returns r ON r.return_id = l.return_id WHERE l.order_id = o.order_id"
            " AND r.status <> 'cancelled') FROM orders o"
            " WHERE o.status IN ('completed', 'partially_returned', 'returned')"
        ):
            wanted = (
                "completed"
                if back == 0
                else "returned"
                if back >= ordered
                else ("partially_returned")
            )
            assert status == wanted, (order_id, status, ordered, back)

    @invariant()
    def each_nodes_day_counts_its_shipments(self):
        counted = {
            (row[0], row[1]): row[2]
            for row in self.db.execute(
                "SELECT node_id, node_day, shipments FROM node_day_shipments WHERE shipments != 0"
            )
        }
        actual = {
            (row[0], row[1]): row[2]
            for row in self.db.execute(
                "SELECT node_id, node_day, COUNT(*) FROM shipments WHERE status != 'cancelled'"
                " GROUP BY node_id, node_day"
            )
        }
        assert counted == actual

    @invariant()
    def no_shipment_waits_for_nothing(self):
        for shipment in self.shipments():
            holds_left = self.db.execute(
                "SELECT COUNT(*) FROM reservations WHERE shipment_id = ? AND status = 'active'",
                [shipment["shipment_id"]],
            ).fetchone()[0]
            if shipment["status"] in LIVE:
                # Its hold will lapse (or the node will act): something moves it.
                assert holds_left, f"{shipment['shipment_id']} is {shipment['status']} unheld"
            else:
                assert not holds_left, f"{shipment['shipment_id']} is {shipment['status']}"

    @invariant()
    def every_withdrawal_is_told_to_the_node(self):
        rows = self.db.execute(
            "SELECT s.shipment_id FROM shipments s WHERE s.withdrawn_reason IS NOT NULL"
            " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.shipment_id = s.shipment_id"
            " AND o.event_type = 'fulfillment.cancelled')"
        ).fetchall()
        assert not rows, [row[0] for row in rows]

    @invariant()
    def an_accepted_shipment_is_withdrawn_only_after_its_deadlines(self):
        # Never for the node's silence alone once it accepted, never before its dates.
        for row in self.db.execute(
            "SELECT s.shipment_id, s.withdrawn_reason, s.ship_by, s.withdraw_by FROM shipments s"
            " WHERE s.withdrawn_reason IN ('hold_lapsed', 'dispatch_overdue') AND EXISTS"
            " (SELECT 1 FROM shipment_events e WHERE e.shipment_id = s.shipment_id"
            " AND e.type = 'accepted')"
        ):
            shipment_id, reason, ship_by, withdraw_by = row
            assert reason == "dispatch_overdue", (shipment_id, reason)
            assert self.withdrawn_at[shipment_id] >= withdraw_by > ship_by, tuple(row)

    @invariant()
    def every_open_order_has_a_reason_and_a_next_action(self):
        now = database.format_time(datetime.now(UTC) + timedelta(hours=self.hours_passed))
        found = waiting.report(self.db, now)
        waiting_orders = self.db.execute(
            "SELECT COUNT(*) FROM orders WHERE status IN ('sourced', 'partially_sourced',"
            " 'backordered', 'on_hold')"
        ).fetchone()[0]
        assert found["open"] == waiting_orders == len(found["orders"])
        for entry in found["orders"]:
            assert entry["reason"] in waiting.REASONS and entry["next_action"], entry

    @invariant()
    def the_promise_an_order_carries_never_changes_silently(self):
        for row in self.db.execute(
            "SELECT order_id, promised_by, requested_service, promise_id FROM orders"
        ):
            carried = tuple(row)[1:]
            assert self.promises.setdefault(row[0], carried) == carried, row[0]
        # A later decision that lands after the promised date (or leaves a line waiting)
        # says so on the order's timeline.
        for order_id, promised_by, broken in self.db.execute(
            "SELECT o.order_id, o.promised_by, o.promise_broken_at FROM orders o"
            " WHERE o.promised_by IS NOT NULL AND EXISTS (SELECT 1 FROM shipments s"
            " JOIN decisions d ON d.decision_id = s.decision_id"
            " WHERE s.order_id = o.order_id AND d.kind IN ('resource', 'backorder')"
            " AND (s.promised_until IS NULL OR s.promised_until > o.promised_by))"
        ):
            assert broken is not None, (order_id, promised_by)

    @invariant()
    def messages_die_only_after_their_schedule(self):
        schedule = len(self.app.config["RETRY_SCHEDULE"])
        rows = self.db.execute(
            "SELECT message_id, attempts FROM outbox WHERE status = 'dead' AND attempts <= ?",
            [schedule],
        ).fetchall()
        assert not rows, [tuple(row) for row in rows]


Integrity.TestCase.settings = settings(
    max_examples=int(os.environ.get("DOM_SOAK_EXAMPLES", "25")),
    stateful_step_count=int(os.environ.get("DOM_SOAK_STEPS", "50")),
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
TestIntegrity = Integrity.TestCase
