"""On-hand stock per node and SKU, inventory feeds and safety stock.

Owns ``stock``, ``feeds``, ``safety_stock`` and ``safety_stock_defaults``, and the
one query that computes available to promise:

    ATP = on hand - active reservations - safety stock, never below zero.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

import sqlite_utils

from app import db as database
from app.errors import Conflict, InvalidInput, NotFound, field_error
from app.network import nodes, skus

# How many skipped items a feed result lists; the count is always complete.
SKIPPED_LISTED = 1000


def body_hash(document: dict) -> str:
    """Hash a document's canonical JSON, to tell a replay from a different body."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


# Feeds ---------------------------------------------------------------------------------


def apply_feed(db: sqlite_utils.Database, feed: dict) -> tuple[dict, bool]:
    """Apply an inventory feed all-or-nothing; return ``(result, replayed)``.

    The same ``feed_id`` with the same body returns the first result and changes
    nothing; with a different body it is a conflict. Any invalid item rejects the
    whole feed. Items older than what is already applied are skipped and reported.
    """
    digest = body_hash(feed)
    as_of = database.normalize_time(feed["as_of"])
    node_id = feed["node_id"]
    with database.immediate(db):
        seen = db.execute(
            "SELECT body_hash, result FROM feeds WHERE feed_id = ?", [feed["feed_id"]]
        ).fetchone()
        if seen is not None:
            if seen["body_hash"] != digest:
                raise Conflict(
                    f"feed {feed['feed_id']!r} was already received with a different body",
                    code="feed_id_reused",
                )
            return json.loads(seen["result"]), True
        current = {
            row["sku"]: row
            for row in db.execute(
                "SELECT sku, on_hand, snapshot_as_of, feed_as_of FROM stock WHERE node_id = ?",
                [node_id],
            )
        }
        known_skus = skus.existing(db, (item["sku"] for item in feed["items"]))
        node_exists = bool(nodes.existing(db, [node_id]))
        plan = plan_feed(feed, as_of, current, known_skus, node_exists)
        now = database.now()
        if feed["mode"] == "snapshot":
            db.conn.executemany(
                "INSERT INTO stock (node_id, sku, on_hand, snapshot_as_of, feed_as_of, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (node_id, sku) DO UPDATE SET"
                " on_hand = excluded.on_hand, snapshot_as_of = excluded.snapshot_as_of,"
                " feed_as_of = excluded.feed_as_of, updated_at = excluded.updated_at",
                [(node_id, sku, qty, as_of, as_of, now) for sku, qty in plan["set"]],
            )
        else:
            db.conn.executemany(
                "INSERT INTO stock (node_id, sku, on_hand, snapshot_as_of, feed_as_of, updated_at)"
                " VALUES (?, ?, ?, NULL, ?, ?) ON CONFLICT (node_id, sku) DO UPDATE SET"
                " on_hand = excluded.on_hand, feed_as_of = max(feed_as_of, excluded.feed_as_of),"
                " updated_at = excluded.updated_at",
                [(node_id, sku, qty, as_of, now) for sku, qty in plan["set"]],
            )
        result = {
            "feed_id": feed["feed_id"],
            "node_id": node_id,
            "mode": feed["mode"],
            "as_of": as_of,
            "items": len(feed["items"]),
            "applied": len(plan["set"]),
            "zeroed": plan["zeroed"],
            "skipped_count": len(plan["skipped"]),
            "skipped": plan["skipped"][:SKIPPED_LISTED],
            "received_at": now,
        }
        db.execute(
            "INSERT INTO feeds (feed_id, node_id, mode, as_of, body_hash, result, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [feed["feed_id"], node_id, feed["mode"], as_of, digest, json.dumps(result), now],
        )
    return result, False


def plan_feed(
    feed: dict, as_of: str, current: dict, known_skus: set[str], node_exists: bool
) -> dict:
    """Decide what a feed changes, without touching the database.

    Returns ``{"set": [(sku, on_hand)], "skipped": [...], "zeroed": n}`` or raises
    ``InvalidInput`` with the pointer of every bad item.
    """
    problems = []
    if not node_exists:
        problems.append(field_error(("node_id",), f"node {feed['node_id']!r} does not exist"))
    snapshot = feed["mode"] == "snapshot"
    new_on_hand: dict[str, int] = {}
    listed: set[str] = set()
    skipped = []
    for index, item in enumerate(feed["items"]):
        sku = item["sku"]
        if sku not in known_skus:
            problems.append(field_error(("items", index, "sku"), f"SKU {sku!r} does not exist"))
            continue
        if sku in listed:
            problems.append(field_error(("items", index, "sku"), f"SKU {sku!r} is listed twice"))
            continue
        listed.add(sku)
        row = current.get(sku)
        if snapshot:
            # A snapshot taken before the newest feed applied would undo newer counts.
            if row is not None and row["feed_as_of"] > as_of:
                skipped.append(_skip(index, sku, row["feed_as_of"]))
                continue
            new_on_hand[sku] = item["on_hand"]
        else:
            # A delta taken before the newest snapshot is already counted in it.
            if row is not None and row["snapshot_as_of"] and row["snapshot_as_of"] > as_of:
                skipped.append(_skip(index, sku, row["snapshot_as_of"]))
                continue
            before = row["on_hand"] if row is not None else 0
            after = before + item["delta"]
            if after < 0:
                problems.append(
                    field_error(
                        ("items", index, "delta"),
                        f"would take on-hand of {sku!r} from {before} to {after}",
                    )
                )
                continue
            new_on_hand[sku] = after
    if problems:
        raise InvalidInput(problems)
    zeroed = 0
    if snapshot and feed.get("complete"):
        for sku, row in current.items():
            if sku not in listed and row["feed_as_of"] <= as_of and row["on_hand"] != 0:
                new_on_hand[sku] = 0
                zeroed += 1
    return {"set": sorted(new_on_hand.items()), "skipped": skipped, "zeroed": zeroed}


def _skip(index: int, sku: str, newer: str) -> dict:
    return {
        "pointer": f"/items/{index}",
        "sku": sku,
        "reason": "stale",
        "message": f"older than the counts already applied (as of {newer})",
    }


def add_on_hand(db: sqlite_utils.Database, node_id: str, sku: str, qty: int, as_of: str) -> None:
    """Add received units to on-hand (transfer receipts); call inside a transaction."""
    db.execute(
        "INSERT INTO stock (node_id, sku, on_hand, snapshot_as_of, feed_as_of, updated_at)"
        " VALUES (?, ?, ?, NULL, ?, ?) ON CONFLICT (node_id, sku) DO UPDATE SET"
        " on_hand = on_hand + excluded.on_hand, updated_at = excluded.updated_at",
        [node_id, sku, qty, as_of, database.now()],
    )


def remove_on_hand(db: sqlite_utils.Database, node_id: str, sku: str, qty: int) -> None:
    """Take shipped units out of on-hand; call inside a transaction."""
    cursor = db.execute(
        "UPDATE stock SET on_hand = on_hand - ?, updated_at = ?"
        " WHERE node_id = ? AND sku = ? AND on_hand >= ?",
        [qty, database.now(), node_id, sku, qty],
    )
    if cursor.rowcount != 1:
        raise Conflict(
            f"node {node_id!r} does not hold {qty} of {sku!r}", code="insufficient_stock"
        )


# Safety stock --------------------------------------------------------------------------


def set_safety_stock(db: sqlite_utils.Database, node_id: str, sku: str, quantity: int) -> dict:
    if not nodes.existing(db, [node_id]):
        raise NotFound(f"node {node_id!r} does not exist")
    if not skus.existing(db, [sku]):
        raise NotFound(f"SKU {sku!r} does not exist")
    with database.atomic(db):
        db.execute(
            "INSERT INTO safety_stock (node_id, sku, quantity, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (node_id, sku) DO UPDATE SET quantity = excluded.quantity,"
            " updated_at = excluded.updated_at",
            [node_id, sku, quantity, database.now()],
        )
    return {"node_id": node_id, "sku": sku, "quantity": quantity}


def set_default_safety_stock(db: sqlite_utils.Database, node_type: str, quantity: int) -> dict:
    if node_type not in nodes.NODE_TYPES:
        raise NotFound(f"node type {node_type!r} does not exist")
    with database.atomic(db):
        db.execute(
            "INSERT INTO safety_stock_defaults (node_type, quantity, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (node_type) DO UPDATE SET quantity = excluded.quantity,"
            " updated_at = excluded.updated_at",
            [node_type, quantity, database.now()],
        )
    return {"node_type": node_type, "quantity": quantity}


def default_safety_stock(db: sqlite_utils.Database) -> dict[str, int]:
    rows = db.execute("SELECT node_type, quantity FROM safety_stock_defaults")
    return {row["node_type"]: row["quantity"] for row in rows}


# Available to promise ------------------------------------------------------------------


def positions(
    db: sqlite_utils.Database,
    sku_list: Iterable[str],
    node_ids: Iterable[str] | None = None,
    now: str | None = None,
) -> list[dict]:
    """Return stock positions with ATP for the SKUs (optionally only at some nodes).

    One row per (node, SKU) with a stock record: on hand, reserved (active and
    unexpired), safety stock (the node's own, else its type's default), ATP, the
    node's type, name, coordinates and whether it is active, and the feed time.
    """
    wanted = sorted(set(sku_list))
    if not wanted:
        return []
    now = now or database.now()
    sku_marks = ",".join("?" * len(wanted))
    params: list = [now, *wanted, *wanted]
    node_filter = ""
    if node_ids is not None:
        node_list = sorted(set(node_ids))
        if not node_list:
            return []
        node_filter = f" AND s.node_id IN ({','.join('?' * len(node_list))})"
        params.extend(node_list)
    rows = db.execute(
        f"""
        SELECT s.node_id, s.sku, s.on_hand, s.feed_as_of,
               COALESCE(r.reserved, 0) AS reserved,
               COALESCE(ss.quantity, d.quantity, 0) AS safety_stock,
               n.type AS node_type, n.name AS node_name, n.lat, n.lon, n.active
        FROM stock s
        JOIN nodes n ON n.node_id = s.node_id
        LEFT JOIN (
            SELECT node_id, sku, SUM(qty) AS reserved FROM reservations
            WHERE status = 'active' AND supply = 'on_hand' AND expires_at > ?
              AND sku IN ({sku_marks})
            GROUP BY node_id, sku
        ) r ON r.node_id = s.node_id AND r.sku = s.sku
        LEFT JOIN safety_stock ss ON ss.node_id = s.node_id AND ss.sku = s.sku
        LEFT JOIN safety_stock_defaults d ON d.node_type = n.type
        WHERE s.sku IN ({sku_marks}){node_filter}
        ORDER BY s.sku, s.node_id
        """,
        params,
    )
    return [_position(row) for row in rows]


def _position(row) -> dict:
    atp = max(0, row["on_hand"] - row["reserved"] - row["safety_stock"])
    return {
        "node_id": row["node_id"],
        "sku": row["sku"],
        "node_type": row["node_type"],
        "node_name": row["node_name"],
        "lat": row["lat"],
        "lon": row["lon"],
        "active": bool(row["active"]),
        "on_hand": row["on_hand"],
        "reserved": row["reserved"],
        "safety_stock": row["safety_stock"],
        "atp": atp,
        "feed_as_of": row["feed_as_of"],
    }


def atp(db: sqlite_utils.Database, node_id: str, sku: str, now: str | None = None) -> int:
    """Return ATP of one SKU at one node (0 when the node holds none)."""
    rows = positions(db, [sku], [node_id], now)
    return rows[0]["atp"] if rows else 0
