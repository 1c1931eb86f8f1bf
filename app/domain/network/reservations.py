"""Reservations: stock promised to an order line and held until released, consumed or expired.

Owns ``reservations``. Reserving reads ATP and writes the reservation under
SQLite's write lock (``BEGIN IMMEDIATE``), so concurrent callers, in threads or
in separate processes, can never promise the same unit twice.

A hold counts against ATP for as long as it is active. Its ``expires_at`` is when
it lapses, not when the stock silently comes back: a lapsed hold is withdrawn
with its shipment (``app/lifecycle/holds.py``) in one transaction, so stock is never
free while a live shipment still counts on it. Every event of the shipment
extends the hold.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.domain.network import stock, transfers
from app.platform import db as database
from app.platform.db import Database
from app.platform.errors import Conflict, NotFound


class InsufficientStock(Conflict):
    """A reservation asked for more than is available to promise."""

    code = "insufficient_stock"

    def __init__(self, node_id: str, sku: str, wanted: int, available: int):
        super().__init__(
            f"node {node_id!r} can promise {available} of {sku!r}, not {wanted}",
        )
        self.node_id = node_id
        self.sku = sku
        self.wanted = wanted
        self.available = available


@dataclass(frozen=True)
class Request:
    """One quantity of a SKU to hold at one node, from stock on hand or in transit to it."""

    node_id: str
    sku: str
    qty: int
    reference: str | None = None
    supply: str = "on_hand"
    shipment_id: str | None = None


def reserve(
    db: Database,
    requests: list[Request],
    ttl_seconds: int,
    now: datetime | None = None,
) -> list[dict]:
    """Reserve every request or none; return the reservations made.

    Raises ``InsufficientStock`` (nothing reserved) when any (node, SKU) lacks ATP
    for the total asked of it.
    """
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    if not requests:
        return []
    if any(r.qty <= 0 for r in requests):
        raise ValueError("every quantity must be positive")
    moment = now or datetime.now(UTC)
    created_at = database.format_time(moment)
    expires_at = database.format_time(moment + timedelta(seconds=ttl_seconds))
    wanted: dict[tuple[str, str, str], int] = {}
    for r in requests:
        key = (r.node_id, r.sku, r.supply)
        wanted[key] = wanted.get(key, 0) + r.qty
    made = []
    with database.immediate(db):
        # Only the rows this reservation touches, in key order (no waits in a cycle).
        stock.lock(db, [(n, s) for n, s, supply in wanted if supply == "on_hand"])
        transfers.lock_incoming(
            db, sorted((n, s) for n, s, supply in wanted if supply != "on_hand")
        )
        on_hand = stock.atp_at(db, [(n, s) for n, s, supply in wanted if supply == "on_hand"])
        for (node_id, sku, supply), qty in sorted(wanted.items()):
            if supply == "in_transit":
                available = in_transit_atp(db, node_id, sku)
            else:
                available = on_hand.get((node_id, sku), 0)
            if qty > available:
                raise InsufficientStock(node_id, sku, qty, available)
        rows = []
        for r in requests:
            reservation = {
                "reservation_id": "res_" + secrets.token_hex(8),
                "node_id": r.node_id,
                "sku": r.sku,
                "qty": r.qty,
                "status": "active",
                "reference": r.reference,
                "expires_at": expires_at,
                "created_at": created_at,
                "updated_at": created_at,
                "supply": r.supply,
                "shipment_id": r.shipment_id,
            }
            rows.append(tuple(reservation.values()))
            made.append(reservation)
        db.executemany(
            "INSERT INTO reservations (reservation_id, node_id, sku, qty, status, reference,"
            " expires_at, created_at, updated_at, supply, shipment_id)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
    return made


def get(db: Database, reservation_id: str) -> dict:
    row = db.execute(
        "SELECT * FROM reservations WHERE reservation_id = ?", [reservation_id]
    ).fetchone()
    if row is None:
        raise NotFound(f"reservation {reservation_id!r} does not exist")
    return dict(row)


def for_reference(db: Database, reference: str) -> list[dict]:
    rows = db.execute(
        "SELECT * FROM reservations WHERE reference = ? ORDER BY created_at, reservation_id",
        [reference],
    )
    return [dict(row) for row in rows]


def release(db: Database, reservation_id: str) -> dict:
    """Give the stock back; releasing twice is a no-op, releasing a consumed one is 409."""
    return _finish(db, reservation_id, "released")


def consume(db: Database, reservation_id: str, at: str | None = None) -> dict:
    """The stock left the node at ``at``: take it out of on hand and close the reservation.

    A count taken after ``at`` already reflects it, and so does a count that showed
    the goods gone before the node said so (``count_out``): then on hand stays.
    """
    return _finish(db, reservation_id, "consumed", at or database.now())


# A standalone hold that lapsed can still ship: the goods left, and on hand must say so.
_TRANSITIONS = {("active", "released"), ("active", "consumed"), ("expired", "consumed")}


def _finish(
    db: Database,
    reservation_id: str,
    status: str,
    at: str | None = None,
) -> dict:
    with database.immediate(db):
        current = get(db, reservation_id)
        if current["status"] == status:
            return current
        if (current["status"], status) not in _TRANSITIONS:
            raise ReservationClosed(reservation_id, current["status"], status)
        if status == "consumed" and current["counted_at"] is None:
            stock.move(
                db,
                current["node_id"],
                current["sku"],
                -current["qty"],
                "shipped",
                current["shipment_id"] or reservation_id,
                at,
            )
        db.execute(
            "UPDATE reservations SET status = ?, updated_at = ? WHERE reservation_id = ?",
            [status, database.now(), reservation_id],
        )
        if status == "released":
            stock.note_raised(db, [current["sku"]])
        return get(db, reservation_id)


class ReservationClosed(Conflict):
    code = "reservation_closed"

    def __init__(self, reservation_id: str, current: str, wanted: str):
        super().__init__(f"reservation {reservation_id!r} is {current}; it cannot be {wanted}")


def expire(db: Database, now: str | None = None) -> int:
    """Expire the lapsed holds that no shipment counts on; return how many.

    Holds of shipments lapse with their shipment (``app/lifecycle/holds.py``).
    """
    moment = now or database.now()
    with database.atomic(db):
        freed = db.execute(
            "SELECT DISTINCT sku FROM reservations WHERE status = 'active'"
            " AND shipment_id IS NULL AND expires_at <= ?",
            [moment],
        ).fetchall()
        cursor = db.execute(
            "UPDATE reservations SET status = 'expired', updated_at = ?"
            " WHERE status = 'active' AND shipment_id IS NULL AND expires_at <= ?",
            [database.now(), moment],
        )
        stock.note_raised(db, [row[0] for row in freed])
    return cursor.rowcount


def hand_over(db: Database, reference: str) -> list[dict]:
    """Close the active holds under ``reference`` for the caller to reserve the same stock
    again in the same transaction (an order taking over a held promise). Unlike
    ``release`` the stock is not noted as raised: it is not free, it changes hands."""
    held = [r for r in for_reference(db, reference) if r["status"] == "active"]
    for r in held:
        db.execute(
            "UPDATE reservations SET status = 'released', updated_at = ? WHERE reservation_id = ?",
            [database.now(), r["reservation_id"]],
        )
    return held


def release_for_shipments(db: Database, shipment_ids: list[str], status: str = "released") -> int:
    """Release (or mark ``expired``) every active reservation held for these shipments.

    Call inside a transaction; the SKUs freed are noted for the back-orders that wait.
    """
    if not shipment_ids:
        return 0
    marks = ",".join("?" * len(shipment_ids))
    freed = db.execute(
        f"SELECT DISTINCT sku FROM reservations WHERE status = 'active'"
        f" AND shipment_id IN ({marks})",
        shipment_ids,
    ).fetchall()
    cursor = db.execute(
        f"UPDATE reservations SET status = ?, updated_at = ?"
        f" WHERE status = 'active' AND shipment_id IN ({marks})",
        [status, database.now(), *shipment_ids],
    )
    stock.note_raised(db, [row[0] for row in freed])
    return cursor.rowcount


def extend_for_shipment(
    db: Database, shipment_id: str, ttl_seconds: int, now: datetime | None = None
) -> None:
    """The shipment is alive (its node acted on it): hold its stock ``ttl_seconds`` from now."""
    until = database.format_time((now or datetime.now(UTC)) + timedelta(seconds=ttl_seconds))
    db.execute(
        "UPDATE reservations SET expires_at = ?, updated_at = ?"
        " WHERE shipment_id = ? AND status = 'active' AND expires_at < ?",
        [until, database.now(), shipment_id, until],
    )


def hold_until(db: Database, shipment_id: str, until: str) -> None:
    """Hold a shipment's stock until ``until`` (its node committed to a date)."""
    db.execute(
        "UPDATE reservations SET expires_at = ?, updated_at = ?"
        " WHERE shipment_id = ? AND status = 'active'",
        [until, database.now(), shipment_id],
    )


def lapsed(db: Database, now: str) -> list[dict]:
    """Active reservations whose hold ran out by ``now``, oldest expiry first."""
    rows = db.execute(
        "SELECT * FROM reservations WHERE status = 'active' AND expires_at <= ?"
        " ORDER BY expires_at, reservation_id",
        [now],
    )
    return [dict(row) for row in rows]


def active_at(db: Database, node_id: str, sku: str) -> list[dict]:
    """Active on-hand holds of one SKU at one node that count against it, oldest first."""
    rows = db.execute(
        "SELECT * FROM reservations WHERE node_id = ? AND sku = ? AND status = 'active'"
        " AND supply = 'on_hand' AND counted_at IS NULL ORDER BY created_at, reservation_id",
        [node_id, sku],
    )
    return [dict(row) for row in rows]


def count_out(db: Database, reservation_id: str) -> None:
    """A count no longer sees the held goods (they left with a picked parcel): the hold
    stays with its shipment but stops counting against on hand. Call in a transaction."""
    db.execute(
        "UPDATE reservations SET counted_at = ?, updated_at = ? WHERE reservation_id = ?",
        [database.now(), database.now(), reservation_id],
    )


def settle_in_transit(db: Database, node_id: str, sku: str, qty: int) -> None:
    """Received goods become on-hand: so do the in-transit reservations held against them.

    Call inside the receipt's transaction. Oldest reservations move first, up to ``qty``.
    """
    rows = db.execute(
        "SELECT reservation_id, qty FROM reservations WHERE node_id = ? AND sku = ?"
        " AND supply = 'in_transit' AND status = 'active' ORDER BY created_at, reservation_id",
        [node_id, sku],
    ).fetchall()
    left = qty
    for row in rows:
        if row["qty"] > left:
            break
        db.execute(
            "UPDATE reservations SET supply = 'on_hand', updated_at = ? WHERE reservation_id = ?",
            [database.now(), row["reservation_id"]],
        )
        left -= row["qty"]


def in_transit_atp(db: Database, node_id: str, sku: str) -> int:
    """Units in transit to a node that are not yet promised to anyone."""
    promised = db.execute(
        "SELECT COALESCE(SUM(qty), 0) FROM reservations WHERE status = 'active'"
        " AND supply = 'in_transit' AND node_id = ? AND sku = ?",
        [node_id, sku],
    ).fetchone()[0]
    return max(0, transfers.incoming(db, node_id, sku) - promised)


def for_shipment(db: Database, shipment_id: str) -> list[dict]:
    """The active reservations that hold stock for a shipment."""
    rows = db.execute(
        "SELECT * FROM reservations WHERE shipment_id = ? AND status IN ('active', 'expired')"
        " ORDER BY created_at, reservation_id",
        [shipment_id],
    )
    return [dict(row) for row in rows]
