"""An order as a whole after its first decision: its view (lines, shipments, returns) and
its cancellation."""

from __future__ import annotations

import logging

from app.domain import orders, shipments
from app.domain.network import nodes, reservations
from app.kinds.returns import returns
from app.lifecycle import redecide, resource
from app.machinery import decisions
from app.platform import db as database
from app.platform.db import Database
from app.platform.errors import Conflict, InvalidInput, field_error

log = logging.getLogger(__name__)
SHIPPED = ("shipped", "delivered")


def view(db: Database, order_id: str) -> dict:
    """The order with its lines, shipments and their states, decisions, returns and
    timeline."""
    order = orders.require(db, order_id)
    return {
        "order_id": order_id,
        "status": order["status"],
        "channel": order["channel"],
        "customer_id": order["customer_id"],
        "delivery": orders.as_decided(order)["delivery"],
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


class NotOnHold(Conflict):
    code = "not_on_hold"


def release(db: Database, order_id: str, body: dict, by: str) -> dict:
    """Release an order from its hold: a person (admin, or the channel that owns it) decided
    it may go on. Its missing lines are decided again, without the rules' holds, for the
    promise it carries; ``pickup_node_id`` takes up the offer of another pickup store.

    Releasing a released order again changes nothing (a retry); an order that is not on
    hold and was never released is 409 ``not_on_hold``."""
    with database.immediate(db):
        orders.lock(db, order_id)
        order = orders.require(db, order_id)
        if order["status"] != "on_hold":
            if orders.last_event(db, order_id, "released") is not None:
                return view(db, order_id)
            raise NotOnHold(f"order {order_id!r} is {order['status']}, not on hold")
        changes: dict = {"released": True}
        if body.get("pickup_node_id"):
            delivery = {**orders.as_decided(order)["delivery"], "node_id": body["pickup_node_id"]}
            check_pickup_store(db, order, body["pickup_node_id"])
            orders.redirect(db, order_id, delivery)
            changes["delivery"] = delivery
        orders.add_event(
            db,
            order_id,
            "released",
            {"by": by, **{k: body[k] for k in ("note", "pickup_node_id") if body.get(k)}},
        )
        missing = orders.missing(db, order_id)
        if missing:
            redecide.decide_again(db, order, missing, f"released by {by}", **changes)
        else:
            orders.set_status(db, order_id, "sourced", {"reason": f"released by {by}"})
    return view(db, order_id)


def check_pickup_store(db: Database, order: dict, node_id: str) -> None:
    """422 unless the order is collected from a store and ``node_id`` is an active store
    that hands over pickups."""
    method = order["body"]["delivery"]["method"]
    found = nodes.existing(db, [node_id]).get(node_id)
    problem = None
    if method not in ("pickup", "ship_to_store"):
        problem = f"the order is delivered by {method}, not collected from a store"
    elif found is None or not found["active"]:
        problem = f"node {node_id!r} does not exist or is not active"
    elif "pickup" not in found["capabilities"]:
        problem = f"node {node_id!r} does not hand over pickups"
    if problem:
        raise InvalidInput([field_error(("pickup_node_id",), problem)])
