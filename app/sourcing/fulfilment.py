"""What nodes report back: accepted, rejected, picked, shipped, delivered.
Owns ``shipment_events``.

A rejection (or no acceptance within the ruleset's acknowledgement timeout)
releases the node's reservations and sources the affected lines again without
the nodes that rejected them; after ``RESOURCING_MAX_ROUNDS`` rounds the order
is put on hold. A shipment that ships consumes its reservations (on hand goes
down). When every shipment is delivered the order is completed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import sqlite_utils

from app import db as database
from app import decisions, orders, shipments
from app.errors import Conflict
from app.network import reservations, stock
from app.rules import runtime
from app.sourcing import decide

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


def record_event(db: sqlite_utils.Database, shipment_id: str, event: dict, config) -> tuple:
    """Apply a node's event to a shipment; return ``(result, replayed)``.

    The same event id with the same body returns the first result; with another
    body it is a conflict. An event the shipment's state does not allow is 409.
    """
    digest = stock.body_hash(event)
    with database.immediate(db):
        seen = db.execute(
            "SELECT body_hash, result FROM shipment_events WHERE event_id = ?", [event["event_id"]]
        ).fetchone()
        if seen is not None:
            if seen["body_hash"] != digest:
                raise EventIdReused(f"event {event['event_id']!r} was sent with another body")
            return json.loads(seen["result"]), True
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
        for reservation in reservations.for_shipment(db, shipment["shipment_id"]):
            reservations.consume(db, reservation["reservation_id"])
        fields = {"carrier": event.get("carrier"), "tracking_number": event.get("tracking_number")}
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
    """Release the node's stock and source its lines again without the rejecting nodes."""
    reservations.release_for_shipments(db, [shipment["shipment_id"]])
    quantities: dict[str, int] = {}
    for line in shipment["lines"]:
        quantities[line["line_id"]] = quantities.get(line["line_id"], 0) + line["qty"]
    orders.deallocate(db, shipment["order_id"], quantities)
    return resource(db, shipment["order_id"], list(quantities), config, reason)


def resource(db, order_id: str, line_ids: list[str], config, reason: str) -> dict | None:
    """Decide the missing quantities of these lines again; hold the order when out of rounds."""
    order = orders.require(db, order_id)
    if order["status"] in ("cancelled", "completed"):
        return None
    rounds = decisions.count(db, order_id, "resource")
    limit = config["RESOURCING_MAX_ROUNDS"]
    if rounds >= limit:
        orders.set_status(
            db,
            order_id,
            "on_hold",
            {"reason": f"re-sourcing stopped after {limit} rounds ({reason})"},
        )
        return None
    missing = orders.missing(db, order_id, line_ids)
    if not missing:
        return None
    body = {**order["body"], "lines": missing}
    version = runtime.active_version(db, decide.RULESET)
    settings = version["document"]["settings"]
    decision, facts, context = decide.make_decision(
        db, body, version, settings, excluded_nodes=shipments.rejected_nodes(db, order_id)
    )
    decision["resourced_because"] = reason
    lines = orders.lines(db, order_id)
    gained = {}
    for shipment in decision["shipments"]:
        for line in shipment["lines"]:
            gained[line["line_id"]] = gained.get(line["line_id"], 0) + line["qty"]
    allocated = sum(line["qty_allocated"] + gained.get(line["line_id"], 0) for line in lines)
    total = sum(line["qty"] for line in lines)
    decision["status"] = (
        "on_hold"
        if decision["status"] == "on_hold"
        else "sourced"
        if allocated == total
        else "partially_sourced"
        if allocated
        else "backordered"
    )
    decide.commit(db, body, decision, facts, context, settings, "resource")
    return {
        "decision_id": decision["decision_id"],
        "status": decision["status"],
        "shipments": [s["shipment_id"] for s in decision["shipments"]],
    }


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


def expire_acknowledgements(db: sqlite_utils.Database, config) -> list[str]:
    """Shipments no node accepted within the ruleset's timeout count as rejected."""
    version = runtime.active_version(db, decide.RULESET)
    timeout = version["document"]["settings"].get("ack_timeout_seconds", 3600)
    cutoff = database.format_time(datetime.now(UTC) - timedelta(seconds=timeout))
    expired = []
    for shipment in shipments.unacknowledged(db, cutoff):
        event = {
            "event_id": f"ack-timeout-{shipment['shipment_id']}",
            "type": "rejected",
            "reason": f"no acceptance within {timeout} s",
        }
        try:
            record_event(db, shipment["shipment_id"], event, config)
            expired.append(shipment["shipment_id"])
        except Conflict:
            continue  # accepted or cancelled meanwhile
    return expired
