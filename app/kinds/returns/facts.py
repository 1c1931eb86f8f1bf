"""The facts of a return: the return itself, each returned line (``item``), the customer,
and one ``point`` per node that could take it.

``gather`` reads what the facts need from the database (I/O); ``build`` turns that view
into facts (pure), so a scenario, a test or a replay can build them from plain data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from app.domain import customers
from app.domain.network import nodes, skus, stock
from app.kinds.promising import schedule as schedules
from app.platform import geo
from app.platform.db import Database, parse_time

RETURN_KEY = "return"
RESELLABLE = ("unopened", "opened")
CUSTOMER_KEY = "customer"
CONDITION_DISPOSITIONS = {
    "unopened": "restock",
    "opened": "restock",
    "damaged": "dispose",
    "defective": "return_to_vendor",
}


def item_key(line_id: str) -> str:
    return f"item:{line_id}"


def point_key(node_id: str) -> str:
    return f"point:{node_id}"


@dataclass
class View:
    """What a return's facts are made of, read in one place."""

    request: dict
    order: dict  # the order row, its body parsed
    lines: dict[str, dict]  # line_id -> {sku, qty, unit_price}
    delivered: dict[str, dict]  # line_id -> {qty, node_id, node_type, delivered_at}
    skus: dict[str, dict]  # sku -> {weight_kg, category, hazmat, suppliers}
    customer: dict
    returns_before: int
    origin: dict  # {lat, lon}
    points: list[dict]  # node_id, type, capabilities, lat, lon, region, daily_capacity
    on_hand: dict[str, dict[str, int]] = field(default_factory=dict)  # node -> sku -> units
    demand: dict[str, int] = field(default_factory=dict)  # node -> units of returned SKUs
    open_returns: dict[str, int] = field(default_factory=dict)
    taken_today: dict[str, int] = field(default_factory=dict)
    # Active carrier services of the method's service level (ship_back and collect).
    carriers: list[dict] = field(default_factory=list)
    now: str = ""


def origin_of(request: dict, order: dict, nodes_by_id: dict[str, dict]) -> dict:
    """Where the customer is: the request's ``from``, else where the order was delivered."""
    place = request.get("from") or order["body"]["delivery"].get("address")
    if place is not None:
        return {"lat": place["lat"], "lon": place["lon"]}
    node = nodes_by_id[order["body"]["delivery"]["node_id"]]
    return {"lat": node["lat"], "lon": node["lon"]}


def delivered_lines(shipment_rows: list[dict], node_types: dict[str, str]) -> dict[str, dict]:
    """Units delivered per order line, with the node that delivered it and when (the
    earliest delivery of the line)."""
    found: dict[str, dict] = {}
    for shipment in shipment_rows:
        if shipment["status"] != "delivered":
            continue
        at = shipment.get("delivered_at") or shipment["updated_at"]
        for line in shipment["lines"]:
            entry = found.setdefault(
                line["line_id"],
                {"qty": 0, "node_id": shipment["node_id"], "delivered_at": at},
            )
            entry["qty"] += line["qty"]
            if at < entry["delivered_at"]:
                entry["delivered_at"] = at
                entry["node_id"] = shipment["node_id"]
            entry["node_type"] = node_types.get(entry["node_id"])
    return found


def gather(db: Database, request: dict, order: dict, settings: dict, now: str) -> View:
    """Read everything the facts of ``request`` need but the returns already made (the
    caller, which owns them, adds those), inside the return's transaction."""
    from app.domain import shipments
    from app.domain.orders import lines as order_lines

    lines = {line["line_id"]: line for line in order_lines(db, order["order_id"])}
    active = nodes.active_nodes(db)
    by_id = {row["node_id"]: row for row in active}
    shipped = shipments.for_order(db, order["order_id"])
    delivered = delivered_lines(shipped, {row["node_id"]: row["type"] for row in active})
    # Lines the order does not have are reported by the check that follows.
    wanted_skus = sorted(
        {lines[line["line_id"]]["sku"] for line in request["lines"] if line["line_id"] in lines}
    )
    origin = origin_of(request, order, by_id)
    suppliers = {
        delivered[line["line_id"]]["node_id"]
        for line in request["lines"]
        if line["line_id"] in delivered and delivered[line["line_id"]]["node_type"] == "supplier"
    }
    candidates = [
        row for row in active if "returns" in row["capabilities"] or row["node_id"] in suppliers
    ]
    candidates.sort(
        key=lambda row: (
            geo.distance_km(origin["lat"], origin["lon"], row["lat"], row["lon"]),
            row["node_id"],
        )
    )
    points = candidates[: settings.get("max_points", 30)]
    ids = [point["node_id"] for point in points]
    days = settings.get("demand_days", 30)
    since = (parse_time(now) - timedelta(days=days)).isoformat().replace("+00:00", "Z")
    view = View(
        request=request,
        order=order,
        lines=lines,
        delivered=delivered,
        skus=skus.details(db, wanted_skus),
        customer=customers.profile_for_decisions(customers.get(db, order["customer_id"])),
        returns_before=0,
        origin=origin,
        points=points,
        on_hand=stock.on_hand_of(db, ids, wanted_skus),
        # Demand the service sees: units of these SKUs each point shipped.
        demand=stock.shipped(db, ids, wanted_skus, since),
        now=now,
    )
    level = (settings["methods"].get(request["method"]) or {}).get("service_level")
    if level and request["method"] != "drop_off":
        view.carriers = schedules.load(db).of_level(level)
    return view


def _days_between(earlier: str, later: str) -> int:
    return max(0, (parse_time(later) - parse_time(earlier)).days)


def trip_cost(settings: dict, method: str, distance_km: float, weight_kg: float) -> float:
    """What the method's rate charges to bring the goods to a point (nothing for a drop-off)."""
    rate = settings["methods"].get(method) if method != "drop_off" else None
    if not rate:
        return 0.0
    return round(rate["base"] + rate["per_km"] * distance_km + rate["per_kg"] * weight_kg, 2)


def trip(view: View, settings: dict, distance_km: float, weight_kg: float, hazmat: bool):
    """``(cost, carrier service id or None)`` of bringing the goods to a point: the
    cheapest carrier service that takes the parcel, else the method's rate."""
    method = view.request["method"]
    if method != "drop_off" and view.carriers:
        found = schedules.cheapest(view.carriers, distance_km, weight_kg, hazmat)
        if found is not None:
            return round(found[1], 2), found[0]["service_id"]
    return trip_cost(settings, method, distance_km, weight_kg), None


def build(view: View, settings: dict) -> list[dict]:
    """The facts of a return, from its view (pure)."""
    request, now = view.request, view.now
    items = []
    for line in request["lines"]:
        ordered = view.lines[line["line_id"]]
        sku = view.skus.get(ordered["sku"], {})
        delivered = view.delivered.get(line["line_id"], {})
        item = {
            "fact": "item",
            "key": item_key(line["line_id"]),
            "line_id": line["line_id"],
            "sku": ordered["sku"],
            "qty": line["qty"],
            "unit_price": ordered["unit_price"],
            "value": round(ordered["unit_price"] * line["qty"], 2),
            "category": sku.get("category"),
            "reason": line["reason"],
            "condition": line["condition"],
            "inspected": False,  # the inspection decides again with the condition found
            "weight_kg": sku.get("weight_kg"),
            "hazmat": sku.get("hazmat"),
            "dropship": delivered.get("node_type") == "supplier",
            "supplier_id": delivered.get("node_id")
            if delivered.get("node_type") == "supplier"
            else None,
            "days_since_delivery": _days_between(delivered["delivered_at"], now)
            if delivered
            else None,
        }
        items.append({k: v for k, v in item.items() if v is not None})
    weight = round(sum((i.get("weight_kg") or 0) * i["qty"] for i in items), 3)
    value = round(sum(i["value"] for i in items), 2)
    days = [i["days_since_delivery"] for i in items if "days_since_delivery" in i]
    the_return = {
        "fact": "return",
        "key": RETURN_KEY,
        "return_id": request["return_id"],
        "order_id": request["order_id"],
        "channel": view.order["channel"],
        "method": request["method"],
        "lines": len(items),
        "units": sum(i["qty"] for i in items),
        "value": value,
        "weight_kg": weight,
        "reasons": sorted({i["reason"] for i in items}),
    }
    if days:
        the_return["days_since_delivery"] = max(days)
    orders_placed = view.customer.get("lifetime_orders") or 0
    customer = {
        "fact": "customer",
        "key": CUSTOMER_KEY,
        "customer_id": view.customer["customer_id"],
        "tier": view.customer["tier"],
        "segments": view.customer.get("segments") or [],
        "lifetime_orders": orders_placed,
        "returns": view.returns_before,
        "return_rate": round(view.returns_before / orders_placed, 4) if orders_placed else 0.0,
    }
    return [the_return, customer, *items, *_points(view, settings, items, weight)]


def _points(view: View, settings: dict, items: list[dict], weight: float):
    returned = {item["sku"] for item in items}
    suppliers = {item.get("supplier_id") for item in items}
    handling = settings.get("handling_cost", {})
    send_on = settings.get("send_on")
    # Only goods in a condition to be sold again earn a point that sells them a credit.
    resellable = sum(i["value"] for i in items if i["condition"] in RESELLABLE)
    credit = settings.get("resale_credit_percent", 0) / 100 * resellable
    units = sum(item["qty"] for item in items)
    hazmat = any(item.get("hazmat") for item in items)
    for point in view.points:
        node_id = point["node_id"]
        held = view.on_hand.get(node_id, {})
        distance = round(
            geo.distance_km(view.origin["lat"], view.origin["lon"], point["lat"], point["lon"]), 2
        )
        sells_all = returned <= set(held)
        demand = view.demand.get(node_id, 0)
        carried, carrier = trip(view, settings, distance, weight, hazmat)
        cost = carried + handling.get(point["type"], 0) * units
        if not sells_all and point["type"] == "store" and send_on:
            cost += send_on["base"] + send_on["per_kg"] * weight
        if sells_all and demand > 0:
            cost -= credit
        fact = {
            "fact": "point",
            "key": point_key(node_id),
            "node_id": node_id,
            "node_type": point["type"],
            "region": point.get("region"),
            "capabilities": point["capabilities"],
            "distance_km": distance,
            "trip_cost": carried,
            "carrier_service": carrier,
            "sells_all": sells_all,
            "demand_units": demand,
            "on_hand": sum(held.values()),
            "open_returns": view.open_returns.get(node_id, 0),
            "supplier_of_all": suppliers == {node_id},
            "estimated_cost": round(cost, 2),
        }
        if point.get("daily_capacity") is not None:
            fact["capacity_left"] = point["daily_capacity"] - view.taken_today.get(node_id, 0)
        yield {k: v for k, v in fact.items() if v is not None}
