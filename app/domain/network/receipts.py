"""Receiving a transfer: its units go on the shelf at the destination, and the orders
that were promised them in transit now hold them on hand, in one transaction."""

from __future__ import annotations

from app.domain.network import reservations, stock, transfers
from app.platform import db as database
from app.platform.db import Database
from app.platform.errors import Conflict


def receive(db: Database, transfer_id: str, document: dict) -> tuple[dict, bool]:
    """Move a transfer's received quantity into on-hand at its destination.

    Returns ``(transfer, received_now)``. Receiving again with the same quantity
    is a replay and changes nothing; a different quantity is a conflict.
    """
    with database.immediate(db):
        transfer = transfers.lock(db, transfer_id)
        qty = document.get("received_qty", transfer["qty"])
        if transfer["status"] == "received":
            if qty != transfer["received_qty"]:
                raise Conflict(
                    f"transfer {transfer_id!r} was already received"
                    f" with {transfer['received_qty']} units",
                    code="already_received",
                )
            return transfer, False
        received_at = (
            database.observed_time(document["received_at"], ("received_at",))
            if document.get("received_at")
            else database.now()
        )
        if qty:
            stock.move(
                db,
                transfer["destination_node_id"],
                transfer["sku"],
                qty,
                "received",
                transfer_id,
                received_at,
            )
            reservations.settle_in_transit(
                db, transfer["destination_node_id"], transfer["sku"], qty
            )
        transfers.mark_received(db, transfer_id, qty, received_at)
        return transfers.get(db, transfer_id), True
