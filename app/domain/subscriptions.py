"""Channel subscriptions to order events. Owns ``subscriptions``."""

from __future__ import annotations

import json
import secrets

from app.platform import db as database
from app.platform import jsontext
from app.platform.db import Database
from app.platform.errors import Forbidden, NotFound
from app.platform.messaging import brokers
from app.platform.vault import Vault

EVENT_TYPES = (
    "order.status_changed",
    "order.promise_broken",
    "order.action_needed",
    "return.refund_due",
    # The customer's messages (app/lifecycle/tracking.py).
    "order.shipped",
    "order.ready_for_pickup",
    "order.delivered",
    "order.delayed",
    "order.backordered",
    "order.line_cancelled",
    "order.line_substituted",
    "order.cancelled",
)


def _public(row) -> dict:
    return {
        "subscription_id": row["subscription_id"],
        # A broker subscription has no URL (stored as "": the column predates transports).
        "url": row["url"] or None,
        "transport": jsontext.loads(row["transport"]) if row["transport"] else None,
        "event_types": jsontext.loads(row["event_types"]),
        "channel": row["channel"],
        "disabled_at": row["disabled_at"],
        "disabled_reason": row["disabled_reason"],
        "created_at": row["created_at"],
    }


def create(db: Database, key_id: str, document: dict, secret: str, vault: Vault) -> dict:
    """Store a subscription, its signing secret sealed."""
    subscription_id = "sub_" + secrets.token_hex(8)
    with database.atomic(db):
        db.execute(
            "INSERT INTO subscriptions (subscription_id, key_id, url, secret, event_types,"
            " channel, created_at, transport) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                subscription_id,
                key_id,
                document.get("url") or "",
                vault.seal(secret),
                json.dumps(sorted(set(document["event_types"]))),
                document.get("channel"),
                database.now(),
                brokers.destination(document.get("transport")),
            ],
        )
    return get(db, subscription_id)


def get(db: Database, subscription_id: str, key_id: str | None = None) -> dict:
    row = db.execute(
        "SELECT * FROM subscriptions WHERE subscription_id = ? AND deleted_at IS NULL",
        [subscription_id],
    ).fetchone()
    if row is None:
        raise NotFound(f"subscription {subscription_id!r} does not exist")
    if key_id is not None and row["key_id"] != key_id:
        raise Forbidden("this subscription belongs to another key")
    return _public(row)


def list_for(db: Database, key_id: str | None) -> list[dict]:
    sql = "SELECT * FROM subscriptions WHERE deleted_at IS NULL"
    params: list = []
    if key_id is not None:
        sql += " AND key_id = ?"
        params.append(key_id)
    return [_public(row) for row in db.execute(sql + " ORDER BY created_at", params)]


def delete(db: Database, subscription_id: str, key_id: str | None) -> None:
    get(db, subscription_id, key_id)
    with database.atomic(db):
        db.execute(
            "UPDATE subscriptions SET deleted_at = ? WHERE subscription_id = ?",
            [database.now(), subscription_id],
        )


def matching(db: Database, event_type: str, channel: str | None) -> list[str]:
    """Active subscriptions that want this event for an order of this channel."""
    rows = db.execute(
        "SELECT subscription_id, event_types, channel FROM subscriptions"
        " WHERE deleted_at IS NULL AND disabled_at IS NULL"
    )
    return [
        row[0]
        for row in rows
        if event_type in jsontext.loads(row[1]) and (row[2] is None or row[2] == channel)
    ]


def endpoint(db: Database, subscription_id: str, vault: Vault) -> dict | None:
    """Where and how to deliver: url, secrets, whether disabled."""
    row = db.execute(
        "SELECT url, secret, disabled_at, deleted_at, transport FROM subscriptions"
        " WHERE subscription_id = ?",
        [subscription_id],
    ).fetchone()
    if row is None:
        return None
    return {
        "url": row["url"] or None,
        "transport": jsontext.loads(row["transport"]) if row["transport"] else None,
        "secrets": [vault.unseal(row["secret"])],
        "disabled": bool(row["disabled_at"] or row["deleted_at"]),
    }


def transport_kinds(db: Database) -> set[str]:
    """The broker transports some live subscription uses."""
    rows = db.execute(
        "SELECT DISTINCT transport FROM subscriptions WHERE transport IS NOT NULL"
        " AND deleted_at IS NULL"
    )
    return {jsontext.loads(row[0])["kind"] for row in rows}


def disable(db, subscription_id: str, reason: str) -> bool:
    """Disable a subscription's endpoint (call in a transaction); True if enabled until now."""
    cursor = db.execute(
        "UPDATE subscriptions SET disabled_at = ?, disabled_reason = ?"
        " WHERE subscription_id = ? AND disabled_at IS NULL",
        [database.now(), reason, subscription_id],
    )
    return cursor.rowcount == 1


def note_failures(db, subscription_id: str, failures: int) -> None:
    """Show the endpoint's current run of failed attempts on the subscription."""
    db.execute(
        "UPDATE subscriptions SET failures = ? WHERE subscription_id = ?",
        [failures, subscription_id],
    )


def reseal_secrets(db: Database, vault: Vault) -> int:
    """Encrypt every stored subscription secret again under the vault's first key."""
    with database.atomic(db):
        rows = db.execute("SELECT subscription_id, secret FROM subscriptions").fetchall()
        for row in rows:
            db.execute(
                "UPDATE subscriptions SET secret = ? WHERE subscription_id = ?",
                [vault.rotate(row["secret"]), row["subscription_id"]],
            )
    return len(rows)
