"""Back-orders: orders waiting for stock, served again when stock of their SKUs rises.

A change that raises stock (a feed, a receipt, a restocked return, a hold let go) notes
the SKUs in its own transaction; the waiting orders of those SKUs are then decided again,
oldest first, on whichever server gets to them first, and the note is cleared only once
they ran. The dispatcher's sweep serves whatever a failure left behind."""

from __future__ import annotations

import logging

from app.domain import orders
from app.domain.network import stock
from app.kinds.sourcing import commit
from app.lifecycle import redecide
from app.platform import db as database
from app.platform import logs, monitoring
from app.platform.db import Database

log = logging.getLogger(__name__)


BACKORDERS_PER_CALL = 100


def resume_raised(db: Database, sku_list: list[str] | None = None) -> list[str]:
    """Decide again the orders waiting for SKUs whose stock rose (of ``sku_list``, or all).

    Each raise was noted in the transaction that raised the stock; it is cleared only
    once its waiting orders have run, so a failure here is retried by the next call
    (the dispatcher's sweep calls this too). Returns the orders that got shipments.
    """
    with db.job("back-orders") as mine:
        # Another server is running them: what this call would do is left to it.
        return _resume_raised(db, sku_list) if mine else []


def _resume_raised(db: Database, sku_list: list[str] | None) -> list[str]:
    resumed = []
    entries = stock.raised(db, sku_list)
    if not entries:
        return []
    # Most raised SKUs have nobody waiting for them: look only at those that do. A raise
    # of every SKU runs every waiting order, whatever SKUs the caller asked about.
    waiting = orders.waiting_skus(db)
    for entry in entries:
        if entry["sku"] == stock.EVERY_SKU:
            for sku in sorted(waiting):
                resumed.extend(resume_backorders(db, [sku]))
        elif entry["sku"] in waiting:
            resumed.extend(resume_backorders(db, [entry["sku"]]))
        else:
            continue
        with database.immediate(db):
            stock.clear_raised(db, [entry])
    with database.immediate(db):
        stock.clear_raised(db, entries)
    resumed = list(dict.fromkeys(resumed))
    if resumed:
        monitoring.BACKORDERS_RESUMED.labels("freed_stock").inc(len(resumed))
        logs.event(
            "backorders.resumed",
            orders=len(resumed),
            order_ids=resumed[:50],
            skus=sorted({entry["sku"] for entry in entries})[:50],
        )
    return resumed


def resume_raised_safely(db: Database, sku_list: list[str] | None) -> list[str]:
    """``resume_raised`` right after a change that raised stock, without failing that change:
    it is committed, and whatever is left here is retried by the dispatcher's sweep."""
    try:
        if not db.in_transaction:
            return resume_raised(db, sku_list)
        # Inside the caller's lock: a savepoint, so a failure here undoes only this part.
        with database.immediate(db):
            return resume_raised(db, sku_list)
    except Exception:
        log.exception("back-orders could not be resumed now; the sweep will retry")
        return []


def resume_backorders(db: Database, skus: list[str]) -> list[str]:
    """Decide again, oldest first, the missing lines of orders waiting for these SKUs.

    Returns the ids of the orders that got new shipments.
    """
    resumed = []
    after = None
    while True:
        waiting = orders.waiting_for(db, sorted(set(skus)), BACKORDERS_PER_CALL, after)
        for order_id, created_at in waiting:
            if resume(db, order_id):
                resumed.append(order_id)
            after = (created_at, order_id)
        if len(waiting) < BACKORDERS_PER_CALL:
            return resumed


def resume(db: Database, order_id: str) -> dict | None:
    """Source what is still missing of one order, if stock now allows; None if nothing changed.

    Nodes that rejected a line, or let it lapse, are not asked for it again.
    """
    with database.immediate(db):
        orders.lock(db, order_id)
        order = orders.require(db, order_id)
        if order["status"] not in ("backordered", "partially_sourced"):
            return None
        missing = orders.missing(db, order_id)
        if not missing or not stock.any_atp(db, [line["sku"] for line in missing]):
            return None
        body, decision, facts, context, settings = redecide.decide_missing(db, order, missing)
        if not decision["shipments"]:
            return None
        decision["status"] = "partially_sourced" if decision["unfulfilled"] else "sourced"
        decision["backorder"] = True
        committed = commit.decision(db, body, decision, facts, context, settings, "backorder")
        redecide.check_promise(db, order, decision, "back-order served")
        return committed
