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

from app.platform import db as database
from app.platform import jsontext, logs
from app.platform.db import Database
from app.platform.errors import Conflict, NotFound
from app.platform.messaging import circuits

STATUSES = ("pending", "delivered", "dead")


def enqueue(
    db: Database,
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
    # Messages of one shipment go out in the order written; the shipment's order row is
    # locked by the transaction that writes them, so the positions cannot collide.
    db.execute(
        "INSERT INTO outbox (message_id, event_type, node_id, shipment_id, order_id, payload,"
        " status, created_at, subscription_id, next_attempt_at, request_id, position)"
        " VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?,"
        " (SELECT COALESCE(MAX(position), 0) + 1 FROM outbox WHERE shipment_id = ?))",
        [
            message_id,
            event_type,
            node_id,
            shipment_id,
            order_id,
            body,
            now,
            subscription_id,
            now,
            logs.current_request_id(),
            shipment_id,
        ],
    )
    return message_id


def _public(row) -> dict:
    message = dict(row)
    message["body"] = jsontext.loads(message.pop("payload"))
    for private in ("lease_owner", "lease_until"):
        message.pop(private, None)
    return message


def get(db: Database, message_id: str) -> dict:
    row = db.execute("SELECT * FROM outbox WHERE message_id = ?", [message_id]).fetchone()
    if row is None:
        raise NotFound(f"delivery {message_id!r} does not exist")
    message = _public(row)
    message["attempt_log"] = [
        dict(a)
        for a in db.execute(
            "SELECT started_at, finished_at, duration_ms, status_code, error_class, excerpt,"
            " worker FROM delivery_attempts WHERE message_id = ? ORDER BY attempt_id",
            [message_id],
        )
    ]
    return message


def search(db: Database, filters: dict, limit: int = 100) -> list[dict]:
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


def for_order(db: Database, order_id: str) -> list[dict]:
    rows = db.execute(
        "SELECT * FROM outbox WHERE order_id = ? ORDER BY created_at, message_id", [order_id]
    )
    return [_public(row) for row in rows]


def claim(
    db: Database,
    worker: str,
    lease_seconds: float,
    limit: int,
    now: datetime | None = None,
) -> list:
    """Take up to ``limit`` due messages for ``worker`` until the lease ends.

    A message whose lease expired (its worker died) is due again: at-least-once.
    Messages of one shipment go in the order they were written: one waits while an
    older one of its shipment is undelivered. An endpoint whose circuit is open gets
    nothing, and one probe when its wait is over (``circuits.py``).
    """
    moment = now or datetime.now(UTC)
    stamp = database.format_time(moment)
    until = database.format_time(moment + timedelta(seconds=lease_seconds))
    with database.immediate(db):
        rows = db.execute(
            "SELECT o.message_id, o.node_id, o.subscription_id FROM outbox o"
            " WHERE o.status = 'pending' AND o.next_attempt_at <= ?"
            " AND (o.lease_until IS NULL OR o.lease_until < ?)"
            " AND NOT EXISTS (SELECT 1 FROM outbox earlier WHERE o.shipment_id IS NOT NULL"
            "   AND earlier.shipment_id = o.shipment_id AND earlier.status = 'pending'"
            "   AND earlier.position < o.position)"
            " ORDER BY o.next_attempt_at, o.created_at LIMIT ?" + db.skip_locked("o"),
            [stamp, stamp, limit * 5],
        ).fetchall()
        ids = []
        shut: set[str] = set()
        for row in rows:
            endpoint = circuits.key(row["node_id"], row["subscription_id"])
            if endpoint in shut:
                continue
            if not circuits.admit(db, endpoint, row["message_id"], stamp, until):
                shut.add(endpoint)
                continue
            if circuits.get(db, endpoint).state != "closed":
                shut.add(endpoint)  # the probe goes alone
            ids.append(row["message_id"])
            if len(ids) == limit:
                break
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        db.execute(
            f"UPDATE outbox SET lease_owner = ?, lease_until = ? WHERE message_id IN ({marks})"
            " AND (lease_until IS NULL OR lease_until < ?)",
            [worker, until, *ids, stamp],
        )
        return [
            dict(row)
            for row in db.execute(
                f"SELECT * FROM outbox WHERE message_id IN ({marks})"
                " ORDER BY next_attempt_at, created_at",
                ids,
            )
        ]


def begin_attempt(db: Database, message: dict, worker: str, lease_seconds: float) -> int | None:
    """Renew the lease and log the attempt before it is made; return the attempt's id.

    None when the message is no longer this worker's to send: its lease passed to
    another worker, it was settled, or its endpoint's circuit opened meanwhile (the
    lease is then given back, and no retry is used).
    """
    moment = datetime.now(UTC)
    stamp = database.format_time(moment)
    with database.immediate(db):
        endpoint = circuits.key(message["node_id"], message["subscription_id"])
        if not circuits.may_send(circuits.get(db, endpoint), message["message_id"]):
            db.execute(
                "UPDATE outbox SET lease_owner = NULL, lease_until = NULL"
                " WHERE message_id = ? AND lease_owner = ?",
                [message["message_id"], worker],
            )
            return None
        renewed = db.execute(
            "UPDATE outbox SET lease_until = ? WHERE message_id = ? AND lease_owner = ?"
            " AND status = 'pending'",
            [
                database.format_time(moment + timedelta(seconds=lease_seconds)),
                message["message_id"],
                worker,
            ],
        )
        if renewed.rowcount != 1:
            return None
        # An attempt still open here was cut short with its worker.
        db.execute(
            "UPDATE delivery_attempts SET finished_at = ?, error_class = 'interrupted',"
            " excerpt = 'the worker stopped before the attempt finished'"
            " WHERE message_id = ? AND finished_at IS NULL",
            [stamp, message["message_id"]],
        )
        return db.execute(
            "INSERT INTO delivery_attempts (message_id, started_at, worker) VALUES (?, ?, ?)"
            " RETURNING attempt_id",
            [message["message_id"], stamp, worker],
        ).fetchone()[0]


def finish_attempt(
    db: Database,
    attempt_id: int,
    message: dict,
    worker: str,
    outcome,
    status: str,
    next_attempt_at: str | None,
    error: str | None,
) -> bool:
    """Complete the attempt's log entry and settle the message, if the lease is still held.

    Call inside the transaction that records the attempt's consequences. Returns
    whether the message was settled; a worker that lost its lease settles nothing.
    """
    db.execute(
        "UPDATE delivery_attempts SET finished_at = ?, duration_ms = ?, status_code = ?,"
        " error_class = ?, excerpt = ? WHERE attempt_id = ?",
        [
            database.now(),
            outcome.duration_ms,
            outcome.status_code,
            outcome.error_class,
            outcome.excerpt,
            attempt_id,
        ],
    )
    cursor = db.execute(
        "UPDATE outbox SET status = ?, attempts = attempts + 1, next_attempt_at = ?,"
        " last_error = ?, delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END,"
        " lease_owner = NULL, lease_until = NULL"
        " WHERE message_id = ? AND lease_owner = ? AND status = 'pending'",
        [
            status,
            next_attempt_at,
            error,
            status,
            database.now(),
            message["message_id"],
            worker,
        ],
    )
    return cursor.rowcount == 1


def release(db: Database, worker: str) -> int:
    """Give back every lease a stopping worker holds, so others deliver those messages now."""
    with database.atomic(db):
        cursor = db.execute(
            "UPDATE outbox SET lease_owner = NULL, lease_until = NULL"
            " WHERE lease_owner = ? AND status = 'pending'",
            [worker],
        )
    return cursor.rowcount


def retry(db: Database, message_id: str) -> dict:
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


def recover(db: Database, node_id: str, since: str) -> int:
    """Make every dead message of a node since a time due again; return how many."""
    with database.immediate(db):
        cursor = db.execute(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?"
            " WHERE node_id = ? AND status = 'dead' AND created_at >= ?",
            [database.now(), node_id, since],
        )
    return cursor.rowcount


def oldest_pending_age(db: Database) -> float:
    """Seconds since the oldest undelivered message was written: the outbox lag."""
    row = db.execute("SELECT MIN(created_at) FROM outbox WHERE status = 'pending'").fetchone()
    if row[0] is None:
        return 0.0
    return time.time() - database.parse_time(row[0]).timestamp()
