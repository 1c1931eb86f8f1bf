"""Deciding part of an order again, for the promise it carries: after a rejection, a lapse,
a recount, a release, or when freed stock serves a back-order.

The missing lines are decided under the active version, never with a node that failed
them before, with the order's promised date and service level (``orders.as_decided``);
when no node can keep that date the promise is broken out loud (``check_promise``).
"""

from __future__ import annotations

from app.domain import orders, shipments
from app.kinds.sourcing import commit, decide
from app.machinery.rules import runtime
from app.platform.db import Database


def decide_missing(db: Database, order: dict, missing: list[dict], **changes) -> tuple:
    """Decide the missing part of an order's lines under the active version, for the promise
    the order carries, never with a node that failed a line before; ``changes`` replace
    parts of the body (a release, another pickup store). Returns
    ``(body, decision, facts, context, settings)``."""
    # Decided again for the promise the order carries: its date and service level.
    body = {**orders.as_decided(order), "lines": missing, **changes}
    version = runtime.active_version(db, decide.RULESET)
    settings = version["document"]["settings"]
    excluded = shipments.excluded_nodes(db, order["order_id"])
    decision, facts, context = decide.make_decision(
        db, body, version, settings, excluded_nodes=excluded
    )
    # A drop-ship line left with no node at all because its suppliers went silent is asked
    # of them again: no other node will ever have it, so waiting would strand it. A
    # supplier that said no is not asked again; the re-sourcing rounds bound how often.
    dropship = {f["line_id"] for f in facts if f["fact"] == "line" and f.get("dropship")}
    stranded = [
        u["line_id"]
        for u in decision["unfulfilled"]
        if u["reason"] == "no_candidate" and u["line_id"] in dropship
    ]
    if stranded:
        refused = shipments.excluded_nodes(db, order["order_id"], lapses=False)
        relaxed = {**excluded, **{line_id: refused.get(line_id, set()) for line_id in stranded}}
        if relaxed != excluded:
            decision, facts, context = decide.make_decision(
                db, body, version, settings, excluded_nodes=relaxed
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
