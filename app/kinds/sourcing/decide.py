"""Decide an order: its facts (``gather``), the rules' verdict, the allocation, the dates.

``run`` is the decision itself: facts and a ruleset version in, a decision out,
nothing read or written, so a stored decision can be replayed exactly (``replay``).
``make_decision`` gathers, runs and dates one order; ``commit`` writes the outcome.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from app.kinds.promising import schedule as schedules
from app.kinds.promising.dates import NoDate, address_zone, transfer_arrival
from app.kinds.sourcing import explain, gather
from app.kinds.sourcing.allocate import Policy, allocate
from app.kinds.sourcing.facts import (
    NetworkView,
    rate_for,
    service_before_rules,
    shipping_cost,
)
from app.machinery import decisions
from app.machinery.rules import runtime
from app.platform import db as database
from app.platform.db import Database

RULESET = "sourcing"


def date_shipments(decision: dict, order: dict, view: NetworkView, transfer_days: int = 2) -> None:
    """Give each shipment its dates: when it leaves its node, and the day (and window) the
    customer gets it, by its carrier service or at the pickup store, later by a rule's
    ``extra_days``; a consolidation's legs reach the hub ``transfer_days`` of its working
    days after they leave, and the hub ships once the last is in. They come from the
    calendars as they are now: a replay recomputes the shipments, not their dates."""
    moment = datetime.fromisoformat(view.now)
    extra = decision["explanation"]["attributes"].get("extra_days", {}).get("value", 0)
    zone = _customer_zone(order)
    pickup_id = order["delivery"].get("node_id")
    pickup = view.nodes.get(pickup_id) if pickup_id else None
    arrivals = {(s["node_id"], s["sku"]): s["eta"] for s in view.in_transit}
    at_hub = _date_legs(decision, view, moment, transfer_days)
    for shipment in decision["shipments"]:
        node_id = shipment["node_id"]
        if shipment["method"] == "transfer":
            continue
        ready = max(moment, at_hub.get(node_id, moment))
        for line in shipment["lines"]:
            if line["supply"] == "in_transit" and (node_id, line["sku"]) in arrivals:
                ready = max(ready, datetime.fromisoformat(arrivals[(node_id, line["sku"])]))
        method = shipment["method"]
        if method == "ship_to_store" and node_id == pickup_id:
            method = "pickup"
        dates = schedules.dated(
            view.schedule,
            view.nodes[node_id],
            method,
            shipment["carrier_service"],
            ready,
            shipment["distance_km"],
            zone,
            pickup,
            extra,
        )
        shipment["dispatch_date"] = dates.dispatch_date.isoformat() if dates else None
        shipment["promised_date"] = dates.delivery_date.isoformat() if dates else None
        shipment["delivery_window"] = (
            {"from": database.format_time(dates.earliest), "to": database.format_time(dates.latest)}
            if dates
            else None
        )


def _date_legs(decision: dict, view: NetworkView, moment: datetime, days: int) -> dict:
    """Date a consolidation's transfer legs; return when the last reaches each hub."""
    at_hub: dict[str, datetime] = {}
    for leg in decision["shipments"]:
        if leg["method"] != "transfer":
            continue
        hub = leg["destination_node_id"]
        leg["dispatch_date"] = leg["promised_date"] = leg["delivery_window"] = None
        if view.schedule is None:
            continue
        try:
            leaves, arrives = transfer_arrival(
                view.schedule.node(view.nodes[leg["node_id"]]),
                view.schedule.node(view.nodes[hub]),
                moment,
                days,
            )
        except NoDate:
            continue
        leg["dispatch_date"] = leaves.isoformat()
        leg["promised_date"] = arrives.date().isoformat()
        leg["delivery_window"] = {
            "from": database.format_time(arrives),
            "to": database.format_time(arrives),
        }
        at_hub[hub] = max(at_hub.get(hub, arrives), arrives)
    return at_hub


def _customer_zone(order: dict) -> ZoneInfo | None:
    return address_zone(order["delivery"].get("address"))


# Deciding (pure) ----------------------------------------------------------------------


def scenario_context(facts: list[dict]) -> dict:
    """What a decision needs beyond the facts, rebuilt from the facts alone (scenarios)."""
    order = next(f for f in facts if f["fact"] == "order")
    candidates = [f for f in facts if f["fact"] == "candidate"]
    return {
        "lines": [
            {k: v for k, v in f.items() if k not in ("fact", "key")}
            for f in facts
            if f["fact"] == "line"
        ],
        "method": order.get("delivery_method", "ship"),
        "destination": {
            "lat": order.get("destination_lat"),
            "lon": order.get("destination_lon"),
        },
        "requested_service": None,
        "screened": [],
        "node_days": {},
        "node_types": {c["node_id"]: c.get("node_type") for c in candidates},
        "delivery": {"method": order.get("delivery_method", "ship")},
    }


def scenario_outcome(facts: list[dict], version: dict) -> dict:
    """The decision the version makes on a scenario's facts: rules, then allocation."""
    return run(facts, scenario_context(facts), version)


def policy_for(settings: dict, attributes: dict, service: str, rate: dict | None = None) -> Policy:
    ship_complete = attributes.get("ship_complete", settings.get("ship_complete", False))
    return Policy(
        max_shipments=1
        if ship_complete
        else attributes.get("max_shipments", settings.get("max_shipments", 3)),
        allow_split_lines=attributes.get(
            "allow_split_lines", settings.get("allow_split_lines", True)
        ),
        allow_partial=attributes.get("allow_partial", settings.get("allow_partial", True)),
        ship_complete=ship_complete,
        rate=rate or rate_for(settings, service),
        weights=settings.get("objective", {}),
    )


def run(
    facts: list[dict], context: dict, version: dict, evaluation=None, explained: bool = True
) -> dict:
    """Decide from facts under a ruleset version. Returns the decision without ids.

    ``evaluation`` is the rules' verdict on these facts when it was made already (a
    replay evaluates many at once). Without ``explained`` the explanation leaves out
    what weighed for and against each candidate (chosen, alternatives, considered):
    a replay compares outcomes and rules, and that costs as much as the rules."""
    settings = version["document"]["settings"]
    started = time.perf_counter()
    if evaluation is None:
        evaluation = runtime.evaluate(version, facts)
    rules_done = time.perf_counter()
    attributes = {name: entry["value"] for name, entry in evaluation.attributes.items()}
    order_fact = next(f for f in facts if f["fact"] == "order")
    service = attributes.get("service_level") or service_before_rules(
        {
            "delivery": {"method": order_fact["delivery_method"]},
            "requested_service": context.get("requested_service"),
        },
        settings,
    )
    if service not in settings["rate_card"]:
        service = settings.get("default_service", "standard")
    candidates = [f for f in facts if f["fact"] == "candidate"]
    options = {
        c["key"]: {
            "key": c["key"],
            "line_id": c["line_id"],
            "node_id": c["node_id"],
            "sku": c["sku"],
            "in_transit": c.get("in_transit", False),
            "atp": c["atp"],
            "distance_km": c["distance_km"],
            "capacity_left": c.get("capacity_left"),
            "score": evaluation.score_of(c["key"]),
        }
        for c in candidates
        if c["key"] not in evaluation.excluded
    }
    carriers = Carriers.of(context, evaluation, service)
    candidate_facts = {c["key"]: c for c in candidates}
    promise = _keep_promise(order_fact, context, options, candidate_facts)
    # An order released from its hold by a person is not held again by the rules that held it.
    holds = [] if order_fact.get("released") else list(evaluation.holds)
    if (
        promise
        and promise["missed_lines"]
        and settings.get("promise_miss") == "hold"
        and not (order_fact.get("released"))
    ):
        holds.append(
            {
                "rule": "promised-date",
                "reason": f"no node can deliver line(s) {', '.join(promise['missed_lines'])}"
                f" by {promise['promised_by']}",
            }
        )
    policy = policy_for(settings, attributes, service, carriers.rate(context, options))
    allocation = None if holds else allocate(context["lines"], list(options.values()), policy)
    unmet = None
    if allocation is not None and policy.ship_complete and allocation.unserved:
        # No single node ships it all: split it, or hold it, as the ruleset says; waiting
        # would not bring the goods together.
        unmet, allocation = _ship_complete_unmet(
            context, options, policy, settings, allocation, order_fact.get("released")
        )
        if unmet and unmet["choice"] == "hold":
            holds.append({"rule": "ship-complete", "reason": unmet["message"]})
            allocation = None
    held = bool(holds)
    allocated = time.perf_counter()

    lines = {line["line_id"]: line for line in context["lines"]}
    rate = policy.rate
    grouped: dict[str, list[dict]] = {}
    for assignment in allocation.assignments if allocation else []:
        grouped.setdefault(assignment["node_id"], []).append(assignment)
    shipment_list = []
    for node_id, assignments in sorted(grouped.items()):
        distance = options[assignments[0]["key"]]["distance_km"]
        weight = sum(lines[a["line_id"]]["weight_kg"] * a["qty"] for a in assignments)
        hazardous = any(lines[a["line_id"]]["hazmat"] for a in assignments)
        carried = uncarried = None
        if _shipped(context, node_id):
            carried = carriers.choose(
                distance,
                weight,
                hazardous,
                [candidate_facts[a["key"]] for a in assignments] if promise else None,
            )
            # Without carrier services at all the rate card prices every parcel; with them,
            # a parcel none takes is said to be so.
            if carried is None and context.get("carriers"):
                uncarried = carriers.refusal(service, weight, hazardous, distance)
        cost = carried[1] if carried else shipping_cost(rate, distance, weight)
        shipment_list.append(
            {
                "node_id": node_id,
                "node_type": context["node_types"].get(node_id),
                "method": context["method"],
                "service_level": service,
                "lines": [
                    {
                        "line_id": a["line_id"],
                        "sku": lines[a["line_id"]]["sku"],
                        "qty": a["qty"],
                        "supply": "in_transit" if options[a["key"]]["in_transit"] else "on_hand",
                    }
                    for a in sorted(assignments, key=lambda a: (a["line_id"], a["key"]))
                ],
                "estimated_cost": round(cost, 2),
                "distance_km": distance,
                "carrier_service": carried[0]["service_id"] if carried else None,
                "carrier": carried[0]["carrier"] if carried else None,
                **({"no_carrier": uncarried} if uncarried else {}),
            }
        )
    if unmet and unmet["choice"] == "consolidate":
        shipment_list = consolidate(shipment_list, unmet["hub"])
    unfulfilled = _unfulfilled(context, candidates, holds, evaluation, options, allocation, policy)
    served = sum(a["qty"] for a in allocation.assignments) if allocation else 0
    if held:
        status = "on_hold"
    elif not unfulfilled:
        status = "sourced"
    elif served:
        status = "partially_sourced"
    else:
        status = "backordered"
    explanation = explain.explain(
        evaluation,
        context,
        candidates,
        options,
        allocation,
        None if held or not explained else policy,
    )
    explanation["holds"] = holds
    # A parcel no carrier service takes is priced by the rate card and has no date: said.
    explanation["no_carrier"] = [
        {"node_id": s["node_id"], "reason": s["no_carrier"]}
        for s in shipment_list
        if s.get("no_carrier")
    ]
    explanation["carriers"] = carriers.explained(evaluation)
    if promise:
        explanation["late"] = promise.pop("late")
    decision = {
        "status": status,
        "ruleset": {
            "name": version["ruleset"],
            "version": version["version"],
            "sha256": version["sha256"],
        },
        "service_level": service,
        "shipments": shipment_list,
        "unfulfilled": unfulfilled,
        "objective": allocation.objective if allocation else None,
        "explanation": explanation,
        "timings_ms": {
            "rules": round((rules_done - started) * 1000, 3),
            "allocation": round((allocated - rules_done) * 1000, 3),
        },
    }
    if promise:
        promise["kept"] = not promise["missed_lines"]
        decision["promise"] = promise
    if unmet:
        decision["ship_complete_unmet"] = unmet
    return decision


def _ship_complete_unmet(context, options, policy, settings, allocation, released):
    """``(what was done, the allocation)`` for a ship-complete order no single node can
    ship whole but several can between them: the ruleset's ``ship_complete_unmet`` says
    consolidate at one node, split, or hold (with the reason; the channel is asked after
    the hold's deadline). ``(None, allocation)`` when several nodes together cannot serve
    all of it either: it waits for stock. A released order is not held again."""
    split_policy = dataclasses.replace(
        policy, ship_complete=False, max_shipments=settings.get("max_shipments", 3)
    )
    split = allocate(context["lines"], list(options.values()), split_policy)
    if any(qty > 0 for qty in split.unserved.values()):
        # Not even several nodes have it all: it waits for stock, whole.
        return None, allocation
    nodes = sorted({a["node_id"] for a in split.assignments})
    choice = settings.get("ship_complete_unmet", "split")
    if released and choice == "hold":
        choice = "split"
    message = f"no single node can ship the whole order; {', '.join(nodes)} can between them"
    if choice == "consolidate":
        hub = _hub(split.assignments, context)
        if hub is not None:
            message += f"; they send their part to {hub}, which ships it all"
            return {"choice": "consolidate", "nodes": nodes, "hub": hub, "message": message}, split
        choice = "split"  # no node can receive the others' goods
    if choice == "split":
        return {"choice": "split", "nodes": nodes, "message": message}, split
    return {"choice": "hold", "nodes": nodes, "message": message}, allocation


def _hub(assignments: list[dict], context: dict) -> str | None:
    """The node the others send their part to: the one serving most units of the order
    that can receive goods (a DC, a 3PL or a store, not a supplier)."""
    units: dict[str, int] = {}
    for a in assignments:
        if context["node_types"].get(a["node_id"]) in ("dc", "3pl", "store"):
            units[a["node_id"]] = units.get(a["node_id"], 0) + a["qty"]
    if not units:
        return None
    return min(units, key=lambda node_id: (-units[node_id], node_id))


def consolidate(shipment_list: list[dict], hub: str) -> list[dict]:
    """One shipment to the customer from ``hub`` with every line, and one transfer leg from
    each other node carrying its part to the hub (method ``transfer``); the hub's lines that
    arrive by a leg have supply ``consolidated``."""
    legs = [s for s in shipment_list if s["node_id"] != hub]
    [main] = [s for s in shipment_list if s["node_id"] == hub]
    main = {**main, "lines": [*main["lines"]]}
    for leg in legs:
        main["lines"].extend({**line, "supply": "consolidated"} for line in leg["lines"])
    main["lines"].sort(key=lambda line: (line["line_id"], line["supply"]))
    return [
        main,
        *(
            {
                **leg,
                "method": "transfer",
                "destination_node_id": hub,
                "carrier_service": None,
                "carrier": None,
            }
            for leg in legs
        ),
    ]


def _shipped(context: dict, node_id: str) -> bool:
    """Whether goods from this node travel by carrier (not handed over at the pickup store)."""
    method = context["method"]
    pickup_id = context["delivery"].get("node_id")
    return method != "pickup" and not (method == "ship_to_store" and node_id == pickup_id)


class Carriers:
    """The carrier services a decision can use for its service level, as rules left them:
    the excluded ones out, the preferred ones cheaper by their score."""

    def __init__(self, services: list[dict], excluded: dict, scores: dict):
        self.services = services
        self.excluded = excluded
        self.scores = scores

    @classmethod
    def of(cls, context: dict, evaluation, service_level: str) -> Carriers:
        known = context.get("carriers") or []  # none in decisions made before carriers
        excluded = {
            c["service_id"]: evaluation.excluded[f"carrier:{c['service_id']}"]
            for c in known
            if f"carrier:{c['service_id']}" in evaluation.excluded
        }
        scores = {c["service_id"]: evaluation.score_of(f"carrier:{c['service_id']}") for c in known}
        usable = [
            c
            for c in known
            if c["service_level"] == service_level and c["service_id"] not in excluded
        ]
        return cls(usable, excluded, scores)

    def rate(self, context: dict, options: dict) -> dict | None:
        """The linear rates the allocation weighs shipments by: those of the service that
        would carry the whole order from the nearest candidate (None: the rate card's)."""
        if not self.services or not options:
            return None
        nearest = min(o["distance_km"] for o in options.values())
        weight = sum(line["weight_kg"] * line["qty"] for line in context["lines"])
        hazmat = any(line["hazmat"] for line in context["lines"])
        found = schedules.cheapest(self.services, nearest, weight, hazmat, preference=self.scores)
        if found is None:
            return None
        rates = found[0]["rates"]
        return {
            "base": rates["base"],
            "per_km": rates.get("per_km", 0),
            "per_kg": rates.get("per_kg", 0),
        }

    def choose(self, distance, weight, hazmat, facts: list[dict] | None):
        """``(service, cost)`` for one shipment: the cheapest that carries it and, for an
        order with a promise, that delivers in time from its node when any does."""
        if facts is not None:
            on_time = set.intersection(*(set(f.get("on_time_carriers", ())) for f in facts))
            timely = [s for s in self.services if s["service_id"] in on_time]
            found = schedules.cheapest(timely, distance, weight, hazmat, preference=self.scores)
            if found is not None:
                return found
        return schedules.cheapest(self.services, distance, weight, hazmat, preference=self.scores)

    def refusal(self, service_level: str, weight: float, hazmat: bool, distance: float) -> str:
        """Why no usable service carries this parcel, in words for the explanation."""
        what = f"a {weight:g} kg{' hazardous' if hazmat else ''} parcel over {distance:g} km"
        if not self.services:
            return f"no {service_level} carrier service is active or allowed by the rules"
        return (
            f"none of the {service_level} carrier services"
            f" ({', '.join(s['service_id'] for s in self.services)}) takes {what}"
        )

    def explained(self, evaluation) -> list[dict]:
        """What rules did to carrier services: exclusions and preferences."""
        return [
            {"service_id": sid, "excluded_by": list(self.excluded.get(sid, [])), "score": score}
            for sid, score in sorted(self.scores.items())
            if sid in self.excluded or score
        ]


def _keep_promise(order_fact: dict, context: dict, options: dict, facts: dict) -> dict | None:
    """Drop the candidates that would be late for the order's promised date, for each line
    that any candidate can serve in time; the lines none can are the promise's misses."""
    promised_by = order_fact.get("promised_by")
    if not promised_by:
        return None
    late, missed = [], []
    for line in context["lines"]:
        mine = [key for key, o in options.items() if o["line_id"] == line["line_id"]]
        if not any("meets_promise" in facts[key] for key in mine):
            continue  # no carrier service or calendar to judge by
        in_time = [key for key in mine if facts[key].get("meets_promise")]
        if not in_time:
            if mine:
                missed.append(line["line_id"])
            continue
        for key in mine:
            if key not in in_time:
                late.append(
                    {
                        "line_id": line["line_id"],
                        "node_id": options[key]["node_id"],
                        "candidate": key,
                        "delivery_date": facts[key].get("delivery_date"),
                        "reason": f"cannot deliver by {promised_by}",
                    }
                )
                del options[key]
    return {
        "promised_by": promised_by,
        "promise_id": order_fact.get("promise_id"),
        "missed_lines": missed,
        "late": late,
    }


def _unfulfilled(context, candidates, holds, evaluation, options, allocation, policy) -> list:
    held = bool(holds)
    missing = []
    for line in context["lines"]:
        qty = (
            line["qty"]
            if held or allocation is None
            else allocation.unserved.get(line["line_id"], 0)
        )
        if qty <= 0:
            continue
        entry = {"line_id": line["line_id"], "sku": line["sku"], "qty": qty}
        entry.update(
            _reason(line, context, candidates, holds, evaluation, options, allocation, policy)
        )
        missing.append(entry)
    return missing


def _reason(line, context, candidates, holds, evaluation, options, allocation, policy) -> dict:
    line_id = line["line_id"]
    if holds:
        return {"reason": "on_hold", "message": holds[0]["reason"]}
    mine = [c for c in candidates if c["line_id"] == line_id]
    if not mine:
        screened = [s for s in context["screened"] if s["line_id"] == line_id]
        if screened:
            reasons = sorted({s["reason"] for s in screened})
            return {
                "reason": "no_candidate",
                "message": "no node can serve it: " + "; ".join(reasons),
            }
        return {"reason": "no_stock", "message": "no node has stock to promise"}
    alive = [options[c["key"]] for c in mine if c["key"] in options]
    if not alive:
        rules = sorted({e["rule"] for c in mine for e in evaluation.excluded[c["key"]]})
        return {
            "reason": "excluded",
            "message": "every candidate was excluded by rules",
            "rules": rules,
        }
    if all(o["capacity_left"] is not None and o["capacity_left"] <= 0 for o in alive):
        return {"reason": "capacity", "message": "every remaining node is at its daily capacity"}
    if policy.ship_complete and not allocation.assignments:
        return {"reason": "ship_complete", "message": "no single node can ship the whole order"}
    if not policy.allow_partial and not allocation.assignments:
        return {
            "reason": "partial_not_allowed",
            "message": "the whole order cannot be served and partial fulfilment is off",
        }
    available = sum(o["atp"] for o in alive)
    if available < line["qty"]:
        return {
            "reason": "insufficient_stock",
            "message": f"{available} of {line['qty']} units can be promised",
        }
    if not policy.allow_split_lines and all(o["atp"] < line["qty"] for o in alive):
        return {"reason": "no_split", "message": "no single node has the whole line"}
    return {
        "reason": "max_shipments",
        "message": f"serving it would exceed {policy.max_shipments} shipment(s)",
    }


def make_decision(
    db,
    body: dict,
    version: dict,
    settings: dict,
    kind_prefix: str = "dec",
    excluded_nodes=None,
    only_nodes=None,
):
    started = time.perf_counter()
    facts, context, view = gather.facts_for(db, body, settings, excluded_nodes, only_nodes)
    built = time.perf_counter()
    decision = run(facts, context, version)
    date_shipments(decision, body, view, settings.get("consolidation_days", 2))
    decision = {
        "decision_id": new_id(kind_prefix),
        "order_id": body["order_id"],
        **decision,
        "decided_at": database.now(),
    }
    decision["timings_ms"] = {
        "facts": round((built - started) * 1000, 3),
        **decision["timings_ms"],
        "total": round((time.perf_counter() - started) * 1000, 3),
    }
    return decision, facts, context


def simulate(db: Database, body: dict, version: dict) -> dict:
    """Decide without reserving; keep only a log entry (a decision of kind simulation)."""
    gather.check_references(db, body)
    decision, facts, context = make_decision(
        db, body, version, version["document"]["settings"], "sim"
    )
    decision["simulated"] = True
    with database.atomic(db):
        decisions.record(db, decision, "simulation", facts, context)
    return decision


def replay(record: dict, version: dict) -> dict:
    """Re-decide a stored decision from the facts it saw, under ``version``."""
    return replay_many([record], version)[0]


def replay_many(records: list[dict], version: dict, explained: bool = True) -> list[dict]:
    """Re-decide stored decisions under ``version``; the rules see them all in one go."""
    from app.kinds.sourcing.facts import reprice

    batch = []
    for record in records:
        facts = record["facts"]
        if version["sha256"] != record["decision"]["ruleset"]["sha256"]:
            facts = reprice(facts, record["context"], version["document"]["settings"])
        batch.append(facts)
    evaluations = runtime.evaluate_many(version, batch)
    return [
        run(facts, record["context"], version, evaluation, explained)
        for facts, record, evaluation in zip(batch, records, evaluations, strict=True)
    ]


# A shipment's fields a replay does not recompute: its id, and the dates the calendars
# gave when it was decided.
NOT_REPLAYED = ("shipment_id", "dispatch_date", "promised_date", "delivery_window")


def outcome(decision: dict) -> dict:
    """The part of a decision that a replay must reproduce: status, shipments, unfulfilled."""
    return {
        "status": decision["status"],
        "service_level": decision.get("service_level"),
        "shipments": [
            {k: v for k, v in s.items() if k not in NOT_REPLAYED} for s in decision["shipments"]
        ],
        "unfulfilled": decision["unfulfilled"],
    }


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"
