"""On-hand stock per node and SKU, inventory feeds, stock movements and safety stock.

Owns ``stock``, ``feeds``, ``stock_movements``, ``atp_raised``, ``safety_stock`` and
``safety_stock_defaults``, and the one query that computes available to promise:

    ATP = on hand - active reservations - safety stock, never below zero.

A snapshot is a count taken at the node at ``as_of``. Goods that left (shipped) or
arrived (received) are movements dated when they happened at the node: a count
taken after a movement already reflects it, so on hand after a snapshot is the
count plus the movements dated after it, and a movement reported after a newer
count changes nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from app.domain.network import nodes, skus
from app.platform import db as database
from app.platform import jsontext, logs, monitoring
from app.platform.db import Database
from app.platform.errors import Conflict, InvalidInput, NotFound, field_error

# The most one node may hold of one SKU (feeds accept up to 10**9 per item).
MAX_ON_HAND = 10**12
# How many skipped items a feed result lists; the count is always complete.
SKIPPED_LISTED = 1000


def body_hash(document: dict) -> str:
    """Hash a document's canonical JSON, to tell a replay from a different body."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


# Feeds ---------------------------------------------------------------------------------


# What a feed's item writes over the node's stored row of its SKU: a snapshot is a count;
# a delta keeps the newest feed time.
SNAPSHOT_WRITES = (
    "on_hand = excluded.on_hand, snapshot_as_of = excluded.snapshot_as_of,"
    " feed_as_of = excluded.feed_as_of, updated_at = excluded.updated_at"
)
DELTA_WRITES = (
    "on_hand = excluded.on_hand, feed_as_of = CASE WHEN stock.feed_as_of IS NULL"
    " OR excluded.feed_as_of > stock.feed_as_of THEN excluded.feed_as_of"
    " ELSE stock.feed_as_of END, updated_at = excluded.updated_at"
)


def apply_feed(db: Database, feed: dict) -> tuple[dict, bool]:
    """Apply an inventory feed all-or-nothing; return ``(result, replayed)``.

    The same ``feed_id`` with the same body returns the first result and changes
    nothing; with a different body it is a conflict. Any invalid item rejects the
    whole feed. Items older than what is already applied are skipped and reported.
    """
    digest = body_hash(feed)
    as_of = database.observed_time(feed["as_of"], ("as_of",))
    node_id = feed["node_id"]
    with database.immediate(db):
        # One feed of a node at a time: each reads the node's stock, then writes it.
        nodes.lock(db, [node_id])
        seen = db.execute(
            "SELECT body_hash, result FROM feeds WHERE node_id = ? AND feed_id = ?",
            [node_id, feed["feed_id"]],
        ).fetchone()
        if seen is not None:
            if seen["body_hash"] != digest:
                raise Conflict(
                    f"feed {feed['feed_id']!r} was already received with a different body",
                    code="feed_id_reused",
                )
            return jsontext.loads(seen["result"]), True
        # Every row's on-hand, but the times only of rows counted after this feed (few,
        # usually none): a node's hundred thousand timestamps cost more than the rest.
        current = dict(
            db.execute("SELECT sku, on_hand FROM stock WHERE node_id = ?", [node_id]).fetchall()
        )
        newer = {
            row["sku"]: row
            for row in db.execute(
                "SELECT sku, snapshot_as_of, feed_as_of FROM stock WHERE node_id = ?"
                " AND (feed_as_of > ? OR snapshot_as_of > ?)",
                [node_id, as_of, as_of],
            )
        }
        # A SKU the node already stocks exists (stock refers to skus, and SKUs are never
        # deleted): only the others are looked up, none in a node's daily count.
        known_skus = set(current) | skus.existing(
            db, (item["sku"] for item in feed["items"] if item["sku"] not in current)
        )
        node_exists = bool(nodes.existing(db, [node_id]))
        plan = plan_feed(feed, as_of, current, newer, known_skus, node_exists)
        now = database.now()
        snapshot = feed["mode"] == "snapshot"
        if snapshot:
            later = movements_after(db, node_id, as_of)
            if later:
                plan["set"] = [(sku, max(0, qty + later.get(sku, 0))) for sku, qty in plan["set"]]
        if plan["set"]:
            source, params = db.rows_source(plan["set"], ("text", "integer"))
            # WHERE true: SQLite reads ON CONFLICT after a bare SELECT as part of a join.
            db.execute(
                "INSERT INTO stock (node_id, sku, on_hand, snapshot_as_of, feed_as_of, updated_at)"
                f" SELECT ?, c0, c1, ?, ?, ? FROM {source} WHERE true ON CONFLICT (node_id, sku)"
                f" DO UPDATE SET {SNAPSHOT_WRITES if snapshot else DELTA_WRITES}",
                [node_id, as_of if snapshot else None, as_of, now, *params],
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
        raised = [sku for sku, qty in plan["set"] if qty > current.get(sku, 0)]
        note_raised(db, raised)
    monitoring.FEED_ITEMS.labels(feed["mode"], "applied").inc(result["applied"])
    monitoring.FEED_ITEMS.labels(feed["mode"], "skipped").inc(result["skipped_count"])
    logs.event(
        "feed.applied",
        feed_id=feed["feed_id"],
        node_id=node_id,
        mode=feed["mode"],
        as_of=as_of,
        items=result["items"],
        applied=result["applied"],
        zeroed=result["zeroed"],
        skipped=result["skipped_count"],
    )
    return result, False


def plan_feed(
    feed: dict, as_of: str, current: dict, newer: dict, known_skus: set[str], node_exists: bool
) -> dict:
    """Decide what a feed changes, without touching the database.

    ``current`` is the node's on-hand by SKU; ``newer`` the node's rows (``snapshot_as_of``,
    ``feed_as_of``) of SKUs counted or moved after the feed's ``as_of``. Returns
    ``{"set": [(sku, on_hand)], "skipped": [...], "zeroed": n}`` or raises ``InvalidInput``
    with the pointer of every bad item.
    """
    problems = []
    if not node_exists:
        problems.append(field_error(("node_id",), f"node {feed['node_id']!r} does not exist"))
    snapshot = feed["mode"] == "snapshot"
    new_on_hand: dict[str, int] = {}
    listed: set[str] = set()
    skipped = []
    items = feed["items"]
    if snapshot and not problems:
        # A node's count is mostly known SKUs, each once, none counted since: say so in a
        # few passes over the items, and go item by item only to tell what is wrong.
        codes = [item["sku"] for item in items]
        distinct = set(codes)
        counted_since = any(_counted_since(row, as_of) for row in newer.values())
        if len(distinct) == len(codes) and known_skus.issuperset(distinct) and not counted_since:
            new_on_hand = {item["sku"]: item["on_hand"] for item in items}
            return _planned(feed, as_of, current, newer, distinct, new_on_hand, skipped)
    for index, item in enumerate(items):
        sku = item["sku"]
        if sku not in known_skus:
            problems.append(field_error(("items", index, "sku"), f"SKU {sku!r} does not exist"))
            continue
        if sku in listed:
            problems.append(field_error(("items", index, "sku"), f"SKU {sku!r} is listed twice"))
            continue
        listed.add(sku)
        row = newer.get(sku)
        if snapshot:
            # A snapshot taken before the newest feed applied would undo newer counts.
            if _counted_since(row, as_of):
                skipped.append(_skip(index, sku, row["feed_as_of"]))
                continue
            new_on_hand[sku] = item["on_hand"]
        else:
            # A delta taken before the newest snapshot is already counted in it.
            if row is not None and row["snapshot_as_of"] and row["snapshot_as_of"] > as_of:
                skipped.append(_skip(index, sku, row["snapshot_as_of"]))
                continue
            before = current.get(sku, 0)
            after = before + item["delta"]
            if after > MAX_ON_HAND:
                problems.append(
                    field_error(
                        ("items", index, "delta"),
                        f"would take on-hand of {sku!r} past {MAX_ON_HAND}",
                    )
                )
                continue
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
    return _planned(feed, as_of, current, newer, listed, new_on_hand, skipped)


def _planned(feed, as_of, current, newer, listed, new_on_hand, skipped) -> dict:
    """The plan, once every item is checked: a complete snapshot also zeroes what it
    does not list (unless counted since)."""
    zeroed = 0
    if feed["mode"] == "snapshot" and feed.get("complete"):
        for sku, on_hand in current.items():
            if on_hand and sku not in listed and not _counted_since(newer.get(sku), as_of):
                new_on_hand[sku] = 0
                zeroed += 1
    # Written in SKU order (sorting the codes alone is quicker than sorting the pairs).
    ordered = [(sku, new_on_hand[sku]) for sku in sorted(new_on_hand)]
    return {"set": ordered, "skipped": skipped, "zeroed": zeroed}


def _counted_since(row, as_of: str) -> bool:
    return row is not None and row["feed_as_of"] > as_of


def _skip(index: int, sku: str, newer: str) -> dict:
    return {
        "pointer": f"/items/{index}",
        "sku": sku,
        "reason": "stale",
        "message": f"older than the counts already applied (as of {newer})",
    }


# Movements ------------------------------------------------------------------------------


def move(
    db: Database,
    node_id: str,
    sku: str,
    qty: int,
    kind: str,
    reference: str,
    at: str,
) -> bool:
    """Record goods that left (``qty`` < 0) or arrived at a node at ``at``; call in a transaction.

    On hand changes unless a count newer than ``at`` already reflects the movement.
    Returns whether on hand changed. Goods cannot leave what the node does not hold:
    that is a 409 ``insufficient_stock``.
    """
    lock(db, [(node_id, sku)])
    row = db.execute(
        "SELECT on_hand, snapshot_as_of FROM stock WHERE node_id = ? AND sku = ?", [node_id, sku]
    ).fetchone()
    counted = row is not None and row["snapshot_as_of"] is not None and row["snapshot_as_of"] > at
    now = database.now()
    if not counted:
        before = row["on_hand"] if row is not None else 0
        if before + qty < 0:
            raise Conflict(
                f"node {node_id!r} does not hold {-qty} of {sku!r}", code="insufficient_stock"
            )
        db.execute(
            "INSERT INTO stock (node_id, sku, on_hand, snapshot_as_of, feed_as_of, updated_at)"
            " VALUES (?, ?, ?, NULL, ?, ?) ON CONFLICT (node_id, sku) DO UPDATE SET"
            " on_hand = stock.on_hand + ?, updated_at = excluded.updated_at",
            [node_id, sku, max(qty, 0), at, now, qty],
        )
    db.execute(
        "INSERT INTO stock_movements (node_id, sku, qty, kind, reference, at, counted,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [node_id, sku, qty, kind, reference, at, int(counted), now],
    )
    if qty > 0 and not counted:
        note_raised(db, [sku])
    return not counted


def on_hand_of(db: Database, node_ids: list[str], sku_list: list[str]) -> dict[str, dict]:
    """On hand of these SKUs at these nodes: ``{node_id: {sku: units}}``, for the positions
    that have a stock row (a node that never stocked a SKU has none)."""
    found: dict[str, dict] = {}
    if not node_ids or not sku_list:
        return found
    nodes_in, skus_in = ",".join("?" * len(node_ids)), ",".join("?" * len(sku_list))
    for row in db.execute(
        f"SELECT node_id, sku, on_hand FROM stock WHERE node_id IN ({nodes_in})"
        f" AND sku IN ({skus_in})",
        [*node_ids, *sku_list],
    ):
        found.setdefault(row["node_id"], {})[row["sku"]] = row["on_hand"]
    return found


def shipped(
    db: Database, node_ids: list[str], sku_list: list[str], since: str, until: str | None = None
) -> dict[str, int]:
    """Units of these SKUs each node shipped from ``since`` (to ``until``): its dated
    movements, as each shipment that left recorded them."""
    if not node_ids or not sku_list:
        return {}
    nodes_in, skus_in = ",".join("?" * len(node_ids)), ",".join("?" * len(sku_list))
    sql = (
        f"SELECT node_id, -SUM(qty) FROM stock_movements WHERE node_id IN ({nodes_in})"
        f" AND sku IN ({skus_in}) AND kind = 'shipped' AND at >= ?"
    )
    params = [*node_ids, *sku_list, since]
    if until is not None:
        sql += " AND at < ?"
        params.append(until)
    return {row[0]: row[1] for row in db.execute(sql + " GROUP BY node_id", params) if row[1]}


def shipped_by_day(
    db: Database, node_ids: list[str], sku_list: list[str], since: str
) -> dict[tuple[str, str, str], int]:
    """Units each node shipped (to customers, or to other nodes by transfer) of each SKU
    per UTC day from ``since``:
    ``{(node_id, sku, YYYY-MM-DD): units}``."""
    found: dict[tuple[str, str, str], int] = {}
    if not node_ids or not sku_list:
        return found
    nodes_in = ",".join("?" * len(node_ids))
    for start in range(0, len(sku_list), 500):
        chunk = sku_list[start : start + 500]
        rows = db.execute(
            f"SELECT node_id, sku, SUBSTR(at, 1, 10), -SUM(qty) FROM stock_movements"
            f" WHERE node_id IN ({nodes_in}) AND sku IN ({','.join('?' * len(chunk))})"
            f" AND kind = 'shipped' AND at >= ?"
            f" GROUP BY node_id, sku, SUBSTR(at, 1, 10)",
            [*node_ids, *chunk, since],
        )
        for node_id, sku, day, units in rows:
            if units:
                found[(node_id, sku, day)] = units
    return found


def movements_after(db: Database, node_id: str, as_of: str) -> dict[str, int]:
    """Net units moved at a node after ``as_of``, per SKU: what a count then did not see."""
    rows = db.execute(
        "SELECT sku, SUM(qty) FROM stock_movements WHERE node_id = ? AND at > ? GROUP BY sku",
        [node_id, as_of],
    )
    return {row[0]: row[1] for row in rows}


# Raised stock: what waiting orders are decided again for --------------------------------


# Past this many SKUs, one raise stands for every SKU: a count of a whole node raises
# thousands, and one row is what every decision's check then reads.
RAISE_EVERY_OVER = 500
EVERY_SKU = "*"  # no SKU id can be this (common.schema.json#/$defs/id)


def note_raised(db: Database, sku_list: Iterable[str]) -> None:
    """Record that stock of these SKUs may have become available; call in the transaction
    that raised it, so the back-orders that wait for it run at least once."""
    wanted = sorted(set(sku_list))
    if len(wanted) > RAISE_EVERY_OVER:
        wanted = [EVERY_SKU]
    now = database.now()
    db.executemany(
        "INSERT INTO atp_raised (sku, raised_at) VALUES (?, ?)"
        " ON CONFLICT (sku) DO UPDATE SET raised_at = excluded.raised_at",
        [(sku, now) for sku in wanted],
    )


def raised(db: Database, sku_list: Iterable[str] | None = None) -> list[dict]:
    """Raises noted for these SKUs (or all), oldest first: ``[{sku, raised_at}]``; a raise
    of every SKU (``EVERY_SKU``) is among them whatever is asked."""
    if sku_list is None:
        rows = db.execute("SELECT sku, raised_at FROM atp_raised ORDER BY raised_at, sku")
        return [dict(row) for row in rows]
    wanted = sorted({*sku_list, EVERY_SKU})
    found = []
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = db.execute(
            f"SELECT sku, raised_at FROM atp_raised WHERE sku IN ({','.join('?' * len(chunk))})",
            chunk,
        )
        found.extend(dict(row) for row in rows)
    return sorted(found, key=lambda entry: (entry["raised_at"], entry["sku"]))


def clear_raised(db: Database, entries: list[dict]) -> None:
    """Forget raises once their back-orders ran; a newer raise of a SKU stays."""
    db.executemany(
        "DELETE FROM atp_raised WHERE sku = ? AND raised_at <= ?",
        [(entry["sku"], entry["raised_at"]) for entry in entries],
    )


# Safety stock --------------------------------------------------------------------------


def set_safety_stock(db: Database, node_id: str, sku: str, quantity: int) -> dict:
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
        note_raised(db, [sku])
    return {"node_id": node_id, "sku": sku, "quantity": quantity}


def set_default_safety_stock(db: Database, node_type: str, quantity: int) -> dict:
    if node_type not in nodes.NODE_TYPES:
        raise NotFound(f"node type {node_type!r} does not exist")
    with database.atomic(db):
        db.execute(
            "INSERT INTO safety_stock_defaults (node_type, quantity, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (node_type) DO UPDATE SET quantity = excluded.quantity,"
            " updated_at = excluded.updated_at",
            [node_type, quantity, database.now()],
        )
        note_raised_at(db, node_type=node_type)
    return {"node_type": node_type, "quantity": quantity}


def note_raised_at(db: Database, node_id: str | None = None, node_type: str | None = None) -> None:
    """Note every SKU held at a node (or at nodes of a type) as raised: the node came back
    into service or its safety stock fell. Call in that change's transaction."""
    column, value = ("s.node_id", node_id) if node_id else ("n.type", node_type)
    rows = db.execute(
        f"SELECT DISTINCT s.sku FROM stock s JOIN nodes n ON n.node_id = s.node_id"
        f" WHERE {column} = ? AND s.on_hand > 0",
        [value],
    )
    note_raised(db, [row[0] for row in rows])


def default_safety_stock(db: Database) -> dict[str, int]:
    rows = db.execute("SELECT node_type, quantity FROM safety_stock_defaults")
    return {row["node_type"]: row["quantity"] for row in rows}


# Available to promise ------------------------------------------------------------------


def positions(
    db: Database,
    sku_list: Iterable[str],
    node_ids: Iterable[str] | None = None,
) -> list[dict]:
    """Return stock positions with ATP for the SKUs (optionally only at some nodes).

    One row per (node, SKU) with a stock record: on hand, reserved (active and
    unexpired), safety stock (the node's own, else its type's default), ATP, the
    node's type, name, coordinates and whether it is active, and the feed time; and
    the node's revision, for ``nodes.current``.
    """
    wanted = sorted(set(sku_list))
    if not wanted:
        return []
    sku_marks = ",".join("?" * len(wanted))
    params: list = [*wanted, *wanted]
    node_filter = ""
    if node_ids is not None:
        node_list = sorted(set(node_ids))
        if not node_list:
            return []
        node_filter = f" AND s.node_id IN ({','.join('?' * len(node_list))})"
        params.extend(node_list)
    # The held stock is summed over the SKUs' active reservations through
    # reservations_held (status, sku, node_id): PostgreSQL plans this aggregate well,
    # and a sum per stock row would cost it seven times as much.
    rows = db.execute(
        f"""
        SELECT s.node_id, s.sku, s.on_hand, s.feed_as_of,
               COALESCE(r.reserved, 0) AS reserved,
               COALESCE(ss.quantity, d.quantity, 0) AS safety_stock,
               n.type AS node_type, n.name AS node_name, n.lat, n.lon, n.active,
               n.revision AS node_revision
        FROM stock s
        JOIN nodes n ON n.node_id = s.node_id
        LEFT JOIN (
            SELECT node_id, sku, SUM(qty) AS reserved FROM reservations
            WHERE status = 'active' AND supply = 'on_hand' AND counted_at IS NULL
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
    # Unpacked by position, in the order selected: this runs for every stocking node.
    return [
        {
            "node_id": node_id,
            "sku": sku,
            "node_type": node_type,
            "node_name": node_name,
            "lat": lat,
            "lon": lon,
            "active": bool(active),
            "on_hand": on_hand,
            "reserved": reserved,
            "safety_stock": safety_stock,
            "atp": max(0, on_hand - reserved - safety_stock),
            "feed_as_of": feed_as_of,
            "node_revision": node_revision,
        }
        for (
            node_id,
            sku,
            on_hand,
            feed_as_of,
            reserved,
            safety_stock,
            node_type,
            node_name,
            lat,
            lon,
            active,
            node_revision,
        ) in rows
    ]


def lock(db: Database, pairs: Iterable[tuple[str, str]]) -> None:
    """Hold these (node, SKU) stock rows until the transaction ends, in key order."""
    db.lock_rows("stock", ("node_id", "sku"), pairs)


def lock_skus(db: Database, sku_list: Iterable[str]) -> None:
    """Hold every stock row of these SKUs, and first the nodes that hold them."""
    wanted = sorted(set(sku_list))
    if not wanted:
        return
    marks = ",".join("?" * len(wanted))
    db.lock_matching(
        "nodes", f"node_id IN (SELECT node_id FROM stock WHERE sku IN ({marks}))", wanted, "node_id"
    )
    db.lock_matching("stock", f"sku IN ({marks})", wanted, "node_id, sku")


def atp(db: Database, node_id: str, sku: str) -> int:
    """Return ATP of one SKU at one node (0 when the node holds none)."""
    return atp_at(db, [(node_id, sku)]).get((node_id, sku), 0)


def atp_at(db: Database, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """ATP of each (node, SKU) that has a stock row, in one read (a decision reserves at
    several)."""
    wanted = set(pairs)
    if not wanted:
        return {}
    rows = positions(db, {sku for _, sku in wanted}, {node_id for node_id, _ in wanted})
    return {(p["node_id"], p["sku"]): p["atp"] for p in rows if (p["node_id"], p["sku"]) in wanted}


def overcommitted(
    db: Database, node_id: str, sku_list: Iterable[str] | None = None
) -> list[tuple[str, int, int]]:
    """SKUs at a node whose active holds exceed on hand: ``[(sku, on_hand, held)]``."""
    if sku_list is None:
        return _overcommitted(db, node_id, None)
    wanted = sorted(set(sku_list))
    # Databases bound the parameters of one statement; a large feed asks in chunks.
    found = []
    for start in range(0, len(wanted), 500):
        found.extend(_overcommitted(db, node_id, wanted[start : start + 500]))
    return found


def _overcommitted(db: Database, node_id: str, wanted: list[str] | None) -> list[tuple]:
    params: list = [node_id]
    sku_filter = ""
    if wanted is not None:
        sku_filter = f" AND r.sku IN ({','.join('?' * len(wanted))})"
        params.extend(wanted)
    rows = db.execute(
        f"""
        SELECT r.sku, COALESCE(s.on_hand, 0) AS on_hand, SUM(r.qty) AS held
        FROM reservations r
        LEFT JOIN stock s ON s.node_id = r.node_id AND s.sku = r.sku
        WHERE r.node_id = ? AND r.status = 'active' AND r.supply = 'on_hand'
          AND r.counted_at IS NULL{sku_filter}
        GROUP BY r.sku, s.on_hand HAVING SUM(r.qty) > COALESCE(s.on_hand, 0)
        ORDER BY r.sku
        """,
        params,
    )
    return [(row[0], row[1], row[2]) for row in rows]


def any_atp(db: Database, sku_list: Iterable[str]) -> bool:
    """Whether any active node can promise any of these SKUs now."""
    return any(p["atp"] > 0 and p["active"] for p in positions(db, sku_list))
