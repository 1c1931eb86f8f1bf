"""Inventory benchmarks: feed apply throughput and availability query rate."""

from __future__ import annotations

import random

from app import db as database
from app import demo
from bench.common import RUNS, Timer, fresh_app, median_of, report

FEED_ITEMS = 100_000
AVAILABILITY_QUERIES = 2_000


def feed_items_per_second(folder: str) -> float:
    """POST one 100,000-item snapshot through the API (parse, validate, apply)."""
    app, headers = fresh_app(folder)
    connection = database.open_from_config(app.config)
    node = {**demo.network()["nodes"]["DC-MID"]}
    from app.network import nodes

    nodes.put(connection, "DC-MID", node)
    with database.atomic(connection):
        connection.conn.executemany(
            "INSERT INTO skus (sku, name, weight_kg, category, created_at, updated_at)"
            " VALUES (?, 'bench', 1, 'bench', '', '')",
            [(f"B{i:06d}",) for i in range(FEED_ITEMS)],
        )
    connection.close()
    rng = random.Random(1)
    feed = {
        "feed_id": "bench",
        "node_id": "DC-MID",
        "mode": "snapshot",
        "as_of": "2026-11-25T06:00:00Z",
        "complete": True,
        "items": [{"sku": f"B{i:06d}", "on_hand": rng.randint(0, 500)} for i in range(FEED_ITEMS)],
    }
    client = app.test_client()
    with Timer() as timer:
        response = client.post("/v1/inventory/feeds", json=feed, headers=headers)
    assert response.status_code == 201, response.get_json()
    return FEED_ITEMS / timer.seconds


def availability_per_second(folder: str) -> float:
    """Query ATP of 1-3 SKUs near a random UK city, with and without a radius."""
    app, headers = fresh_app(folder)
    connection = database.open_from_config(app.config)
    demo.load(connection)
    connection.close()
    rng = random.Random(2)
    queries = []
    for _ in range(AVAILABILITY_QUERIES):
        _, _, lat, lon = rng.choice(demo.CITIES)
        skus = "&".join(f"sku=SKU-{rng.randint(1, 500):04d}" for _ in range(rng.randint(1, 3)))
        radius = f"&radius_km={rng.choice([25, 50, 100])}" if rng.random() < 0.5 else ""
        queries.append(f"/v1/availability?{skus}&lat={lat}&lon={lon}{radius}")
    client = app.test_client()
    with Timer() as timer:
        for query in queries:
            response = client.get(query, headers=headers)
            assert response.status_code == 200
    return AVAILABILITY_QUERIES / timer.seconds


def main() -> None:
    median, figures = median_of(RUNS, feed_items_per_second)
    report(
        "feed: items applied per second",
        "items/s",
        median,
        figures,
        f"one {FEED_ITEMS:,}-item complete snapshot via POST /v1/inventory/feeds, in-process",
    )
    median, figures = median_of(3, availability_per_second)
    report(
        "availability: queries per second",
        "queries/s",
        median,
        figures,
        f"{AVAILABILITY_QUERIES:,} GET /v1/availability (1-3 SKUs, half with a radius) on the "
        "demo network, one thread, in-process",
    )
