"""What happens to an order after its first decision: cancellation, back-orders, its view."""

from __future__ import annotations

import logging

import sqlite_utils

from app import db as database
from app import decisions, orders, shipments
from app.dispatch import outbox
from app.network import reservations
from app.rules import runtime
from app.sourcing import decide

log = logging.getLogger(__name__)
BACKORDERS_PER_CALL = 100


def view(db: sqlite_utils.Database, order_id: str) -> dict:
    """The order with its lines, shipments and their states, decisions and timeline."""
    order = orders.require(db, order_id)
    body = order["body"]
    return {
        "order_id": order_id,
        "status": order["status"],
        "channel": order["channel"],
        "customer_id": order["customer_id"],
        "delivery": body["delivery"],
        "requested_service": body.get("requested_service"),
        "promised_by": body.get("promised_by"),
        "lines": orders.lines(db, order_id),
        "shipments": shipments.for_order(db, order_id),
        "decisions": decisions.for_order(db, order_id),
        "timeline": orders.timeline(db, order_id),
        "created_at": order["created_at"],
        "updated_at": order["updated_at"],
    }


def cancel(db: sqlite_utils.Database, order_id: str) -> dict:
    """Cancel an order: release what it reserved, cancel open shipments, record it.

    Cancelling a cancelled order changes nothing (a retry); a completed one is 409.
    """
    with database.immediate(db):
        order = orders.require(db, order_id)
        if order["status"] != "cancelled":
            orders.check_transition(order_id, order["status"], "cancelled")
            cancelled = shipments.cancel_open(db, order_id)
            released = reservations.release_for_shipments(db, [s["shipment_id"] for s in cancelled])
            for shipment in cancelled:
                outbox.enqueue(
                    db,
                    "fulfillment.cancelled",
                    {
                        "shipment_id": shipment["shipment_id"],
                        "order_id": order_id,
                        "node_id": shipment["node_id"],
                    },
                    node_id=shipment["node_id"],
                    shipment_id=shipment["shipment_id"],
                    order_id=order_id,
                )
            orders.set_status(
                db,
                order_id,
                "cancelled",
                {"shipments_cancelled": len(cancelled), "reservations_released": released},
            )
    return view(db, order_id)


def resume_backorders(db: sqlite_utils.Database, skus: list[str]) -> list[str]:
    """Decide again, oldest first, the missing lines of orders waiting for these SKUs.

    Returns the ids of the orders that got new shipments.
    """
    resumed = []
    for order_id in orders.waiting_for(db, sorted(set(skus)), BACKORDERS_PER_CALL):
        try:
            if resume(db, order_id):
                resumed.append(order_id)
        except reservations.InsufficientStock:  # pragma: no cover - lock held throughout
            log.warning("back-order %s lost a race for stock; it stays waiting", order_id)
    return resumed


def resume(db: sqlite_utils.Database, order_id: str) -> dict | None:
    """Source what is still missing of one order, if stock now allows; None if nothing changed."""
    with database.immediate(db):
        order = orders.require(db, order_id)
        if order["status"] not in ("backordered", "partially_sourced"):
            return None
        missing = orders.missing(db, order_id)
        if not missing:
            return None
        body = {**order["body"], "lines": missing}
        version = runtime.active_version(db, decide.RULESET)
        settings = version["document"]["settings"]
        decision, facts, context = decide.make_decision(db, body, version, settings)
        if not decision["shipments"]:
            return None
        decision["status"] = "partially_sourced" if decision["unfulfilled"] else "sourced"
        decision["backorder"] = True
        return decide.commit(db, body, decision, facts, context, settings, "backorder")
