"""A retailer's week on a controlled clock: orders placed for seven days, then ten more days
for the goods to arrive, on the demo network, through the API as channels and nodes use it.

Each order is quoted first: a promise held for the way the customer chose (home delivery,
express, click-and-collect, ship-to-store), then placed quoting it. The mix: home delivery,
express, click-and-collect, ship-to-store, drop-ship SKUs, the demo's VIPs, multi-line carts,
and scarce SKUs that run out (restocked by a transfer that arrives mid-week). Nodes answer
requests at once, day or night (their systems do), but ship only on their working days:
on the dispatch date, a few a day late, and some reject. Carriers deliver in the promised
window, a few a day or two late. Customers collect pickups a while after they are ready.
Channels release held orders after a review, take up offers of another pickup store, cancel
a few orders, and cancel back-orders they are asked about. The dispatcher's sweeps run
every hour.

The simulation counts for itself what it saw: the date each customer was quoted, when each
parcel arrived, what it was told (``order.promise_broken`` messages to its subscription),
which orders it cancelled. It prints the product's figures beside its own and exits 1 when
they differ, when an order is stranded (open, past its deadline, and nobody asked), or when
an accepted shipment was withdrawn although every node shipped within its grace.

``make simulate-week`` (seed 5, 60 orders a day) writes the charts to ``docs/week/``.
"""

from __future__ import annotations

import heapq
import itertools
import json
import random
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import time_machine

from app import create_app
from app.domain.network import nodes as nodes_module
from app.edges import demo
from app.lifecycle import backorders, fulfilment, holds, tracking, waiting
from app.platform import auth
from app.platform import db as database
from bench.charts import line_chart

LONDON = ZoneInfo("Europe/London")
START = datetime(2027, 1, 11, 0, 0, tzinfo=LONDON)  # a Monday
ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "week"
REJECT = {"store": 0.05, "dc": 0.01, "3pl": 0.02, "supplier": 0.03}
# Shipped a day after the dispatch date (within the ruleset's grace), or two (at risk: the
# node is asked, and ships before it would be withdrawn).
SHIPS_LATE = {1: 0.05, 2: 0.01}
CARRIER_LATE = {1: 0.04, 2: 0.01}  # days late: share of parcels
CANCELS = 0.02
# What a parcel's customer hears when its node reports (method, event): a consolidation's
# legs are no parcel of theirs, a pickup's hand-over at the counter is no journey.
CUSTOMER_TOLD = {
    **{(m, "shipped"): "order.shipped" for m in ("ship", "same_day", "ship_to_store")},
    **{(m, "delivered"): "order.delivered" for m in ("ship", "same_day", "pickup")},
    ("ship_to_store", "delivered"): "order.ready_for_pickup",
    ("pickup", "picked"): "order.ready_for_pickup",
}
PARCEL_MESSAGES = ("order.shipped", "order.ready_for_pickup", "order.delivered")
WAYS = (
    ("home", 0.45),
    ("express", 0.15),
    ("pickup", 0.17),
    ("ship_to_store", 0.08),
    ("dropship", 0.07),
    ("scarce", 0.08),
)


def stamp(moment: datetime) -> str:
    return database.format_time(moment)


@dataclass
class Order:
    """What the simulation itself knows of one order."""

    order_id: str
    channel: str
    quoted: str | None = None  # the end of the window the customer was quoted
    cancelled: bool = False
    told_broken: bool = False
    arrivals: dict = field(default_factory=dict)  # shipment_id -> when it reached the customer
    # What the customer must be told of the parcels, in the order it happened here.
    parcel_messages: list = field(default_factory=list)  # (shipment_id, message type)


class Week:
    """The service on a fresh database, its clock, and everybody around it."""

    def __init__(self, folder: str, seed: int, per_day: int, order_days: int, settle_days: int):
        self.seed = seed
        self.rng = random.Random(seed)
        self.per_day, self.order_days, self.settle_days = per_day, order_days, settle_days
        self.clock = time_machine.travel(START, tick=False)
        self.now = START
        self.clock.start()
        self.app = create_app(
            {
                "DATABASE": str(Path(folder) / "week.db"),
                "LOG_LEVEL": "ERROR",
                "RESOURCING_MAX_ROUNDS": 5,
                "WEBHOOK_ALLOW": "127.0.0.1",
            }
        )
        self.db = database.open_from_config(self.app.config)
        self.client = self.app.test_client()
        self.network = demo.network(7)
        demo.load(self.db)
        self.keys = {role: auth.create_key(self.db, role)[1] for role in ("admin", "channel")}
        self.node_keys: dict[str, str] = {}
        self.orders: dict[str, Order] = {}
        self.queue: list = []  # (when, sequence, action, arguments)
        self.sequence = itertools.count()
        self.seen: set[str] = set()  # shipments the nodes have answered
        self.shipped: set[str] = set()
        self.late_beyond_grace = 0
        self.withdrawn_accepted: list[str] = []
        self.daily: list[dict] = []
        # What the channel is told is counted in the outbox (nothing is delivered here).
        subscription = {
            "url": "http://127.0.0.1:9/channel-events",
            "event_types": ["order.promise_broken", "order.action_needed", *tracking.MESSAGES],
        }
        self.subscribed = self.call("channel", "POST", "/v1/subscriptions", subscription)[0] == 201

    # The world's plumbing -----------------------------------------------------------

    def call(self, role: str, method: str, path: str, body=None, node_id=None):
        key = self.node_key(node_id) if node_id else self.keys[role]
        answer = self.client.open(
            path, method=method, json=body, headers={"Authorization": f"Bearer {key}"}
        )
        return answer.status_code, answer.get_json()

    def node_key(self, node_id: str) -> str:
        if node_id not in self.node_keys:
            self.node_keys[node_id] = auth.create_key(self.db, "node", node_id=node_id)[1]
        return self.node_keys[node_id]

    def at(self, moment: datetime, action, *arguments) -> None:
        heapq.heappush(self.queue, (moment, next(self.sequence), action, arguments))

    def move_to(self, moment: datetime) -> None:
        if moment > self.now:
            self.now = moment
            self.clock.stop()
            self.clock = time_machine.travel(moment, tick=False)
            self.clock.start()

    # Customers and channels ------------------------------------------------------------

    def plan_orders(self) -> None:
        customers = sorted(self.network["customers"])
        skus = self.network["skus"]
        dc_stock: dict[str, int] = {}
        for feed in self.network["feeds"]:
            if self.network["nodes"][feed["node_id"]]["type"] in ("dc", "3pl"):
                for item in feed["items"]:
                    dc_stock[item["sku"]] = dc_stock.get(item["sku"], 0) + item.get("on_hand", 0)
        plenty = sorted(sku for sku, units in dc_stock.items() if units >= 40)
        # A few SKUs run short this week: counts leave a handful at one DC, none elsewhere.
        self.scarce = sorted(self.rng.sample(plenty, 6))
        plenty = [sku for sku in plenty if sku not in self.scarce]
        self.scarce_dc = next(
            n for n, doc in sorted(self.network["nodes"].items()) if doc["type"] == "dc"
        )
        for feed in self.network["feeds"]:
            held = [i["sku"] for i in feed["items"] if i["sku"] in self.scarce]
            if held:
                left = 4 if feed["node_id"] == self.scarce_dc else 0
                count = {
                    "feed_id": f"SCARCE-{feed['node_id']}",
                    "node_id": feed["node_id"],
                    "mode": "snapshot",
                    "as_of": stamp(self.now),
                    "items": [{"sku": sku, "on_hand": left} for sku in held],
                }
                status, answer = self.call("admin", "POST", "/v1/inventory/feeds", count)
                assert status == 201, answer
        dropship = sorted(code for code, doc in skus.items() if doc.get("suppliers"))
        number = 0
        for day in range(self.order_days):
            for _ in range(self.per_day):
                number += 1
                minute = self.rng.randrange(7 * 60, 23 * 60)
                when = START + timedelta(days=day, minutes=minute)
                way = self.rng.choices([w for w, _ in WAYS], [s for _, s in WAYS])[0]
                pool = {"dropship": dropship, "scarce": self.scarce}.get(way, plenty)
                count = self.rng.choice((1, 1, 1, 2, 3))
                lines = sorted(set(self.rng.choice(pool) for _ in range(count)))
                if way == "dropship" and self.rng.random() < 0.5:
                    lines = sorted({*lines, self.rng.choice(plenty)})  # mixed with owned goods
                customer = self.rng.choice(customers)
                order_id = f"WK-{number:04d}"
                self.at(when, self.place, order_id, way, customer, lines)

    def place(self, order_id: str, way: str, customer_id: str, skus: list[str]) -> None:
        customer = self.network["customers"][customer_id]
        address = next(
            a for a in customer["addresses"] if a["address_id"] == customer["default_address_id"]
        )
        place = {k: address[k] for k in ("lines", "city", "postcode", "country", "lat", "lon")}
        lines = [
            {
                "line_id": str(n + 1),
                "sku": sku,
                "qty": self.rng.choice((1, 1, 2)),
                "unit_price": round(self.rng.uniform(5, 90), 2),
            }
            for n, sku in enumerate(skus)
        ]
        channel = self.rng.choice(("web", "web", "app", "store", "call_center", "marketplace"))
        methods = {"pickup": ["pickup"], "ship_to_store": ["ship_to_store"]}.get(way, ["ship"])
        request = {
            "lines": [{k: line[k] for k in ("sku", "qty", "unit_price")} for line in lines],
            "destination": place,
            "customer_id": customer_id,
            "channel": channel,
            "methods": methods,
            "hold": True,
            "promise_id": f"Q-{order_id}",
        }
        if way == "express":
            request["service_levels"] = ["express"]
        status, promise = self.call("channel", "POST", "/v1/promises", request)
        if status != 201 and methods != ["ship"]:
            # Not that way: the customer takes home delivery instead.
            request["methods"] = ["ship"]
            status, promise = self.call("channel", "POST", "/v1/promises", request)
        body = {
            "order_id": order_id,
            "channel": channel,
            "customer_id": customer_id,
            "delivery": {"method": "ship", "address": place},
            "lines": lines,
        }
        record = Order(order_id, channel)
        if status == 201:
            held = promise["held_option"]
            body["promise_id"] = promise["promise_id"]
            if held["method"] in ("pickup", "ship_to_store"):
                body["delivery"] = {"method": held["method"], "node_id": held["store_id"]}
            record.quoted = held["window"]["to"]
        status, decision = self.call("channel", "POST", "/v1/orders", body)
        assert status == 201, decision
        windows = [s["delivery_window"] for s in decision["shipments"]]
        if record.quoted is None and decision["status"] == "sourced" and all(windows):
            # No promise could be held: the customer was told the dates of the decision.
            record.quoted = max(window["to"] for window in windows)
        self.orders[order_id] = record
        if self.rng.random() < CANCELS:
            self.at(self.now + timedelta(minutes=40), self.cancel, order_id)

    def cancel(self, order_id: str) -> None:
        status, _ = self.call("channel", "POST", f"/v1/orders/{order_id}/cancel")
        if status == 200:
            self.orders[order_id].cancelled = True

    def channel_acts(self) -> None:
        """Held orders are reviewed and released, offers answered, and back-orders the
        channel is asked about cancelled."""
        _, report = self.call("channel", "GET", "/v1/reports/open-orders?limit=5000")
        for entry in report["orders"]:
            order_id = entry["order_id"]
            waited = self.now - datetime.fromisoformat(entry["since"].replace("Z", "+00:00"))
            if entry["reason"] == "on_hold" and waited >= timedelta(hours=2):
                self.call("channel", "POST", f"/v1/orders/{order_id}/release", {"note": "reviewed"})
            elif entry["reason"] == "pickup_offer" and waited >= timedelta(hours=1):
                _, order = self.call("channel", "GET", f"/v1/orders/{order_id}")
                held = [
                    e for e in order["timeline"] if e["type"] == "status_changed" and e.get("offer")
                ][-1]
                if self.rng.random() < 0.75:
                    self.call(
                        "channel",
                        "POST",
                        f"/v1/orders/{order_id}/release",
                        {"pickup_node_id": held["offer"]["pickup_node_id"]},
                    )
                else:
                    self.cancel(order_id)
            elif entry["escalated_at"] and entry["reason"] in ("no_supply", "awaiting_supply"):
                self.cancel(order_id)

    # Nodes and carriers ----------------------------------------------------------------

    def nodes_act(self) -> None:
        rows = self.db.execute(
            "SELECT s.shipment_id, s.node_id, s.status, s.method, s.dispatch_date,"
            " s.promised_date, s.promised_until, s.order_id, s.created_at, n.type, n.timezone"
            " FROM shipments s JOIN nodes n ON n.node_id = s.node_id"
            " WHERE s.status IN ('pending', 'requested', 'accepted', 'picked')"
            " ORDER BY s.created_at, s.order_id, s.node_id"
        ).fetchall()
        for row in rows:
            shipment = dict(row)
            if shipment["status"] in ("pending", "requested"):
                self.answer(shipment)
            elif shipment["shipment_id"] not in self.shipped:
                self.ship_when_due(shipment)

    def roll(self, shipment: dict, what: str) -> random.Random:
        """The dice of one shipment: the same whatever order the service lists them in
        (its ids are random)."""
        key = f"{self.seed}:{shipment['order_id']}:{shipment['node_id']}:{shipment['created_at']}"
        return random.Random(f"{key}:{what}")

    def answer(self, shipment: dict) -> None:
        shipment_id = shipment["shipment_id"]
        if shipment_id in self.seen:
            return
        self.seen.add(shipment_id)
        if self.roll(shipment, "reject").random() < REJECT[shipment["type"]]:
            self.event(shipment, "rejected", reason="stock not found at the pick face")
        else:
            self.event(shipment, "accepted")

    def ship_when_due(self, shipment: dict) -> None:
        zone = ZoneInfo(shipment["timezone"])
        local = self.now.astimezone(zone)
        shipment_id = shipment["shipment_id"]
        if shipment["method"] == "pickup":
            # The store picks it onto the collection shelf within the day; the customer
            # comes by later.
            if shipment["status"] == "accepted" and 9 <= local.hour < 18:
                self.event(shipment, "picked")
                self.shipped.add(shipment_id)
                collect = self.now + timedelta(hours=self.roll(shipment, "collect").randint(2, 52))
                self.at(collect, self.collect, shipment)
            return
        dispatch = shipment["dispatch_date"] or local.date().isoformat()
        due = datetime.fromisoformat(dispatch).replace(hour=15, tzinfo=zone)
        roll = self.roll(shipment, "late").random()
        for days, share in SHIPS_LATE.items():
            if roll < share:
                due += timedelta(days=days)
                break
            roll -= share
        if self.now < due:
            return
        self.shipped.add(shipment_id)
        self.event(
            shipment, "shipped", carrier="sim", tracking_number=shipment_id, at=stamp(self.now)
        )
        if shipment["promised_until"]:
            until = datetime.fromisoformat(shipment["promised_until"].replace("Z", "+00:00"))
            arrive = until - timedelta(minutes=self.roll(shipment, "arrive").randint(10, 480))
        else:
            arrive = self.now + timedelta(days=3)
        roll = self.roll(shipment, "carrier").random()
        for days, share in CARRIER_LATE.items():
            if roll < share:
                arrive += timedelta(days=days)
                break
            roll -= share
        self.at(max(arrive, self.now + timedelta(minutes=5)), self.deliver, shipment)

    def deliver(self, shipment: dict) -> None:
        if self.event(shipment, "delivered", at=stamp(self.now)):
            self.orders[shipment["order_id"]].arrivals[shipment["shipment_id"]] = stamp(self.now)

    def collect(self, shipment: dict) -> None:
        # Handed over at the counter: ready when picked (what the customer was promised).
        picked = self.db.execute(
            "SELECT ready_at FROM shipments WHERE shipment_id = ?", [shipment["shipment_id"]]
        ).fetchone()[0]
        if self.event(
            shipment, "shipped", carrier="counter", tracking_number="-", at=stamp(self.now)
        ) and self.event(shipment, "delivered", at=stamp(self.now)):
            self.orders[shipment["order_id"]].arrivals[shipment["shipment_id"]] = picked

    def event(self, shipment: dict, kind: str, **extra) -> bool:
        body = {"event_id": f"{shipment['shipment_id']}-{kind}", "type": kind, **extra}
        status, _ = self.call(
            "node",
            "POST",
            f"/v1/shipments/{shipment['shipment_id']}/events",
            body,
            node_id=shipment["node_id"],
        )
        told = CUSTOMER_TOLD.get((shipment["method"], kind))
        if status == 201 and told:
            self.orders[shipment["order_id"]].parcel_messages.append(
                (shipment["shipment_id"], told)
            )
        return status == 201

    # Supply ------------------------------------------------------------------------------

    def plan_supply(self) -> None:
        """Monday morning a supplier sends the scarce SKUs to the main DC; they arrive on
        Wednesday."""
        dc = self.scarce_dc
        arrive = START + timedelta(days=2, hours=10)
        for sku in self.scarce:
            transfer = {
                "transfer_id": f"SUPPLY-{sku}",
                "sku": sku,
                "qty": 60,
                "origin": "supplier",
                "destination_node_id": dc,
                "eta": stamp(arrive),
            }
            self.at(START + timedelta(hours=9), self.send, transfer)
            self.at(arrive, self.receive, transfer)

    def send(self, transfer: dict) -> None:
        self.call("admin", "POST", "/v1/inventory/transfers", transfer)

    def receive(self, transfer: dict) -> None:
        self.call(
            "admin",
            "POST",
            f"/v1/inventory/transfers/{transfer['transfer_id']}/receipt",
            {"received_qty": transfer["qty"], "received_at": stamp(self.now)},
        )

    # The clock -----------------------------------------------------------------------------

    def sweep(self) -> None:
        """The dispatcher's sweeps, as it runs them."""
        now = stamp(self.now)
        holds.flag_at_risk(self.db, now)
        lapsed = holds.lapse(self.db, self.app.config, now)
        for shipment_id in lapsed:
            accepted = self.db.execute(
                "SELECT 1 FROM shipment_events WHERE shipment_id = ? AND type = 'accepted'",
                [shipment_id],
            ).fetchone()
            if accepted:
                self.withdrawn_accepted.append(shipment_id)
        fulfilment.expire_acknowledgements(self.db, self.app.config, self.now)
        backorders.resume_raised(self.db)
        waiting.escalate(self.db, now)

    def run(self) -> dict:
        self.plan_orders()
        self.plan_supply()
        hours = (self.order_days + self.settle_days) * 24
        for hour in range(1, hours + 1):
            tick = START + timedelta(hours=hour)
            while self.queue and self.queue[0][0] <= tick:
                when, _, action, arguments = heapq.heappop(self.queue)
                self.move_to(when)
                action(*arguments)
            self.move_to(tick)
            self.nodes_act()
            self.channel_acts()
            self.sweep()
            if hour % 24 == 0:
                self.daily.append(self.day_figures(hour // 24))
        return self.figures()

    # Counting ------------------------------------------------------------------------------

    def day_figures(self, day: int) -> dict:
        statuses = dict(
            self.db.execute("SELECT status, COUNT(*) FROM orders GROUP BY status").fetchall()
        )
        placed = sum(statuses.values())
        finished = sum(statuses.get(s, 0) for s in ("completed", "partially_returned", "returned"))
        return {
            "day": day,
            "placed": placed,
            "finished": finished,
            "cancelled": statuses.get("cancelled", 0),
            "open": placed - finished - statuses.get("cancelled", 0),
        }

    def figures(self) -> dict:
        told = {
            row[0]
            for row in self.db.execute(
                "SELECT order_id FROM outbox WHERE event_type = 'order.promise_broken'"
            )
        }
        # The simulation's own count: quoted orders not cancelled, kept when every parcel
        # reached the customer by the quoted date and nobody was told otherwise.
        own = {"kept": 0, "broken": 0, "pending": 0}
        by_order = {}
        for order in self.orders.values():
            if order.cancelled or order.quoted is None:
                continue
            status = self.db.execute(
                "SELECT status FROM orders WHERE order_id = ?", [order.order_id]
            ).fetchone()[0]
            if status == "cancelled":
                continue
            live = self.db.execute(
                "SELECT shipment_id FROM shipments WHERE order_id = ?"
                " AND status NOT IN ('cancelled', 'rejected')",
                [order.order_id],
            ).fetchall()
            arrived = [order.arrivals.get(row[0]) for row in live]
            done = (
                bool(live)
                and all(arrived)
                and status not in ("backordered", "partially_sourced", "on_hold")
            )
            late = any(a and a > order.quoted for a in arrived)
            if late or order.order_id in told or (not done and stamp(self.now) > order.quoted):
                outcome = "broken"
            elif done:
                outcome = "kept"
            else:
                outcome = "pending"
            own[outcome] += 1
            by_order[order.order_id] = outcome
        _, product = self.call(
            "channel",
            "GET",
            "/v1/reports/promises?per=order&group_by=channel&since=2026-12-01&until=2028-01-01",
        )
        theirs = {k: sum(row[k] for row in product["rows"]) for k in ("kept", "broken", "pending")}
        _, causes = self.call(
            "channel",
            "GET",
            "/v1/reports/promises?per=order&group_by=cause&since=2026-12-01&until=2028-01-01",
        )
        _, open_report = self.call("channel", "GET", "/v1/reports/open-orders?limit=5000")
        now = stamp(self.now)
        stranded = [
            e["order_id"]
            for e in open_report["orders"]
            if e["reason"] in waiting.ESCALATED
            and not e["escalated_at"]
            and e["deadline"]
            and e["deadline"] < now
        ]
        stranded += [e["order_id"] for e in open_report["orders"] if not e["next_action"]]
        statuses = dict(
            self.db.execute("SELECT status, COUNT(*) FROM orders GROUP BY status").fetchall()
        )
        placed = sum(statuses.values())
        finished = sum(statuses.get(s, 0) for s in ("completed", "partially_returned", "returned"))
        own_cancelled = sum(1 for o in self.orders.values() if o.cancelled)
        messages = self.customer_messages()
        return {
            "placed": placed,
            "own_placed": len(self.orders),
            "finished": finished,
            "cancelled": statuses.get("cancelled", 0),
            "own_cancelled": own_cancelled,
            "open": open_report["open"],
            "open_by_reason": {r["reason"]: r["orders"] for r in open_report["by_reason"]},
            "stranded": stranded,
            "promises_product": theirs,
            "promises_own": own,
            "broken_by_cause": {
                row["cause"]: row["orders"] for row in causes["rows"] if row["cause"]
            },
            "withdrawn_accepted": len(self.withdrawn_accepted),
            "at_risk": self.db.execute(
                "SELECT COUNT(*) FROM shipments WHERE at_risk_at IS NOT NULL"
            ).fetchone()[0],
            "legs": self.db.execute(
                "SELECT COUNT(*) FROM shipments WHERE method = 'transfer'"
            ).fetchone()[0],
            "rejections": self.db.execute(
                "SELECT COUNT(*) FROM shipment_events WHERE type = 'rejected'"
            ).fetchone()[0],
            "promise_broken_told": len(told),
            "customer_messages": messages["by_type"],
            "customer_messages_wrong": messages["wrong"],
            "timeline": dict(
                self.db.execute(
                    "SELECT type, COUNT(*) FROM order_events WHERE type IN ('released',"
                    " 'action_needed', 'promise_broken', 'shipment.withdrawn',"
                    " 'shipment.at_risk', 'lines_cancelled', 'pickup_replaced') GROUP BY type"
                ).fetchall()
            ),
            "ways": dict(
                Counter(
                    json.loads(row[0])["delivery"]["method"]
                    for row in self.db.execute("SELECT body FROM orders")
                )
            ),
            "daily": self.daily,
        }

    def customer_messages(self) -> dict:
        """What the channel's subscription was sent for its customers, checked order by order
        against what happened here: numbered from 1 without a gap, every parcel's news in
        the order the nodes reported it, one ``order.cancelled`` last for each order
        cancelled here."""
        sent: dict[str, list[dict]] = {}
        for (payload,) in self.db.execute(
            "SELECT payload FROM outbox WHERE subscription_id IS NOT NULL AND event_type IN"
            f" ({','.join('?' * len(tracking.MESSAGES))})",
            list(tracking.MESSAGES),
        ):
            body = json.loads(payload)
            sent.setdefault(body["data"]["order_id"], []).append(
                {"type": body["type"], **body["data"]}
            )
        wrong = []
        for order in self.orders.values():
            got = sorted(sent.get(order.order_id, []), key=lambda m: m["sequence"])
            numbers = [m["sequence"] for m in got]
            if numbers != list(range(1, len(got) + 1)):
                wrong.append(f"{order.order_id}: numbered {numbers}")
            parcels = [(m["shipment_id"], m["type"]) for m in got if m["type"] in PARCEL_MESSAGES]
            if parcels != order.parcel_messages:
                wrong.append(f"{order.order_id}: told {parcels}, saw {order.parcel_messages}")
            cancelled = [m["type"] == "order.cancelled" for m in got]
            if order.cancelled and (cancelled.count(True) != 1 or not cancelled[-1]):
                wrong.append(f"{order.order_id}: cancelled here, told {[m['type'] for m in got]}")
        return {
            "by_type": dict(Counter(m["type"] for found in sent.values() for m in found)),
            "wrong": wrong,
        }

    def close(self) -> None:
        self.db.close()
        self.clock.stop()


def simulate(seed: int = 5, per_day: int = 60, order_days: int = 7, settle_days: int = 10) -> dict:
    """Run the week in a temporary folder; return the figures."""
    nodes_module._KNOWN.clear()
    with tempfile.TemporaryDirectory() as folder:
        week = Week(folder, seed, per_day, order_days, settle_days)
        try:
            return week.run()
        finally:
            week.close()


def problems(figures: dict) -> list[str]:
    """Where the product and the simulation's own count disagree, or an order is stuck."""
    found = []
    if figures["promises_product"] != figures["promises_own"]:
        found.append(
            f"promises: the report says {figures['promises_product']},"
            f" the simulation counted {figures['promises_own']}"
        )
    if figures["stranded"]:
        found.append(f"stranded orders: {figures['stranded'][:10]}")
    if figures["withdrawn_accepted"]:
        found.append(f"{figures['withdrawn_accepted']} accepted shipments withdrawn")
    if figures["customer_messages_wrong"]:
        found.append(f"customer messages: {figures['customer_messages_wrong'][:5]}")
    if figures["placed"] != figures["own_placed"]:
        found.append(
            f"orders: the product has {figures['placed']}, the simulation placed"
            f" {figures['own_placed']}"
        )
    return found


def chart(daily: list[dict], path: Path) -> None:
    """An SVG chart of the orders day by day: placed, finished, open and cancelled."""
    colours = {
        "placed": "#1f1f1f",
        "finished": "#188038",
        "open": "#0b57d0",
        "cancelled": "#b3261e",
    }
    line_chart(
        path,
        "Orders of the simulated week, day by day",
        "Orders at the end of each day: placed, finished, open, cancelled",
        {name: (colour, [d[name] for d in daily]) for name, colour in colours.items()},
        {n: str(d["day"]) for n, d in enumerate(daily)},
        right=170,
        stroke="2",
        footer="day (orders are placed on days 1 to 7)",
    )


def print_figures(figures: dict, seed: int, per_day: int) -> None:
    own, theirs = figures["promises_own"], figures["promises_product"]
    decided = own["kept"] + own["broken"]
    not_cancelled = figures["placed"] - figures["cancelled"]
    print(f"A retailer's week (seed {seed}, {per_day} orders a day for 7 days, 10 days to settle)")
    print(f"  orders placed                      {figures['placed']:>6}")
    print(f"  cancelled (channels, customers)    {figures['cancelled']:>6}")
    print(
        f"  complete                           {figures['finished']:>6}"
        f"  ({figures['finished'] / max(1, not_cancelled):.1%} of those not cancelled)"
    )
    print(f"  still open                         {figures['open']:>6}  {figures['open_by_reason']}")
    print(f"  stranded (must be 0)               {len(figures['stranded']):>6}")
    print(
        f"  promises kept per order, report    {theirs['kept']:>6} of"
        f" {theirs['kept'] + theirs['broken']}  (pending {theirs['pending']})"
    )
    print(
        f"  promises kept per order, counted   {own['kept']:>6} of {decided}"
        f"  ({own['kept'] / max(1, decided):.1%}; pending {own['pending']})"
    )
    print(f"  broken, by cause                   {figures['broken_by_cause']}")
    print(f"  channel told of a broken promise   {figures['promise_broken_told']:>6}")
    print(f"  rejections by nodes                {figures['rejections']:>6}")
    print(f"  ship-complete legs consolidated    {figures['legs']:>6}")
    print(f"  shipments at risk (asked)          {figures['at_risk']:>6}")
    print(f"  accepted shipments withdrawn       {figures['withdrawn_accepted']:>6}  (must be 0)")
    print(f"  orders by delivery                 {figures['ways']}")
    print(f"  on the orders' timelines           {figures['timeline']}")
    told = figures["customer_messages"]
    print(f"  customer messages sent             {sum(told.values()):>6}  {told}")
    print(f"  missing or out of order (must be 0) {len(figures['customer_messages_wrong']):>5}")


def main(seed: int = 5, per_day: int = 60) -> int:
    figures = simulate(seed, per_day)
    print_figures(figures, seed, per_day)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "orders-by-day.svg"
    chart(figures["daily"], path)
    print(f"chart: {path.relative_to(ROOT)}")
    found = problems(figures)
    for problem in found:
        print(f"DIFFERS: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(*(int(a) for a in sys.argv[1:3])))
