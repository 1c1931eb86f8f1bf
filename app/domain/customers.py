"""Customer profiles and their addresses. Owns ``customers`` and ``customer_addresses``.

Email and phone are personal data: ``put`` drops them unless the service is set
to store them, and ``profile_for_decisions`` never includes them.
"""

from __future__ import annotations

import json

from app.domain.network import nodes
from app.platform import db as database
from app.platform import jsontext
from app.platform.db import Database
from app.platform.errors import InvalidInput, NotFound, field_error

PERSONAL_FIELDS = ("email", "phone")


def exists(db: Database, customer_id: str) -> bool:
    """Whether the customer is known (without reading their personal data)."""
    row = db.execute("SELECT 1 FROM customers WHERE customer_id = ?", [customer_id]).fetchone()
    return row is not None


def get(db: Database, customer_id: str) -> dict:
    row = db.execute("SELECT * FROM customers WHERE customer_id = ?", [customer_id]).fetchone()
    if row is None:
        raise NotFound(f"customer {customer_id!r} does not exist")
    addresses = [
        {
            "address_id": a["address_id"],
            "label": a["label"],
            "lines": jsontext.loads(a["lines"]),
            "city": a["city"],
            "postcode": a["postcode"],
            "country": a["country"],
            "lat": a["lat"],
            "lon": a["lon"],
        }
        for a in db.execute(
            "SELECT * FROM customer_addresses WHERE customer_id = ? ORDER BY position",
            [customer_id],
        )
    ]
    return {
        "customer_id": row["customer_id"],
        "name": row["name"],
        "email": row["email"],
        "phone": row["phone"],
        "tier": row["tier"],
        "segments": jsontext.loads(row["segments"]),
        "addresses": addresses,
        "default_address_id": row["default_address_id"],
        "preferred_pickup_node_id": row["preferred_pickup_node_id"],
        "lifetime_orders": row["lifetime_orders"],
        "lifetime_value": row["lifetime_value"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def profile_for_decisions(customer: dict) -> dict:
    """Return what a decision may see of a customer: never the personal data."""
    return {
        "customer_id": customer["customer_id"],
        "tier": customer["tier"],
        "segments": customer["segments"],
        "lifetime_orders": customer["lifetime_orders"],
        "lifetime_value": customer["lifetime_value"],
    }


def check(db: Database, document: dict) -> list[dict]:
    """Return the problems a schema cannot see: references and duplicate addresses."""
    problems = []
    address_ids = [a["address_id"] for a in document.get("addresses", [])]
    for index, address_id in enumerate(address_ids):
        if address_id in address_ids[:index]:
            problems.append(field_error(("addresses", index, "address_id"), "is listed twice"))
    default = document.get("default_address_id")
    if default is not None and default not in address_ids:
        problems.append(
            field_error(("default_address_id",), f"no address has address_id {default!r}")
        )
    pickup = document.get("preferred_pickup_node_id")
    if pickup is not None:
        node = nodes.existing(db, [pickup]).get(pickup)
        if node is None:
            problems.append(
                field_error(("preferred_pickup_node_id",), f"node {pickup!r} does not exist")
            )
        elif "pickup" not in node["capabilities"]:
            problems.append(
                field_error(("preferred_pickup_node_id",), f"node {pickup!r} does not do pickup")
            )
    return problems


def put(
    db: Database, customer_id: str, document: dict, store_personal_data: bool
) -> tuple[dict, bool]:
    """Create or replace a customer and their addresses; return ``(customer, created)``."""
    problems = check(db, document)
    if problems:
        raise InvalidInput(problems)
    personal = {
        name: document.get(name) if store_personal_data else None for name in PERSONAL_FIELDS
    }
    addresses = document.get("addresses", [])
    default = document.get("default_address_id") or (
        addresses[0]["address_id"] if addresses else None
    )
    now = database.now()
    with database.atomic(db):
        created = not db.execute(
            "SELECT 1 FROM customers WHERE customer_id = ?", [customer_id]
        ).fetchone()
        db.execute(
            "INSERT INTO customers (customer_id, name, email, phone, tier, segments,"
            " default_address_id, preferred_pickup_node_id, lifetime_orders, lifetime_value,"
            " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT (customer_id) DO UPDATE SET name = excluded.name,"
            " email = excluded.email, phone = excluded.phone, tier = excluded.tier,"
            " segments = excluded.segments, default_address_id = excluded.default_address_id,"
            " preferred_pickup_node_id = excluded.preferred_pickup_node_id,"
            " lifetime_orders = excluded.lifetime_orders,"
            " lifetime_value = excluded.lifetime_value, updated_at = excluded.updated_at",
            [
                customer_id,
                document["name"],
                personal["email"],
                personal["phone"],
                document["tier"],
                json.dumps(document.get("segments", [])),
                default,
                document.get("preferred_pickup_node_id"),
                document.get("lifetime_orders", 0),
                document.get("lifetime_value", 0),
                now,
                now,
            ],
        )
        db.execute("DELETE FROM customer_addresses WHERE customer_id = ?", [customer_id])
        for position, address in enumerate(addresses):
            db.execute(
                "INSERT INTO customer_addresses (customer_id, address_id, label, lines, city,"
                " postcode, country, lat, lon, position) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [
                    customer_id,
                    address["address_id"],
                    address.get("label"),
                    json.dumps(address["lines"]),
                    address["city"],
                    address["postcode"],
                    address["country"],
                    address["lat"],
                    address["lon"],
                    position,
                ],
            )
    return get(db, customer_id), created
