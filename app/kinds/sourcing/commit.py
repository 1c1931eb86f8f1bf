"""Write a decision's outcome in the order's transaction: reserve its stock, record it,
create its shipments, tell each node what to ship (``instruct``: an outbox message per
shipment) and move the order (``decision``)."""

from __future__ import annotations

from datetime import UTC, datetime

from app.domain import orders, shipments
from app.domain.network import nodes, reservations, transfers
from app.kinds.sourcing.decide import new_id
from app.machinery import decisions
from app.platform import db as database
from app.platform.db import Database
from app.platform.errors import Conflict
from app.platform.messaging import outbox


def decision(
    db: Database,
    order: dict,
    decision: dict,
    facts: list,
    context: dict,
    settings: dict,
    kind: str,
) -> dict:
    """Reserve, record, create shipments, instruct the nodes, move the order: one transaction.

    Must run inside ``database.immediate``; raises ``InsufficientStock`` or
    ``CapacityFull`` (and so rolls everything back) when stock or a node's day was
    promised elsewhere since the facts were read.
    """
    decision_id = decision["decision_id"]
    order_id = order["order_id"]
    now = datetime.now(UTC)
    check_capacity(db, decision, context, now)
    ttl = settings.get("reservation_ttl_seconds", 86400)
    allocated: dict[str, int] = {}
    for shipment in decision["shipments"]:
        shipment["shipment_id"] = new_id("shp")
    # The record, then the shipments (they refer to the record), then their reservations
    # (they refer to the shipments), all in one go: nothing is held unless all of it is.
    decisions.record(db, decision, kind, facts, context)
    for shipment in decision["shipments"]:
        shipments.create(
            db,
            {
                **shipment,
                "order_id": order_id,
                "decision_id": decision_id,
                "node_day": context["node_days"].get(shipment["node_id"]) or now.date().isoformat(),
            },
        )
    send_legs(db, decision, now)
    reservations.reserve(
        db,
        [
            reservations.Request(
                shipment["node_id"],
                line["sku"],
                line["qty"],
                reference=f"{order_id}/{line['line_id']}",
                # What a leg brings to the hub is held there as in transit to it.
                supply="in_transit" if line["supply"] == "consolidated" else line["supply"],
                shipment_id=shipment["shipment_id"],
            )
            for shipment in decision["shipments"]
            for line in shipment["lines"]
        ],
        ttl,
        now=now,
    )
    for shipment in decision["shipments"]:
        if shipment["method"] == "transfer":
            continue  # a leg carries goods to the hub, not to the customer
        for line in shipment["lines"]:
            allocated[line["line_id"]] = allocated.get(line["line_id"], 0) + line["qty"]
    instruct(db, order_id, decision, context)
    orders.allocate(db, order_id, allocated)
    detail = {"decision_id": decision_id}
    holds = decision["explanation"].get("holds") or []
    if decision["status"] == "on_hold" and holds:
        detail["reason"] = holds[0]["reason"]  # what the timeline and the channel are told
    orders.set_status(db, order_id, decision["status"], detail)
    return decision


def send_legs(db: Database, decision: dict, now: datetime) -> None:
    """A consolidation's legs: a transfer in transit to the hub for each line a leg
    carries, so the hub's shipment can hold it on its way. Call in the decision's
    transaction, before its reservations."""
    for leg in decision["shipments"]:
        if leg["method"] != "transfer":
            continue
        eta = (leg.get("delivery_window") or {}).get("from") or database.format_time(now)
        for line in leg["lines"]:
            transfers.create(
                db,
                {
                    "transfer_id": f"{leg['shipment_id']}-{line['line_id']}",
                    "sku": line["sku"],
                    "qty": line["qty"],
                    "origin_node_id": leg["node_id"],
                    "destination_node_id": leg["destination_node_id"],
                    "eta": eta,
                    "shipment_id": leg["shipment_id"],
                },
            )


class CapacityFull(Conflict):
    """A node's daily capacity was used by other orders since the facts were read."""

    code = "capacity_full"


def check_capacity(db, decision: dict, context: dict, now: datetime) -> None:
    """Raise ``CapacityFull`` unless every node can take its new shipments today."""
    wanted: dict[str, int] = {}
    for shipment in decision["shipments"]:
        wanted[shipment["node_id"]] = wanted.get(shipment["node_id"], 0) + 1
    if not wanted:
        return
    nodes.lock(db, wanted)
    info = nodes.existing(db, wanted)
    days = {
        node_id: context["node_days"].get(node_id)
        or shipments.node_day(info[node_id]["timezone"], now)
        for node_id in wanted
    }
    used = shipments.used_today(db, days)
    for node_id, count in sorted(wanted.items()):
        limit = info[node_id]["daily_capacity"]
        if limit is not None and used.get(node_id, 0) + count > limit:
            raise CapacityFull(
                f"node {node_id!r} has {max(0, limit - used.get(node_id, 0))} shipment(s)"
                f" left today, not {count}"
            )


def instruct(db: Database, order_id: str, decision: dict, context: dict) -> None:
    """Queue a ``fulfillment.requested`` message to each shipment's node, in the caller's
    transaction: the dispatcher sends it once the decision is committed."""
    for shipment in decision["shipments"]:
        outbox.enqueue(
            db,
            "fulfillment.requested",
            {
                "shipment_id": shipment["shipment_id"],
                "order_id": order_id,
                "node_id": shipment["node_id"],
                "lines": shipment["lines"],
                "destination": {"method": "transfer", "node_id": shipment["destination_node_id"]}
                if shipment["method"] == "transfer"
                else context["delivery"],
                "method": shipment["method"],
                "service_level": shipment["service_level"],
                "decision_id": decision["decision_id"],
                "ruleset": decision["ruleset"],
            },
            node_id=shipment["node_id"],
            shipment_id=shipment["shipment_id"],
            order_id=order_id,
        )
