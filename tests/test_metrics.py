"""Experiment statistics: one definition per measure, and intervals that stay valid when
they are looked at after every batch of decisions."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from app.machinery import metrics


def rows(rng: random.Random, count: int, fill: float) -> list[dict]:
    """Per-decision measures of ``count`` orders of 1-3 units, each unit served with
    probability ``fill``."""
    made = []
    for _ in range(count):
        ordered = rng.randint(1, 3)
        served = sum(rng.random() < fill for _ in range(ordered))
        shipments = (
            [
                {
                    "lines": [{"qty": served}],
                    "estimated_cost": 4.0 + rng.random(),
                    "distance_km": 10.0,
                }
            ]
            if served
            else []
        )
        unfulfilled = [{"qty": ordered - served}] if ordered > served else []
        status = "sourced" if not unfulfilled else "partially_sourced" if served else "backordered"
        decision = {"shipments": shipments, "unfulfilled": unfulfilled, "status": status}
        if rng.random() < 0.5:  # half the orders were promised a date; most keep it
            decision["promise"] = {"kept": rng.random() < fill}
        made.append(metrics.measures(decision))
    return made


def test_a_report_agrees_with_itself(seed=3):
    rng = random.Random(seed)
    champion, challenger = rows(rng, 200, 0.9), rows(rng, 180, 0.6)
    left, right = metrics.summary(champion), metrics.summary(challenger)
    for name, result in metrics.differences(champion, challenger).items():
        assert result["difference"] == pytest.approx(right[name] - left[name]), name
    # Fill rate is the average per order, in the summaries as in the difference.
    assert left["fill_rate"] == pytest.approx(statistics.fmean(r["fill_rate"] for r in champion))


def looks(rng: random.Random, fill_a: float, fill_b: float, interval) -> int | None:
    """Look after every 50 decisions per side, up to 1,000; the look at which the interval
    first excludes 0 (a stop), or None."""
    a: list[float] = []
    b: list[float] = []
    for look in range(20):
        a.extend(float(rng.random() < fill_a) for _ in range(50))
        b.extend(float(rng.random() < fill_b) for _ in range(50))
        low, high = interval(a, b)
        if low > 0 or high < 0:
            return look
    return None


def always_valid(a, b):
    return metrics.difference(a, b)["ci95"]


def fixed_sample(a, b):
    diff = statistics.fmean(b) - statistics.fmean(a)
    se = math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))
    return diff - 1.96 * se, diff + 1.96 * se


def test_checked_at_every_look_a_a_experiments_stop_at_most_5_percent_of_the_time():
    rng = random.Random(11)
    runs = 300
    stops = sum(looks(rng, 0.8, 0.8, always_valid) is not None for _ in range(runs))
    assert stops / runs <= 0.05, stops
    # The fixed-sample interval, looked at as often, stops far more A/A experiments.
    rng = random.Random(11)
    naive = sum(looks(rng, 0.8, 0.8, fixed_sample) is not None for _ in range(runs))
    assert naive / runs > 0.10, naive


def test_a_real_difference_is_found_and_called_worse():
    rng = random.Random(5)
    runs = 100
    found = [looks(rng, 0.8, 0.7, always_valid) for _ in range(runs)]
    assert sum(look is not None for look in found) / runs >= 0.9
    result = metrics.differences(rows(rng, 1000, 0.9), rows(rng, 1000, 0.7))
    assert result["fill_rate"]["verdict"] == "worse"
    assert result["backorder_rate"]["verdict"] == "worse"  # more back-orders is worse


def test_verdicts_need_enough_data_and_say_no_difference_when_there_is_none():
    rng = random.Random(2)
    few = metrics.differences(rows(rng, 10, 0.9), rows(rng, 10, 0.1))
    assert few["fill_rate"]["verdict"] == "not enough data"
    same = metrics.differences(rows(rng, 500, 0.8), rows(rng, 500, 0.8))
    assert same["fill_rate"]["verdict"] == "no detectable difference"
    better = metrics.differences(rows(rng, 500, 0.6), rows(rng, 500, 0.9))
    assert better["fill_rate"]["verdict"] == "better"
