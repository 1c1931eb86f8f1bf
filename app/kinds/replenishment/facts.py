"""The facts of a replenishment run: the run, one ``position`` per stocking position (node x
SKU) in scope, and one ``source`` per way to replenish it (a supplier of the SKU that
delivers there, a DC with units to spare).

``gather`` reads what the facts need from the database through the modules that own it
(I/O); ``build`` turns that view into facts (pure), so a scenario, a test or a replay
builds them from plain data.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from datetime import date, timedelta

from app.domain import orders
from app.domain.network import nodes, skus, stock, transfers
from app.kinds.replenishment import demand, suppliers
from app.machinery.rules.budget import SOURCES_PER_POSITION
from app.platform import geo
from app.platform.db import Database

RUN_KEY = "run"
STOCKED_TYPES = ("store", "dc", "3pl")
NO_SALES_COVER = 9999.0


def position_key(node_id: str, sku: str) -> str:
    return f"{node_id}/{sku}"


def source_key(position: str, source_id: str) -> str:
    return f"{position}|{source_id}"


@dataclass
class View:
    """What a run's facts are made of, read in one place."""

    run_id: str
    horizon: str  # the review day, YYYY-MM-DD
    # (node_id, sku) -> on_hand, reserved, safety_stock, atp
    stock: dict[tuple[str, str], dict]
    nodes: dict[str, dict]  # node_id -> type, region, lat, lon
    skus: dict[str, dict]  # sku -> weight_kg, category, hazmat, suppliers
    # (node_id, sku) -> {day: units}: demand feeds plus what the node shipped
    sales: dict[tuple[str, str], dict[str, int]]
    in_transit: dict[tuple[str, str], int] = field(default_factory=dict)
    on_order: dict[tuple[str, str], int] = field(default_factory=dict)
    backorders: dict[tuple[str, str], int] = field(default_factory=dict)
    offers: dict[str, list[dict]] = field(default_factory=dict)  # sku -> supplier offers
    # (dc, sku) -> units a DC has promised to transfers not yet shipped
    promised_out: dict[tuple[str, str], int] = field(default_factory=dict)
    positions: list[tuple[str, str]] = field(default_factory=list)
    # (position key, source) -> why that source may not serve it (it rejected an order)
    refused: dict[tuple[str, str], str] = field(default_factory=dict)


def gather(
    db: Database,
    scope: dict,
    horizon: str,
    run_id: str,
    open_orders: tuple[dict, dict],
) -> View:
    """Read the positions in scope and everything their facts say.

    ``open_orders`` is what open replenishment orders hold: units on order per (node,
    SKU), and units DCs promised to transfers per (DC, SKU).
    """
    active = {node["node_id"]: node for node in nodes.active_nodes(db)}
    stocked = [
        node_id
        for node_id, node in active.items()
        if node["type"] in STOCKED_TYPES and (not scope.get("nodes") or node_id in scope["nodes"])
    ]
    dcs = [node_id for node_id, node in active.items() if node["type"] == "dc"]
    window = int(scope.get("demand_window_days", 28))
    since = (date.fromisoformat(horizon) - timedelta(days=window)).isoformat()
    wanted = _skus_in_scope(db, scope)
    rows = []
    for start in range(0, len(wanted), 500):
        rows.extend(stock.positions(db, wanted[start : start + 500], sorted({*stocked, *dcs})))
    stock_of = {(row["node_id"], row["sku"]): row for row in rows}
    sales: dict[tuple[str, str], dict[str, int]] = {}
    for source in (
        demand.sold(db, sorted({*stocked, *dcs}), wanted, since),
        stock.shipped_by_day(db, sorted({*stocked, *dcs}), wanted, since),
    ):
        for (node_id, sku, day), units in source.items():
            if day < horizon:
                days = sales.setdefault((node_id, sku), {})
                days[day] = days.get(day, 0) + units
    info = skus.details(db, wanted)
    waiting: dict[tuple[str, str], int] = {}
    for line in orders.backordered(db):
        node_id = line["node_id"] or _nearest(active, dcs, line["lat"], line["lon"])
        if node_id is not None and line["sku"] in info:
            waiting[(node_id, line["sku"])] = waiting.get((node_id, line["sku"]), 0) + line["qty"]
    # A position is a node's SKU it holds, sold in the window, or that customers wait for.
    positions = sorted(
        {
            (node_id, sku)
            for node_id, sku in [*stock_of, *sales, *waiting]
            if node_id in stocked and sku in info and not info[sku]["suppliers"]
        }
    )
    arriving: dict[tuple[str, str], int] = {}
    for start in range(0, len(wanted), 500):
        for transfer in transfers.in_transit(db, wanted[start : start + 500]):
            spot = (transfer["destination_node_id"], transfer["sku"])
            arriving[spot] = arriving.get(spot, 0) + transfer["qty"]
    on_order, promised_out = open_orders
    return View(
        run_id=run_id,
        horizon=horizon,
        stock=stock_of,
        nodes=active,
        skus=info,
        sales=sales,
        in_transit=arriving,
        on_order=on_order,
        backorders=waiting,
        offers=suppliers.offers(db, sorted({sku for _, sku in positions})),
        promised_out=promised_out,
        positions=positions,
    )


def _skus_in_scope(db: Database, scope: dict) -> list[str]:
    if scope.get("skus"):
        return sorted(skus.existing(db, scope["skus"]))
    return skus.codes(db, scope.get("categories"))


def _nearest(active: dict, dcs: list[str], lat, lon) -> str | None:
    if lat is None or not dcs:
        return None
    return min(dcs, key=lambda d: geo.distance_km(lat, lon, active[d]["lat"], active[d]["lon"]))


def rate(days: dict[str, int], horizon: str, window_days: int) -> tuple[float, float, int]:
    """Mean and standard deviation of daily units over the window before ``horizon`` (days
    without a record sold nothing), and how many days have a record."""
    start = date.fromisoformat(horizon) - timedelta(days=window_days)
    series = [
        days.get((start + timedelta(days=offset)).isoformat(), 0) for offset in range(window_days)
    ]
    mean = sum(series) / window_days
    sd = statistics.pstdev(series) if window_days > 1 else 0.0
    in_window = sum(1 for day in days if day >= start.isoformat())
    return mean, sd, in_window


def build(view: View, settings: dict) -> list[dict]:
    """The run's facts: the run, its positions and their sources."""
    horizon = date.fromisoformat(view.horizon)
    found: list[dict] = [
        {
            "fact": "run",
            "key": RUN_KEY,
            "run_id": view.run_id,
            "date": view.horizon,
            "weekday": ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[horizon.weekday()],
            "month": horizon.month,
            "day_of_year": horizon.timetuple().tm_yday,
        }
    ]
    window = settings.get("demand_window_days", 28)
    dc_rates: dict[tuple[str, str], float] = {}
    for node_id, sku in view.positions:
        found.extend(_position(view, settings, node_id, sku, window, dc_rates))
    return found


def _position(view: View, settings: dict, node_id: str, sku: str, window: int, dc_rates):
    node, info = view.nodes[node_id], view.skus[sku]
    row = view.stock.get((node_id, sku)) or {"on_hand": 0, "reserved": 0, "safety_stock": 0}
    mean, sd, days_of_data = rate(view.sales.get((node_id, sku), {}), view.horizon, window)
    spot = (node_id, sku)
    in_transit, on_order = view.in_transit.get(spot, 0), view.on_order.get(spot, 0)
    waiting = view.backorders.get(spot, 0)
    # Units kept back from customers (the node's safety stock) do not count: customers
    # can only be served from what is above it.
    position = (
        row["on_hand"] - row["reserved"] - row["safety_stock"] + in_transit + on_order - waiting
    )
    key = position_key(node_id, sku)
    facts = [
        _present(
            {
                "fact": "position",
                "key": key,
                "node_id": node_id,
                "node_type": node["type"],
                "node_region": node.get("region"),
                "sku": sku,
                "category": info["category"],
                "hazmat": info["hazmat"],
                "weight_kg": info["weight_kg"],
                "on_hand": row["on_hand"],
                "reserved": row["reserved"],
                "safety_stock": row["safety_stock"],
                "in_transit": in_transit,
                "on_order": on_order,
                "backorders": waiting,
                "inventory_position": position,
                "daily_mean": round(mean, 4),
                "daily_sd": round(sd, 4),
                "days_of_data": days_of_data,
                "days_of_cover": round(position / mean, 2) if mean > 0 else NO_SALES_COVER,
                "unit_value": min(
                    (offer["unit_cost"] for offer in view.offers.get(sku, [])), default=None
                ),
            }
        )
    ]
    sources = _suppliers(view, node, key, node_id, sku, info) + _dcs(
        view, settings, node, key, node_id, sku, info, window, dc_rates
    )
    for source in sources:
        if (key, source["source_id"]) in view.refused:
            source["refused"] = True
    facts.extend(sources[:SOURCES_PER_POSITION])
    return facts


def _suppliers(view: View, node: dict, key: str, node_id: str, sku: str, info: dict):
    found = []
    for offer in view.offers.get(sku, []):
        supplier = view.nodes.get(offer["supplier_id"])
        # Terms, not rules: a supplier that does not deliver to stores is no source of one.
        if supplier is None or (node["type"] == "store" and not offer["direct_to_store"]):
            continue
        found.append(
            _present(
                {
                    "fact": "source",
                    "key": source_key(key, offer["supplier_id"]),
                    "position_key": key,
                    "node_id": node_id,
                    "node_type": node["type"],
                    "sku": sku,
                    "category": info["category"],
                    "source_id": offer["supplier_id"],
                    "source_type": "supplier",
                    "source_region": supplier.get("region"),
                    "status": offer["status"],
                    "unit_cost": offer["unit_cost"],
                    "pack_size": offer["pack_size"],
                    "min_order_qty": offer["min_order_qty"],
                    "min_order_value": offer["min_order_value"],
                    "lead_time_days": offer["lead_time_days"],
                    "cost_per_delivery": offer["cost_per_delivery"],
                    "cost_per_kg": 0.0,
                    "direct_to_store": offer["direct_to_store"],
                    "delivery_days": offer["delivery_days"],
                    "distance_km": _distance(supplier, node),
                }
            )
        )
    return found


def _dcs(view, settings, node, key, node_id, sku, info, window, dc_rates):
    transfer = settings.get("transfer") or {}
    cover_days = settings.get("dc_cover_days", 14)
    found = []
    for dc_id, dc in sorted(view.nodes.items(), key=lambda n: _distance(n[1], node)):
        if dc["type"] != "dc" or dc_id == node_id:
            continue
        row = view.stock.get((dc_id, sku))
        if row is None:
            continue
        if (dc_id, sku) not in dc_rates:
            dc_rates[(dc_id, sku)] = rate(view.sales.get((dc_id, sku), {}), view.horizon, window)[0]
        dc_mean = dc_rates[(dc_id, sku)]
        atp = max(0, row["atp"] - view.promised_out.get((dc_id, sku), 0))
        spare = max(0, atp - math.ceil(dc_mean * cover_days))
        if spare <= 0:
            continue
        found.append(
            _present(
                {
                    "fact": "source",
                    "key": source_key(key, dc_id),
                    "position_key": key,
                    "node_id": node_id,
                    "node_type": node["type"],
                    "sku": sku,
                    "category": info["category"],
                    "source_id": dc_id,
                    "source_type": "dc",
                    "source_region": dc.get("region"),
                    "status": "active",
                    "unit_cost": 0.0,
                    "pack_size": 1,
                    "min_order_qty": 0,
                    "min_order_value": 0.0,
                    "lead_time_days": transfer.get("lead_time_days", 2),
                    "cost_per_delivery": transfer.get("per_shipment", 25.0),
                    "cost_per_kg": transfer.get("per_kg", 0.05),
                    "direct_to_store": True,
                    "spare_units": spare,
                    "source_days_of_cover": round(atp / dc_mean, 2)
                    if dc_mean > 0
                    else NO_SALES_COVER,
                    "distance_km": _distance(dc, node),
                }
            )
        )
    return found


def _distance(a: dict, b: dict) -> float:
    if a.get("lat") is None or b.get("lat") is None:
        return 0.0
    return round(geo.distance_km(a["lat"], a["lon"], b["lat"], b["lon"]), 1)


def _present(fact: dict) -> dict:
    """Facts leave out fields that do not apply (rules test them with ``exists``)."""
    return {name: value for name, value in fact.items() if value is not None}
