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
from app.domain.network import reservations
from app.kinds.sourcing import commit, decide
from app.machinery import decisions
from app.machinery.rules import runtime
from app.platform.db import Database
from app.platform.messaging import outbox

# Why the service takes a shipment back from its node.
WITHDRAWN = ("ack_timeout", "hold_lapsed", "dispatch_overdue", "recount", "order_cancelled")


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
    """Free a shipment's holds and unallocate its lines; return ``{line_id: qty}``."""
    reservations.release_for_shipments(db, [shipment["shipment_id"]], hold_status)
    quantities: dict[str, int] = {}
    for line in shipment["lines"]:
        quantities[line["line_id"]] = quantities.get(line["line_id"], 0) + line["qty"]
    orders.deallocate(db, shipment["order_id"], quantities)
    return quantities


def decide_missing(db: Database, order: dict, missing: list[dict], **changes) -> tuple:
    """Decide the missing part of an order's lines under the active version, for the promise
    the order carries, never with a node that failed a line before; ``changes`` replace
    parts of the body (a release, another pickup store). Returns
    ``(body, decision, facts, context, settings)``."""
    # Decided again for the promise the order carries: its date and service level.
    body = {**orders.as_decided(order), "lines": missing, **changes}
    version = runtime.active_version(db, decide.RULESET)
    settings = version["document"]["settings"]
    decision, facts, context = decide.make_decision(
        db, body, version, settings, excluded_nodes=shipments.excluded_nodes(db, order["order_id"])
    )
    return body, decision, facts, context, settings


def check_promise(db: Database, order: dict, decision: dict, reason: str) -> bool:
    """After deciding part of an order again: when a shipment lands after the date the order
    was promised, has no date, or a line found no node, the promise is broken (the
    timeline, the channel, the report say so, with the new date). Returns whether it was."""
    promised_by = order.get("promised_by")
    if not promised_by:
        return False
    ends = [(s.get("delivery_window") or {}).get("to") for s in decision["shipments"]]
    late = [end for end in ends if end is None or end > promised_by]
    unserved = [line["line_id"] for line in decision.get("unfulfilled", [])]
    if not late and not unserved:
        return False
    dated = [end for end in ends if end is not None]
    orders.break_promise(
        db,
        order["order_id"],
        {
            "promised_by": promised_by,
            "new_date": None if unserved or None in ends else max(dated),
            "unserved_lines": unserved,
            "decision_id": decision["decision_id"],
            "because": reason,
        },
    )
    return True


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
    return decide_again(db, order, missing, reason)


def decide_again(db: Database, order: dict, missing: list[dict], reason: str, **changes) -> dict:
    """Decide the missing lines of an order again and commit it (a decision of kind
    ``resource``); the order's status follows from all of its lines. Call in a transaction."""
    order_id = order["order_id"]
    body, decision, facts, context, settings = decide_missing(db, order, missing, **changes)
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
    commit.decision(db, body, decision, facts, context, settings, "resource")
    check_promise(db, order, decision, reason)
    return {
        "decision_id": decision["decision_id"],
        "status": decision["status"],
        "shipments": [s["shipment_id"] for s in decision["shipments"]],
    }
