"""Replenishment: the plan's landed cost against the exact optimum of a mixed-integer
solver on random instances, and runs over the whole demo network.

Quality: each instance is a few destinations (stores and a DC), positions below target
with random demand, and sources (suppliers with random prices, packs, minimum order
quantities and values, delivery costs and lead times; a DC with a little to spare),
turned into the plan's problem by the same code a run uses (``decide.problem_of``). The
exact optimum is the same problem as a mixed-integer programme (CBC, through PuLP): one
option or none per position, one cycle per delivery, minimum order values, DC spare
units. Printed: feasibility of our plans, mean and worst gap, and the time of each.

Speed: dry runs over all positions of the demo network (50 nodes, 500 SKUs, four weeks
of sales), the shipped ruleset, positions per second.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from pathlib import Path

from app.kinds.replenishment import decide, plan, runs
from app.machinery.rules.engine import Evaluation
from app.platform import db as database
from bench.decisions import demo_network

INSTANCES = 240
RUNS = 3
SETTINGS = {
    "horizon_days": 28,
    "review_days": 3,
    "service_level": 0.95,
    "cycle_days": [3, 7, 14, 28],
    "holding_cost_percent_per_year": 25,
    "transfer": {"per_shipment": 18, "per_kg": 0.04, "lead_time_days": 1},
}


def instance(rng: random.Random) -> plan.Problem:
    """Random positions below target and their sources, as the plan's problem."""
    facts: list[dict] = []
    suppliers = {
        f"S{n}": {
            "min_order_value": rng.choice([0, 0, 100, 300, 800]),
            "cost_per_delivery": rng.uniform(5, 150),
            "lead_time_days": rng.randint(1, 7),
            "price": rng.uniform(0.8, 1.3),
            "pack": rng.choice([1, 1, 4, 6, 12]),
        }
        for n in range(rng.randint(2, 3))
    }
    for d in range(rng.randint(1, 3)):
        node_type = "dc" if d == 0 and rng.random() < 0.3 else "store"
        for p in range(rng.randint(2, 7)):
            sku = f"K{p}"
            mean = rng.uniform(0.3, 20)
            key = f"N{d}/{sku}"
            facts.append(
                {
                    "fact": "position",
                    "key": key,
                    "node_id": f"N{d}",
                    "node_type": node_type,
                    "sku": sku,
                    "weight_kg": rng.uniform(0.1, 5),
                    "inventory_position": rng.randint(-3, int(mean * 3)),
                    "daily_mean": mean,
                    "daily_sd": mean * rng.uniform(0.1, 0.8),
                }
            )
            base = rng.uniform(2, 60)
            offered = []
            for source_id, terms in suppliers.items():
                if rng.random() < 0.2:
                    continue
                offered.append(round(base * terms["price"] * rng.uniform(0.95, 1.05), 2))
                facts.append(
                    {
                        "fact": "source",
                        "key": f"{key}|{source_id}",
                        "position_key": key,
                        "sku": sku,
                        "source_id": source_id,
                        "source_type": "supplier",
                        "unit_cost": offered[-1],
                        "pack_size": terms["pack"],
                        "min_order_qty": terms["pack"] * rng.choice([0, 1, 2]),
                        "min_order_value": terms["min_order_value"],
                        "lead_time_days": terms["lead_time_days"],
                        "cost_per_delivery": terms["cost_per_delivery"],
                    }
                )
            # As a run sees it: a unit is worth the lowest price a supplier lists.
            facts[-1 - len(offered)]["unit_value"] = min(offered, default=10.0)
            if node_type == "store" and rng.random() < 0.6:
                facts.append(
                    {
                        "fact": "source",
                        "key": f"{key}|DC",
                        "position_key": key,
                        "sku": sku,
                        "source_id": "DC",
                        "source_type": "dc",
                        "unit_cost": 0.0,
                        "pack_size": 1,
                        "min_order_qty": 0,
                        "min_order_value": 0.0,
                        "lead_time_days": 1,
                        "cost_per_delivery": 18.0,
                        "cost_per_kg": 0.04,
                        "spare_units": rng.randint(0, 150),
                    }
                )
    problem, _, _ = decide.problem_of(facts, SETTINGS, Evaluation())
    return problem


def optimum(problem: plan.Problem) -> float:
    """The least objective of the problem, by mixed-integer programming."""
    import pulp

    model = pulp.LpProblem("replenishment", pulp.LpMinimize)
    x, groups = {}, {}
    for p, (key, options) in enumerate(problem.options.items()):
        for o, option in enumerate(options):
            x[(key, o)] = pulp.LpVariable(f"x_{p}_{o}", cat="Binary")
            spot = (option.source, option.destination, option.cycle)
            if spot not in groups:
                groups[spot] = pulp.LpVariable(f"z_{len(groups)}", cat="Binary")
    unplaced = {
        key: pulp.LpVariable(f"u_{p}", cat="Binary") for p, key in enumerate(problem.options)
    }
    model += (
        pulp.lpSum(problem.delivery(s, c) * z for (s, _, c), z in groups.items())
        + pulp.lpSum(problem.options[key][o].cost * v for (key, o), v in x.items())
        + pulp.lpSum(plan.UNPLACED * u for u in unplaced.values())
    )
    for key, options in problem.options.items():
        model += pulp.lpSum(x[(key, o)] for o in range(len(options))) + unplaced[key] == 1
        for o, option in enumerate(options):
            model += x[(key, o)] <= groups[(option.source, option.destination, option.cycle)]
    pairs: dict[tuple[str, str], list] = {}
    for (source, destination, cycle), z in groups.items():
        pairs.setdefault((source, destination), []).append(z)
        members = [
            (key, o)
            for (key, o) in x
            if (lambda opt: (opt.source, opt.destination, opt.cycle))(problem.options[key][o])
            == (source, destination, cycle)
        ]
        model += (
            pulp.lpSum(problem.options[k][o].value * x[(k, o)] for k, o in members)
            >= problem.min_order_value.get(source, 0) * z
        )
    for zs in pairs.values():
        model += pulp.lpSum(zs) <= 1
    for source, units in problem.spare.items():
        for sku, left in units.items():
            using = [
                (k, o)
                for (k, o) in x
                if problem.options[k][o].source == source and problem.options[k][o].sku == sku
            ]
            if using:
                model += (
                    pulp.lpSum(problem.options[k][o].uses_spare * x[(k, o)] for k, o in using)
                    <= left
                )
    model.solve(pulp.PULP_CBC_CMD(msg=False))
    return pulp.value(model.objective)


def quality() -> None:
    try:
        import pulp  # noqa: F401
    except ImportError:
        print("replenishment quality: skipped (pip install pulp, part of the dev extra)")
        return
    rng = random.Random(5)
    feasible, gaps, ours, exact = 0, [], [], []
    solved_count = 0
    while solved_count < INSTANCES:
        problem = instance(rng)
        if not problem.options:
            continue
        solved_count += 1
        started = time.perf_counter()
        mine = plan.solve(problem)
        ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        best = optimum(problem)
        exact.append(time.perf_counter() - started)
        if not plan.violations(problem, mine.chosen):
            feasible += 1
        gaps.append(max(0.0, (mine.cost - best) / best) if best > 0 else 0.0)
    print(
        f"{'replenishment plan vs exact MILP':<46} feasible {feasible / INSTANCES:.0%} of"
        f" {INSTANCES}, mean gap {statistics.fmean(gaps):.2%}, worst {max(gaps):.2%},"
        f" optimal in {sum(1 for g in gaps if g < 1e-6)}"
    )
    print(
        f"{'':<46} median {statistics.median(ours) * 1000:.2f} ms"
        f" (MILP {statistics.median(exact) * 1000:.1f} ms)"
    )


def speed() -> None:
    figures, split = [], []
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "bench.db")
        demo_network(path)
        connection = database.open_database(path)
        for n in range(RUNS):
            started = time.perf_counter()
            run, _ = runs.start(connection, {"run_id": f"bench-{n}", "dry_run": True}, "bench")
            seconds = time.perf_counter() - started
            figures.append(run["progress"]["positions_total"] / seconds)
            split.append(run["summary"]["timings_ms"])
        connection.close()
    median = statistics.median(figures)
    spread = ", ".join(f"{f:,.0f}" for f in figures)
    timings = {k: statistics.median(t[k] for t in split) for k in split[0]}
    print(
        f"{'replenishment run, demo network':<46} {median:>12,.0f} positions/s"
        f"   (median of {RUNS}: {spread})"
    )
    print(
        f"{'':<46} {run['progress']['positions_total']:,} positions, {run['summary']['lines']:,}"
        f" lines in {run['summary']['orders']} orders; facts {timings['facts']:,.0f} ms,"
        f" rules {timings['rules']:,.0f} ms, plan {timings['allocation']:,.0f} ms"
    )


def main() -> None:
    quality()
    speed()


if __name__ == "__main__":
    main()
