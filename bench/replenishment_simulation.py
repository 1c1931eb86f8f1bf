"""Ninety days of replenishment on the demo network: a weekly bulk policy against the
shipped small-batch policy.

Both policies run the real decision (the shipped ruleset's facts, rules on the real
engine, the plan) on the demo network's stores, DCs, suppliers and catalogues, for a
seeded sample of SKUs. Each day: the policy runs (the weekly one on Mondays only),
its orders go out (a transfer leaves the DC at once), deliveries due arrive, and
customers buy: a Poisson draw around each position's rate of sale in the demo's four
weeks of history, with a seeded weekly swing; what is not on the shelf is a lost sale.
Sales feed the history the next run reads, as demand feeds would.

- **Weekly bulk**: reviewed once a week (Mondays), each delivery covers four weeks.
- **Small batches** (shipped): reviewed daily or every three days by the rules, the plan
  choosing each delivery's cover (3 to 28 days) by delivery cost against holding cost.

Printed: purchase, delivery and holding cost, lost sales, fill rate and stock-out days.
Written: a chart of stock on hand over the 90 days for a few positions, per policy, as
SVG under docs/replenishment/ (``make simulate-replenishment``).
"""

from __future__ import annotations

import copy
import json
import math
import random
import sys
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from app.edges import demo
from app.kinds.replenishment import decide
from app.kinds.replenishment import facts as facts_module
from app.kinds.replenishment.batching import evaluate as evaluate_batches
from app.machinery.rules import runtime
from bench.charts import line_chart

DAYS = 90
SKU_SAMPLE = 60
START = date(2026, 1, 5)  # a Monday
ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "replenishment"
CHARTED = 3


def policies() -> dict[str, tuple[dict, bool]]:
    """name -> (ruleset version, runs daily)."""
    shipped = json.loads((ROOT / "rulesets/replenishment/ruleset.json").read_text())
    weekly = copy.deepcopy(shipped)
    weekly["settings"].update(review_days=7, cycle_days=[28])
    for rule in weekly["rules"]:
        # The rules that review daily or choose a shorter cover do not apply to it.
        if rule["id"] in ("fast-movers-daily", "waiting-customers-first", "christmas-toys"):
            rule["enabled"] = False
    return {
        "weekly bulk": (runtime.draft_version(weekly), False),
        "small batches (shipped)": (runtime.draft_version(shipped), True),
    }


class World:
    """The network's stock, deliveries on their way and sales, day by day."""

    def __init__(self, seed: int):
        rng = random.Random(seed)
        network = demo.network(7, datetime.combine(START, datetime.min.time(), UTC))
        self.nodes = {
            node_id: {
                "node_id": node_id,
                "type": doc["type"],
                "region": doc.get("region"),
                "lat": doc["address"]["lat"],
                "lon": doc["address"]["lon"],
            }
            for node_id, doc in network["nodes"].items()
            if doc.get("active", True)
        }
        stocked = sorted(code for code, doc in network["skus"].items() if "suppliers" not in doc)
        self.skus = sorted(rng.sample(stocked, SKU_SAMPLE))
        self.info = {
            code: {
                "weight_kg": network["skus"][code]["weight_kg"],
                "category": network["skus"][code]["category"],
                "hazmat": network["skus"][code]["hazmat"],
                "suppliers": {},
            }
            for code in self.skus
        }
        self.offers: dict[str, list[dict]] = defaultdict(list)
        for supplier_id, catalogue in network["catalogues"].items():
            terms = {
                "status": "active",
                "min_order_value": 0,
                "delivery_days": ["mon", "tue", "wed", "thu", "fri"],
                "direct_to_store": False,
                "lead_time_days": 3,
                **catalogue["terms"],
            }
            for item in catalogue["items"]:
                if item["sku"] in self.info:
                    self.offers[item["sku"]].append(
                        {
                            **terms,
                            "supplier_id": supplier_id,
                            "sku": item["sku"],
                            "unit_cost": item["unit_cost"],
                            "pack_size": item.get("pack_size", 1),
                            "min_order_qty": item.get("min_order_qty", 0),
                            "lead_time_days": item.get("lead_time_days", terms["lead_time_days"]),
                        }
                    )
        for offers in self.offers.values():
            offers.sort(key=lambda o: (o["unit_cost"], o["supplier_id"]))
        self.on_hand: dict[tuple[str, str], int] = {}
        for feed in network["feeds"]:
            if self.nodes.get(feed["node_id"], {}).get("type") in ("store", "dc", "3pl"):
                for item in feed["items"]:
                    if item["sku"] in self.info:
                        self.on_hand[(feed["node_id"], item["sku"])] = item["on_hand"]
        history: dict[tuple[str, str], list[int]] = defaultdict(list)
        self.sales: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
        for feed in network["demand_feeds"]:
            for item in feed["items"]:
                spot = (item["node_id"], item["sku"])
                if item["sku"] in self.info and item["node_id"] in self.nodes:
                    history[spot].append(item["units"])
                    self.sales[spot][item["day"]] = item["units"]
        self.rate = {spot: sum(units) / demo.HISTORY_DAYS for spot, units in history.items()}
        self.value = {
            sku: min((o["unit_cost"] for o in self.offers[sku]), default=10.0) for sku in self.skus
        }
        self.swing = {spot: rng.uniform(0, 2 * math.pi) for spot in self.rate}
        self.arriving: list[tuple[date, str, str, int]] = []
        self.rng = random.Random(seed + 1)

    def view(self, day: date, run_id: str) -> facts_module.View:
        arriving: dict[tuple[str, str], int] = defaultdict(int)
        for _, node_id, sku, qty in self.arriving:
            arriving[(node_id, sku)] += qty
        stock = {
            spot: {"on_hand": units, "reserved": 0, "safety_stock": 0, "atp": units}
            for spot, units in self.on_hand.items()
        }
        positions = sorted(
            {spot for spot in [*stock, *self.sales] if self.nodes[spot[0]]["type"] != "supplier"}
        )
        return facts_module.View(
            run_id=run_id,
            horizon=day.isoformat(),
            stock=stock,
            nodes=self.nodes,
            skus=self.info,
            sales=self.sales,
            in_transit=dict(arriving),
            offers=self.offers,
            positions=positions,
        )

    def order(self, day: date, decision: dict, version: dict) -> tuple[float, float]:
        """Send the decision's orders; return (purchase cost, delivery cost)."""
        settings = version["document"]["settings"]
        purchase = delivery = 0.0
        for order in decision["orders"]:
            delivery += order["delivery_cost"]
            transfer = order["type"] == "transfer"
            lead = settings["transfer"]["lead_time_days"] if transfer else None
            arrival = date.fromisoformat(order["delivery_day"]) if not transfer else None
            for line in order["lines"]:
                if transfer:
                    spot = (order["source_node_id"], line["sku"])
                    qty = min(line["qty"], self.on_hand.get(spot, 0))
                    self.on_hand[spot] = self.on_hand.get(spot, 0) - qty
                    # The DC's own demand: what it ships, to customers or to stores.
                    history = self.sales[spot]
                    history[day.isoformat()] = history.get(day.isoformat(), 0) + qty
                    when = day + timedelta(days=lead)
                else:
                    qty = line["qty"]
                    purchase += line["unit_cost"] * qty
                    when = arrival
                self.arriving.append((when, order["destination_node_id"], line["sku"], qty))
        return purchase, delivery

    def receive(self, day: date) -> None:
        due = [a for a in self.arriving if a[0] <= day]
        self.arriving = [a for a in self.arriving if a[0] > day]
        for _, node_id, sku, qty in due:
            self.on_hand[(node_id, sku)] = self.on_hand.get((node_id, sku), 0) + qty

    def trade(self, day: date, number: int) -> tuple[int, int, int]:
        """A day of customers; returns (units wanted, units sold, positions out of stock)."""
        wanted = sold = empty = 0
        for spot, rate in self.rate.items():
            mean = rate * (1 + 0.3 * math.sin(2 * math.pi * number / 7 + self.swing[spot]))
            units = demo.poisson(self.rng, max(mean, 0.0))
            have = self.on_hand.get(spot, 0)
            taken = min(units, have)
            self.on_hand[spot] = have - taken
            if taken:
                history = self.sales[spot]
                history[day.isoformat()] = history.get(day.isoformat(), 0) + taken
            wanted += units
            sold += taken
            if self.on_hand[spot] == 0 and self.nodes[spot[0]]["type"] == "store":
                empty += 1
        return wanted, sold, empty

    def stock_value(self) -> float:
        """What the stock on hand and on its way is worth."""
        units = [(sku, qty) for (_, sku), qty in self.on_hand.items()]
        units += [(sku, qty) for _, _, sku, qty in self.arriving]
        return sum(self.value[sku] * qty for sku, qty in units)

    def holding(self, settings: dict) -> float:
        rate = settings["holding_cost_percent_per_year"] / 100 / 365
        return sum(units * self.value[sku] * rate for (_, sku), units in self.on_hand.items())


def simulate(name: str, version: dict, daily: bool, seed: int) -> dict:
    world = World(seed)
    start_value = world.stock_value()
    charted = _charted(world)
    levels = {spot: [] for spot in charted}
    totals = defaultdict(float)
    for number in range(DAYS):
        day = START + timedelta(days=number)
        if daily or day.weekday() == 0:
            found = facts_module.build(
                world.view(day, f"sim-{number}"), version["document"]["settings"]
            )
            evaluation = evaluate_batches(version, found)
            decision = decide.run(found, version, evaluation, explained=False)
            purchase, delivery = world.order(day, decision, version)
            totals["purchase"] += purchase
            totals["delivery"] += delivery
            totals["orders"] += len(decision["orders"])
        world.receive(day)
        wanted, sold, empty = world.trade(day, number)
        totals["wanted"] += wanted
        totals["sold"] += sold
        totals["stockout_days"] += empty
        totals["holding"] += world.holding(version["document"]["settings"])
        for spot in charted:
            levels[spot].append(world.on_hand.get(spot, 0))
        if sys.stderr.isatty():
            print(f"\r{name}: day {number + 1}/{DAYS}", end="", file=sys.stderr)
    print(file=sys.stderr)
    # Goods bought and still on the shelf (or on their way) at the end are not a cost of
    # the 90 days: what the stock gained in value is taken off the purchases.
    totals["stock_gained"] = world.stock_value() - start_value
    totals["goods_sold"] = totals["purchase"] - totals["stock_gained"]
    totals["total"] = totals["goods_sold"] + totals["delivery"] + totals["holding"]
    totals["fill_rate"] = totals["sold"] / totals["wanted"] if totals["wanted"] else 1.0
    return {"totals": dict(totals), "levels": levels}


def _charted(world: World) -> list[tuple[str, str]]:
    """A fast, a middling and a slow store position."""
    stores = sorted(
        (rate, spot) for spot, rate in world.rate.items() if world.nodes[spot[0]]["type"] == "store"
    )
    picks = [stores[-1], stores[len(stores) // 2], stores[len(stores) // 5]]
    return [spot for _, spot in picks][:CHARTED]


def chart(spot: tuple[str, str], series: dict[str, list[int]], path: Path) -> None:
    """An SVG line chart of stock on hand per day, one line per policy."""
    colours = ["#b3261e", "#0b57d0"]
    line_chart(
        path,
        f"Stock on hand of {spot[1]} at {spot[0]} over {DAYS} days",
        f"{spot[1]} at {spot[0]}: units on hand, day by day",
        {name: (colours[n], values) for n, (name, values) in enumerate(series.items())},
        {day: f"day {day}" for day in range(0, DAYS, 14)},
    )


def main(seed: int = 3) -> None:
    results = {
        name: simulate(name, version, daily, seed) for name, (version, daily) in policies().items()
    }
    print(f"\n{DAYS} days, {SKU_SAMPLE} SKUs of the demo network (seed {seed})")
    header = f"{'':<34}" + "".join(f"{name:>26}" for name in results)
    print(header)
    rows = [
        ("purchase", "{:,.0f}"),
        ("stock_gained", "{:,.0f}"),
        ("goods_sold", "{:,.0f}"),
        ("delivery", "{:,.0f}"),
        ("holding", "{:,.0f}"),
        ("total", "{:,.0f}"),
        ("orders", "{:,.0f}"),
        ("wanted", "{:,.0f}"),
        ("sold", "{:,.0f}"),
        ("fill_rate", "{:.2%}"),
        ("stockout_days", "{:,.0f}"),
    ]
    for name, form in rows:
        label = {
            "wanted": "units wanted",
            "sold": "units sold",
            "fill_rate": "fill rate",
            "stockout_days": "store position-days empty",
            "purchase": "purchases",
            "stock_gained": "less stock gained",
            "goods_sold": "cost of goods sold",
            "total": "total (goods, delivery, holding)",
        }.get(name, name)
        print(
            f"{label:<34}"
            + "".join(f"{form.format(r['totals'][name]):>26}" for r in results.values())
        )
    OUT.mkdir(parents=True, exist_ok=True)
    first = next(iter(results.values()))
    for spot in first["levels"]:
        path = OUT / f"stock-{spot[0]}-{spot[1]}.svg"
        chart(spot, {name: r["levels"][spot] for name, r in results.items()}, path)
        print(f"chart: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
