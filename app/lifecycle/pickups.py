"""A pickup whose store cannot serve it: the customer chose that store, and once it rejected
or failed the line nobody else can hand it over there, so waiting would strand the order.

The sourcing ruleset's ``pickup_rejected`` says what happens instead, each choice
falling back to the next when it cannot be made:

    offer_other_store   the nearest store that can serve all of it (within
                        ``pickup_radius_km``, up to ``pickup_stores`` tried) is offered:
                        the order is held, the channel asked (``order.action_needed``
                        with the offer); the customer takes it up by a release with
                        ``pickup_node_id``, or the order is cancelled
    ship_to_customer    the lines are shipped to the customer's default address
    cancel_line         the missing quantities are cancelled (the channel refunds them)

The choice and its outcome are on the order's timeline.
"""

from __future__ import annotations

from app.domain import customers, orders, shipments
from app.domain.network import nodes
from app.kinds.sourcing import decide
from app.lifecycle import redecide
from app.machinery.rules import runtime
from app.platform import db as database
from app.platform import geo
from app.platform.db import Database

CHOICES = ("offer_other_store", "ship_to_customer", "cancel_line")


def store_failed(db: Database, order: dict, missing: list[dict]) -> bool:
    """Whether the order is collected from a store that failed a line it still misses."""
    delivery = orders.as_decided(order)["delivery"]
    if delivery["method"] != "pickup":
        return False
    excluded = shipments.excluded_nodes(db, order["order_id"])
    return any(delivery["node_id"] in excluded.get(line["line_id"], ()) for line in missing)


def fall_back(db: Database, order: dict, missing: list[dict], reason: str) -> dict | None:
    """Do what the ruleset says for a pickup its store failed; call in a transaction."""
    settings = runtime.active_version(db, decide.RULESET)["document"]["settings"]
    first = settings.get("pickup_rejected", CHOICES[0])
    for choice in CHOICES[CHOICES.index(first) :]:
        done = _TRY[choice](db, order, missing, reason, settings)
        if done is not None:
            return done
    return None


def _offer(db, order, missing, reason, settings) -> dict | None:
    store = orders.as_decided(order)["delivery"]["node_id"]
    for other in nearby_stores(db, store, settings):
        delivery = {"method": "pickup", "node_id": other}
        _, decision, *_ = redecide.decide_missing(db, order, missing, delivery=delivery)
        if decision["status"] != "sourced":
            continue
        message = f"{store} cannot hand over the order ({reason}); {other} can"
        offer = {"pickup_node_id": other, "lines": [line["line_id"] for line in missing]}
        orders.set_status(db, order["order_id"], "on_hold", {"reason": message, "offer": offer})
        orders.ask_channel(
            db,
            order["order_id"],
            database.now(),
            {
                "reason": "pickup_offer",
                "message": message,
                "offer": offer,
                "next_action": f"the customer takes up {other} (POST /v1/orders/"
                f"{order['order_id']}/release with pickup_node_id) or cancels",
            },
        )
        return {"status": "on_hold", "offer": offer, "shipments": []}
    return None


def nearby_stores(db: Database, store: str, settings: dict) -> list[str]:
    """Other active pickup points near ``store``, nearest first, as many as the ruleset tries."""
    points = {node_id: (lat, lon) for node_id, lat, lon in nodes.pickup_points(db)}
    if store not in points:
        return []
    here = points[store]
    radius = settings.get("pickup_radius_km", 50)
    near = sorted(
        (geo.distance_km(*here, *there), node_id)
        for node_id, there in points.items()
        if node_id != store and geo.distance_km(*here, *there) <= radius
    )
    return [node_id for _, node_id in near[: settings.get("pickup_stores", 3)]]


def _ship(db, order, missing, reason, settings) -> dict | None:
    customer = customers.get(db, order["customer_id"])
    address = next(
        (a for a in customer["addresses"] if a["address_id"] == customer["default_address_id"]),
        customer["addresses"][0] if customer["addresses"] else None,
    )
    if address is None:
        return None
    delivery = {
        "method": "ship",
        "address": {k: address[k] for k in ("lines", "city", "postcode", "country", "lat", "lon")},
    }
    orders.redirect(db, order["order_id"], delivery)
    orders.add_event(
        db,
        order["order_id"],
        "pickup_replaced",
        {"choice": "ship_to_customer", "because": reason, "address_id": address["address_id"]},
    )
    refreshed = orders.require(db, order["order_id"])
    return redecide.decide_again(db, refreshed, missing, f"{reason}; shipped instead")


def _cancel(db, order, missing, reason, settings) -> dict | None:
    quantities = {line["line_id"]: line["qty"] for line in missing}
    return cancel_lines(db, order, quantities, reason)


def cancel_lines(db: Database, order: dict, quantities: dict[str, int], reason: str) -> dict:
    """Cancel these quantities of the order's lines for good, move the order to what is
    left of it, and ask the channel to refund them; call in a transaction."""
    orders.cancel_quantities(db, order["order_id"], quantities)
    detail = {"choice": "cancel_line", "because": reason, "cancelled": quantities}
    orders.add_event(db, order["order_id"], "lines_cancelled", detail)
    lines = orders.lines(db, order["order_id"])
    left = sum(line["qty"] for line in lines)
    allocated = sum(line["qty_allocated"] for line in lines)
    target = (
        "cancelled"
        if not left
        else "sourced"
        if allocated == left
        else "partially_sourced"
        if allocated
        else "backordered"
    )
    orders.set_status(db, order["order_id"], target, {"reason": f"line(s) cancelled: {reason}"})
    orders.ask_channel(
        db,
        order["order_id"],
        database.now(),
        {
            "reason": "lines_cancelled",
            "message": f"line(s) {', '.join(quantities)} cancelled: {reason}",
            "cancelled": quantities,
            "next_action": "the channel refunds the cancelled quantities",
        },
    )
    return {"status": target, "cancelled": quantities, "shipments": []}


_TRY = {"offer_other_store": _offer, "ship_to_customer": _ship, "cancel_line": _cancel}
