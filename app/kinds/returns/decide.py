"""The returns decision: from a return's facts and what the rules did to them, the point
that takes it (or none: the customer keeps it), each line's disposition and refund, and
when the refund is due. Pure: data in, data out.

A point costs what its fact says (trip, handling, sending on, less resale credit) times
the ``cost`` weight, plus (for a drop-off, the customer's own trip) its distance from the
customer times the ``distance`` weight, less its rule scores times the ``rule_score``
weight; the cheapest point not excluded wins, the nearest on a tie. A drop-off goes only
to a node with a counter (the drop-off node types) within the drop-off range. A line
expected to restock at a point that does not sell its SKU is sent on to a DC instead.
"""

from __future__ import annotations

from app.kinds.returns.facts import CONDITION_DISPOSITIONS, trip_cost
from app.machinery.rules.engine import Evaluation

KEEP = "keep"


def scenario_outcome(facts: list[dict], version: dict) -> dict:
    """The decision a version makes on a scenario's facts: rules, then the choice."""
    from app.machinery.rules import runtime

    return run(facts, version, runtime.evaluate(version, facts))


def run(facts: list[dict], version: dict, evaluation: Evaluation) -> dict:
    """Decide a return from its facts under a ruleset version and the rules' verdict."""
    settings = version["document"]["settings"]
    by_type: dict[str, list[dict]] = {}
    for index, fact in enumerate(facts):
        by_type.setdefault(fact["fact"], []).append(
            {**fact, "key": fact.get("key") or f"{fact['fact']}#{index}"}
        )
    the_return = (by_type.get("return") or [{}])[0]
    items = by_type.get("item", [])
    attributes = {name: entry["value"] for name, entry in evaluation.attributes.items()}
    method = the_return.get("method", "ship_back")
    keep = bool(attributes.get("keep_it", False))
    weight = the_return.get("weight_kg") or 0.0
    considered, excluded = _points(by_type.get("point", []), evaluation, settings, method, weight)
    chosen = None if keep or not considered else considered[0]
    status = KEEP if keep else ("return" if chosen else "refused")
    refund_due = (
        "at_decision"
        if keep
        else attributes.get("refund_due", settings.get("refund_due", "on_receipt"))
    )
    if refund_due == "at_drop_off" and method != "drop_off":
        refund_due = "on_receipt"  # nothing is dropped off: the point's receipt is the moment
    lines = [_line(item, evaluation, settings, attributes, chosen, keep) for item in items]
    if status == "refused":
        # Nothing comes back, so nothing is refunded: the lines say what was asked.
        lines = [{**line, "refund": 0.0} for line in lines]
    deduction = 0.0
    if chosen and attributes.get("deduct_return_shipping") and method != "drop_off":
        deduction = chosen["trip_cost"]
    refund_total = round(max(0.0, sum(line["refund"] for line in lines) - deduction), 2)
    outcome = {
        "kind": "returns",
        "ruleset": {
            "name": version["ruleset"],
            "version": version["version"],
            "sha256": version["sha256"],
        },
        "status": status,
        "point": chosen["node_id"] if chosen else None,
        "carrier_service": chosen["carrier_service"] if chosen else None,
        "method": method,
        "refund_due": refund_due,
        "refund_total": refund_total,
        "shipping_deducted": round(deduction, 2),
        "lines": lines,
        # Where the goods go, in the shape every kind's decision shares (scenarios check
        # ``serves`` against it, experiments and replays compare it): the point, or keep.
        "shipments": [
            {
                "node_id": chosen["node_id"] if chosen else KEEP,
                "estimated_cost": chosen["estimated_cost"] if chosen else 0.0,
                "distance_km": chosen["distance_km"] if chosen else 0.0,
                "lines": [{"line_id": line["line_id"], "qty": line["qty"]} for line in lines],
            }
        ]
        if status != "refused"
        else [],
        "unfulfilled": [{"line_id": line["line_id"], "qty": line["qty"]} for line in lines]
        if status == "refused"
        else [],
        "explanation": {
            "rules_fired": list(evaluation.fired),
            "attributes": evaluation.attributes,
            "tags": list(evaluation.tags),
            "chosen": chosen,
            "considered": considered,
            "excluded": excluded,
        },
    }
    return outcome


def replay_many(records: list[dict], version: dict, explained: bool = True) -> list[dict]:
    """Decide stored return decisions again under ``version``, from the facts each saw; the
    rules see them all in one exchange."""
    from app.machinery.rules import runtime

    batch = [record["facts"] for record in records]
    evaluations = runtime.evaluate_many(version, batch)
    return [
        run(facts, version, evaluation)
        for facts, evaluation in zip(batch, evaluations, strict=True)
    ]


def outcome(decision: dict) -> dict:
    """The part of a return decision a replay must reproduce."""
    return {
        "status": decision["status"],
        "point": decision["point"],
        "refund_due": decision["refund_due"],
        "refund_total": decision["refund_total"],
        "lines": [
            {k: line[k] for k in ("line_id", "disposition", "refund")} for line in decision["lines"]
        ],
    }


def why_not(decision: dict, node_id: str) -> dict:
    """Why a node did not take a return: excluded (by which rule), dearer, the goods were
    kept, or it was no point for this return at all."""
    explanation = decision["explanation"]
    answer = {"node_id": node_id, "chosen": decision["point"]}
    if node_id == decision["point"]:
        return {**answer, "verdict": "chosen", "detail": explanation["chosen"], "reasons": []}
    for entry in explanation["excluded"]:
        if entry["node_id"] == node_id:
            return {**answer, "verdict": "excluded", "detail": None, "reasons": entry["reasons"]}
    for entry in explanation["considered"]:
        if entry["node_id"] == node_id:
            chosen = explanation["chosen"]
            kept = decision["status"] == KEEP
            reason = (
                "the customer keeps the goods"
                if kept
                else f"costs {entry['total']} against {chosen['total']} at {chosen['node_id']}"
            )
            return {
                **answer,
                "verdict": "kept" if kept else "dearer",
                "detail": entry,
                "reasons": [{"rule": None, "reason": reason}],
            }
    return {
        **answer,
        "verdict": "not_a_point",
        "detail": None,
        "reasons": [
            {
                "rule": None,
                "reason": "not a return point for this return: it does not take returns"
                " (capability returns), did not drop-ship the goods, or is not among the"
                " nearest points considered",
            }
        ],
    }


def _points(points: list[dict], evaluation: Evaluation, settings: dict, method: str, weight: float):
    weights = settings.get("objective", {})
    cost_weight, score_weight = weights.get("cost", 1), weights.get("rule_score", 1)
    distance_weight = weights.get("distance", 0) if method == "drop_off" else 0
    drop_off = settings["methods"].get("drop_off") or {}
    reach, counters = drop_off.get("max_km"), drop_off.get("node_types", ["store"])
    considered, excluded = [], []
    for point in points:
        key = point["key"]
        reasons = list(evaluation.excluded.get(key, []))
        if method == "drop_off" and reach is not None and point["distance_km"] > reach:
            reasons.append(
                {"rule": None, "reason": f"farther than the drop-off range ({reach} km)"}
            )
        if method == "drop_off" and point["node_type"] not in counters:
            reasons.append(
                {"rule": None, "reason": f"a {point['node_type']} has no drop-off counter"}
            )
        if reasons:
            excluded.append({"node_id": point["node_id"], "reasons": reasons})
            continue
        score = evaluation.score_of(key)
        considered.append(
            {
                "node_id": point["node_id"],
                "node_type": point["node_type"],
                "distance_km": point["distance_km"],
                "sells_all": point.get("sells_all", False),
                "trip_cost": point.get(
                    "trip_cost", trip_cost(settings, method, point["distance_km"], weight)
                ),
                "carrier_service": point.get("carrier_service"),
                "estimated_cost": point.get("estimated_cost", 0.0),
                "rule_score": score,
                "scores": list(evaluation.scores.get(key, [])),
                "total": round(
                    cost_weight * point.get("estimated_cost", 0.0)
                    + distance_weight * point["distance_km"]
                    - score_weight * score,
                    4,
                ),
            }
        )
    considered.sort(key=lambda p: (p["total"], p["distance_km"], p["node_id"]))
    return considered, excluded


def _line(item, evaluation, settings, attributes, chosen, keep) -> dict:
    own = evaluation.item_attributes.get(item["key"], {})
    if keep:
        disposition, by = "kept", None
    elif "disposition" in own:
        disposition, by = own["disposition"]["value"], own["disposition"]["rule"]
    else:
        defaults = {**CONDITION_DISPOSITIONS, **settings.get("dispositions", {})}
        disposition, by = defaults[item["condition"]], None
    if disposition == "restock" and chosen is not None and not chosen["sells_all"]:
        # Goods are sold again where the SKU sells: a point that does not stock it sends
        # them on.
        disposition = "send_to_dc"
    fee = own.get("restocking_fee_percent", {}).get("value")
    if fee is None:
        fee = attributes.get("restocking_fee_percent", settings.get("restocking_fee_percent", 0))
    value = item.get("value", round(item["unit_price"] * item["qty"], 2))
    withheld = _inspection_deduction(item, own, settings)
    return {
        "line_id": item["line_id"],
        "sku": item["sku"],
        "qty": item["qty"],
        "condition": item["condition"],
        "disposition": disposition,
        "disposition_rule": by,
        "restocking_fee_percent": fee,
        "inspection_deduction_percent": withheld,
        # A restocking fee and a deduction for the same wear are not both charged.
        "refund": round(value * (1 - max(fee, withheld) / 100), 2),
    }


# How far goods are from new; a defect is the goods' own, never the customer's doing.
WEAR = {"unopened": 0, "opened": 1, "damaged": 2}


def _inspection_deduction(item: dict, own: dict, settings: dict) -> float:
    """The share of a line's value withheld because the inspection found it in a worse
    condition than the customer stated: a rule's ``inspection_deduction_percent`` for the
    line, else the setting for the condition found; 0 before inspection."""
    found, stated = item["condition"], item.get("declared_condition")
    if not item.get("inspected") or stated is None:
        return 0.0
    if found not in WEAR or stated not in WEAR or WEAR[found] <= WEAR[stated]:
        return 0.0
    ruled = own.get("inspection_deduction_percent", {}).get("value")
    if ruled is not None:
        return float(ruled)
    return float((settings.get("inspection_deduction_percent") or {}).get(found, 0))
