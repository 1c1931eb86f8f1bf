"""Explanations: why each node was chosen, excluded, screened out or passed over. Pure."""

from __future__ import annotations

from app.kinds.sourcing.allocate import Policy, shipment_cost, unit_cost


def breakdown(option: dict, line: dict, policy: Policy, scores: list[dict]) -> dict:
    """What serving the whole line alone from this candidate would weigh in the objective."""
    shipping = (
        policy.rate["base"]
        + policy.rate["per_km"] * option["distance_km"]
        + policy.rate["per_kg"] * line["weight_kg"] * line["qty"]
    )
    value = shipment_cost(option["distance_km"], policy) + line["qty"] * unit_cost(
        option, line, policy
    )
    return {
        "node_id": option["node_id"],
        "shipping_cost": round(shipping, 2),
        "distance_km": option["distance_km"],
        "rule_score": option["score"],
        "scores": scores,
        "objective": round(value, 4),
    }


def explain(
    evaluation,
    context: dict,
    candidates: list[dict],
    options: dict[str, dict],
    allocation,
    policy: Policy | None,
) -> dict:
    """The explanation of a decision: rules, exclusions, screening, scores, alternatives."""
    lines = {line["line_id"]: line for line in context["lines"]}
    excluded = [
        {
            "line_id": c["line_id"],
            "node_id": c["node_id"],
            "candidate": c["key"],
            "by": evaluation.excluded[c["key"]],
        }
        for c in candidates
        if c["key"] in evaluation.excluded
    ]
    explanation = {
        "rules_fired": list(evaluation.fired),
        "trace": list(evaluation.trace),
        "excluded": excluded,
        "screened": list(context["screened"]),
        "holds": list(evaluation.holds),
        "tags": list(evaluation.tags),
        "flags": [{k: v for k, v in f.items() if k != "fact"} for f in evaluation.flags],
        "attributes": dict(evaluation.attributes),
        "chosen": [],
        "alternatives": [],
        "considered": [],
    }
    if policy is None or allocation is None:
        return explanation
    chosen_keys = {a["key"] for a in allocation.assignments}
    chosen_nodes = set(allocation.nodes)
    for assignment in allocation.assignments:
        option = options[assignment["key"]]
        explanation["chosen"].append(
            {
                "line_id": assignment["line_id"],
                "qty": assignment["qty"],
                **breakdown(
                    option,
                    lines[assignment["line_id"]],
                    policy,
                    evaluation.scores.get(option["key"], []),
                ),
            }
        )
    for line_id, line in lines.items():
        line_options = [o for o in options.values() if o["line_id"] == line_id]
        ranked = sorted(
            (
                (breakdown(o, line, policy, evaluation.scores.get(o["key"], [])), o)
                for o in line_options
            ),
            key=lambda pair: (pair[0]["objective"], pair[1]["node_id"]),
        )
        for detail, option in ranked:
            explanation["considered"].append(
                {"line_id": line_id, "candidate": option["key"], "atp": option["atp"], **detail}
            )
        chosen_here = [d for d, o in ranked if o["key"] in chosen_keys]
        rejected = [(d, o) for d, o in ranked if o["key"] not in chosen_keys]
        if rejected:
            detail, option = rejected[0]
            explanation["alternatives"].append(
                {
                    "line_id": line_id,
                    **detail,
                    "why_not": why_not_chosen(
                        detail, option, line, chosen_here, chosen_nodes, policy, allocation
                    ),
                }
            )
    return explanation


def why_not_chosen(detail, option, line, chosen_here, chosen_nodes, policy, allocation) -> str:
    """One sentence on why a surviving candidate did not get the line."""
    if option["capacity_left"] is not None and option["capacity_left"] <= 0:
        return "the node has no capacity left today"
    if not chosen_here:
        if not policy.allow_split_lines and option["atp"] < line["qty"]:
            return f"it can promise {option['atp']} of {line['qty']} and lines may not be split"
        return "the order could not be served from a set of nodes that includes it"
    best = chosen_here[0]
    if option["node_id"] not in chosen_nodes and len(chosen_nodes) >= policy.max_shipments:
        return f"the order already uses the most shipments allowed ({policy.max_shipments})"
    if not policy.allow_split_lines and option["atp"] < line["qty"]:
        return f"it can promise {option['atp']} of {line['qty']} and lines may not be split"
    if detail["objective"] > best["objective"]:
        return beaten(best, detail)
    return (
        f"on its own it weighs {detail['objective']:.2f} (lower is better), but"
        f" {best['node_id']} was cheaper for the order as a whole (fewer shipments or shared"
        " transport)"
    )


def beaten(winner: dict, loser: dict) -> str:
    """Which way the objective goes, and by how much the winner won."""
    return (
        f"lower is better: {winner['objective']:.2f} for {winner['node_id']} beat"
        f" {loser['objective']:.2f} for {loser['node_id']}"
    )


def why_not(decision: dict, node_id: str) -> dict:
    """Answer, line by line, why a node did not serve an order (from the stored decision)."""
    explanation = decision.get("explanation", {})
    answers = []
    line_ids = [u["line_id"] for u in decision.get("unfulfilled", [])]
    for shipment in decision.get("shipments", []):
        line_ids.extend(line["line_id"] for line in shipment["lines"])
    for line_id in sorted(set(line_ids)):
        answers.append({"line_id": line_id, **_answer(decision, explanation, node_id, line_id)})
    chosen = any(s["node_id"] == node_id for s in decision.get("shipments", []))
    return {
        "decision_id": decision["decision_id"],
        "node_id": node_id,
        "chosen": chosen,
        "lines": answers,
    }


def _answer(decision, explanation, node_id, line_id) -> dict:
    for shipment in decision.get("shipments", []):
        if shipment["node_id"] == node_id and any(
            item["line_id"] == line_id for item in shipment["lines"]
        ):
            return {"outcome": "chosen", "reason": "this node serves the line"}
    if explanation.get("holds"):
        return {"outcome": "held", "reason": explanation["holds"][0]["reason"]}
    for entry in explanation.get("excluded", []):
        if entry["node_id"] == node_id and entry["line_id"] == line_id:
            rules = ", ".join(f"{b['rule']} ({b['reason']})" for b in entry["by"])
            return {"outcome": "excluded", "reason": f"excluded by {rules}", "by": entry["by"]}
    for entry in explanation.get("screened", []):
        if node_id in entry["node_ids"] and entry["line_id"] == line_id:
            return {"outcome": "not_a_candidate", "reason": entry["reason"]}
    for entry in explanation.get("alternatives", []):
        if entry["node_id"] == node_id and entry["line_id"] == line_id:
            return {
                "outcome": "not_chosen",
                "reason": entry["why_not"],
                "objective": entry["objective"],
            }
    considered = [
        c
        for c in explanation.get("considered", [])
        if c["node_id"] == node_id and c["line_id"] == line_id
    ]
    if considered:
        chosen = [c for c in explanation.get("chosen", []) if c["line_id"] == line_id]
        if chosen:
            return {
                "outcome": "not_chosen",
                "reason": beaten(chosen[0], considered[0]),
                "objective": considered[0]["objective"],
            }
        return {"outcome": "not_chosen", "reason": "the line was not served from any node"}
    return {"outcome": "not_a_candidate", "reason": "the node had no stock of the line's SKU"}
