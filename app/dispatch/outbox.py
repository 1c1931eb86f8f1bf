"""The outbox: messages for nodes and subscribers, and where their delivery stands.
Owns ``outbox`` and ``delivery_attempts``.

A message is written in the same transaction as the change that causes it, so it
exists exactly when that change does. Its body is fixed at that moment (a Standard
Webhooks envelope: type, timestamp, data) and sent byte for byte on every attempt,
under the same ``webhook-id``, so receivers can de-duplicate.
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime, timedelta

import sqlite_utils

from app import db as database
from app.errors import Conflict, NotFound

STATUSES = ("pending", "delivered", "dead")


def enqueue(
    db: sqlite_utils.Database,
    event_type: str,
    payload: dict,
    node_id: str | None = None,
    shipment_id: str | None = None,
    order_id: str | None = None,
    subscription_id: str | None = None,
) -> str:
    """Add a message; call inside the transaction that makes it true. Returns its id."""
    message_id = "msg_" + secrets.token_hex(10)
    now = database.now()
    body = json.dumps(
        {"type": event_type, "timestamp": now, "data": payload}, separators=(",", ":")
    )
    db.execute(
        "INSERT INTO outbox (message_id, event_type, node_id, shipment_id, order_id, payload,"
        " status, created_at, subscription_id, next_attempt_at)"
        " VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
        [message_id, event_type, node_id, shipment_id, order_id, body, now, subscription_id, now],
    )
    return message_id


def _public(row) -> dict:
    message = dict(row)
    message["body"] = json.loads(message.pop("payload"))
    for private in ("lease_owner", "lease_until"):
        message.pop(private, None)
    return message


def get(db: sqlite_utils.Database, message_id: str) -> dict:
    row = db.execute("SELECT * FROM outbox WHERE message_id = ?", [message_id]).fetchone()
    if row is None:
        raise NotFound(f"delivery {message_id!r} does not exist")
    message = _public(row)
    message["attempt_log"] = [
        dict(a)
        for a in db.execute(
            "SELECT started_at, duration_ms, status_code, error_class, excerpt, worker"
            " FROM delivery_attempts WHERE message_id = ? ORDER BY attempt_id",
            [message_id],
        )
    ]
    return message


def search(db: sqlite_utils.Database, filters: dict, limit: int = 100) -> list[dict]:
    where, params = [], []
    for column, key in (("node_id", "node_id"), ("status", "status"), ("event_type", "event")):
        if filters.get(key):
            where.append(f"{column} = ?")
            params.append(filters[key])
    if filters.get("since"):
        where.append("created_at >= ?")
        params.append(filters["since"])
    if filters.get("until"):
        where.append("created_at < ?")
        params.append(filters["until"])
    sql = "SELECT * FROM outbox"
    if where:
        sql += " WHERE " + " AND ".join(where)
    rows = db.execute(sql + " ORDER BY created_at, message_id LIMIT ?", [*params, limit])
    return [_public(row) for row in rows]


def for_order(db: sqlite_utils.Database, order_id: str) -> list[dict]:
    rows = db.execute(
        "SELECT * FROM outbox WHERE order_id = ? ORDER BY created_at, message_id", [order_id]
    )
    return [_public(row) for row in rows]


def claim(db: sqlite_utils.Database, worker: str, lease_seconds: float, limit: int) -> list:
    """Take up to ``limit`` due messages for ``worker`` until the lease ends.

    A message whose lease expired (its worker died) is due again: at-least-once.
    """
    moment = datetime.now(UTC)
    now = database.format_time(moment)
    until = database.format_time(moment + timedelta(seconds=lease_seconds))
    with database.immediate(db):
        rows = db.execute(
            "SELECT message_id FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?"
            " AND (lease_until IS NULL OR lease_until < ?)"
            " ORDER BY next_attempt_at, created_at LIMIT ?",
            [now, now, limit],
        ).fetchall()
        ids = [row[0] for row in rows]
        if ids:
            marks = ",".join("?" * len(ids))
            db.execute(
                f"UPDATE outbox SET lease_owner = ?, lease_until = ? WHERE message_id IN ({marks})",
                [worker, until, *ids],
            )
        claimed = (
            [
                dict(row)
                for row in db.execute(
                    f"SELECT * FROM outbox WHERE message_id IN ({','.join('?' * len(ids))})"
                    " ORDER BY next_attempt_at, created_at",
                    ids,
                )
            ]
            if ids
            else []
        )
    return claimed


def record_attempt(db: sqlite_utils.Database, message_id: str, worker: str, outcome) -> None:
    """Log one attempt; call inside the transaction that records its consequence."""
    db.execute(
        "INSERT INTO delivery_attempts (message_id, started_at, duration_ms, status_code,"
        " error_class, excerpt, worker) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            message_id,
            outcome.started_at,
            outcome.duration_ms,
            outcome.status_code,
            outcome.error_class,
            outcome.excerpt,
            worker,
        ],
    )


def settle(
    db: sqlite_utils.Database,
    message_id: str,
    status: str,
    next_attempt_at: str | None,
    error: str | None,
) -> None:
    """Record where a message stands after an attempt, and give up its lease."""
    now = database.now()
    db.execute(
        "UPDATE outbox SET status = ?, attempts = attempts + 1, next_attempt_at = ?,"
        " last_error = ?, delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END,"
        " lease_owner = NULL, lease_until = NULL WHERE message_id = ?",
        [status, next_attempt_at, error, status, now, message_id],
    )


def release(db: sqlite_utils.Database, worker: str) -> int:
    """Give back every lease a stopping worker holds, so others deliver those messages now."""
    with database.atomic(db):
        cursor = db.execute(
            "UPDATE outbox SET lease_owner = NULL, lease_until = NULL"
            " WHERE lease_owner = ? AND status = 'pending'",
            [worker],
        )
    return cursor.rowcount


def retry(db: sqlite_utils.Database, message_id: str) -> dict:
    """Send a message again now, with a fresh schedule (dead ones too)."""
    with database.immediate(db):
        message = get(db, message_id)
        if message["status"] == "delivered":
            raise Conflict(f"{message_id} was delivered", code="already_delivered")
        db.execute(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?"
            " WHERE message_id = ?",
            [database.now(), message_id],
        )
    return get(db, message_id)


def recover(db: sqlite_utils.Database, node_id: str, since: str) -> int:
    """Make every dead message of a node since a time due again; return how many."""
    with database.immediate(db):
        cursor = db.execute(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?"
            " WHERE node_id = ? AND status = 'dead' AND created_at >= ?",
            [database.now(), node_id, since],
        )
    return cursor.rowcount


def kill_for_endpoint(db, node_id: str | None, subscription_id: str | None, reason: str) -> int:
    """An endpoint is disabled: its pending messages are dead (and replayable)."""
    column, value = ("node_id", node_id) if node_id else ("subscription_id", subscription_id)
    cursor = db.execute(
        f"UPDATE outbox SET status = 'dead', last_error = ?, lease_owner = NULL,"
        f" lease_until = NULL WHERE {column} = ? AND status = 'pending'",
        [reason, value],
    )
    return cursor.rowcount


def oldest_pending_age(db: sqlite_utils.Database) -> float:
    """Seconds since the oldest undelivered message was written: the outbox lag."""
    row = db.execute("SELECT MIN(created_at) FROM outbox WHERE status = 'pending'").fetchone()
    if row[0] is None:
        return 0.0
    return time.time() - database.parse_time(row[0]).timestamp()
