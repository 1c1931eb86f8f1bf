"""Comparing two sets of decisions: per-decision measures, summaries, differences with an
always-valid 95% interval, and a verdict per measure. Pure.

One definition per measure: each is computed per decision (``measures``) and every
figure of a report is the plain average of it over decisions, the summaries of each
variant, their difference, its interval and the guardrails alike. So a report always
agrees with itself: the difference is the challenger's value minus the champion's.

The intervals stay valid however often they are looked at (experiments are checked every
minute while they run): they are the always-valid confidence intervals of the mixture
sequential probability ratio test for a difference of means (Johari, Koomen, Pekelis and
Walsh, "Peeking at A/B tests", KDD 2017; "Always valid inference", Operations Research
2022), with a normal mixing distribution of variance ``TAU_SHARE`` times the measure's
variance. A fixed-sample interval checked at every look would stop far more than 5% of
experiments whose variants do not differ.
"""

from __future__ import annotations

import math
import statistics

# Below this many decisions per side, a difference is reported with the verdict
# "not enough data".
ENOUGH = 30
ALPHA = 0.05
# The mixture's spread, as a share of the measure's variance: effects of about a tenth of
# a standard deviation are the ones the test is tuned to find soonest.
TAU_SHARE = 0.01

MEASURES = {
    # name: what it is, per decision; all are averaged over decisions
    "fill_rate": "units sourced / units ordered, per order",
    "split_share": "share of orders sent in several shipments",
    "shipments_per_order": "shipments per order",
    "cost_per_order": "estimated shipping cost per order",
    "cost_per_unit": "estimated shipping cost per unit sourced",
    "distance_km": "average distance of a shipment",
    "hold_rate": "share of orders put on hold",
    "backorder_rate": "share of orders back-ordered",
    "promise_kept": "share of orders with a promised date whose shipments are all dated by it",
}
RETURN_MEASURES = {
    "cost_per_return": "what taking the return back costs at the chosen point (0 when kept)",
    "kept_share": "share of returns the customer keeps, refunded without a trip",
    "resale_share": "share of returned units expected back on sale (restocked or sent on)",
    "refund_per_return": "refund per return",
    "refund_early_share": "share of returns refunded at once or at the drop-off, not later",
    "refused_share": "share of returns no point could take",
    # Observed after the decision (experiments on live returns; a replay has no such data):
    "resold_within_30_days": "share of returned units the point shipped again within 30 days"
    " of restocking them",
    "refund_hours": "hours from the return to its refund being due to the channel",
}
REPLENISHMENT_MEASURES = {
    "landed_cost_per_unit": "landed cost over the horizon (purchase, deliveries, holding) per"
    " unit ordered",
    "landed_cost": "landed cost over the horizon of the run's plan",
    "delivery_cost": "deliveries over the horizon, at the plan's cycles",
    "holding_cost": "holding cost over the horizon",
    "orders": "purchase orders and transfers proposed",
    "unplaced_share": "share of positions below target that no source could serve",
    "analyst_share": "share of orders that wait for an analyst's approval",
}
# Each kind's cost per decision, which the cost guardrail watches.
COSTS = ("cost_per_order", "cost_per_return", "landed_cost_per_unit")
# Which way is better for each measure.
HIGHER_IS_BETTER = {
    "fill_rate",
    "promise_kept",
    "resale_share",
    "refund_early_share",
    "resold_within_30_days",
}
BY_KIND = {
    "sourcing": MEASURES,
    "returns": RETURN_MEASURES,
    "replenishment": REPLENISHMENT_MEASURES,
}


def measures(decision: dict) -> dict:
    """The measures of one decision result, of its kind."""
    if decision.get("kind") == "returns":
        return return_measures(decision)
    if decision.get("kind") == "replenishment":
        return replenishment_measures(decision)
    served = sum(line["qty"] for s in decision["shipments"] for line in s["lines"])
    missing = sum(u["qty"] for u in decision["unfulfilled"])
    ordered = served + missing
    shipments = len(decision["shipments"])
    cost = sum(s["estimated_cost"] for s in decision["shipments"])
    distances = [s["distance_km"] for s in decision["shipments"]]
    promise = decision.get("promise")
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
        "promise_kept": None if promise is None else float(promise["kept"]),
        "latency_ms": decision.get("timings_ms", {}).get("total"),
    }


def return_measures(decision: dict) -> dict:
    """The measures of one return decision."""
    units = sum(line["qty"] for line in decision["lines"])
    resold = sum(
        line["qty"]
        for line in decision["lines"]
        if line["disposition"] in ("restock", "send_to_dc")
    )
    return {
        "cost_per_return": sum(s["estimated_cost"] for s in decision["shipments"]),
        "kept_share": 1.0 if decision["status"] == "keep" else 0.0,
        "resale_share": resold / units if units else None,
        "refund_per_return": decision["refund_total"],
        "refund_early_share": 1.0
        if decision["refund_due"] in ("at_decision", "at_drop_off")
        else 0.0,
        "refused_share": 1.0 if decision["status"] == "refused" else 0.0,
        "resold_within_30_days": decision.get("resold_within_30_days"),
        "refund_hours": decision.get("refund_hours"),
        "latency_ms": decision.get("timings_ms", {}).get("total"),
    }


def replenishment_measures(decision: dict) -> dict:
    """The measures of one replenishment run's decision."""
    totals = decision["totals"]
    needing = totals["lines"] + totals["unplaced"]
    orders = decision["orders"]
    return {
        "landed_cost_per_unit": totals["landed_cost_over_horizon"] / totals["units"]
        if totals["units"]
        else None,
        "landed_cost": totals["landed_cost_over_horizon"],
        "delivery_cost": totals["delivery_cost_over_horizon"],
        "holding_cost": totals["holding_cost_over_horizon"],
        "orders": float(len(orders)),
        "unplaced_share": totals["unplaced"] / needing if needing else 0.0,
        "analyst_share": sum(1 for o in orders if o["approval"] == "analyst") / len(orders)
        if orders
        else None,
        "latency_ms": decision.get("timings_ms", {}).get("total"),
    }


def summary(
    rows: list[dict], rejections: tuple[int, int] | None = None, kind: str = "sourcing"
) -> dict:
    """Averages over decisions of one variant, with latency percentiles."""
    result: dict = {"decisions": len(rows)}
    for name in BY_KIND[kind]:
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


def always_valid_half_width(variance: float, alpha: float = ALPHA, tau2: float | None = None):
    """Half-width of the always-valid interval of an estimate with this variance (mSPRT).

    ``tau2`` is the mixing variance, in the estimate's units squared.
    """
    if variance <= 0:
        return 0.0
    tau2 = tau2 if tau2 is not None else variance
    log_term = math.log(1 / alpha) + 0.5 * math.log((variance + tau2) / variance)
    return math.sqrt(2 * variance * (variance + tau2) / tau2 * log_term)


def verdict(name: str, result: dict) -> str:
    """better, worse, no detectable difference, or not enough data (for the challenger)."""
    if not result["enough_data"] or result["ci95"] is None:
        return "not enough data"
    low, high = result["ci95"]
    if low <= 0 <= high:
        return "no detectable difference"
    up = low > 0
    return "better" if up == (name in HIGHER_IS_BETTER) else "worse"


def _interval(diff: float, variance: float, per_observation: float, enough: bool, note):
    half = always_valid_half_width(variance, tau2=TAU_SHARE * per_observation or None)
    return {
        "difference": diff,
        "ci95": [diff - half, diff + half],
        "enough_data": enough,
        "note": note,
    }


def difference(champion: list[float], challenger: list[float]) -> dict:
    """Challenger minus champion, with an always-valid 95% interval; says when data is thin."""
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
    var_a, var_b = statistics.variance(a), statistics.variance(b)
    variance = var_a / len(a) + var_b / len(b)
    # The mixing variance is set on the scale of one observation of the difference.
    per_observation = variance * min(len(a), len(b))
    enough = len(a) >= ENOUGH and len(b) >= ENOUGH
    note = None if enough else f"not enough data: fewer than {ENOUGH} decisions per side"
    return _interval(diff, variance, per_observation, enough, note)


def differences(
    champion_rows: list[dict], challenger_rows: list[dict], kind: str = "sourcing"
) -> dict:
    found = {
        name: difference([r[name] for r in champion_rows], [r[name] for r in challenger_rows])
        for name in BY_KIND[kind]
    }
    return {name: {**result, "verdict": verdict(name, result)} for name, result in found.items()}


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
    per_observation = statistics.variance(deltas)
    enough = len(deltas) >= ENOUGH
    note = None if enough else f"not enough data: fewer than {ENOUGH} orders"
    return _interval(mean, per_observation / len(deltas), per_observation, enough, note)


def paired_differences(
    champion_rows: list[dict], challenger_rows: list[dict], kind: str = "sourcing"
) -> dict:
    """Every measure's paired difference (shadow mode), with its verdict."""
    found = {
        name: paired_difference(
            [(a[name], b[name]) for a, b in zip(champion_rows, challenger_rows, strict=True)]
        )
        for name in BY_KIND[kind]
    }
    return {name: {**result, "verdict": verdict(name, result)} for name, result in found.items()}
