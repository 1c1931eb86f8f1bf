"""Inventory benchmarks: feed apply throughput and availability query rate."""

from __future__ import annotations

import random

from app.domain.network import availability, stock
from app.edges import demo
from app.platform import db as database
from bench.common import RUNS, Timer, fresh_app, median_of, report

FEED_ITEMS = 100_000
AVAILABILITY_QUERIES = 2_000


def feed_items_per_second(folder: str, count_again: bool = False) -> float:
    """POST one 100,000-item snapshot through the API (parse, validate, apply); with
    ``count_again``, time the node's next count instead (every SKU already stocked there),
    as a daily snapshot is."""
    app, headers = fresh_app(folder)
    connection = database.open_from_config(app.config)
    node = {**demo.network()["nodes"]["DC-MID"]}
    from app.domain.network import nodes

    nodes.put(connection, "DC-MID", node)
    with database.atomic(connection):
        connection.conn.executemany(
            "INSERT INTO skus (sku, name, weight_kg, category, created_at, updated_at)"
            " VALUES (?, 'bench', 1, 'bench', '', '')",
            [(f"B{i:06d}",) for i in range(FEED_ITEMS)],
        )
    connection.close()
    rng = random.Random(1)
    client = app.test_client()
    counts = ["2026-11-25T06:00:00Z", "2026-11-26T06:00:00Z"] if count_again else [None]
    for number, as_of in enumerate(counts):
        feed = {
            "feed_id": f"bench-{number}",
            "node_id": "DC-MID",
            "mode": "snapshot",
            "as_of": as_of or "2026-11-25T06:00:00Z",
            "complete": True,
            "items": [
                {"sku": f"B{i:06d}", "on_hand": rng.randint(0, 500)} for i in range(FEED_ITEMS)
            ],
        }
        with Timer() as timer:
            response = client.post("/v1/inventory/feeds", json=feed, headers=headers)
        assert response.status_code == 201, response.get_json()
    return FEED_ITEMS / timer.seconds


def next_count_items_per_second(folder: str) -> float:
    return feed_items_per_second(folder, count_again=True)


def availability_queries(rng: random.Random) -> list[tuple[list[str], float, float, float | None]]:
    """1-3 SKUs near a random UK city, half of them within a radius."""
    queries = []
    for _ in range(AVAILABILITY_QUERIES):
        _, _, lat, lon = rng.choice(demo.CITIES)
        skus = [f"SKU-{rng.randint(1, 500):04d}" for _ in range(rng.randint(1, 3))]
        radius = rng.choice([25, 50, 100]) if rng.random() < 0.5 else None
        queries.append((skus, lat, lon, radius))
    return queries


def availability_per_second(folder: str) -> float:
    """The query as a request: GET /v1/availability through Flask's test client."""
    app, headers = fresh_app(folder)
    connection = database.open_from_config(app.config)
    demo.load(connection)
    connection.close()
    paths = []
    for skus, lat, lon, radius in availability_queries(random.Random(2)):
        query = "&".join(f"sku={sku}" for sku in skus) + f"&lat={lat}&lon={lon}"
        paths.append(f"/v1/availability?{query}" + (f"&radius_km={radius}" if radius else ""))
    client = app.test_client()
    with Timer() as timer:
        for path in paths:
            response = client.get(path, headers=headers)
            assert response.status_code == 200
    return AVAILABILITY_QUERIES / timer.seconds


def availability_in_process(folder: str) -> float:
    """The query itself, as the endpoint runs it: ATP positions read, then ranked."""
    app, _ = fresh_app(folder)
    connection = database.open_from_config(app.config)
    demo.load(connection)
    queries = availability_queries(random.Random(2))
    with Timer() as timer:
        for skus, lat, lon, radius in queries:
            availability.availability(skus, stock.positions(connection, skus), lat, lon, radius)
    connection.close()
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
    median, figures = median_of(RUNS, next_count_items_per_second)
    report(
        "feed: the next count, items per second",
        "items/s",
        median,
        figures,
        f"the node's next {FEED_ITEMS:,}-item complete snapshot, every SKU already stocked there",
    )
    median, figures = median_of(3, availability_in_process)
    report(
        "availability: queries per second",
        "queries/s",
        median,
        figures,
        f"{AVAILABILITY_QUERIES:,} queries (1-3 SKUs near a city, half within a radius) on the"
        " demo network, one thread, in process (goal: 5,000)",
    )
    median, figures = median_of(3, availability_per_second)
    report(
        "availability: requests per second",
        "requests/s",
        median,
        figures,
        "the same queries as GET /v1/availability through Flask's test client (auth, query"
        " validation, logging, metrics, JSON)",
    )
