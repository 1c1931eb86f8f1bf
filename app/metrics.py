"""Comparing two sets of decisions: per-decision measures, summaries, differences with a
95% confidence interval. Pure."""

from __future__ import annotations

import math
import statistics

# Below this many decisions per side, a difference is reported without a verdict.
ENOUGH = 30
Z95 = 1.96

MEASURES = {
    # name: (description, function of one decision's measures)
    "fill_rate": "units sourced / units ordered",
    "split_share": "share of orders sent in several shipments",
    "shipments_per_order": "shipments per order",
    "cost_per_order": "estimated shipping cost per order",
    "cost_per_unit": "estimated shipping cost per unit sourced",
    "distance_km": "average distance of a shipment",
    "hold_rate": "share of orders put on hold",
    "backorder_rate": "share of orders back-ordered",
}


def measures(decision: dict) -> dict:
    """The measures of one decision result."""
    served = sum(line["qty"] for s in decision["shipments"] for line in s["lines"])
    missing = sum(u["qty"] for u in decision["unfulfilled"])
    ordered = served + missing
    shipments = len(decision["shipments"])
    cost = sum(s["estimated_cost"] for s in decision["shipments"])
    distances = [s["distance_km"] for s in decision["shipments"]]
    return {
        "fill_rate": served / ordered if ordered else 1.0,
        "units_sourced": served,
        "units_ordered": ordered,
        "split_share": 1.0 if shipments > 1 else 0.0,
        "shipments_per_order": float(shipments),
        "cost_per_order": cost,
        "cost_per_unit": cost / served if served else None,
        "distance_km": statistics.fmean(distances) if distances else None,
        "hold_rate": 1.0 if decision["status"] == "on_hold" else 0.0,
        "backorder_rate": 1.0 if decision["status"] == "backordered" else 0.0,
        "latency_ms": decision.get("timings_ms", {}).get("total"),
    }


def summary(rows: list[dict], rejections: tuple[int, int] | None = None) -> dict:
    """Averages over decisions of one variant, with latency percentiles."""
    result: dict = {"decisions": len(rows)}
    ordered = sum(r["units_ordered"] for r in rows)
    result["fill_rate"] = sum(r["units_sourced"] for r in rows) / ordered if ordered else None
    for name in MEASURES:
        if name == "fill_rate":
            continue
        values = [r[name] for r in rows if r[name] is not None]
        result[name] = statistics.fmean(values) if values else None
    latencies = sorted(r["latency_ms"] for r in rows if r.get("latency_ms") is not None)
    result["latency_ms"] = {
        "p50": _percentile(latencies, 0.50),
        "p95": _percentile(latencies, 0.95),
    }
    if rejections is not None:
        rejected, total = rejections
        result["node_rejection_rate"] = rejected / total if total else None
    return result


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, int(share * len(values)))]


def difference(champion: list[float], challenger: list[float]) -> dict:
    """Challenger minus champion, with a 95% interval (Welch); says when data is too thin."""
    a = [v for v in champion if v is not None]
    b = [v for v in challenger if v is not None]
    if not a or not b:
        return {
            "difference": None,
            "ci95": None,
            "enough_data": False,
            "note": "no decisions on one side",
        }
    diff = statistics.fmean(b) - statistics.fmean(a)
    if len(a) < 2 or len(b) < 2:
        return {
            "difference": diff,
            "ci95": None,
            "enough_data": False,
            "note": "not enough data for an interval",
        }
    se = math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))
    enough = len(a) >= ENOUGH and len(b) >= ENOUGH
    return {
        "difference": diff,
        "ci95": [diff - Z95 * se, diff + Z95 * se],
        "enough_data": enough,
        "note": None if enough else f"not enough data: fewer than {ENOUGH} decisions per side",
    }


def differences(champion_rows: list[dict], challenger_rows: list[dict]) -> dict:
    return {
        name: difference([r[name] for r in champion_rows], [r[name] for r in challenger_rows])
        for name in MEASURES
    }


def paired_difference(pairs: list[tuple[float, float]]) -> dict:
    """For shadow mode: the same orders under both versions, so differences are paired."""
    deltas = [b - a for a, b in pairs if a is not None and b is not None]
    if len(deltas) < 2:
        return {
            "difference": statistics.fmean(deltas) if deltas else None,
            "ci95": None,
            "enough_data": False,
            "note": "not enough data for an interval",
        }
    mean = statistics.fmean(deltas)
    se = statistics.stdev(deltas) / math.sqrt(len(deltas))
    enough = len(deltas) >= ENOUGH
    return {
        "difference": mean,
        "ci95": [mean - Z95 * se, mean + Z95 * se],
        "enough_data": enough,
        "note": None if enough else f"not enough data: fewer than {ENOUGH} orders",
    }
