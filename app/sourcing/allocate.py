"""Assign order lines to the candidates the rules left: pure, deterministic.

The objective, minimised after serving as many units as possible:

    for each shipment (node used):  w_cost x (base + per_km x distance) + w_distance x distance
    for each unit assigned:         w_cost x per_kg x unit weight - w_score x score / line qty
    for each shipment beyond one:   split_penalty

subject to ATP per (node, SKU, supply), nodes' capacity left today, max shipments,
ship-complete (one shipment, every unit) and whether a line may come from several
nodes. Node sets up to ``max_shipments`` are enumerated over a shortlist of the most
promising nodes (all of them when few), lines are assigned within each set, and the
best set wins; ties prefer fewer shipments, then node ids in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from math import comb

SHORTLIST = 12
MAX_SETS = 2500


@dataclass(frozen=True)
class Policy:
    """The constraints and weights of one decision."""

    max_shipments: int
    allow_split_lines: bool
    allow_partial: bool
    ship_complete: bool
    rate: dict  # base, per_km, per_kg of the service level
    weights: dict = field(
        default_factory=dict
    )  # shipping_cost, distance, split_penalty, rule_score

    def weight(self, name: str) -> float:
        defaults = {"shipping_cost": 1.0, "distance": 0.0, "split_penalty": 5.0, "rule_score": 1.0}
        return float(self.weights.get(name, defaults[name]))


@dataclass
class Allocation:
    assignments: list[dict]  # {line_id, key, node_id, qty}
    unserved: dict[str, int]  # line_id -> units not allocated
    objective: float
    nodes: list[str]
    sets_tried: int = 0


def unit_cost(option: dict, line: dict, policy: Policy) -> float:
    return (
        policy.weight("shipping_cost") * policy.rate["per_kg"] * line["weight_kg"]
        - policy.weight("rule_score") * option["score"] / line["qty"]
    )


def shipment_cost(distance: float, policy: Policy) -> float:
    return (
        policy.weight("shipping_cost") * (policy.rate["base"] + policy.rate["per_km"] * distance)
        + policy.weight("distance") * distance
    )


def objective(assignments: list[dict], lines: dict, options: dict, policy: Policy) -> float:
    """The objective value of an assignment (lower is better); shared with the benchmark."""
    distances: dict[str, float] = {}
    total = 0.0
    for assignment in assignments:
        option = options[assignment["key"]]
        distances[option["node_id"]] = option["distance_km"]
        total += assignment["qty"] * unit_cost(option, lines[assignment["line_id"]], policy)
    total += sum(shipment_cost(d, policy) for d in distances.values())
    total += policy.weight("split_penalty") * max(0, len(distances) - 1)
    return round(total, 9)


def allocate(lines: list[dict], options: list[dict], policy: Policy) -> Allocation:
    """Assign ``lines`` ({line_id, sku, qty, weight_kg}) to ``options``.

    Each option is a surviving candidate: {key, line_id, node_id, sku, in_transit, atp,
    distance_km, capacity_left, score}.
    """
    by_line = {line["line_id"]: line for line in lines}
    by_key = {option["key"]: option for option in options}
    usable = [
        o
        for o in options
        if (o["capacity_left"] is None or o["capacity_left"] > 0) and o["line_id"] in by_line
    ]
    nodes = sorted({o["node_id"] for o in usable})
    max_shipments = 1 if policy.ship_complete else policy.max_shipments
    shortlist = _shortlist(nodes, usable, by_line, policy, max_shipments)
    total_units = sum(line["qty"] for line in lines)
    best = None
    tried = 0
    for size in range(1, min(max_shipments, len(shortlist)) + 1):
        for subset in combinations(shortlist, size):
            tried += 1
            assignments = _assign(set(subset), usable, by_line, policy)
            served = sum(a["qty"] for a in assignments)
            used = sorted({a["node_id"] for a in assignments})
            value = objective(assignments, by_line, by_key, policy)
            rank = (-served, value, len(used), used)
            if best is None or rank < best[0]:
                best = (rank, assignments)
    assignments = best[1] if best else []
    served = sum(a["qty"] for a in assignments)
    if served < total_units and (policy.ship_complete or not policy.allow_partial):
        assignments = []  # all or nothing
    allocated: dict[str, int] = {}
    for assignment in assignments:
        allocated[assignment["line_id"]] = (
            allocated.get(assignment["line_id"], 0) + assignment["qty"]
        )
    unserved = {
        line["line_id"]: line["qty"] - allocated.get(line["line_id"], 0)
        for line in lines
        if line["qty"] > allocated.get(line["line_id"], 0)
    }
    return Allocation(
        assignments=sorted(assignments, key=lambda a: (a["node_id"], a["line_id"], a["key"])),
        unserved=unserved,
        objective=objective(assignments, by_line, by_key, policy),
        nodes=sorted({a["node_id"] for a in assignments}),
        sets_tried=tried,
    )


def _supply(option: dict) -> tuple:
    return option["node_id"], option["sku"], bool(option.get("in_transit"))


def _assign(subset: set[str], options: list[dict], lines: dict, policy: Policy) -> list[dict]:
    """Assign lines within a fixed set of nodes: cheapest option first, sharing ATP."""
    remaining: dict[tuple, int] = {}
    per_line: dict[str, list[dict]] = {}
    for option in options:
        if option["node_id"] in subset:
            per_line.setdefault(option["line_id"], []).append(option)
            remaining.setdefault(_supply(option), option["atp"])
    assignments = []
    # Lines with the fewest places to go choose first.
    order = sorted(per_line, key=lambda lid: (len(per_line[lid]), -lines[lid]["qty"], lid))
    for line_id in order:
        line = lines[line_id]
        choices = sorted(
            per_line[line_id],
            key=lambda o: (unit_cost(o, line, policy), o["distance_km"], o["node_id"], o["key"]),
        )
        need = line["qty"]
        if not policy.allow_split_lines:
            for option in choices:
                if remaining[_supply(option)] >= need:
                    remaining[_supply(option)] -= need
                    assignments.append(_assignment(line_id, option, need))
                    break
            continue
        for option in choices:
            take = min(need, remaining[_supply(option)])
            if take > 0:
                remaining[_supply(option)] -= take
                assignments.append(_assignment(line_id, option, take))
                need -= take
            if need == 0:
                break
    return assignments


def _assignment(line_id: str, option: dict, qty: int) -> dict:
    return {"line_id": line_id, "key": option["key"], "node_id": option["node_id"], "qty": qty}


def _shortlist(nodes, options, lines, policy: Policy, max_shipments: int) -> list[str]:
    """The nodes worth enumerating: all when few, else the best by coverage and cost."""
    size = SHORTLIST
    while (
        size > max_shipments and sum(comb(size, k) for k in range(1, max_shipments + 1)) > MAX_SETS
    ):
        size -= 1
    if len(nodes) <= size:
        return nodes
    coverage: dict[str, int] = {}
    cheapest: dict[str, float] = {}
    best_for_line: dict[str, list[tuple]] = {}
    for option in options:
        line = lines[option["line_id"]]
        node = option["node_id"]
        coverage[node] = coverage.get(node, 0) + min(option["atp"], line["qty"])
        alone = shipment_cost(option["distance_km"], policy) + line["qty"] * unit_cost(
            option, line, policy
        )
        cheapest[node] = min(cheapest.get(node, float("inf")), alone)
        best_for_line.setdefault(option["line_id"], []).append((alone, node))
    ranked = sorted(nodes, key=lambda n: (-coverage[n], cheapest[n], n))
    chosen: list[str] = []
    # Each line keeps its two cheapest nodes, then the widest-covering nodes fill the rest.
    for line_id in sorted(best_for_line):
        for _, node in sorted(best_for_line[line_id])[:2]:
            if node not in chosen:
                chosen.append(node)
    for node in ranked:
        if len(chosen) >= size:
            break
        if node not in chosen:
            chosen.append(node)
    return sorted(chosen[:size])
