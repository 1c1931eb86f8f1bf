"""Supplier catalogues: each supplier's terms and what it offers per SKU, for
replenishment. Owns ``suppliers`` and ``supplier_items``.

A supplier is a node of type ``supplier`` (it takes its purchase orders by the node's
signed webhook or broker). Putting a catalogue replaces the whole of it, all or nothing:
an unknown SKU, or one listed twice, rejects it with the pointer of each bad item.
"""

from __future__ import annotations

from app.domain.network import nodes, skus, stock
from app.platform import db as database
from app.platform import jsontext
from app.platform.db import Database
from app.platform.errors import InvalidInput, NotFound, field_error

WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def put_catalogue(db: Database, supplier_id: str, document: dict) -> tuple[dict, bool]:
    """Replace a supplier's catalogue; return ``(catalogue, created)``."""
    digest = stock.body_hash(document)
    terms = document["terms"]
    with database.immediate(db):
        nodes.lock(db, [supplier_id])
        node = nodes.existing(db, [supplier_id]).get(supplier_id)
        if node is None or node["type"] != "supplier":
            raise NotFound(f"no supplier node {supplier_id!r}")
        items = document["items"]
        known = skus.existing(db, {item["sku"] for item in items})
        problems, listed = [], set()
        for index, item in enumerate(items):
            if item["sku"] not in known:
                problems.append(
                    field_error(("items", index, "sku"), f"SKU {item['sku']!r} does not exist")
                )
            elif item["sku"] in listed:
                problems.append(
                    field_error(("items", index, "sku"), f"SKU {item['sku']!r} is listed twice")
                )
            listed.add(item["sku"])
            if item.get("min_order_qty", 0) % item.get("pack_size", 1) and item.get(
                "min_order_qty"
            ):
                problems.append(
                    field_error(
                        ("items", index, "min_order_qty"),
                        "must be a whole number of packs (a multiple of pack_size)",
                    )
                )
        if problems:
            raise InvalidInput(problems, "the catalogue has invalid items; nothing was changed")
        created = (
            db.execute("SELECT 1 FROM suppliers WHERE supplier_id = ?", [supplier_id]).fetchone()
            is None
        )
        lead_time = terms.get("lead_time_days", 3)
        row = [
            terms.get("status", "active"),
            terms.get("min_order_value", 0),
            terms["cost_per_delivery"],
            jsontext.dumps(terms.get("delivery_days", WEEKDAYS[:5])),
            int(terms.get("direct_to_store", False)),
            lead_time,
            digest,
            database.now(),
        ]
        if created:
            db.execute(
                "INSERT INTO suppliers (status, min_order_value, cost_per_delivery,"
                " delivery_days, direct_to_store, lead_time_days, body_hash, updated_at,"
                " supplier_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [*row, supplier_id],
            )
        else:
            db.execute(
                "UPDATE suppliers SET status = ?, min_order_value = ?, cost_per_delivery = ?,"
                " delivery_days = ?, direct_to_store = ?, lead_time_days = ?, body_hash = ?,"
                " updated_at = ? WHERE supplier_id = ?",
                [*row, supplier_id],
            )
        db.execute("DELETE FROM supplier_items WHERE supplier_id = ?", [supplier_id])
        db.executemany(
            "INSERT INTO supplier_items (supplier_id, sku, unit_cost, pack_size, min_order_qty,"
            " lead_time_days) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    supplier_id,
                    item["sku"],
                    item["unit_cost"],
                    item.get("pack_size", 1),
                    item.get("min_order_qty", 0),
                    item.get("lead_time_days", lead_time),
                )
                for item in items
            ],
        )
    return get_catalogue(db, supplier_id), created


def get_catalogue(db: Database, supplier_id: str) -> dict:
    row = db.execute("SELECT * FROM suppliers WHERE supplier_id = ?", [supplier_id]).fetchone()
    if row is None:
        raise NotFound(f"supplier {supplier_id!r} has no catalogue")
    items = db.execute(
        "SELECT sku, unit_cost, pack_size, min_order_qty, lead_time_days FROM supplier_items"
        " WHERE supplier_id = ? ORDER BY sku",
        [supplier_id],
    )
    return {
        "supplier_id": supplier_id,
        "terms": _terms(row),
        "items": [dict(item) for item in items],
        "updated_at": row["updated_at"],
    }


def _terms(row) -> dict:
    return {
        "status": row["status"],
        "min_order_value": row["min_order_value"],
        "cost_per_delivery": row["cost_per_delivery"],
        "delivery_days": jsontext.loads(row["delivery_days"]),
        "direct_to_store": bool(row["direct_to_store"]),
        "lead_time_days": row["lead_time_days"],
    }


def offers(db: Database, sku_list: list[str]) -> dict[str, list[dict]]:
    """Every supplier's offer of each SKU, with its terms: ``{sku: [offer]}``."""
    found: dict[str, list[dict]] = {}
    terms = {row["supplier_id"]: _terms(row) for row in db.execute("SELECT * FROM suppliers")}
    for start in range(0, len(sku_list), 500):
        chunk = sku_list[start : start + 500]
        for row in db.execute(
            f"SELECT supplier_id, sku, unit_cost, pack_size, min_order_qty, lead_time_days"
            f" FROM supplier_items WHERE sku IN ({','.join('?' * len(chunk))})"
            f" ORDER BY sku, unit_cost, supplier_id",
            chunk,
        ):
            found.setdefault(row["sku"], []).append({**terms[row["supplier_id"]], **dict(row)})
    return found
