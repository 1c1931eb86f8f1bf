"""The retailer's week, small: the simulation's own count of orders and promises must
agree with what the product reports, no order may be stranded, and no accepted shipment
withdrawn while every node ships within its grace (``make simulate-week`` runs the full
week)."""

from __future__ import annotations

from bench import week_simulation


def test_a_short_week_agrees_with_the_products_report_and_strands_nobody():
    figures = week_simulation.simulate(seed=3, per_day=15, order_days=3, settle_days=9)
    assert week_simulation.problems(figures) == []
    assert figures["placed"] == 45 and figures["open"] == 0
    own = figures["promises_own"]
    assert own["kept"] + own["broken"] >= 35 and own["pending"] == 0
    assert figures["withdrawn_accepted"] == 0
    # It ran the week: every day has its figures, and orders finished.
    assert len(figures["daily"]) == 12 and figures["finished"] > 35
    # Every customer was told of every parcel, in order (problems() says which were not).
    told = figures["customer_messages"]
    assert told["order.shipped"] > 20 and told["order.delivered"] > 20
    assert told.get("order.ready_for_pickup", 0) > 0
