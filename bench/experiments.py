"""A/B costs: replay throughput, and what a shadow experiment adds to a channel's latency."""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from app.machinery import experiments, replays
from app.machinery.rules import registry
from app.platform import auth
from app.platform import db as database
from app.platform.schemas import catalogue
from app.platform.settings import load
from bench.common import cpu_seconds
from bench.decisions import (
    HTTP_ORDERS,
    demo_network,
    in_process,
    orders,
    orders_over_http,
    percentile,
)

ROOT = Path(__file__).parent.parent


def challenger(db) -> None:
    document = json.loads((ROOT / "rulesets/sourcing/ruleset.json").read_text())
    document["version"] = 2
    document["settings"]["objective"]["split_penalty"] = 9.0
    registry.store(db, document, "bench", "bench")


def shadow_on(db) -> None:
    experiments.create(
        db,
        catalogue(load()["SCHEMAS_DIR"]),
        {
            "experiment_id": "bench-shadow",
            "ruleset": "sourcing",
            "champion": 1,
            "challenger": 2,
            "mode": "shadow",
        },
        "bench",
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "ab.db")
        setup = demo_network(path)
        db = database.open_database(path)
        challenger(db)
        # Decisions to replay, made by version 1.
        in_process(path, orders(setup, path, 400, "hist-", 3))
        rates, per_cpu = [], []
        for _ in range(3):
            replay = replays.create(
                db, {"ruleset": "sourcing", "champion": 1, "challenger": 2}, "bench"
            )
            cpu, started = cpu_seconds(), time.perf_counter()
            done = replays.run(db, replay["replay_id"])
            rates.append(done["total"] / (time.perf_counter() - started))
            per_cpu.append(done["total"] / (cpu_seconds() - cpu))
        print(
            f"replay: decisions re-decided per second (under two versions each)"
            f" {statistics.median(rates):>8,.0f}   (median of 3 over {done['total']} decisions;"
            f" {done['report']['changed']} changed)"
        )
        print(
            f"replay: the same per CPU-second (the process and its engines)"
            f" {statistics.median(per_cpu):>11,.0f}   (goal: 500 per core; runs"
            f" {', '.join(f'{r:,.0f}' for r in per_cpu)})"
        )

        # Shadow mode: the challenger runs after the answer, in the same worker.
        key = auth.create_key(db, "channel")[1]
        env = {
            **os.environ,
            "DOM_DATABASE": path,
            "DOM_WORKERS": "4",
            "DOM_LOG_LEVEL": "WARNING",
            "DOM_DISPATCH_EMBEDDED": "false",
        }
        results = {}
        for label in ("no experiment", "shadow experiment"):
            if label == "shadow experiment":
                shadow_on(db)
            for clients in (2, 8):
                bodies = orders(setup, path, HTTP_ORDERS, f"sh-{len(results)}-", 40 + len(results))
                results[(label, clients)] = orders_over_http(env, key, bodies, clients)
        shadowed = db.execute("SELECT COUNT(*) FROM shadow_decisions").fetchone()[0]
        for clients in (2, 8):
            base_rate, base = results[("no experiment", clients)]
            shadow_rate, shadow = results[("shadow experiment", clients)]
            print(
                f"shadow: channel latency over HTTP, 4 workers, {clients} clients,"
                f" {HTTP_ORDERS} orders: p50 {percentile(base, 0.5) * 1000:.1f} ->"
                f" {percentile(shadow, 0.5) * 1000:.1f} ms, p95"
                f" {percentile(base, 0.95) * 1000:.1f} -> {percentile(shadow, 0.95) * 1000:.1f} ms;"
                f" throughput {base_rate:,.0f} -> {shadow_rate:,.0f} orders/s"
            )
        print(f"shadow: {shadowed} shadow decisions recorded")
        db.close()
