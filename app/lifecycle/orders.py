"""An order as a whole after its first decision: its view (lines, shipments, returns) and
its cancellation."""

from __future__ import annotations

import logging

from app.domain import orders, shipments
from app.domain.network import reservations
from app.kinds.returns import returns
from app.lifecycle import resource
from app.machinery import decisions
from app.platform import db as database
from app.platform.db import Database
from app.platform.errors import Conflict

log = logging.getLogger(__name__)
SHIPPED = ("shipped", "delivered")


def view(db: Database, order_id: str) -> dict:
    """The order with its lines, shipments and their states, decisions, returns and
    timeline."""
    order = orders.require(db, order_id)
    body = order["body"]
    return {
        "order_id": order_id,
        "status": order["status"],
        "channel": order["channel"],
        "customer_id": order["customer_id"],
        "delivery": body["delivery"],
        "requested_service": order["requested_service"],
        "promised_by": order["promised_by"],
        "promise_id": order["promise_id"],
        "promise_broken_at": order["promise_broken_at"],
        "lines": orders.lines(db, order_id),
        "shipments": shipments.for_order(db, order_id),
        "decisions": decisions.for_order(db, order_id),
        "returns": returns.for_order(db, order_id),
        "timeline": orders.timeline(db, order_id),
        "created_at": order["created_at"],
        "updated_at": order["updated_at"],
    }


class AlreadyShipped(Conflict):
    code = "already_shipped"


def cancel(db: Database, order_id: str) -> dict:
    """Cancel an order: withdraw its open shipments (their nodes are told), release its holds.

    Cancelling a cancelled order changes nothing (a retry). An order with goods
    already shipped cannot be cancelled (409 ``already_shipped``: return them
    instead); nor can a completed one.
    """
    with database.immediate(db):
        orders.lock(db, order_id)
        order = orders.require(db, order_id)
        if order["status"] != "cancelled":
            orders.check_transition(order_id, order["status"], "cancelled")
            gone = [s for s in shipments.for_order(db, order_id) if s["status"] in SHIPPED]
            if gone:
                raise AlreadyShipped(
                    f"order {order_id!r} has shipped goods"
                    f" ({', '.join(s['shipment_id'] for s in gone)}); it cannot be cancelled"
                )
            cancelled = shipments.live(
                db, [s["shipment_id"] for s in shipments.for_order(db, order_id)]
            )
            released = 0
            for shipment in cancelled:
                released += len(reservations.for_shipment(db, shipment["shipment_id"]))
                resource.withdraw(db, shipment, "order_cancelled", "the order was cancelled")
            orders.set_status(
                db,
                order_id,
                "cancelled",
                {"shipments_cancelled": len(cancelled), "reservations_released": released},
            )
    return view(db, order_id)
