"""Reservations: stock promised to an order line and held until released, consumed or expired.

Owns ``reservations``. Reserving reads ATP and writes the reservation under
SQLite's write lock (``BEGIN IMMEDIATE``), so concurrent callers, in threads or
in separate processes, can never promise the same unit twice.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlite_utils

from app import db as database
from app.errors import Conflict, NotFound
from app.network import stock, transfers


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
    db: sqlite_utils.Database,
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
        for (node_id, sku, supply), qty in sorted(wanted.items()):
            if supply == "in_transit":
                available = in_transit_atp(db, node_id, sku, created_at)
            else:
                available = stock.atp(db, node_id, sku, created_at)
            if qty > available:
                raise InsufficientStock(node_id, sku, qty, available)
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
            db.execute(
                "INSERT INTO reservations (reservation_id, node_id, sku, qty, status, reference,"
                " expires_at, created_at, updated_at, supply, shipment_id)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                list(reservation.values()),
            )
            made.append(reservation)
    return made


def get(db: sqlite_utils.Database, reservation_id: str) -> dict:
    row = db.execute(
        "SELECT * FROM reservations WHERE reservation_id = ?", [reservation_id]
    ).fetchone()
    if row is None:
        raise NotFound(f"reservation {reservation_id!r} does not exist")
    return dict(row)


def for_reference(db: sqlite_utils.Database, reference: str) -> list[dict]:
    rows = db.execute(
        "SELECT * FROM reservations WHERE reference = ? ORDER BY created_at, reservation_id",
        [reference],
    )
    return [dict(row) for row in rows]


def release(db: sqlite_utils.Database, reservation_id: str) -> dict:
    """Give the stock back; releasing twice is a no-op, releasing a consumed one is 409."""
    return _finish(db, reservation_id, "released")


def consume(db: sqlite_utils.Database, reservation_id: str) -> dict:
    """The stock shipped: take it out of on-hand and close the reservation.

    An expired reservation can still be consumed: the goods left the building,
    and on-hand must say so.
    """
    return _finish(db, reservation_id, "consumed")


# Shipped goods leave on-hand even when their hold has lapsed, hence expired -> consumed.
_TRANSITIONS = {("active", "released"), ("active", "consumed"), ("expired", "consumed")}


def _finish(db: sqlite_utils.Database, reservation_id: str, status: str) -> dict:
    with database.immediate(db):
        current = get(db, reservation_id)
        if current["status"] == status:
            return current
        if (current["status"], status) not in _TRANSITIONS:
            raise ReservationClosed(reservation_id, current["status"], status)
        if status == "consumed":
            stock.remove_on_hand(db, current["node_id"], current["sku"], current["qty"])
        db.execute(
            "UPDATE reservations SET status = ?, updated_at = ? WHERE reservation_id = ?",
            [status, database.now(), reservation_id],
        )
        return get(db, reservation_id)


class ReservationClosed(Conflict):
    code = "reservation_closed"

    def __init__(self, reservation_id: str, current: str, wanted: str):
        super().__init__(f"reservation {reservation_id!r} is {current}; it cannot be {wanted}")


def expire(db: sqlite_utils.Database, now: str | None = None) -> int:
    """Mark every active reservation past its expiry as expired; return how many.

    ATP already ignores expired reservations; this keeps the table truthful.
    """
    with database.atomic(db):
        cursor = db.execute(
            "UPDATE reservations SET status = 'expired', updated_at = ?"
            " WHERE status = 'active' AND expires_at <= ?",
            [database.now(), now or database.now()],
        )
    return cursor.rowcount


def release_for_shipments(db: sqlite_utils.Database, shipment_ids: list[str]) -> int:
    """Release every active reservation held for these shipments; call inside a transaction."""
    if not shipment_ids:
        return 0
    marks = ",".join("?" * len(shipment_ids))
    cursor = db.execute(
        f"UPDATE reservations SET status = 'released', updated_at = ?"
        f" WHERE status = 'active' AND shipment_id IN ({marks})",
        [database.now(), *shipment_ids],
    )
    return cursor.rowcount


def settle_in_transit(db: sqlite_utils.Database, node_id: str, sku: str, qty: int) -> None:
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


def in_transit_atp(db: sqlite_utils.Database, node_id: str, sku: str, now: str) -> int:
    """Units in transit to a node that are not yet promised to anyone."""
    promised = db.execute(
        "SELECT COALESCE(SUM(qty), 0) FROM reservations WHERE status = 'active'"
        " AND supply = 'in_transit' AND node_id = ? AND sku = ? AND expires_at > ?",
        [node_id, sku, now],
    ).fetchone()[0]
    return max(0, transfers.incoming(db, node_id, sku) - promised)


def for_shipment(db: sqlite_utils.Database, shipment_id: str) -> list[dict]:
    """The active reservations that hold stock for a shipment."""
    rows = db.execute(
        "SELECT * FROM reservations WHERE shipment_id = ? AND status IN ('active', 'expired')"
        " ORDER BY created_at, reservation_id",
        [shipment_id],
    )
    return [dict(row) for row in rows]
