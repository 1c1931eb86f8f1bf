"""What stores and channels sold, as their own systems report it: demand feeds.
Owns ``demand`` and ``demand_feeds``.

A feed lists units sold per node, SKU and day. It is idempotent on its id (the same
body again returns the first result; another body is a conflict) and all-or-nothing:
any unknown node or SKU, a day in the future or the same (node, SKU, day) listed twice
rejects the whole feed with the pointer of each bad item. A later feed for a day already
reported replaces that day's figure: a correction, not more sales.
"""

from __future__ import annotations

from datetime import date, timedelta

from app.domain.network import nodes, skus, stock
from app.platform import db as database
from app.platform import jsontext
from app.platform.db import Database
from app.platform.errors import Conflict, InvalidInput, field_error

# Nodes whose sales are demand on stock held there.
SELLING_TYPES = ("store", "dc", "3pl")
# Days past today a feed's day may be (a node east of UTC is already in tomorrow).
AHEAD_DAYS = 1


class DemandFeedReused(Conflict):
    code = "feed_id_reused"


def apply_feed(db: Database, feed: dict) -> tuple[dict, bool]:
    """Record a demand feed all-or-nothing; return ``(result, replayed)``."""
    digest = stock.body_hash(feed)
    with database.immediate(db):
        seen = db.execute(
            "SELECT body_hash, result FROM demand_feeds WHERE feed_id = ?", [feed["feed_id"]]
        ).fetchone()
        if seen is not None:
            if seen["body_hash"] != digest:
                raise DemandFeedReused(
                    f"demand feed {feed['feed_id']!r} was already received with a different body"
                )
            return jsontext.loads(seen["result"]), True
        rows = _checked(db, feed["items"])
        now = database.now()
        db.executemany(
            "INSERT INTO demand (node_id, sku, day, units, feed_id, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (node_id, sku, day) DO UPDATE SET"
            " units = excluded.units, feed_id = excluded.feed_id,"
            " updated_at = excluded.updated_at",
            [(*row, feed["feed_id"], now) for row in rows],
        )
        result = {
            "feed_id": feed["feed_id"],
            "items": len(rows),
            "units": sum(row[3] for row in rows),
            "first_day": min(row[2] for row in rows),
            "last_day": max(row[2] for row in rows),
            "received_at": now,
        }
        db.execute(
            "INSERT INTO demand_feeds (feed_id, body_hash, result, received_at)"
            " VALUES (?, ?, ?, ?)",
            [feed["feed_id"], digest, jsontext.dumps(result), now],
        )
    return result, False


def _checked(db: Database, items: list[dict]) -> list[tuple]:
    """The feed's rows, or ``InvalidInput`` with the pointer of every bad item."""
    known_nodes = nodes.existing(db, {item["node_id"] for item in items})
    known_skus = skus.existing(db, {item["sku"] for item in items})
    latest = (date.fromisoformat(database.now()[:10]) + timedelta(days=AHEAD_DAYS)).isoformat()
    problems, rows, listed = [], [], set()
    for index, item in enumerate(items):
        node = known_nodes.get(item["node_id"])
        if node is None:
            problems.append(
                field_error(("items", index, "node_id"), f"node {item['node_id']!r} does not exist")
            )
        elif node["type"] not in SELLING_TYPES:
            problems.append(
                field_error(
                    ("items", index, "node_id"),
                    f"node {item['node_id']!r} is a {node['type']}; only stores, DCs and 3PLs sell",
                )
            )
        if item["sku"] not in known_skus:
            problems.append(
                field_error(("items", index, "sku"), f"SKU {item['sku']!r} does not exist")
            )
        try:
            day = date.fromisoformat(item["day"]).isoformat()
        except ValueError:
            problems.append(field_error(("items", index, "day"), "not a real date"))
            continue
        if day > latest:
            problems.append(field_error(("items", index, "day"), "a day that has not come yet"))
        spot = (item["node_id"], item["sku"], day)
        if spot in listed:
            problems.append(
                field_error(("items", index), "the same node, SKU and day is listed twice")
            )
        listed.add(spot)
        rows.append((*spot, item["units"]))
    if problems:
        raise InvalidInput(problems, "the demand feed has invalid items; nothing was recorded")
    return rows


def sold(
    db: Database, node_ids: list[str], sku_list: list[str], since: str
) -> dict[tuple[str, str, str], int]:
    """Units sold per ``(node_id, sku, day)`` from the day ``since``, as feeds reported."""
    found: dict[tuple[str, str, str], int] = {}
    if not node_ids or not sku_list:
        return found
    nodes_in = ",".join("?" * len(node_ids))
    for start in range(0, len(sku_list), 500):
        chunk = sku_list[start : start + 500]
        for node_id, sku, day, units in db.execute(
            f"SELECT node_id, sku, day, units FROM demand WHERE node_id IN ({nodes_in})"
            f" AND sku IN ({','.join('?' * len(chunk))}) AND day >= ?",
            [*node_ids, *chunk, since],
        ):
            found[(node_id, sku, day)] = units
    return found
