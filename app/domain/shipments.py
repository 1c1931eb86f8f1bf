"""Shipments: what one node sends for one decision. Owns ``shipments`` and
``node_day_shipments`` (how many of a node's shipments count against its daily
capacity on each of its days, kept with every shipment created or cancelled)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from app.platform import db as database
from app.platform import jsontext
from app.platform.db import Database

OPEN = ("pending", "requested", "accepted", "picked")


def node_day(timezone: str, moment: datetime) -> str:
    """The calendar day at the node, which is what its daily capacity counts."""
    return moment.astimezone(ZoneInfo(timezone)).date().isoformat()


def used_today(db: Database, days: dict[str, str]) -> dict[str, int]:
    """Shipments assigned to each node on its own day: ``{node_id: count}``."""
    used: dict[str, int] = {}
    nodes = sorted(days)
    for start in range(0, len(nodes), 500):
        chunk = nodes[start : start + 500]
        day_list = sorted({days[n] for n in chunk})
        rows = db.execute(
            f"SELECT node_id, node_day, shipments FROM node_day_shipments"
            f" WHERE node_id IN ({','.join('?' * len(chunk))})"
            f" AND node_day IN ({','.join('?' * len(day_list))})",
            [*chunk, *day_list],
        )
        for node_id, day, count in rows:
            if days[node_id] == day:
                used[node_id] = count
    return used


def create(db: Database, shipment: dict) -> None:
    """Insert a shipment; call inside the decision's transaction."""
    now = database.now()
    db.execute(
        "INSERT INTO shipments (shipment_id, order_id, decision_id, node_id, status, method,"
        " service_level, lines, estimated_cost, distance_km, node_day, created_at, updated_at,"
        " carrier_service, carrier, dispatch_date, promised_date, promised_until)"
        " VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            shipment["shipment_id"],
            shipment["order_id"],
            shipment["decision_id"],
            shipment["node_id"],
            shipment["method"],
            shipment["service_level"],
            jsontext.dumps(shipment["lines"]),
            shipment["estimated_cost"],
            shipment["distance_km"],
            shipment["node_day"],
            now,
            now,
            shipment.get("carrier_service"),
            shipment.get("carrier"),
            shipment.get("dispatch_date"),
            shipment.get("promised_date"),
            (shipment.get("delivery_window") or {}).get("to"),
        ],
    )
    db.execute(
        "INSERT INTO node_day_shipments (node_id, node_day, shipments) VALUES (?, ?, 1)"
        " ON CONFLICT (node_id, node_day)"
        " DO UPDATE SET shipments = node_day_shipments.shipments + 1",
        [shipment["node_id"], shipment["node_day"]],
    )


def for_order(db: Database, order_id: str) -> list[dict]:
    rows = db.execute(
        "SELECT shipment_id, decision_id, node_id, status, method, service_level, lines,"
        " estimated_cost, distance_km, carrier, tracking_number, requested_at, withdrawn_reason,"
        " carrier_service, dispatch_date, promised_date, promised_until, delivered_at,"
        " ship_by, withdraw_by, at_risk_at, ready_at, created_at, updated_at FROM shipments"
        " WHERE order_id = ? ORDER BY created_at, shipment_id",
        [order_id],
    )
    return [{**dict(row), "lines": jsontext.loads(row["lines"])} for row in rows]


# Shipment states, advanced by node callbacks (and by delivery of the request).
TRANSITIONS = {
    "pending": {"requested", "accepted", "rejected", "cancelled"},
    "requested": {"accepted", "rejected", "cancelled"},
    "accepted": {"picked", "shipped", "rejected", "cancelled"},
    "picked": {"shipped", "cancelled"},
    "shipped": {"delivered"},
    "delivered": set(),
    "rejected": set(),
    "cancelled": set(),
}


def get(db: Database, shipment_id: str) -> dict:
    from app.platform.errors import NotFound

    row = db.execute("SELECT * FROM shipments WHERE shipment_id = ?", [shipment_id]).fetchone()
    if row is None:
        raise NotFound(f"shipment {shipment_id!r} does not exist")
    return {**dict(row), "lines": jsontext.loads(row["lines"])}


def set_status(db: Database, shipment_id: str, status: str, **fields) -> None:
    """Move a shipment (the caller checked the transition); call inside a transaction."""
    if status == "cancelled":
        # A cancelled shipment no longer takes a place in its node's day.
        db.execute(
            "UPDATE node_day_shipments SET shipments = shipments - 1"
            " WHERE (node_id, node_day) IN (SELECT node_id, node_day FROM shipments"
            " WHERE shipment_id = ? AND status != 'cancelled')",
            [shipment_id],
        )
    assignments = ", ".join(f"{name} = ?" for name in fields)
    db.execute(
        f"UPDATE shipments SET status = ?, updated_at = ?{', ' if fields else ''}{assignments}"
        f" WHERE shipment_id = ?",
        [status, database.now(), *fields.values(), shipment_id],
    )


def mark_requested(db: Database, shipment_id: str) -> None:
    """The node received the request: the acknowledgement clock starts."""
    db.execute(
        "UPDATE shipments SET status = 'requested', requested_at = ?, updated_at = ?"
        " WHERE shipment_id = ? AND status = 'pending'",
        [database.now(), database.now(), shipment_id],
    )


def set_deadlines(db: Database, shipment_id: str, ship_by: str | None, withdraw_by: str) -> None:
    """The node's commitment: shipped by ``ship_by`` or at risk (None: never, the node has
    done its part), withdrawn at ``withdraw_by``."""
    db.execute(
        "UPDATE shipments SET ship_by = ?, withdraw_by = ?, updated_at = ? WHERE shipment_id = ?",
        [ship_by, withdraw_by, database.now(), shipment_id],
    )


def due_at_risk(db: Database, now: str) -> list[dict]:
    """Accepted or picked shipments past their ``ship_by`` not yet flagged at risk."""
    rows = db.execute(
        "SELECT shipment_id, order_id FROM shipments WHERE status IN ('accepted', 'picked')"
        " AND ship_by <= ? AND at_risk_at IS NULL ORDER BY ship_by, shipment_id",
        [now],
    )
    return [dict(row) for row in rows]


def set_at_risk(db: Database, shipment_id: str, at: str) -> None:
    db.execute(
        "UPDATE shipments SET at_risk_at = ?, updated_at = ? WHERE shipment_id = ?",
        [at, database.now(), shipment_id],
    )


def unacknowledged(db: Database, older_than: str) -> list[dict]:
    """Requested shipments whose node has not accepted them since before ``older_than``."""
    rows = db.execute(
        "SELECT shipment_id FROM shipments WHERE status = 'requested' AND requested_at < ?",
        [older_than],
    )
    return [get(db, row[0]) for row in rows]


# Withdrawals that count against the node, like a rejection: it may not serve the line again.
NODE_FAILURES = ("ack_timeout", "hold_lapsed", "dispatch_overdue")


def excluded_nodes(db: Database, order_id: str, lapses: bool = True) -> dict[str, set[str]]:
    """Per line of the order, the nodes that rejected it or (with ``lapses``) let it lapse."""
    rows = [
        row
        for row in db.execute(
            "SELECT node_id, lines, status, withdrawn_reason FROM shipments WHERE order_id = ?"
            " AND (status = 'rejected' OR withdrawn_reason IS NOT NULL)",
            [order_id],
        )
        if (row["withdrawn_reason"] in NODE_FAILURES and lapses)
        or (row["status"] == "rejected" and row["withdrawn_reason"] not in NODE_FAILURES)
    ]
    excluded: dict[str, set[str]] = {}
    for row in rows:
        for line in jsontext.loads(row["lines"]):
            excluded.setdefault(line["line_id"], set()).add(row["node_id"])
    return excluded


def live(db: Database, shipment_ids: list[str]) -> list[dict]:
    """Those of these shipments that are still open, in the order given."""
    found = [get(db, shipment_id) for shipment_id in shipment_ids]
    return [s for s in found if s["status"] in OPEN]


def rejection_counts(db: Database, decision_ids: list[str]) -> tuple[int, int]:
    """(rejected, all) shipments of these decisions: the node rejection rate."""
    rejected = total = 0
    for start in range(0, len(decision_ids), 500):
        chunk = decision_ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        row = db.execute(
            f"SELECT SUM(CASE WHEN status = 'rejected' THEN 1 ELSE 0 END), COUNT(*) FROM shipments"
            f" WHERE decision_id IN ({marks})",
            chunk,
        ).fetchone()
        rejected += row[0] or 0
        total += row[1] or 0
    return rejected, total


def promise_outcomes(db: Database, since: str, until: str) -> list[dict]:
    """Each shipment promised for a day in ``[since, until)``: its order's channel, its
    node, the promised day and window's end, when it was delivered or ready for
    collection, its method and its state."""
    rows = db.execute(
        "SELECT o.channel, s.node_id, s.promised_date, s.promised_until, s.delivered_at,"
        " s.ready_at, s.method, s.status FROM shipments s JOIN orders o ON o.order_id = s.order_id"
        " WHERE s.promised_date >= ? AND s.promised_date < ? ORDER BY s.promised_date",
        [since, until],
    )
    return [dict(row) for row in rows]


def promised_orders(db: Database, since: str, until: str) -> list[str]:
    """Orders promised for a day in ``[since, until)``: by their own ``promised_by``, or by
    a shipment's promised day."""
    rows = db.execute(
        "SELECT order_id FROM orders WHERE promised_by >= ? AND promised_by < ?"
        " UNION SELECT DISTINCT order_id FROM shipments WHERE promised_date >= ?"
        " AND promised_date < ? ORDER BY 1",
        [since, until, since, until],
    )
    return [row[0] for row in rows]


def collected(db: Database, service_ids: list[str], day: str) -> dict[str, int]:
    """Shipments dispatched on ``day`` with each of these carrier services (not withdrawn)."""
    if not service_ids:
        return {}
    rows = db.execute(
        f"SELECT carrier_service, COUNT(*) FROM shipments"
        f" WHERE dispatch_date = ? AND carrier_service IN ({','.join('?' * len(service_ids))})"
        f" AND status NOT IN ('cancelled', 'rejected') GROUP BY carrier_service",
        [day, *service_ids],
    )
    return {row[0]: row[1] for row in rows}
