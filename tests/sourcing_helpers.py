"""A small network with known stock for decision tests."""

from __future__ import annotations

import itertools

from tests.conftest import NODE_DC, store

LEICESTER = {
    "lines": ["1 Gallowtree Gate"],
    "city": "Leicester",
    "postcode": "LE1 5AD",
    "country": "GB",
    "lat": 52.6369,
    "lon": -1.1398,
}
NODES = {
    "DC1": NODE_DC,  # Lutterworth, ~22 km from Leicester
    "ST1": {**store(52.6369, -1.1398, "Leicester"), "capabilities": ["ship", "pickup", "same_day"]},
    "ST2": store(53.4808, -2.2426, "Manchester"),  # ~130 km
    "PL1": {**NODE_DC, "type": "3pl", "name": "3PL", "capabilities": ["ship"]},
    "SUP1": {
        **NODE_DC,
        "type": "supplier",
        "name": "Sofa maker",
        "capabilities": ["ship", "dropship"],
    },
}
SKUS = {
    "MUG": {"name": "Mug", "weight_kg": 0.4, "category": "home"},
    "CUP": {"name": "Cup", "weight_kg": 0.3, "category": "home"},
    "HAZ": {"name": "Aerosol", "weight_kg": 0.3, "category": "beauty", "hazmat": True},
    "BIG": {"name": "Rowing machine", "weight_kg": 31.0, "category": "sports"},
    "SOFA": {
        "name": "Sofa",
        "weight_kg": 18.0,
        "category": "furniture",
        "suppliers": [{"node_id": "SUP1", "cost": 210.0}],
    },
}
CUSTOMERS = {
    "C1": {"name": "Ann", "tier": "standard", "lifetime_orders": 4},
    "VIP": {"name": "Val", "tier": "vip", "lifetime_orders": 40},
    "NEW": {"name": "Ned", "tier": "standard", "lifetime_orders": 0},
    "B2B": {"name": "Bob Ltd", "tier": "standard", "segments": ["b2b"], "lifetime_orders": 9},
}
_feeds = itertools.count()


def build_network(admin) -> None:
    for node_id, node in NODES.items():
        assert admin.put(f"/v1/nodes/{node_id}", json=node).status_code in (200, 201)
    for sku, body in SKUS.items():
        assert admin.put(f"/v1/skus/{sku}", json=body).status_code in (200, 201)
    for customer_id, body in CUSTOMERS.items():
        assert admin.put(f"/v1/customers/{customer_id}", json=body).status_code in (200, 201)


def set_stock(admin, node_id: str, items: dict[str, int]) -> None:
    feed = {
        "feed_id": f"t{next(_feeds)}",
        "node_id": node_id,
        "mode": "snapshot",
        "as_of": _now(),
        "items": [{"sku": sku, "on_hand": qty} for sku, qty in items.items()],
    }
    response = admin.post("/v1/inventory/feeds", json=feed)
    assert response.status_code == 201, response.get_json()


def _now() -> str:
    from app.platform.db import now

    return now()


def order(order_id: str, lines: list[tuple], customer: str = "C1", **extra) -> dict:
    body = {
        "order_id": order_id,
        "channel": "web",
        "customer_id": customer,
        "delivery": {"method": "ship", "address": LEICESTER},
        "lines": [
            {"line_id": str(i + 1), "sku": sku, "qty": qty, "unit_price": price}
            for i, (sku, qty, price) in enumerate(lines)
        ],
    }
    body.update(extra)
    return body
