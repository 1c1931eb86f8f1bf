"""SKUs and the suppliers that can drop-ship them. Owns ``skus`` and ``sku_suppliers``."""

from __future__ import annotations

import json

from app.domain.network import nodes
from app.platform import db as database
from app.platform.db import Database
from app.platform.errors import InvalidInput, NotFound, field_error


def get(db: Database, sku: str) -> dict:
    row = db.execute("SELECT * FROM skus WHERE sku = ?", [sku]).fetchone()
    if row is None:
        raise NotFound(f"SKU {sku!r} does not exist")
    suppliers = [
        {"node_id": s["node_id"], "cost": s["cost"], "lead_time_days": s["lead_time_days"]}
        for s in db.execute(
            "SELECT node_id, cost, lead_time_days FROM sku_suppliers WHERE sku = ?"
            " ORDER BY cost, node_id",
            [sku],
        )
    ]
    return {
        "sku": row["sku"],
        "name": row["name"],
        "weight_kg": row["weight_kg"],
        "category": row["category"],
        "hazmat": bool(row["hazmat"]),
        "dropship": bool(suppliers),
        "suppliers": suppliers,
        "substitutes": json.loads(row["substitutes"]) if row["substitutes"] else [],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


# Asked about more SKUs than this, reading every code once is quicker than looking them up.
LOOKUP_AT_MOST = 2_000


def existing(db: Database, skus) -> set[str]:
    """Return the subset of ``skus`` that exist."""
    wanted = sorted(set(skus))
    if len(wanted) > LOOKUP_AT_MOST:
        return {row[0] for row in db.execute("SELECT sku FROM skus")}.intersection(wanted)
    found: set[str] = set()
    # SQLite limits bound parameters per statement; query in chunks.
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        marks = ",".join("?" * len(chunk))
        found.update(
            row[0] for row in db.execute(f"SELECT sku FROM skus WHERE sku IN ({marks})", chunk)
        )
    return found


def codes(db: Database, categories=None) -> list[str]:
    """Every SKU code, or those of some categories, in order."""
    if not categories:
        return [row[0] for row in db.execute("SELECT sku FROM skus ORDER BY sku")]
    wanted = sorted(set(categories))
    rows = db.execute(
        f"SELECT sku FROM skus WHERE category IN ({','.join('?' * len(wanted))}) ORDER BY sku",
        wanted,
    )
    return [row[0] for row in rows]


def search(db: Database, text: str | None, limit: int) -> list[dict]:
    """SKUs, by code, whose code or name contains ``text`` (any case): what a person
    picking a SKU sees as they type."""
    sql = "SELECT sku, name, category, weight_kg, hazmat FROM skus"
    params: list = []
    if text:
        pattern = (
            "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        )
        sql += " WHERE LOWER(sku) LIKE ? ESCAPE '\\' OR LOWER(name) LIKE ? ESCAPE '\\'"
        params += [pattern, pattern]
    rows = db.execute(sql + " ORDER BY sku LIMIT ?", [*params, limit])
    return [{**dict(row), "hazmat": bool(row["hazmat"])} for row in rows]


def put(db: Database, sku: str, document: dict) -> tuple[dict, bool]:
    """Create or replace a SKU and its supplier list; return ``(sku, created)``."""
    suppliers = document.get("suppliers", [])
    known = nodes.existing(db, [s["node_id"] for s in suppliers])
    problems = []
    seen = set()
    for index, supplier in enumerate(suppliers):
        node = known.get(supplier["node_id"])
        where = ("suppliers", index, "node_id")
        if node is None:
            problems.append(field_error(where, f"node {supplier['node_id']!r} does not exist"))
        elif node["type"] != "supplier":
            problems.append(field_error(where, f"node {supplier['node_id']!r} is not a supplier"))
        if supplier["node_id"] in seen:
            problems.append(field_error(where, "is listed twice"))
        seen.add(supplier["node_id"])
    replacements = document.get("substitutes", [])
    found = existing(db, replacements)
    for index, code in enumerate(replacements):
        where = ("substitutes", index)
        if code == sku:
            problems.append(field_error(where, "a SKU cannot replace itself"))
        elif code not in found:
            problems.append(field_error(where, f"SKU {code!r} does not exist"))
    if problems:
        raise InvalidInput(problems)
    now = database.now()
    with database.atomic(db):
        created = not db.execute("SELECT 1 FROM skus WHERE sku = ?", [sku]).fetchone()
        db.execute(
            "INSERT INTO skus (sku, name, weight_kg, category, hazmat, created_at, updated_at,"
            " substitutes) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (sku) DO UPDATE SET"
            " name = excluded.name, weight_kg = excluded.weight_kg,"
            " category = excluded.category, hazmat = excluded.hazmat,"
            " updated_at = excluded.updated_at, substitutes = excluded.substitutes",
            [
                sku,
                document["name"],
                document["weight_kg"],
                document["category"],
                int(document.get("hazmat", False)),
                now,
                now,
                json.dumps(replacements) if replacements else None,
            ],
        )
        db.execute("DELETE FROM sku_suppliers WHERE sku = ?", [sku])
        for supplier in suppliers:
            db.execute(
                "INSERT INTO sku_suppliers (sku, node_id, cost, lead_time_days) VALUES (?,?,?,?)",
                [sku, supplier["node_id"], supplier["cost"], supplier.get("lead_time_days")],
            )
    return get(db, sku), created


def details(db: Database, sku_list) -> dict[str, dict]:
    """Weight, category, hazmat and drop-ship suppliers of many SKUs at once."""
    wanted = sorted(set(sku_list))
    found: dict[str, dict] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for row in db.execute(
            f"SELECT sku, weight_kg, category, hazmat FROM skus WHERE sku IN ({marks})", chunk
        ):
            found[row["sku"]] = {
                "weight_kg": row["weight_kg"],
                "category": row["category"],
                "hazmat": bool(row["hazmat"]),
                "suppliers": {},
            }
        for row in db.execute(
            f"SELECT sku, node_id, cost FROM sku_suppliers WHERE sku IN ({marks})", chunk
        ):
            found[row["sku"]]["suppliers"][row["node_id"]] = row["cost"]
    return found


def substitutes(db: Database, sku: str) -> list[str]:
    """The SKUs that may replace ``sku`` when it is short, best first."""
    row = db.execute("SELECT substitutes FROM skus WHERE sku = ?", [sku]).fetchone()
    return json.loads(row[0]) if row and row[0] else []


def names(db: Database, sku_list) -> dict[str, str]:
    """The name of each of these SKUs that exists, what a customer reads."""
    wanted = sorted(set(sku_list))
    found: dict[str, str] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = db.execute(
            f"SELECT sku, name FROM skus WHERE sku IN ({','.join('?' * len(chunk))})", chunk
        )
        found.update({row[0]: row[1] for row in rows})
    return found
