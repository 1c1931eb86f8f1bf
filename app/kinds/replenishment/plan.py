"""Replenishment targets, and the plan that meets them at the least landed cost. Pure.

**Targets.** A position under the ``service_level`` policy is reviewed every
``review_days`` (R). With a daily rate of sale ``mean`` and its standard deviation ``sd``
over the demand window, and the lead time L of its primary source (the cheapest source
rules left it), its safety stock is ``z(service level) x sd x sqrt(L + R)``, its reorder
point ``mean x (L + R) + safety stock``, and a delivery that covers ``c`` days of sales
orders up to ``mean x (L_s + c) + safety stock`` (L_s: that source's lead time). Under
``min_max`` the rules give the reorder point (min) and the order-up-to level (max). A
position whose inventory position (on hand - reserved - the node's safety stock + in
transit + on order - back-orders) is below its reorder point needs an order; the others get nothing.

**The plan.** Each position that needs an order chooses one option: a source and a cycle
(the days of sales one delivery covers). The quantity follows: up to the order-up-to
level, at least the source's minimum, in whole packs, within a DC's spare units. All the
lines from one source to one destination share one delivery on one cycle (one purchase
order or transfer now, and every ``cycle`` days after). The plan minimises the landed
cost over the horizon (H days):

    sum over deliveries: cost per delivery x H / cycle
  + sum over lines: (unit cost + transport per unit) x units sold over H (at least the
    quantity), + holding cost per unit-day x unit value x (quantity / 2 + safety stock) x H,
    - rule score x ``rule_score``

subject to each supplier's minimum order value per delivery and each DC's spare units.
Frequent small deliveries win where delivery is cheap against holding; rare large ones
where it is dear. A position no source can serve is left unplaced, with the reason.

The search works destination by destination (they share only DCs' spare units, taken in
turn): the cycle of each source (or none) is chosen, every position takes its cheapest
open option, deliveries under a minimum order value close and their lines move; all
combinations of cycles are tried when they are few, else a descent from the best single
changes. ``bench/replenishment.py`` measures it against the exact optimum of a
mixed-integer solver.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from statistics import NormalDist

# What leaving a position unplaced costs the objective: more than any plan with it placed.
UNPLACED = 1_000_000.0
# Above this many combinations of cycles per destination, the search descends instead.
EXHAUSTIVE_LIMIT = 256


def z_score(service_level: float) -> float:
    """The standard normal quantile of a service level (0.95 -> 1.645)."""
    return NormalDist().inv_cdf(min(max(service_level, 0.5), 0.9999))


def targets(position: dict, attributes: dict, settings: dict, lead_time: int) -> dict:
    """A position's policy and reorder point, from its facts and what rules set on it."""
    policy = attributes.get("policy", "service_level")
    review = int(attributes.get("review_days", settings.get("review_days", 7)))
    if policy == "none":
        return {"policy": "none", "review_days": review}
    if policy == "min_max":
        low = int(attributes.get("min_qty", 0))
        high = max(low, int(attributes.get("max_qty", low)))
        return {
            "policy": "min_max",
            "review_days": review,
            "reorder_point": low,
            "order_up_to": high,
            "safety_stock": 0.0,
            "lead_time_days": lead_time,
        }
    level = float(attributes.get("service_level", settings.get("service_level", 0.95)))
    mean, sd = position.get("daily_mean", 0.0), position.get("daily_sd", 0.0)
    safety = z_score(level) * sd * math.sqrt(lead_time + review)
    return {
        "policy": "service_level",
        "service_level": level,
        "review_days": review,
        "lead_time_days": lead_time,
        "safety_stock": round(safety, 3),
        "reorder_point": round(mean * (lead_time + review) + safety, 3),
    }


def safety_stock(target: dict, sd: float, lead_time: int) -> float:
    """Safety stock for a delivery from a source with this lead time."""
    if target["policy"] != "service_level":
        return 0.0
    return z_score(target["service_level"]) * sd * math.sqrt(lead_time + target["review_days"])


def order_up_to(target: dict, mean: float, sd: float, lead_time: int, cycle: int) -> float:
    """The level a delivery from a source with ``lead_time`` covering ``cycle`` days of
    sales fills the position to (a cycle shorter than the review period is the period)."""
    if target["policy"] == "min_max":
        return float(target["order_up_to"])
    cover = lead_time + max(cycle, target["review_days"])
    return mean * cover + safety_stock(target, sd, lead_time)


def quantity(need: float, pack_size: int, min_order_qty: int) -> int:
    """Units to order for a need: at least the minimum, in whole packs (at least one)."""
    units = max(math.ceil(need - 1e-9), min_order_qty, 1)
    return math.ceil(units / pack_size) * pack_size


# The plan ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One way to serve one position: a source, a cycle, the quantity and its costs."""

    position: str
    destination: str
    sku: str
    source: str
    cycle: int
    qty: int
    # Line cost over the horizon (purchase, transport, holding, less the rule bonus).
    cost: float
    # What counts toward the source's minimum order value.
    value: float
    # Units taken from the source's spare units of the SKU (a DC); 0 for a supplier.
    uses_spare: int = 0
    parts: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass
class Problem:
    """Positions needing an order, their options, and what the sources impose."""

    horizon_days: int
    options: dict[str, list[Option]]
    # source -> cost per delivery, minimum order value, spare units per SKU (DCs).
    delivery_cost: dict[str, float]
    min_order_value: dict[str, float]
    spare: dict[str, dict[str, int]]

    def delivery(self, source: str, cycle: int) -> float:
        """A delivery's cost over the horizon: one every ``cycle`` days."""
        return self.delivery_cost[source] * self.horizon_days / cycle


@dataclass
class Plan:
    chosen: dict[str, Option | None]
    cost: float
    # (source, destination) -> cycle of the deliveries the plan uses.
    deliveries: dict[tuple[str, str], int]
    # position -> why it could not be placed.
    unplaced: dict[str, str]


def solve(problem: Problem) -> Plan:
    """The plan: destination by destination, DCs' spare units taken in turn."""
    by_destination: dict[str, list[str]] = {}
    for key, options in problem.options.items():
        destination = options[0].destination if options else key.split("/")[0]
        by_destination.setdefault(destination, []).append(key)
    shares = _share_spare(problem)
    chosen: dict[str, Option | None] = {}
    deliveries: dict[tuple[str, str], int] = {}
    unplaced: dict[str, str] = {}
    for destination in sorted(by_destination):
        keys = sorted(by_destination[destination])
        picked, cycles = _destination(problem, keys, shares.get(destination, {}))
        for key in keys:
            option = picked.get(key)
            chosen[key] = option
            if option is None:
                unplaced[key] = _why_unplaced(problem, key)
        for source, cycle in cycles.items():
            deliveries[(source, destination)] = cycle
    return Plan(chosen, cost(problem, chosen), deliveries, unplaced)


def _share_spare(problem: Problem) -> dict[str, dict[str, dict[str, int]]]:
    """Each destination's share of the DCs' spare units: ``{destination: {source: {sku:
    units}}}``. Where positions of several destinations want more of a SKU than a DC can
    spare, the units go first to the positions that save most per unit by taking them
    (against their cheapest other source), each its smallest quantity."""
    wanting: dict[tuple[str, str], list[tuple[float, str, int]]] = {}
    for options in problem.options.values():
        for source in {o.source for o in options if o.uses_spare}:
            mine = [o for o in options if o.source == source]
            others = [o.cost for o in options if o.source != source]
            least = min(mine, key=lambda o: o.cost)
            saving = (min(others) - least.cost) if others else UNPLACED
            units = min(o.uses_spare for o in mine)
            wanting.setdefault((source, least.sku), []).append(
                (saving / units, least.destination, max(o.uses_spare for o in mine))
            )
    shares: dict[str, dict[str, dict[str, int]]] = {}
    for (source, sku), wants in wanting.items():
        left = problem.spare.get(source, {}).get(sku, 0)
        for _, destination, units in sorted(wants, key=lambda w: (-w[0], w[1])):
            granted = min(units, left)
            left -= granted
            spot = shares.setdefault(destination, {}).setdefault(source, {})
            spot[sku] = spot.get(sku, 0) + granted
    return shares


def cost(problem: Problem, chosen: dict[str, Option | None]) -> float:
    """The objective of an assignment: deliveries, lines, and unplaced positions."""
    groups = {(o.source, o.destination, o.cycle) for o in chosen.values() if o is not None}
    total = sum(problem.delivery(source, cycle) for source, _, cycle in groups)
    total += sum(o.cost if o is not None else UNPLACED for o in chosen.values())
    return total


def violations(problem: Problem, chosen: dict[str, Option | None]) -> list[str]:
    """What an assignment breaks (empty: feasible): one cycle per delivery, minimum order
    values, spare units."""
    found = []
    cycles: dict[tuple[str, str], set] = {}
    value: dict[tuple[str, str], float] = {}
    used: dict[tuple[str, str], int] = {}
    for key, option in chosen.items():
        if option is None:
            continue
        if option not in problem.options.get(key, ()):
            found.append(f"{key}: not one of its options")
        pair = (option.source, option.destination)
        cycles.setdefault(pair, set()).add(option.cycle)
        value[pair] = value.get(pair, 0.0) + option.value
        if option.uses_spare:
            used[(option.source, option.sku)] = used.get((option.source, option.sku), 0) + (
                option.uses_spare
            )
    for pair, seen in cycles.items():
        if len(seen) > 1:
            found.append(f"{pair}: one delivery on {len(seen)} cycles")
        if value[pair] + 1e-6 < problem.min_order_value.get(pair[0], 0.0):
            found.append(f"{pair}: worth {value[pair]:.2f}, under its minimum order value")
    for (source, sku), units in used.items():
        if units > problem.spare.get(source, {}).get(sku, 0):
            found.append(f"{source}/{sku}: {units} units, more than it can spare")
    return found


def _destination(problem: Problem, keys: list[str], spare: dict) -> tuple[dict, dict]:
    """The best assignment found for one destination's positions: (chosen, cycles)."""
    cycles_of: dict[str, set] = {}
    for key in keys:
        for option in problem.options[key]:
            cycles_of.setdefault(option.source, set()).add(option.cycle)
    sources = sorted(cycles_of)
    choices = [[None, *sorted(cycles_of[source])] for source in sources]
    memo: dict[tuple, tuple] = {}

    def evaluate(config: tuple) -> tuple:
        if config not in memo:
            memo[config] = _assign(problem, keys, dict(zip(sources, config, strict=True)), spare)
        return memo[config]

    combinations = math.prod(len(c) for c in choices)
    if combinations <= EXHAUSTIVE_LIMIT:
        best = min(itertools.product(*choices), key=lambda config: evaluate(config)[0])
    else:
        best = _descend(choices, evaluate)
    _, picked, open_cycles = evaluate(best)
    return picked, open_cycles


def _descend(choices: list[list], evaluate) -> tuple:
    """From every source on its most common best cycle, change one source's cycle (or
    close it) at a time while that lowers the cost."""
    config = tuple(c[1] if len(c) > 1 else None for c in choices)
    best = evaluate(config)[0]
    improved = True
    while improved:
        improved = False
        for index, options in enumerate(choices):
            for choice in options:
                if choice == config[index]:
                    continue
                trial = (*config[:index], choice, *config[index + 1 :])
                trial_cost = evaluate(trial)[0]
                if trial_cost < best - 1e-9:
                    config, best, improved = trial, trial_cost, True
    return config


def _assign(problem: Problem, keys: list[str], config: dict, spare: dict) -> tuple:
    """Each position's cheapest option among the open (source, cycle) pairs; then each
    delivery under its minimum order value either takes lines from other deliveries
    (those that cost least more per unit of value) until it reaches it, or closes and its
    lines move. Returns ``(cost, chosen, cycles in use)``."""
    open_cycles = {source: cycle for source, cycle in config.items() if cycle is not None}
    state = _Assignment(problem, spare)
    for key in keys:
        state.move(key, state.cheapest(key, open_cycles))
    for _ in range(2 * len(open_cycles) + 2):
        short = state.short(open_cycles)
        if not short:
            break
        source = short[0]
        if not state.fill(keys, source, open_cycles[source], open_cycles):
            state.close(source, open_cycles)
    while short := state.short(open_cycles):
        state.close(short[0], open_cycles)
    used = {o.source: o.cycle for o in state.chosen.values() if o is not None}
    return cost(problem, state.chosen), dict(state.chosen), used


class _Assignment:
    """Which option each position of one destination takes, with the value each source
    carries and the spare units taken."""

    def __init__(self, problem: Problem, spare: dict):
        self.problem = problem
        self.spare = spare
        self.chosen: dict[str, Option | None] = {}
        self.value: dict[str, float] = {}
        self.taken: dict[tuple[str, str], int] = {}

    def fits(self, option: Option, leaving: Option | None = None) -> bool:
        if not option.uses_spare:
            return True
        spot = (option.source, option.sku)
        already = self.taken.get(spot, 0)
        if leaving is not None and (leaving.source, leaving.sku) == spot:
            already -= leaving.uses_spare
        return already + option.uses_spare <= self.spare.get(option.source, {}).get(option.sku, 0)

    def cheapest(self, key: str, open_cycles: dict, leaving: Option | None = None):
        best = None
        for option in self.problem.options[key]:
            if open_cycles.get(option.source) != option.cycle or not self.fits(option, leaving):
                continue
            if best is None or option.cost < best.cost:
                best = option
        return best

    def move(self, key: str, option: Option | None) -> None:
        old = self.chosen.get(key)
        if old is not None:
            self.value[old.source] -= old.value
            if old.uses_spare:
                self.taken[(old.source, old.sku)] -= old.uses_spare
        self.chosen[key] = option
        if option is not None:
            self.value[option.source] = self.value.get(option.source, 0.0) + option.value
            if option.uses_spare:
                spot = (option.source, option.sku)
                self.taken[spot] = self.taken.get(spot, 0) + option.uses_spare

    def lines(self, source: str) -> list[str]:
        return [k for k, o in self.chosen.items() if o is not None and o.source == source]

    def short(self, open_cycles: dict) -> list[str]:
        return [
            source
            for source in open_cycles
            if self.lines(source)
            and self.value.get(source, 0.0) + 1e-6 < self.problem.min_order_value.get(source, 0)
        ]

    def _closing(self, source: str, cycle: int, open_cycles: dict) -> float:
        """What closing ``source`` would change: its lines' next best (or unplaced), less
        the delivery saved."""
        others = {s: c for s, c in open_cycles.items() if s != source}
        change = -self.problem.delivery(source, cycle)
        for key in self.lines(source):
            current = self.chosen[key]
            alternative = self.cheapest(key, others, current)
            change += (alternative.cost if alternative else UNPLACED) - current.cost
        return change

    def fill(self, keys: list[str], source: str, cycle: int, open_cycles: dict) -> bool:
        """Bring lines to ``source`` until its minimum order value is met, the cheapest
        per unit of value first, when that costs less than closing it would."""
        needed = self.problem.min_order_value.get(source, 0) - self.value.get(source, 0.0)
        offers = []
        for key in keys:
            current = self.chosen.get(key)
            if current is not None and current.source == source:
                continue
            for option in self.problem.options[key]:
                if option.source == source and option.cycle == cycle and option.value > 0:
                    extra = option.cost - (current.cost if current is not None else UNPLACED)
                    offers.append((extra / option.value, extra, key, option))
        offers.sort(key=lambda offer: (offer[0], offer[2]))
        picked, gained, extra_cost = [], 0.0, 0.0
        for _, extra, key, option in offers:
            if gained >= needed - 1e-6:
                break
            if not self.fits(option, self.chosen.get(key)):
                continue
            picked.append((key, option))
            gained += option.value
            extra_cost += extra
        if gained < needed - 1e-6 or extra_cost > self._closing(source, cycle, open_cycles):
            return False
        for key, option in picked:
            self.move(key, option)
        return True

    def close(self, source: str, open_cycles: dict) -> None:
        """Close ``source``: each of its lines takes its cheapest other open option."""
        del open_cycles[source]
        for key in self.lines(source):
            self.move(key, None)
            self.move(key, self.cheapest(key, open_cycles))


def _why_unplaced(problem: Problem, key: str) -> str:
    if not problem.options.get(key):
        return "no source left to replenish it"
    return "no source could take it (minimum order values or spare units)"
