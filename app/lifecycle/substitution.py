"""Substitution at the order's decision: a line its SKU cannot serve for want of stock, whose
customer allows a substitute (``substitutes_allowed``), is served by the first of the SKU's
listed substitutes (``skus.substitutes``) that serves the whole line. The line keeps its
price; the decision says what replaced what (``substitutions``), the order's line keeps the
SKU ordered (``original_sku``) and the customer is told (``order.line_substituted``).

Only a line left wholly unserved for want of stock is replaced: one held by the rules,
excluded, over capacity or partly served keeps its SKU. Later decisions of the order
(rejections, back-orders) serve the line with the SKU it has by then.
"""

from __future__ import annotations

from app.domain.network import skus, stock
from app.kinds.sourcing import decide
from app.platform.db import Database


def skus_to_lock(db: Database, body: dict) -> list[str]:
    """The order's SKUs, and the substitutes of those lines that allow one: every stock row
    its decision may take."""
    found = {line["sku"] for line in body["lines"]}
    for line in body["lines"]:
        if line.get("substitutes_allowed"):
            found.update(skus.substitutes(db, line["sku"]))
    return sorted(found)


def _promisable(db: Database, sku: str) -> int:
    """Units of the SKU the active nodes can promise now."""
    return sum(p["atp"] for p in stock.positions(db, [sku]) if p["active"] and p["atp"] > 0)


def consider(db: Database, body: dict, decided: tuple, version: dict, settings: dict, **kwargs):
    """``decided`` is ``(decision, facts, context)`` for ``body``; return ``(body, decision,
    facts, context)`` with each short line that allows it served by a substitute, or as
    given when none can."""
    decision, facts, context = decided
    by_line = {line["line_id"]: line for line in body["lines"]}
    short = [
        entry
        for entry in decision.get("unfulfilled", [])
        if entry.get("reason") in ("no_stock", "no_candidate")
        and by_line[entry["line_id"]].get("substitutes_allowed")
        and entry["qty"] == by_line[entry["line_id"]]["qty"]
        and _promisable(db, entry["sku"]) < entry["qty"]
    ]
    swaps = []
    for entry in short:
        ordered = by_line[entry["line_id"]]["sku"]
        for code in skus.substitutes(db, ordered):
            lines = [
                {**line, "sku": code} if line["line_id"] == entry["line_id"] else line
                for line in body["lines"]
            ]
            trial = {**body, "lines": lines}
            tried = decide.make_decision(db, trial, version, settings, **kwargs)
            if entry["line_id"] not in {u["line_id"] for u in tried[0]["unfulfilled"]}:
                body, (decision, facts, context) = trial, tried
                by_line = {line["line_id"]: line for line in body["lines"]}
                swaps.append({"line_id": entry["line_id"], "from_sku": ordered, "to_sku": code})
                break
    if swaps:
        decision["substitutions"] = swaps
    return body, decision, facts, context
