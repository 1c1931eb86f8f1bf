"""The outbox: messages for nodes, written in the same transaction as the decision that
causes them, so a message exists exactly when its decision does. Owns ``outbox``."""

from __future__ import annotations

import json
import secrets

import sqlite_utils

from app import db as database


def enqueue(
    db: sqlite_utils.Database,
    event_type: str,
    payload: dict,
    node_id: str | None = None,
    shipment_id: str | None = None,
    order_id: str | None = None,
) -> str:
    """Add a message; call inside the transaction that makes it true. Returns its id."""
    message_id = "msg_" + secrets.token_hex(10)
    db.execute(
        "INSERT INTO outbox (message_id, event_type, node_id, shipment_id, order_id, payload,"
        " status, created_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
        [
            message_id,
            event_type,
            node_id,
            shipment_id,
            order_id,
            json.dumps(payload),
            database.now(),
        ],
    )
    return message_id


def for_order(db: sqlite_utils.Database, order_id: str) -> list[dict]:
    rows = db.execute(
        "SELECT message_id, event_type, node_id, shipment_id, payload, status, created_at"
        " FROM outbox WHERE order_id = ? ORDER BY created_at, message_id",
        [order_id],
    )
    return [{**dict(row), "payload": json.loads(row["payload"])} for row in rows]
