"""The allocator on its own: pure cases, data in, data out."""

from __future__ import annotations

import pytest

from app.kinds.sourcing.allocate import Policy, allocate

# Pure: the same on every database.
pytestmark = pytest.mark.one_database

RATE = {"base": 4.0, "per_km": 0.01, "per_kg": 0.5}


def policy(**changes) -> Policy:
    values = {
        "max_shipments": 3,
        "allow_split_lines": True,
        "allow_partial": True,
        "ship_complete": False,
        "rate": RATE,
        "weights": {"shipping_cost": 1.0, "distance": 0.0, "split_penalty": 5.0, "rule_score": 1.0},
    }
    values.update(changes)
    return Policy(**values)


def line(line_id, sku, qty, weight=1.0):
    return {"line_id": line_id, "sku": sku, "qty": qty, "weight_kg": weight}


def option(line_id, node_id, sku, atp, distance=10.0, score=0.0, capacity=None):
    return {
        "key": f"{line_id}@{node_id}",
        "line_id": line_id,
        "node_id": node_id,
        "sku": sku,
        "in_transit": False,
        "atp": atp,
        "distance_km": distance,
        "capacity_left": capacity,
        "score": score,
    }


def shipped(result) -> dict:
    out: dict = {}
    for a in result.assignments:
        out.setdefault(a["node_id"], {})[a["line_id"]] = a["qty"]
    return out


CASES = [
    (
        "the nearer node wins",
        [line("1", "A", 1)],
        [option("1", "far", "A", 5, distance=300), option("1", "near", "A", 5, distance=20)],
        policy(),
        {"near": {"1": 1}},
        {},
    ),
    (
        "one shipment beats two cheaper ones",
        [line("1", "A", 1), line("2", "B", 1)],
        [
            option("1", "x", "A", 5, distance=10),
            option("2", "y", "B", 5, distance=10),
            option("1", "both", "A", 5, distance=60),
            option("2", "both", "B", 5, distance=60),
        ],
        policy(),
        {"both": {"1": 1, "2": 1}},
        {},
    ),
    (
        "rule score outweighs a little distance",
        [line("1", "A", 1)],
        [
            option("1", "near", "A", 5, distance=20),
            option("1", "liked", "A", 5, distance=50, score=3),
        ],
        policy(),
        {"liked": {"1": 1}},
        {},
    ),
    (
        "a split when no node has it all",
        [line("1", "A", 7)],
        [option("1", "x", "A", 4), option("1", "y", "A", 4)],
        policy(),
        {"x": {"1": 4}, "y": {"1": 3}},
        {},
    ),
    (
        "no split: the line waits rather than split",
        [line("1", "A", 7)],
        [option("1", "x", "A", 4), option("1", "y", "A", 4)],
        policy(allow_split_lines=False),
        {},
        {"1": 7},
    ),
    (
        "two lines of one SKU share a node's ATP",
        [line("1", "A", 3), line("2", "A", 3)],
        [
            option("1", "x", "A", 4),
            option("2", "x", "A", 4),
            option("1", "y", "A", 9, distance=90),
            option("2", "y", "A", 9, distance=90),
        ],
        policy(),
        {"y": {"1": 3, "2": 3}},
        {},
    ),
    (
        "max shipments leaves a line unserved",
        [line("1", "A", 1), line("2", "B", 1)],
        [option("1", "x", "A", 5), option("2", "y", "B", 5)],
        policy(max_shipments=1),
        {"x": {"1": 1}},
        {"2": 1},
    ),
    (
        "ship complete needs one node with everything",
        [line("1", "A", 1), line("2", "B", 1)],
        [option("1", "x", "A", 5), option("2", "y", "B", 5)],
        policy(ship_complete=True),
        {},
        {"1": 1, "2": 1},
    ),
    (
        "all or nothing when partial fulfilment is off",
        [line("1", "A", 5)],
        [option("1", "x", "A", 3)],
        policy(allow_partial=False),
        {},
        {"1": 5},
    ),
    (
        "a node at capacity is not used",
        [line("1", "A", 1)],
        [
            option("1", "full", "A", 5, distance=1, capacity=0),
            option("1", "ok", "A", 5, distance=200, capacity=3),
        ],
        policy(),
        {"ok": {"1": 1}},
        {},
    ),
]


@pytest.mark.parametrize(
    ("name", "lines", "options", "rules", "expected", "unserved"), CASES, ids=[c[0] for c in CASES]
)
def test_allocation(name, lines, options, rules, expected, unserved):
    result = allocate(lines, options, rules)
    assert shipped(result) == expected
    assert result.unserved == unserved


def test_ties_are_broken_the_same_way_every_time():
    lines = [line("1", "A", 1)]
    options = [option("1", node, "A", 5) for node in ("c", "a", "b")]
    results = {tuple(shipped(allocate(lines, list(reversed(options)), policy()))) for _ in range(5)}
    results |= {tuple(shipped(allocate(lines, options, policy())))}
    assert results == {("a",)}


def test_many_nodes_are_shortlisted_not_enumerated():
    lines = [line(str(i), f"S{i}", 1) for i in range(3)]
    options = [
        option(str(i), f"n{n:03d}", f"S{i}", 5, distance=float(n))
        for i in range(3)
        for n in range(300)
    ]
    result = allocate(lines, options, policy())
    assert shipped(result) == {"n000": {"0": 1, "1": 1, "2": 1}}
    assert result.sets_tried < 3000
