"""Promises per second in process on the demo network: one SKU to many destinations (a
product page), and carts of 10 and 50 lines, beside the goal of < 5 ms for one SKU."""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from pathlib import Path

from app.domain import customers
from app.kinds.sourcing import quotes
from app.platform import db as database
from bench.decisions import demo_network, percentile

RUNS = 3
REQUESTS = {1: 300, 10: 100, 50: 30}


def requests(setup: dict, path: str, count: int, lines: int, seed: int) -> list[dict]:
    """Seeded random requests: each to a demo customer's home, for random SKUs."""
    rng = random.Random(seed)
    connection = database.open_database(path)
    homes = [
        customers.get(connection, customer_id)["addresses"][0]
        for customer_id in setup["customers"][:100]
    ]
    connection.close()
    found = []
    for _ in range(count):
        home = rng.choice(homes)
        found.append(
            quotes.normalised(
                {
                    "lines": [
                        {"sku": sku, "qty": rng.randint(1, 2), "unit_price": 19.99}
                        for sku in rng.sample(setup["skus"], lines)
                    ],
                    "destination": {
                        k: home[k] for k in ("postcode", "country", "lat", "lon", "city")
                    },
                }
            )
        )
    return found


def run(path: str, bodies: list[dict]) -> tuple[float, list[float], int]:
    connection = database.open_database(path)
    latencies, offered = [], 0
    started = time.perf_counter()
    for body in bodies:
        t0 = time.perf_counter()
        offered += len(quotes.answer(connection, body)["options"])
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    connection.close()
    return len(bodies) / elapsed, latencies, offered


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "bench.db")
        setup = demo_network(path)
        for lines, count in REQUESTS.items():
            runs = [run(path, requests(setup, path, count, lines, seed)) for seed in range(RUNS)]
            rate = statistics.median(r[0] for r in runs)
            latencies = sorted(runs, key=lambda r: r[0])[1][1]
            options = statistics.median(r[2] / count for r in runs)
            label = f"promises in process, demo network, {lines} line{'s' if lines > 1 else ''}"
            p50, p99 = (percentile(latencies, share) * 1000 for share in (0.5, 0.99))
            print(
                f"{label:<52} {rate:>7,.0f} promises/s   p50 {p50:6.1f} ms   p99 {p99:6.1f} ms"
                f"   {options:.1f} options each"
            )
        print(f"{'':<52} goal: one SKU, one destination < 5 ms (median of {RUNS} runs)")


if __name__ == "__main__":
    main()
