"""Views of available-to-promise across the network: pure functions over stock positions."""

from __future__ import annotations

from app.domain.network.nodes import NODE_TYPES
from app.platform.db import parse_time
from app.platform.geo import distance_km


def feed_age_seconds(feed_as_of: str | None, now: str) -> float | None:
    if feed_as_of is None:
        return None
    return round((parse_time(now) - parse_time(feed_as_of)).total_seconds(), 3)


def inventory_view(sku: str, positions: list[dict], transfers: list[dict], now: str) -> dict:
    """Per node: on hand, reserved, safety stock, ATP, in transit, feed age; totals by type."""
    incoming: dict[str, list[dict]] = {}
    for transfer in transfers:
        incoming.setdefault(transfer["destination_node_id"], []).append(
            {"transfer_id": transfer["transfer_id"], "qty": transfer["qty"], "eta": transfer["eta"]}
        )
    rows = []
    for p in positions:
        rows.append(
            {
                "node_id": p["node_id"],
                "node_type": p["node_type"],
                "active": p["active"],
                "on_hand": p["on_hand"],
                "reserved": p["reserved"],
                "safety_stock": p["safety_stock"],
                "atp": p["atp"] if p["active"] else 0,
                "in_transit": incoming.pop(p["node_id"], []),
                "feed_as_of": p["feed_as_of"],
                "feed_age_seconds": feed_age_seconds(p["feed_as_of"], now),
            }
        )
    # Nodes with stock on the way but none on hand yet.
    for node_id, arriving in sorted(incoming.items()):
        rows.append(
            {
                "node_id": node_id,
                "node_type": None,
                "active": None,
                "on_hand": 0,
                "reserved": 0,
                "safety_stock": 0,
                "atp": 0,
                "in_transit": arriving,
                "feed_as_of": None,
                "feed_age_seconds": None,
            }
        )
    totals = {
        node_type: {"on_hand": 0, "reserved": 0, "atp": 0, "in_transit": 0}
        for node_type in NODE_TYPES
    }
    for row in rows:
        if row["node_type"] is None:
            continue
        total = totals[row["node_type"]]
        total["on_hand"] += row["on_hand"]
        total["reserved"] += row["reserved"]
        total["atp"] += row["atp"]
        total["in_transit"] += sum(t["qty"] for t in row["in_transit"])
    network = {
        "on_hand": sum(t["on_hand"] for t in totals.values()),
        "reserved": sum(t["reserved"] for t in totals.values()),
        "atp": sum(t["atp"] for t in totals.values()),
        "in_transit": sum(t["qty"] for t in transfers),
    }
    return {"sku": sku, "nodes": rows, "totals_by_node_type": totals, "network": network}


def availability(
    skus: list[str],
    positions: list[dict],
    lat: float | None = None,
    lon: float | None = None,
    radius_km: float | None = None,
) -> dict:
    """ATP per SKU at active nodes with stock to promise, nearest first when a point is given."""
    by_sku: dict[str, list[dict]] = {sku: [] for sku in skus}
    for p in positions:
        if not p["active"] or p["atp"] <= 0:
            continue
        entry = {"node_id": p["node_id"], "node_type": p["node_type"], "atp": p["atp"]}
        if lat is not None and lon is not None:
            entry["distance_km"] = round(distance_km(lat, lon, p["lat"], p["lon"]), 1)
            if radius_km is not None and entry["distance_km"] > radius_km:
                continue
        by_sku[p["sku"]].append(entry)
    result = []
    for sku in skus:
        nodes = by_sku[sku]
        if lat is not None and lon is not None:
            nodes.sort(key=lambda n: (n["distance_km"], -n["atp"], n["node_id"]))
        else:
            nodes.sort(key=lambda n: (-n["atp"], n["node_id"]))
        result.append({"sku": sku, "atp": sum(n["atp"] for n in nodes), "nodes": nodes})
    return {"skus": result}
