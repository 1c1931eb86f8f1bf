"""The replenishment decision: from a run's facts and what the rules did to them, each
position's target, whether it needs an order, and the purchase orders and transfers that
meet those needs at the least landed cost (``plan.py``), with the explanation of every
line. Pure: data in, data out.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta

from app.kinds.replenishment import batching, plan
from app.machinery.rules.engine import Evaluation

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def scenario_outcome(facts: list[dict], version: dict) -> dict:
    """The decision a version makes on a scenario's facts: rules, then the plan."""
    from app.machinery.rules import runtime

    return run(facts, version, runtime.evaluate(version, facts))


def run(facts: list[dict], version: dict, evaluation: Evaluation, explained: bool = True) -> dict:
    """Decide a run from its facts under a ruleset version and the rules' verdict."""
    settings = version["document"]["settings"]
    the_run = next((f for f in facts if f["fact"] == "run"), {"date": "1970-01-01"})
    attributes = {name: entry["value"] for name, entry in evaluation.attributes.items()}
    approve_under = attributes.get("approve_under_value", settings.get("approve_under_value", 0))
    problem, seen, sources_of = problem_of(facts, settings, evaluation)
    solved = plan.solve(problem)
    orders = _orders(solved, problem, seen, sources_of, the_run["date"], approve_under)
    for key, reason in solved.unplaced.items():
        seen[key].update(status="unplaced", reason=reason)
    listed = [
        entry if explained or entry["status"] in ("ordered", "unplaced") else _brief(entry)
        for entry in seen.values()
    ]
    totals = _totals(solved, problem, orders)
    return {
        "kind": "replenishment",
        "ruleset": {
            "name": version["ruleset"],
            "version": version["version"],
            "sha256": version["sha256"],
        },
        "run_id": the_run.get("run_id"),
        "horizon": the_run["date"],
        "status": "proposed" if orders else "nothing",
        "orders": orders,
        "positions": listed,
        "totals": totals,
        # Where the goods come from, in the shape every kind's decision shares (scenarios
        # check ``serves`` against it, experiments and replays compare it).
        "shipments": [
            {
                "node_id": order["source_node_id"],
                "destination_node_id": order["destination_node_id"],
                "estimated_cost": order["delivery_cost"],
                "lines": [
                    {"line_id": line["position"], "qty": line["qty"]} for line in order["lines"]
                ],
            }
            for order in orders
        ],
        "unfulfilled": [
            {"line_id": key, "reason": reason} for key, reason in sorted(solved.unplaced.items())
        ],
        "explanation": {
            "rules_fired": list(evaluation.fired),
            "attributes": evaluation.attributes,
            "tags": list(evaluation.tags),
            "approve_under_value": approve_under,
        },
    }


def problem_of(facts: list[dict], settings: dict, evaluation: Evaluation):
    """What the plan solves: every position that needs an order and its options, and what
    the sources impose. Returns ``(problem, entries by position, sources by position)``."""
    horizon = settings.get("horizon_days", 28)
    sources_of: dict[str, list[dict]] = defaultdict(list)
    for fact in facts:
        if fact["fact"] == "source":
            sources_of[fact["position_key"]].append(fact)
    seen: dict[str, dict] = {}
    options: dict[str, list[plan.Option]] = {}
    spare: dict[str, dict[str, int]] = defaultdict(dict)
    delivery_cost: dict[str, float] = {}
    min_order_value: dict[str, float] = {}
    for position in (f for f in facts if f["fact"] == "position"):
        entry, position_options = _position(
            position, sources_of[position["key"]], evaluation, settings, horizon
        )
        seen[position["key"]] = entry
        if position_options is not None:
            options[position["key"]] = position_options
        for source in sources_of[position["key"]]:
            delivery_cost[source["source_id"]] = source.get("cost_per_delivery", 0.0)
            min_order_value[source["source_id"]] = source.get("min_order_value", 0.0)
            if source["source_type"] == "dc":
                spare[source["source_id"]][source["sku"]] = source.get("spare_units", 0)
    problem = plan.Problem(horizon, options, delivery_cost, min_order_value, dict(spare))
    return problem, seen, sources_of


def _position(position, sources, evaluation, settings, horizon):
    """A position's entry in the decision, and its options when it needs an order."""
    key = position["key"]
    own = {name: e["value"] for name, e in evaluation.item_attributes.get(key, {}).items()}
    set_by = {name: e["rule"] for name, e in evaluation.item_attributes.get(key, {}).items()}
    considered, excluded = [], []
    for source in sources:
        reasons = list(evaluation.excluded.get(source["key"], []))
        if source.get("refused"):
            reasons.append({"rule": None, "reason": "it rejected an order of this position"})
        if source.get("source_type") == "dc" and source.get("spare_units", 0) <= 0:
            reasons.append({"rule": None, "reason": "the DC has no units to spare"})
        if reasons:
            excluded.append({"source_id": source["source_id"], "reasons": reasons})
        else:
            considered.append(source)
    weight = position.get("weight_kg", 0.0)
    primary = min(
        considered,
        key=lambda s: (
            s.get("unit_cost", 0.0) + s.get("cost_per_kg", 0.0) * weight,
            s.get("lead_time_days", 0),
            s["source_id"],
        ),
        default=None,
    )
    lead = primary.get("lead_time_days", 0) if primary else 0
    target = plan.targets(position, own, settings, lead)
    stock = position.get("inventory_position", 0)
    entry = {
        "position": key,
        "node_id": position["node_id"],
        "sku": position["sku"],
        "inventory_position": stock,
        "on_hand": position.get("on_hand", 0),
        "in_transit": position.get("in_transit", 0),
        "on_order": position.get("on_order", 0),
        "backorders": position.get("backorders", 0),
        "daily_mean": position.get("daily_mean", 0.0),
        "daily_sd": position.get("daily_sd", 0.0),
        "unit_value": position.get("unit_value", settings.get("default_unit_value", 10)),
        "target": {**target, "set_by": set_by, "primary_source": primary and primary["source_id"]},
        "sources": [],
        "excluded_sources": excluded,
    }
    if target["policy"] == "none":
        entry.update(status="not_replenished", reason=_by("the policy is none", set_by, "policy"))
        return entry, None
    if stock >= target["reorder_point"]:
        entry.update(
            status="above_target",
            reason=f"inventory position {stock} is not below the reorder point"
            f" {target['reorder_point']}",
        )
        return entry, None
    entry["status"] = "needs_order"
    options = []
    for source in considered:
        for cycle in _cycles(target, own, settings):
            option, cost_parts = _option(
                position, source, target, cycle, settings, horizon, evaluation
            )
            if option is None:
                continue
            options.append(option)
            entry["sources"].append(
                {"source_id": source["source_id"], "cycle_days": cycle, **cost_parts}
            )
    return entry, options


def _cycles(target: dict, own: dict, settings: dict) -> list[int]:
    review = target["review_days"]
    if "cycle_days" in own:
        return [max(int(own["cycle_days"]), review)]
    if target["policy"] == "min_max":
        return [review]
    return sorted({max(int(days), review) for days in settings.get("cycle_days", [7, 14, 28])})


def _option(position, source, target, cycle, settings, horizon, evaluation):
    """One (source, cycle) way to serve a position, or None when it cannot."""
    mean, sd = position.get("daily_mean", 0.0), position.get("daily_sd", 0.0)
    lead = source.get("lead_time_days", 0)
    up_to = plan.order_up_to(target, mean, sd, lead, cycle)
    need = up_to - position.get("inventory_position", 0)
    qty = plan.quantity(need, source.get("pack_size", 1), source.get("min_order_qty", 0))
    uses_spare = 0
    if source["source_type"] == "dc":
        qty = min(qty, source.get("spare_units", 0))
        uses_spare = qty
        if qty <= 0:
            return None, {}
    weight = position.get("weight_kg", 0.0)
    unit_cost = source.get("unit_cost", 0.0)
    # A DC's goods are already bought, but the DC buys them again: they cost what a
    # supplier charges (the position's unit value), so a transfer wins on its delivery,
    # lead time and holding, never on goods that look free.
    unit_value = position.get("unit_value") or settings.get("default_unit_value", 10)
    price = unit_cost if source["source_type"] == "supplier" else unit_value
    landed = price + source.get("cost_per_kg", 0.0) * weight
    holding_rate = settings.get("holding_cost_percent_per_year", 25) / 100 / 365
    unit_value = price or unit_value
    safety = plan.safety_stock(target, sd, lead)
    # What the horizon's sales cost to buy and bring, whatever the batch (a position that
    # does not sell: this order).
    purchase = landed * (mean * horizon if mean > 0 else qty)
    holding = holding_rate * unit_value * (qty / 2 + safety) * horizon
    score = evaluation.score_of(source["key"])
    bonus = settings.get("rule_score", 1) * score
    parts = {
        "qty": qty,
        "landed_unit_cost": round(landed, 4),
        "purchase": round(purchase, 2),
        "holding": round(holding, 2),
        "rule_score": score,
        "scores": list(evaluation.scores.get(source["key"], [])),
        "delivery_cost": source.get("cost_per_delivery", 0.0),
        "order_up_to": round(up_to, 2),
    }
    option = plan.Option(
        position=position["key"],
        destination=position["node_id"],
        sku=position["sku"],
        source=source["source_id"],
        cycle=cycle,
        qty=qty,
        cost=purchase + holding - bonus,
        # What counts toward the minimum order value: the price paid (nothing for a
        # transfer of goods already owned).
        value=unit_cost * qty,
        uses_spare=uses_spare,
        parts=parts,
    )
    return option, parts


def _orders(solved, problem, seen, sources_of, horizon: str, approve_under: float) -> list[dict]:
    grouped: dict[tuple[str, str], list[plan.Option]] = defaultdict(list)
    for option in solved.chosen.values():
        if option is not None:
            grouped[(option.source, option.destination)].append(option)
    orders = []
    for (source_id, destination), chosen in sorted(grouped.items()):
        facts = {s["position_key"]: s for s in _of_source(sources_of, chosen, source_id)}
        some = facts[chosen[0].position]
        lead = max(facts[o.position].get("lead_time_days", 0) for o in chosen)
        units = sum(o.qty for o in chosen)
        cycle = chosen[0].cycle
        delivery = problem.delivery_cost.get(source_id, 0.0)
        lines = []
        for option in sorted(chosen, key=lambda o: o.sku):
            parts = option.parts
            lines.append(
                {
                    "position": option.position,
                    "sku": option.sku,
                    "qty": option.qty,
                    # A transfer's goods are already bought: they are worth what a
                    # supplier would charge.
                    "unit_cost": facts[option.position].get("unit_cost", 0.0)
                    or seen[option.position]["unit_value"],
                    "landed_unit_cost": round(parts["landed_unit_cost"] + delivery / units, 4),
                }
            )
            entry = seen[option.position]
            entry.update(
                status="ordered",
                source_id=source_id,
                qty=option.qty,
                cycle_days=cycle,
                reason=_why_quantity(entry, option, facts[option.position]),
            )
        value = round(sum(line["unit_cost"] * line["qty"] for line in lines), 2)
        kind = "purchase_order" if some["source_type"] == "supplier" else "transfer"
        orders.append(
            {
                "type": kind,
                "source_node_id": source_id,
                "destination_node_id": destination,
                "delivery_day": _delivery_day(horizon, lead, some.get("delivery_days")),
                "cycle_days": cycle,
                "value": value,
                "delivery_cost": delivery,
                "approval": "rule" if value < approve_under else "analyst",
                "lines": lines,
            }
        )
    return orders


def _of_source(sources_of, chosen, source_id):
    for option in chosen:
        for source in sources_of[option.position]:
            if source["source_id"] == source_id:
                yield source


def _delivery_day(horizon: str, lead: int, days) -> str:
    """The first day on or after the lead time that the source delivers on."""
    day = date.fromisoformat(horizon) + timedelta(days=lead)
    if days:
        for _ in range(7):
            if WEEKDAYS[day.weekday()] in days:
                break
            day += timedelta(days=1)
    return day.isoformat()


def _why_quantity(entry: dict, option: plan.Option, source: dict) -> str:
    parts = option.parts
    target = entry["target"]
    why = (
        f"inventory position {entry['inventory_position']} is below the reorder point"
        f" {target['reorder_point']}; {option.cycle} days of cover from {option.source}"
        f" (lead time {source.get('lead_time_days', 0)} days) fill to {parts['order_up_to']}"
    )
    rounding = []
    if source.get("pack_size", 1) > 1:
        rounding.append(f"packs of {source['pack_size']}")
    if source.get("min_order_qty"):
        rounding.append(f"at least {source['min_order_qty']}")
    if option.uses_spare and option.qty == source.get("spare_units"):
        rounding.append(f"all the {option.qty} units the DC can spare")
    return why + (f", ordered as {', '.join(rounding)}" if rounding else "")


def _by(text: str, set_by: dict, attribute: str) -> str:
    rule = set_by.get(attribute)
    return f"{text} (rule {rule})" if rule else text


def _brief(entry: dict) -> dict:
    return {k: entry[k] for k in ("position", "status", "inventory_position", "reason")}


def _totals(solved, problem, orders) -> dict:
    lines = [o for o in solved.chosen.values() if o is not None]
    deliveries = sum(problem.delivery(s, c) for (s, _), c in solved.deliveries.items())
    return {
        "orders": len(orders),
        "purchase_orders": sum(1 for o in orders if o["type"] == "purchase_order"),
        "transfers": sum(1 for o in orders if o["type"] == "transfer"),
        "lines": len(lines),
        "units": sum(o.qty for o in lines),
        "value": round(sum(o["value"] for o in orders), 2),
        "landed_cost_over_horizon": round(
            deliveries + sum(o.parts["purchase"] + o.parts["holding"] for o in lines), 2
        ),
        "delivery_cost_over_horizon": round(deliveries, 2),
        "holding_cost_over_horizon": round(sum(o.parts["holding"] for o in lines), 2),
        # The plan's objective (landed cost less rule bonuses), unplaced positions apart.
        "objective": round(solved.cost - plan.UNPLACED * len(solved.unplaced), 2),
        "unplaced": len(solved.unplaced),
    }


def replay_many(records: list[dict], version: dict, explained: bool = True) -> list[dict]:
    """Decide stored runs again under ``version``, from the facts each saw."""
    return [
        run(record["facts"], version, batching.evaluate(version, record["facts"]), explained)
        for record in records
    ]


def outcome(decision: dict) -> dict:
    """The part of a run's decision a replay must reproduce: its orders and their lines."""
    return {
        "status": decision["status"],
        "orders": [
            {
                "type": order["type"],
                "source_node_id": order["source_node_id"],
                "destination_node_id": order["destination_node_id"],
                "lines": [(line["sku"], line["qty"]) for line in order["lines"]],
            }
            for order in decision["orders"]
        ],
    }


def why_not(decision: dict, node_id: str) -> dict:
    """Why a source did not replenish positions: per position it could have served,
    chosen, excluded (by which rules), dearer, or not needed."""
    lines = []
    for entry in decision["positions"]:
        offered = {s["source_id"] for s in entry.get("sources", [])}
        excluded = {s["source_id"]: s for s in entry.get("excluded_sources", [])}
        if entry.get("source_id") == node_id:
            outcome_, reason, by = "chosen", entry.get("reason"), []
        elif node_id in excluded:
            reasons = excluded[node_id]["reasons"]
            outcome_ = "excluded"
            reason = "; ".join(r["reason"] for r in reasons)
            by = [r["rule"] for r in reasons if r.get("rule")]
        elif node_id in offered:
            outcome_, by = "dearer", []
            reason = (
                f"{entry.get('source_id')} served it at a lower landed cost over the horizon"
                if entry["status"] == "ordered"
                else entry.get("reason")
            )
        else:
            continue
        lines.append(
            {"line_id": entry["position"], "outcome": outcome_, "reason": reason, "by": by}
        )
    return {
        "decision_id": decision.get("decision_id"),
        "node_id": node_id,
        "chosen": any(line["outcome"] == "chosen" for line in lines),
        "lines": lines,
    }
