"""Held promises: the delivery option a customer was quoted, its stock held until an order
takes it or its time runs out. Owns ``promises``; the quote itself is the sourcing rules'
(``sourcing.quotes``).

A held promise reserves the stock of its option's shipments (reservations whose
reference is ``promise:<promise_id>``, with no shipment) for the ruleset's
``promise_hold_minutes``. An order that quotes it takes those reservations over in its
own transaction and is sourced from the same nodes when it still can be; a hold that
lapses is expired by the dispatcher's sweep, which frees the stock for the back-orders
waiting for it. Holding is idempotent on ``promise_id``: the same body answers the
first result, another body is a conflict.
"""

from __future__ import annotations

import json

from app.domain.network import reservations
from app.platform import db as database
from app.platform import jsontext
from app.platform.db import Database
from app.platform.errors import Conflict, InvalidInput, NotFound, field_error


class PromiseConflict(Conflict):
    code = "promise_conflict"


def reference(promise_id: str) -> str:
    return f"promise:{promise_id}"


# Holding ------------------------------------------------------------------------------


def replay(db: Database, promise_id: str, digest: str) -> dict | None:
    """The promise held under ``promise_id`` when it was held with this body; None when
    none was; a conflict when another body holds it."""
    row = db.execute("SELECT body_hash FROM promises WHERE promise_id = ?", [promise_id]).fetchone()
    if row is None:
        return None
    if row["body_hash"] != digest:
        raise PromiseConflict(f"promise {promise_id!r} was held with a different body")
    return get(db, promise_id)


def record(
    db: Database, request: dict, digest: str, found: dict, chosen: dict, expires_at: str
) -> None:
    """Record a held promise: the request, the options answered, the one held, until when."""
    now = database.now()
    db.execute(
        "INSERT INTO promises (promise_id, body_hash, request, answer, held_option, status,"
        " expires_at, order_id, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, 'held', ?, NULL, ?, ?)",
        [
            request["promise_id"],
            digest,
            jsontext.dumps(request),
            json.dumps(found),
            json.dumps(chosen),
            expires_at,
            now,
            now,
        ],
    )


def get(db: Database, promise_id: str) -> dict:
    """A held promise: its answer, the option held, its state and the order that used it."""
    row = db.execute("SELECT * FROM promises WHERE promise_id = ?", [promise_id]).fetchone()
    if row is None:
        raise NotFound(f"promise {promise_id!r} does not exist")
    status = row["status"]
    if status == "held" and row["expires_at"] <= database.now():
        status = "expired"  # the sweep has not run yet; the stock is free from now on
    return {
        "promise_id": promise_id,
        "channel": jsontext.loads(row["request"]).get("channel", "web"),
        "status": status,
        "expires_at": row["expires_at"],
        "held_option": jsontext.loads(row["held_option"]),
        "order_id": row["order_id"],
        **jsontext.loads(row["answer"]),
    }


def release(db: Database, promise_id: str) -> dict:
    """The channel no longer needs the hold (the cart was abandoned): free its stock."""
    with database.immediate(db):
        found = get(db, promise_id)
        if found["status"] == "used":
            raise PromiseConflict(f"promise {promise_id!r} was used by order {found['order_id']!r}")
        if found["status"] == "held":
            _close(db, promise_id, "released")
            for held in _active_holds(db, promise_id):
                reservations.release(db, held["reservation_id"])
    return get(db, promise_id)


def _active_holds(db: Database, promise_id: str) -> list[dict]:
    return [
        r for r in reservations.for_reference(db, reference(promise_id)) if r["status"] == "active"
    ]


def _close(db: Database, promise_id: str, status: str, order_id: str | None = None) -> None:
    db.execute(
        "UPDATE promises SET status = ?, order_id = COALESCE(?, order_id), updated_at = ?"
        " WHERE promise_id = ?",
        [status, order_id, database.now(), promise_id],
    )


# Orders that quote a promise ------------------------------------------------------------


def check_quoted(db: Database, order: dict) -> None:
    """422 with the pointer ``/promise_id`` for a promise that does not exist or that
    another order used."""
    promise_id = order.get("promise_id")
    if promise_id is None:
        return
    row = db.execute(
        "SELECT status, order_id FROM promises WHERE promise_id = ?", [promise_id]
    ).fetchone()
    if row is None:
        raise InvalidInput([field_error(("promise_id",), f"promise {promise_id!r} does not exist")])
    if row["order_id"] is not None and row["order_id"] != order["order_id"]:
        raise InvalidInput(
            [field_error(("promise_id",), f"promise {promise_id!r} was used by another order")]
        )


def take(db: Database, order: dict) -> dict | None:
    """Take over a quoted promise's hold for ``order``; call inside the order's transaction.

    Returns the held option (its stock given back to ATP for this order alone, in the
    same transaction), or None when the hold lapsed or was released: the order is then
    sourced like any other."""
    promise_id = order["promise_id"]
    found = get(db, promise_id)
    if found["status"] == "expired":
        # Lapsed before the sweep came by: expire it now, so its stock counts for this order.
        expire(db)
        reservations.expire(db)
    if found["status"] != "held":
        return None
    reservations.hand_over(db, reference(promise_id))
    _close(db, promise_id, "used", order["order_id"])
    return found["held_option"]


def held_nodes(option: dict) -> dict[str, set[str]]:
    """``{sku: nodes}`` a held option serves each SKU from."""
    found: dict[str, set[str]] = {}
    for shipment in option["shipments"]:
        for line in shipment["lines"]:
            found.setdefault(line["sku"], set()).add(shipment["node_id"])
    return found


def expire(db: Database, now: str | None = None) -> int:
    """Mark the held promises whose time ran out as expired; their reservations lapse
    with ``reservations.expire`` in the same sweep. Returns how many."""
    moment = now or database.now()
    with database.atomic(db):
        cursor = db.execute(
            "UPDATE promises SET status = 'expired', updated_at = ?"
            " WHERE status = 'held' AND expires_at <= ?",
            [database.now(), moment],
        )
    return cursor.rowcount
