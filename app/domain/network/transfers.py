"""In-transit supply: transfers between nodes and inbound deliveries. Owns ``transfers``.

Receiving one (stock and reservations change with it) is ``receipts.receive``.
"""

from __future__ import annotations

from app.domain.network import nodes, skus, stock
from app.platform import db as database
from app.platform.db import Database
from app.platform.errors import Conflict, InvalidInput, NotFound, field_error


def _public(row) -> dict:
    return {
        "transfer_id": row["transfer_id"],
        "sku": row["sku"],
        "qty": row["qty"],
        "origin_node_id": row["origin_node_id"],
        "origin": row["origin"],
        "destination_node_id": row["destination_node_id"],
        "eta": row["eta"],
        "status": row["status"],
        "received_qty": row["received_qty"],
        "received_at": row["received_at"],
        "created_at": row["created_at"],
        "shipment_id": row["shipment_id"],
    }


def get(db: Database, transfer_id: str) -> dict:
    row = db.execute("SELECT * FROM transfers WHERE transfer_id = ?", [transfer_id]).fetchone()
    if row is None:
        raise NotFound(f"transfer {transfer_id!r} does not exist")
    return _public(row)


def create(db: Database, document: dict) -> tuple[dict, bool]:
    """Record stock in transit; return ``(transfer, created)``. Idempotent on transfer_id."""
    digest = stock.body_hash(document)
    with database.immediate(db):
        row = db.execute(
            "SELECT body_hash FROM transfers WHERE transfer_id = ?", [document["transfer_id"]]
        ).fetchone()
        if row is not None:
            if row["body_hash"] != digest:
                raise Conflict(
                    f"transfer {document['transfer_id']!r} exists with a different body",
                    code="transfer_id_reused",
                )
            return get(db, document["transfer_id"]), False
        problems = []
        referenced = [document["destination_node_id"], document.get("origin_node_id")]
        known = nodes.existing(db, [node_id for node_id in referenced if node_id])
        for name in ("destination_node_id", "origin_node_id"):
            node_id = document.get(name)
            if node_id is not None and node_id not in known:
                problems.append(field_error((name,), f"node {node_id!r} does not exist"))
        if document["sku"] not in skus.existing(db, [document["sku"]]):
            problems.append(field_error(("sku",), f"SKU {document['sku']!r} does not exist"))
        if document.get("origin_node_id") == document["destination_node_id"]:
            problems.append(
                field_error(("destination_node_id",), "must differ from origin_node_id")
            )
        if problems:
            raise InvalidInput(problems)
        db.execute(
            "INSERT INTO transfers (transfer_id, sku, qty, origin_node_id, origin,"
            " destination_node_id, eta, status, body_hash, created_at, shipment_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 'in_transit', ?, ?, ?)",
            [
                document["transfer_id"],
                document["sku"],
                document["qty"],
                document.get("origin_node_id"),
                document.get("origin"),
                document["destination_node_id"],
                database.normalize_time(document["eta"]),
                digest,
                database.now(),
                document.get("shipment_id"),
            ],
        )
    return get(db, document["transfer_id"]), True


def of_shipment(db: Database, shipment_id: str) -> list[dict]:
    """The transfers a consolidation's leg carries."""
    rows = db.execute(
        "SELECT * FROM transfers WHERE shipment_id = ? ORDER BY transfer_id", [shipment_id]
    )
    return [_public(row) for row in rows]


def cancel_for_shipment(db: Database, shipment_id: str) -> None:
    """The leg was taken back: its transfers in transit will not arrive. Call in a
    transaction."""
    db.execute(
        "UPDATE transfers SET status = 'cancelled' WHERE shipment_id = ? AND status = 'in_transit'",
        [shipment_id],
    )


def lock(db: Database, transfer_id: str) -> dict:
    """Lock a transfer's row for the caller's transaction and return it."""
    db.lock_rows("transfers", ("transfer_id",), [(transfer_id,)])
    return get(db, transfer_id)


def mark_received(db: Database, transfer_id: str, qty: int, received_at: str) -> None:
    """Record that ``qty`` units of a transfer arrived at ``received_at``."""
    db.execute(
        "UPDATE transfers SET status = 'received', received_qty = ?, received_at = ?"
        " WHERE transfer_id = ?",
        [qty, received_at, transfer_id],
    )


def in_transit(db: Database, sku_list, node_ids=None) -> list[dict]:
    """Return open transfers of the SKUs (optionally to some nodes), soonest first."""
    wanted = sorted(set(sku_list))
    if not wanted:
        return []
    params = list(wanted)
    sql = (
        f"SELECT * FROM transfers WHERE status = 'in_transit'"
        f" AND sku IN ({','.join('?' * len(wanted))})"
    )
    if node_ids is not None:
        node_list = sorted(set(node_ids))
        sql += f" AND destination_node_id IN ({','.join('?' * len(node_list))})"
        params.extend(node_list)
    return [_public(row) for row in db.execute(sql + " ORDER BY eta, transfer_id", params)]


def lock_incoming(db: Database, pairs: list[tuple[str, str]]) -> None:
    """Hold the transfers in transit to these (node, SKU) pairs, in transfer order."""
    if not pairs:
        return
    marks = ",".join(["(?, ?)"] * len(pairs))
    db.lock_matching(
        "transfers",
        f"status = 'in_transit' AND (destination_node_id, sku) IN ({marks})",
        [value for pair in pairs for value in pair],
        "transfer_id",
    )


def incoming(db: Database, node_id: str, sku: str) -> int:
    """Units of a SKU in transit to a node."""
    return db.execute(
        "SELECT COALESCE(SUM(qty), 0) FROM transfers WHERE status = 'in_transit'"
        " AND destination_node_id = ? AND sku = ?",
        [node_id, sku],
    ).fetchone()[0]
