"""Engine benchmark: the shipped sourcing ruleset on an order of 3 lines."""

from __future__ import annotations

import json
import random
import statistics
import time
from pathlib import Path

from app.machinery.rules.engine import Engine
from bench.common import RUNS

RULESET = Path(__file__).parent.parent / "rulesets/sourcing/ruleset.json"
NODE_TYPES = ["store"] * 6 + ["dc", "3pl", "supplier"]


def order_facts(candidates: int, seed: int = 3) -> list[dict]:
    """An order of 3 lines, a customer and ``candidates`` candidates spread over the lines."""
    rng = random.Random(seed)
    facts = [
        {
            "fact": "order",
            "order_id": "B1",
            "channel": "web",
            "total": 640.0,
            "line_count": 3,
            "unit_count": 4,
            "delivery_method": "ship",
            "destination_lat": 52.5,
            "destination_lon": -1.9,
        },
        {
            "fact": "customer",
            "customer_id": "C1",
            "tier": "gold",
            "segments": ["loyal"],
            "lifetime_orders": 12,
            "lifetime_value": 900.0,
        },
    ]
    for number in range(1, 4):
        facts.append(
            {
                "fact": "line",
                "line_id": f"L{number}",
                "sku": f"S{number}",
                "qty": 1 + number % 2,
                "unit_price": 160.0,
                "category": "home",
                "hazmat": number == 3,
                "weight_kg": 2.5 * number,
                "dropship": False,
            }
        )
    for index in range(candidates):
        line = f"L{index % 3 + 1}"
        node_type = NODE_TYPES[index % len(NODE_TYPES)]
        atp = rng.randint(0, 40)
        facts.append(
            {
                "fact": "candidate",
                "key": f"{line}@N{index}",
                "line_id": line,
                "sku": "S",
                "node_id": f"N{index}",
                "node_type": node_type,
                "capabilities": ["ship"],
                "atp": atp,
                "atp_after": atp - 2,
                "distance_km": round(rng.uniform(1, 600), 1),
                "estimated_cost": round(rng.uniform(3, 20), 2),
                "capacity_left": rng.randint(0, 200),
                "feed_age_hours": round(rng.uniform(0, 60), 1),
                "node_priority": rng.randint(0, 10),
                "in_transit": False,
            }
        )
    return facts


def measure(engine: Engine, name: str, facts: list[dict], seconds: float = 1.0) -> float:
    """Evaluations per second over about ``seconds``."""
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        engine.evaluate(name, facts)
        count += 1
    return count / (time.perf_counter() - start)


def main() -> None:
    engine = Engine()
    document = json.loads(RULESET.read_text())
    engine.load("sourcing-bench", document)
    baseline_facts = order_facts(0)
    for candidates in (10, 100, 1000):
        facts = order_facts(candidates)
        engine.evaluate("sourcing-bench", facts)  # warm up: compile paths, caches
        rates = [
            measure(engine, "sourcing-bench", facts, 0.6 if candidates < 1000 else 1.5)
            for _ in range(RUNS)
        ]
        rate = statistics.median(rates)
        per_eval = 1e6 / rate
        print(
            f"engine: 3 lines, {candidates:>4} candidates ({len(facts):>4} facts)"
            f"  {rate:>8,.0f} evaluations/s  {per_eval:>9,.0f} µs/evaluation"
            f"  {per_eval / len(facts):>6.1f} µs/fact   (median of {RUNS})"
        )
    base = statistics.median(
        measure(engine, "sourcing-bench", baseline_facts, 0.5) for _ in range(RUNS)
    )
    print(
        f"engine: the same order with no candidates      {base:>8,.0f} evaluations/s"
        f"  {1e6 / base:>9,.0f} µs/evaluation (fixed cost)"
    )
