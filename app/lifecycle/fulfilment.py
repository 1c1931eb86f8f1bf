"""What nodes report back: accepted, rejected, picked, shipped, delivered.
Owns ``shipment_events``.

Events are idempotent per shipment: the same event id for the same shipment with
the same body returns the first result. Acceptance commits the node to the
shipment's dispatch date: its holds last until the node's deadlines (``holds.py``).
A rejection releases the node's holds and sources the affected lines again without
the nodes that failed them; so does a shipment no node accepted within the
ruleset's acknowledgement timeout, whose node is then sent a cancellation. A
shipment that ships consumes its holds: on hand goes down, unless a count taken
after the event's ``at`` already reflects it. When every shipment is delivered the
order is completed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from app.domain import orders, shipments
from app.domain.network import receipts, reservations, stock, transfers
from app.kinds.returns import returns
from app.kinds.sourcing import decide
from app.lifecycle import holds, resource
from app.machinery.rules import runtime
from app.platform import db as database
from app.platform import jsontext
from app.platform.db import Database
from app.platform.errors import Conflict

STATUS_FOR = {
    "accepted": "accepted",
    "rejected": "rejected",
    "picked": "picked",
    "shipped": "shipped",
    "delivered": "delivered",
}


class IllegalShipmentTransition(Conflict):
    code = "illegal_transition"


class EventIdReused(Conflict):
    code = "event_id_reused"


def record_event(db: Database, shipment_id: str, event: dict, config) -> tuple:
    """Apply a node's event to a shipment; return ``(result, replayed)``.

    The same event id for this shipment with the same body returns the first result;
    with another body it is a conflict. An event the shipment's state does not allow
    is 409.
    """
    digest = stock.body_hash(event)
    with database.immediate(db):
        orders.lock(db, shipments.get(db, shipment_id)["order_id"])
        seen = db.execute(
            "SELECT body_hash, result FROM shipment_events WHERE shipment_id = ? AND event_id = ?",
            [shipment_id, event["event_id"]],
        ).fetchone()
        if seen is not None:
            if seen["body_hash"] != digest:
                raise EventIdReused(f"event {event['event_id']!r} was sent with another body")
            return jsontext.loads(seen["result"]), True
        result = _apply(db, shipments.get(db, shipment_id), event, config)
        db.execute(
            "INSERT INTO shipment_events (event_id, shipment_id, type, body_hash, result,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?)",
            [
                event["event_id"],
                shipment_id,
                event["type"],
                digest,
                json.dumps(result),
                database.now(),
            ],
        )
    return result, False


def _apply(db, shipment: dict, event: dict, config) -> dict:
    kind = event["type"]
    target = STATUS_FOR[kind]
    if target not in shipments.TRANSITIONS[shipment["status"]]:
        raise IllegalShipmentTransition(
            f"shipment {shipment['shipment_id']} is {shipment['status']}; it cannot be {target}"
        )
    order_id = shipment["order_id"]
    fields = {}
    if kind == "shipped":
        at = database.observed_time(event["at"], ("at",)) if event.get("at") else database.now()
        for reservation in reservations.for_shipment(db, shipment["shipment_id"]):
            reservations.consume(db, reservation["reservation_id"], at)
        fields = {"carrier": event.get("carrier"), "tracking_number": event.get("tracking_number")}
    elif kind == "accepted":
        holds.commit_to_dispatch(db, shipment)
    elif kind == "picked" and shipment["method"] == "pickup":
        # At the store that picked it, a picked parcel is on the collection shelf.
        fields = {"ready_at": database.now()}
        holds.ready_for_collection(db, shipment)
    elif kind == "delivered":
        at = database.observed_time(event["at"], ("at",)) if event.get("at") else database.now()
        fields = {"delivered_at": at}
        if shipment["method"] == "ship_to_store":
            fields["ready_at"] = at  # at the store, ready for collection
        elif shipment["method"] == "transfer":
            # A consolidation's leg reached its hub: the goods are on its shelf, held there
            # for the hub's shipment to the customer.
            for transfer in transfers.of_shipment(db, shipment["shipment_id"]):
                receipts.receive(
                    db,
                    transfer["transfer_id"],
                    {"received_qty": transfer["qty"], "received_at": at},
                )
    shipments.set_status(db, shipment["shipment_id"], target, **fields)
    detail = {
        "shipment_id": shipment["shipment_id"],
        "node_id": shipment["node_id"],
        "event_id": event["event_id"],
    }
    for name in ("reason", "carrier", "tracking_number"):
        if event.get(name):
            detail[name] = event[name]
    orders.add_event(db, order_id, f"shipment.{kind}", detail)
    result = {"shipment_id": shipment["shipment_id"], "status": target, "order_id": order_id}
    if kind == "rejected":
        result["resourced"] = _reject(db, shipment, event.get("reason") or "rejected", config)
    elif kind == "delivered":
        _complete_if_done(db, order_id)
    result["order_status"] = orders.require(db, order_id)["status"]
    return result


def _reject(db, shipment: dict, reason: str, config) -> dict | None:
    """Release the node's stock and source its lines again without the nodes that failed them."""
    quantities = resource.release(db, shipment)
    return resource.resource(db, shipment["order_id"], list(quantities), config, reason)


def _complete_if_done(db, order_id: str) -> None:
    states = [s["status"] for s in shipments.for_order(db, order_id)]
    lines = orders.lines(db, order_id)
    finished = all(state in ("delivered", "cancelled", "rejected") for state in states)
    if (
        finished
        and "delivered" in states
        and all(line["qty_allocated"] == line["qty"] for line in lines)
        and orders.require(db, order_id)["status"] == "sourced"
    ):
        orders.set_status(db, order_id, "completed", {"reason": "every shipment was delivered"})
        # Goods returned before the last shipment arrived: the order says so at once.
        returns.settle_order_status(db, order_id, None)


def expire_acknowledgements(db: Database, config, now: datetime | None = None) -> list[str]:
    """Shipments no node accepted within the ruleset's timeout count as rejected.

    The node is sent a cancellation (it may still hold the request), and the lines
    are sourced again without it. Each shipment goes in a transaction of its own.
    """
    version = runtime.active_version(db, decide.RULESET)
    timeout = version["document"]["settings"].get("ack_timeout_seconds", 3600)
    cutoff = database.format_time((now or datetime.now(UTC)) - timedelta(seconds=timeout))
    expired = []
    for candidate in shipments.unacknowledged(db, cutoff):
        with database.immediate(db):
            # Checked again under the lock: the node may have answered meanwhile.
            orders.lock(db, candidate["order_id"])
            shipment = shipments.get(db, candidate["shipment_id"])
            if shipment["status"] != "requested":
                continue
            reason = f"no acceptance within {timeout} s"
            quantities = resource.withdraw(db, shipment, "ack_timeout", reason, status="rejected")
            resource.resource(db, shipment["order_id"], list(quantities), config, reason)
            expired.append(shipment["shipment_id"])
    return expired
