"""Taking a shipment back from its node, and sourcing its lines again.

Whatever ends a live shipment early goes through here: the node rejects it, the
node lets its acknowledgement deadline pass, its hold lapses, a count shows the
stock gone, or the order is cancelled. Its holds are released in the same
transaction (the freed SKUs are noted for waiting orders), the node is sent
``fulfillment.cancelled`` unless it was the one that said no, and the lines are
decided again without the nodes that failed them. After ``RESOURCING_MAX_ROUNDS``
rounds the order is put on hold.
"""

from __future__ import annotations

from app.domain import orders, shipments
from app.domain.network import reservations, transfers
from app.lifecycle import pickups, redecide
from app.machinery import decisions
from app.platform.db import Database
from app.platform.messaging import outbox

# Why the service takes a shipment back from its node.
WITHDRAWN = (
    "consolidation_broken",
    "ack_timeout",
    "hold_lapsed",
    "dispatch_overdue",
    "uncollected",
    "recount",
    "order_cancelled",
)


def withdraw(
    db: Database,
    shipment: dict,
    reason: str,
    message: str,
    status: str = "cancelled",
    hold_status: str = "released",
) -> dict[str, int]:
    """Take a live shipment back: ``status`` (cancelled, or rejected for a missed deadline),
    holds released, the node told, the lines' quantities unallocated. Call in a transaction.

    ``reason`` is a code (``WITHDRAWN``), ``message`` says it for people. Returns
    ``{line_id: qty}`` taken back from the order's lines.
    """
    if reason not in WITHDRAWN:
        raise ValueError(f"unknown withdrawal reason {reason!r}")
    shipment_id = shipment["shipment_id"]
    if shipments.get(db, shipment_id)["status"] not in shipments.OPEN:
        return {}  # taken back already (with the rest of its consolidation)
    shipments.set_status(db, shipment_id, status, withdrawn_reason=reason)
    quantities = release(db, shipment, hold_status)
    outbox.enqueue(
        db,
        "fulfillment.cancelled",
        {
            "shipment_id": shipment_id,
            "order_id": shipment["order_id"],
            "node_id": shipment["node_id"],
            "reason": reason,
            "message": message,
        },
        node_id=shipment["node_id"],
        shipment_id=shipment_id,
        order_id=shipment["order_id"],
    )
    orders.add_event(
        db,
        shipment["order_id"],
        "shipment.withdrawn",
        {
            "shipment_id": shipment_id,
            "node_id": shipment["node_id"],
            "reason": reason,
            "message": message,
        },
    )
    return quantities


def release(db: Database, shipment: dict, hold_status: str = "released") -> dict:
    """Free a shipment's holds and unallocate its lines; return ``{line_id: qty}``.

    A consolidation stands or falls whole: when one of its shipments goes (a leg, or the
    hub's shipment to the customer), the others are withdrawn too, a leg's transfers are
    cancelled, and the hub's lines are what comes back to be decided again."""
    reservations.release_for_shipments(db, [shipment["shipment_id"]], hold_status)
    quantities: dict[str, int] = {}
    if shipment["method"] == "transfer":
        transfers.cancel_for_shipment(db, shipment["shipment_id"])
    else:
        for line in shipment["lines"]:
            quantities[line["line_id"]] = quantities.get(line["line_id"], 0) + line["qty"]
        orders.deallocate(db, shipment["order_id"], quantities)
    for partner in _consolidated_with(db, shipment):
        message = f"{shipment['node_id']}'s part of the consolidation fell through"
        for line_id, qty in withdraw(db, partner, "consolidation_broken", message).items():
            quantities[line_id] = quantities.get(line_id, 0) + qty
    return quantities


def _consolidated_with(db: Database, shipment: dict) -> list[dict]:
    """The other live shipments of the consolidation this shipment belongs to, if any."""

    def consolidated(s: dict) -> bool:
        return s["method"] == "transfer" or any(
            line.get("supply") == "consolidated" for line in s["lines"]
        )

    if not consolidated(shipment):
        return []
    return [
        shipments.get(db, s["shipment_id"])
        for s in shipments.for_order(db, shipment["order_id"])
        if s["decision_id"] == shipment["decision_id"]
        and s["shipment_id"] != shipment["shipment_id"]
        and s["status"] in shipments.OPEN
        and consolidated(s)
    ]


def resource(db, order_id: str, line_ids: list[str], config, reason: str) -> dict | None:
    """Decide the missing quantities of these lines again; hold the order when out of rounds
    (counted since the order was last released from a hold)."""
    order = orders.require(db, order_id)
    if order["status"] in ("cancelled", "completed"):
        return None
    released = orders.last_event(db, order_id, "released")
    rounds = decisions.count(db, order_id, "resource", released["at"] if released else None)
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
    if pickups.store_failed(db, order, missing):
        return pickups.fall_back(db, order, missing, reason)
    return redecide.decide_again(db, order, missing, reason)
