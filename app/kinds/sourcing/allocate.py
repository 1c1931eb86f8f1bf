"""Assign order lines to the candidates the rules left: pure, deterministic.

The objective, minimised after serving as many units as possible:

    for each shipment (node used):  w_cost x (base + per_km x distance) + w_distance x distance
    for each unit assigned:         w_cost x per_kg x unit weight - w_score x score / line qty
    for each shipment beyond one:   split_penalty

subject to ATP per (node, SKU, supply), nodes' capacity left today, max shipments,
ship-complete (one shipment, every unit) and whether a line may come from several
nodes. Node sets up to ``max_shipments`` are enumerated from the front of the nodes
ranked most promising first (all of them for small sets, fewer for large ones), each
skipped when its bounds show it cannot win; lines are assigned within each set,
quickly and then exactly for the sets that could win, and the best set wins; ties
prefer fewer shipments, then node ids in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from math import comb

DEFAULT_WEIGHTS = {"shipping_cost": 1.0, "distance": 0.0, "split_penalty": 5.0, "rule_score": 1.0}
# Node sets of one size enumerated at most.
SETS_PER_SIZE = 400
# Node sets that could beat the best quick assignment get an exact assignment within the
# set, best bound first, up to this many.
MAX_REFINED = 200
# Whole-line choices tried exactly when lines may not be split; past this, greedy.
MAX_WHOLE_COMBINATIONS = 20000


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

    def __post_init__(self):
        # Read for every unit and shipment cost: resolved once per decision.
        resolved = {
            name: float(self.weights.get(name, default))
            for name, default in DEFAULT_WEIGHTS.items()
        }
        object.__setattr__(self, "_resolved", resolved)

    def weight(self, name: str) -> float:
        return self._resolved[name]


@dataclass
class Allocation:
    assignments: list[dict]  # {line_id, key, node_id, qty}
    unserved: dict[str, int]  # line_id -> units not allocated
    objective: float
    nodes: list[str]
    sets_tried: int = 0


def unit_cost(option: dict, line: dict, policy: Policy) -> float:
    weights = policy._resolved
    return (
        weights["shipping_cost"] * policy.rate["per_kg"] * line["weight_kg"]
        - weights["rule_score"] * option["score"] / line["qty"]
    )


def shipment_cost(distance: float, policy: Policy) -> float:
    weights, rate = policy._resolved, policy.rate
    return (
        weights["shipping_cost"] * (rate["base"] + rate["per_km"] * distance)
        + weights["distance"] * distance
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
    # Every node, most promising first; sets of each size are drawn from the front.
    shortlist = _ranked(nodes, usable, by_line, policy)
    total_units = sum(line["qty"] for line in lines)
    # Each line's options in order of preference, once: sets only filter them.
    preference = _preferences(usable, by_line, policy)
    # Bounds that let a node set be skipped unseen: the most units it could serve, and
    # the least its shipments and units could cost (each line from its cheapest node in
    # the set, as if no other line wanted the stock).
    least_units = sum(
        line["qty"] * min(unit_cost(o, line, policy) for o in preference[line_id])
        for line_id, line in by_line.items()
        if line_id in preference
    )
    line_ids = list(by_line)
    quantities = [by_line[line_id]["qty"] for line_id in line_ids]
    place = {node: i for i, node in enumerate(shortlist)}
    column = {line_id: j for j, line_id in enumerate(line_ids)}
    # Per shortlisted node, as plain lists (this loop runs for every set): ATP and the
    # cheapest unit per line, and the cost of a shipment.
    atp_of = [[0] * len(line_ids) for _ in shortlist]
    unit_of = [[float("inf")] * len(line_ids) for _ in shortlist]
    fixed_of = [0.0] * len(shortlist)
    for option in usable:
        i = place.get(option["node_id"])
        if i is None:
            continue
        j = column[option["line_id"]]
        atp_of[i][j] += option["atp"]
        unit = unit_cost(option, by_line[option["line_id"]], policy)
        unit_of[i][j] = min(unit_of[i][j], unit)
        fixed_of[i] = shipment_cost(option["distance_km"], policy)
    cheapest_fixed = sorted(fixed_of)
    split_penalty = policy.weight("split_penalty")
    ranked = []
    tried = 0
    best_served, best_value = -1, float("inf")
    for size in range(1, min(max_shipments, len(shortlist)) + 1):
        extra = split_penalty * (size - 1)
        if (
            best_served == total_units
            and sum(cheapest_fixed[:size]) + least_units + extra >= best_value
        ):
            continue  # no set of this size can beat a set that already serves every unit
        for subset in combinations(range(_pool(len(shortlist), size)), size):
            most, bound = 0, extra
            for i in subset:
                bound += fixed_of[i]
            for j, quantity in enumerate(quantities):
                available, cheapest = 0, float("inf")
                for i in subset:
                    available += atp_of[i][j]
                    if unit_of[i][j] < cheapest:
                        cheapest = unit_of[i][j]
                take = quantity if available >= quantity else available
                if take:
                    most += take
                    bound += take * cheapest
            if most < best_served or (most == best_served and bound >= best_value):
                continue
            tried += 1
            nodes_set = tuple(shortlist[i] for i in subset)
            assignments = _assign(set(nodes_set), preference, by_line, policy)
            rank = _rank(assignments, by_line, by_key, policy)
            ranked.append((most, bound, nodes_set, rank, assignments))
            if (-rank[0], -rank[1]) > (best_served, -best_value):
                best_served, best_value = -rank[0], rank[1]
    best = min(((entry[3], entry[4]) for entry in ranked), default=None, key=lambda b: b[0])
    # Quick assignments can misplace contended stock: redo sets exactly, the most units
    # and the lowest bound first, until no set left could beat the best found.
    ranked.sort(key=lambda entry: (-entry[0], entry[1], entry[2]))
    for refined, (most, bound, subset, _, _) in enumerate(ranked):
        if refined >= MAX_REFINED or most < -best[0][0]:
            break
        if most == -best[0][0] and bound > best[0][1] + 1e-9:
            continue
        assignments = _assign_exact(set(subset), usable, by_line, policy)
        rank = _rank(assignments, by_line, by_key, policy)
        if rank < best[0]:
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


def _rank(assignments, by_line, by_key, policy) -> tuple:
    served = sum(a["qty"] for a in assignments)
    used = sorted({a["node_id"] for a in assignments})
    return (-served, objective(assignments, by_line, by_key, policy), len(used), used)


def _supply(option: dict) -> tuple:
    return option["node_id"], option["sku"], bool(option.get("in_transit"))


class Preference(list):
    """A line's options in order of preference, indexed by node for fast filtering."""

    def __init__(self, options):
        super().__init__(options)
        self.by_node: dict[str, list[tuple[int, dict]]] = {}
        for position, option in enumerate(options):
            self.by_node.setdefault(option["node_id"], []).append((position, option))


def _preferences(options: list[dict], lines: dict, policy: Policy) -> dict[str, Preference]:
    """Each line's options, cheapest per unit first, then nearest, then by id."""
    preference: dict[str, list[dict]] = {}
    for option in sorted(
        options,
        key=lambda o: (
            unit_cost(o, lines[o["line_id"]], policy),
            o["distance_km"],
            o["node_id"],
            o["key"],
        ),
    ):
        preference.setdefault(option["line_id"], []).append(option)
    return {line_id: Preference(found) for line_id, found in preference.items()}


def _within(choices, subset: set[str]) -> list[dict]:
    if isinstance(choices, Preference) and len(subset) * 4 < len(choices):
        found = [pair for node in subset for pair in choices.by_node.get(node, ())]
        return [option for _, option in sorted(found, key=lambda pair: pair[0])]
    return [o for o in choices if o["node_id"] in subset]


def _assign(subset: set[str], preference: dict, lines: dict, policy: Policy) -> list[dict]:
    """Assign lines within a fixed set of nodes: preferred option first, sharing ATP."""
    remaining: dict[tuple, int] = {}
    per_line: dict[str, list[dict]] = {}
    for line_id, choices in preference.items():
        mine = _within(choices, subset)
        if mine:
            per_line[line_id] = mine
            for option in mine:
                remaining.setdefault(_supply(option), option["atp"])
    assignments = []
    # Lines with the fewest places to go choose first.
    order = sorted(per_line, key=lambda lid: (len(per_line[lid]), -lines[lid]["qty"], lid))
    for line_id in order:
        need = lines[line_id]["qty"]
        choices = per_line[line_id]
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


def _assign_exact(subset: set[str], options: list[dict], lines: dict, policy: Policy):
    """Within a fixed node set: serve the most units at the least cost.

    Lines that may be split are a min-cost max-flow (lines -> supplies, capacity
    ATP); whole lines are searched exhaustively when the choices are few.
    """
    mine = [o for o in options if o["node_id"] in subset]
    if policy.allow_split_lines:
        return _min_cost_flow(mine, lines, policy)
    return _whole_lines(mine, lines, policy)


def _min_cost_flow(options: list[dict], lines: dict, policy: Policy) -> list[dict]:
    # Nodes: 0 source, 1 sink, then lines, then supplies. Successive shortest paths
    # (Bellman-Ford, as unit costs may be negative) give max flow at min cost.
    line_ids = sorted({o["line_id"] for o in options})
    supplies = sorted({_supply(o) for o in options})
    index = {("line", lid): 2 + i for i, lid in enumerate(line_ids)}
    index.update({("supply", s): 2 + len(line_ids) + i for i, s in enumerate(supplies)})
    size = 2 + len(line_ids) + len(supplies)
    graph: list[list[list]] = [[] for _ in range(size)]

    def edge(a, b, capacity, cost, option=None):
        graph[a].append([b, capacity, cost, len(graph[b]), option])
        graph[b].append([a, 0, -cost, len(graph[a]) - 1, None])

    atp = {}
    for o in options:
        atp[_supply(o)] = o["atp"]
    for lid in line_ids:
        edge(0, index[("line", lid)], lines[lid]["qty"], 0.0)
    for o in options:
        edge(
            index[("line", o["line_id"])],
            index[("supply", _supply(o))],
            lines[o["line_id"]]["qty"],
            unit_cost(o, lines[o["line_id"]], policy),
            o,
        )
    for supply in supplies:
        edge(index[("supply", supply)], 1, atp[supply], 0.0)
    while True:
        distance = [float("inf")] * size
        previous: list = [None] * size
        distance[0] = 0.0
        for _ in range(size):
            changed = False
            for a in range(size):
                if distance[a] == float("inf"):
                    continue
                for position, (b, capacity, cost, _, _) in enumerate(graph[a]):
                    if capacity > 0 and distance[a] + cost < distance[b] - 1e-12:
                        distance[b] = distance[a] + cost
                        previous[b] = (a, position)
                        changed = True
            if not changed:
                break
        if distance[1] == float("inf"):
            break
        push, node = float("inf"), 1
        while node != 0:
            a, position = previous[node]
            push = min(push, graph[a][position][1])
            node = a
        node = 1
        while node != 0:
            a, position = previous[node]
            graph[a][position][1] -= push
            back = graph[a][position][3]
            graph[node][back][1] += push
            node = a
    assignments = []
    for lid in line_ids:
        for b, _capacity, _, back, option in graph[index[("line", lid)]]:
            if option is not None:
                flow = graph[b][back][1]
                if flow > 0:
                    assignments.append(_assignment(lid, option, int(flow)))
    return assignments


def _whole_lines(options: list[dict], lines: dict, policy: Policy) -> list[dict]:
    per_line: dict[str, list[dict]] = {}
    for o in options:
        if o["atp"] >= lines[o["line_id"]]["qty"]:
            per_line.setdefault(o["line_id"], []).append(o)
    line_ids = sorted(per_line)
    combinations_count = 1
    for lid in line_ids:
        combinations_count *= len(per_line[lid]) + 1
    if combinations_count > MAX_WHOLE_COMBINATIONS:
        preference = _preferences(options, lines, policy)
        return _assign({o["node_id"] for o in options}, preference, lines, policy)
    best: list = [(0, 0.0), []]

    def search(position: int, remaining: dict, served: int, cost: float, chosen: list):
        if position == len(line_ids):
            if (-served, cost) < (-best[0][0], best[0][1]):
                best[0] = (served, cost)
                best[1] = list(chosen)
            return
        lid = line_ids[position]
        qty = lines[lid]["qty"]
        for o in per_line[lid]:
            supply = _supply(o)
            if remaining.get(supply, o["atp"]) >= qty:
                remaining[supply] = remaining.get(supply, o["atp"]) - qty
                chosen.append(_assignment(lid, o, qty))
                search(
                    position + 1,
                    remaining,
                    served + qty,
                    cost + qty * unit_cost(o, lines[lid], policy),
                    chosen,
                )
                chosen.pop()
                remaining[supply] += qty
        search(position + 1, remaining, served, cost, chosen)

    search(0, {}, 0, 0.0, [])
    return best[1]


def _assignment(line_id: str, option: dict, qty: int) -> dict:
    return {"line_id": line_id, "key": option["key"], "node_id": option["node_id"], "qty": qty}


def _pool(nodes: int, size: int) -> int:
    """How many of the ranked nodes sets of ``size`` are drawn from: as many as keep
    them within SETS_PER_SIZE (all for one shipment, 29 for two, 14 for three, 11 for
    four): few shipments, which the split penalty favours, are searched widest."""
    pool = size
    while pool < nodes and comb(pool + 1, size) <= SETS_PER_SIZE:
        pool += 1
    return min(pool, nodes)


def _ranked(nodes, options, lines, policy: Policy) -> list[str]:
    """Every node, the most promising first: each line's cheapest alone and its cheapest
    whole-line node, then the rest by coverage and cost."""
    coverage: dict[str, int] = {}
    cheapest: dict[str, float] = {}
    best_for_line: dict[str, list[tuple]] = {}
    best_unit: dict[str, list[tuple]] = {}
    for option in options:
        line = lines[option["line_id"]]
        node = option["node_id"]
        coverage[node] = coverage.get(node, 0) + min(option["atp"], line["qty"])
        alone = shipment_cost(option["distance_km"], policy) + line["qty"] * unit_cost(
            option, line, policy
        )
        cheapest[node] = min(cheapest.get(node, float("inf")), alone)
        best_for_line.setdefault(option["line_id"], []).append((alone, node))
        if option["atp"] >= line["qty"]:
            unit = unit_cost(option, line, policy)
            best_unit.setdefault(option["line_id"], []).append((unit, option["distance_km"], node))
    ranked = sorted(nodes, key=lambda n: (-coverage[n], cheapest[n], n))
    chosen: list[str] = []
    # Each line's two cheapest nodes alone and the node that serves it whole at the
    # lowest unit cost (the one to share a shipment with other lines), then the
    # widest-covering nodes.
    for line_id in sorted(best_for_line):
        picks = [node for _, node in sorted(best_for_line[line_id])[:2]]
        picks += [node for *_, node in sorted(best_unit.get(line_id, []))[:1]]
        for node in picks:
            if node not in chosen:
                chosen.append(node)
    taken = set(chosen)
    return chosen + [node for node in ranked if node not in taken]
