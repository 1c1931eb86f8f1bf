"""Decide an order: gather, build facts, evaluate the rules, allocate, reserve, record.

``run`` is the decision itself: facts and a ruleset version in, a decision out,
nothing read or written, so a stored decision can be replayed exactly. ``gather``
reads what the facts need; ``commit`` writes the outcome in one transaction.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from app.domain import customers, orders, shipments
from app.domain.network import nodes, reservations, skus, stock, transfers
from app.kinds.promising import schedule as schedules
from app.kinds.promising.dates import timezone_problems
from app.kinds.sourcing import explain
from app.kinds.sourcing.allocate import Policy, allocate
from app.kinds.sourcing.facts import (
    NetworkView,
    build,
    rate_for,
    service_before_rules,
    shipping_cost,
)
from app.machinery import decisions, experiments
from app.machinery.rules import registry, runtime
from app.platform import db as database
from app.platform.db import Database
from app.platform.errors import Conflict, InvalidInput, field_error
from app.platform.messaging import outbox

RULESET = "sourcing"
RETRIES_OUTSIDE_LOCK = 1


# Checking the order -------------------------------------------------------------------


def check_references(db: Database, order: dict) -> None:
    """422 with a pointer for an unknown customer, SKU or node, or a repeated line id."""
    problems = []
    if not customers.exists(db, order["customer_id"]):
        problems.append(
            field_error(("customer_id",), f"customer {order['customer_id']!r} does not exist")
        )
    known = skus.existing(db, [line["sku"] for line in order["lines"]])
    seen = set()
    for index, line in enumerate(order["lines"]):
        if line["sku"] not in known:
            problems.append(
                field_error(("lines", index, "sku"), f"SKU {line['sku']!r} does not exist")
            )
        if line["line_id"] in seen:
            problems.append(field_error(("lines", index, "line_id"), "is listed twice"))
        seen.add(line["line_id"])
    problems.extend(
        timezone_problems(
            (order["delivery"].get("address") or {}).get("timezone"),
            ("delivery", "address", "timezone"),
        )
    )
    node_id = order["delivery"].get("node_id")
    if node_id is not None:
        node = nodes.existing(db, [node_id]).get(node_id)
        if node is None:
            problems.append(
                field_error(("delivery", "node_id"), f"node {node_id!r} does not exist")
            )
        elif "pickup" not in node["capabilities"]:
            problems.append(
                field_error(("delivery", "node_id"), f"node {node_id!r} does not hand over orders")
            )
    if problems:
        raise InvalidInput(problems)
    from app.kinds.promising import promises

    promises.check_quoted(db, order)


# Gathering (reads) --------------------------------------------------------------------


def gather(db: Database, order: dict, settings: dict, now: str) -> NetworkView:
    """Read what the facts need: only the order's SKUs and the nodes that hold them."""
    sku_list = sorted({line["sku"] for line in order["lines"]})
    positions = stock.positions(db, sku_list)
    network = nodes.current(db, {p["node_id"]: p["node_revision"] for p in positions})
    node_ids = set()
    if order["delivery"].get("node_id"):
        node_ids.add(order["delivery"]["node_id"])
    in_transit = []
    if settings.get("use_in_transit") and (order.get("promised_by") or order.get("quote")):
        latest: dict[tuple, str] = {}
        for transfer in transfers.in_transit(db, sku_list):
            key = (transfer["destination_node_id"], transfer["sku"])
            latest[key] = max(latest.get(key, transfer["eta"]), transfer["eta"])
        for (node_id, sku), eta in latest.items():
            atp = reservations.in_transit_atp(db, node_id, sku)
            in_transit.append({"node_id": node_id, "sku": sku, "atp": atp, "eta": eta})
            node_ids.add(node_id)
    network.update(nodes.existing(db, node_ids - network.keys()))
    schedule = schedules.load(db)
    # Only a node with a daily capacity has its shipments counted; most share a timezone.
    moment = datetime.fromisoformat(now)
    zones: dict[str, str] = {}
    days = {}
    for node_id, info in network.items():
        if info["daily_capacity"] is not None:
            zone = info["timezone"]
            if zone not in zones:
                zones[zone] = shipments.node_day(zone, moment)
            days[node_id] = zones[zone]
    return NetworkView(
        nodes=network,
        positions=positions,
        skus=skus.details(db, sku_list),
        capacity_used=shipments.used_today(db, days),
        in_transit=in_transit,
        now=now,
        schedule=schedule,
        collected=shipments.collected(db, schedules.limited(schedule), moment.date().isoformat()),
    )


def facts_for(
    db: Database, order: dict, settings: dict, excluded_nodes=None, only_nodes=None
) -> tuple:
    """``(facts, context, view)``: the facts and context a decision records, and what
    they were built from."""
    now = database.now()
    view = gather(db, order, settings, now)
    profile = customers.profile_for_decisions(customers.get(db, order["customer_id"]))
    facts, context = build(order, profile, view, settings, excluded_nodes, only_nodes)
    return facts, complete(context, facts, order, view), view


def complete(context: dict, facts: list[dict], order: dict, view: NetworkView) -> dict:
    """Add what later steps read of the candidates' nodes to a context ``build`` made."""
    # Shipments can only go to candidates' nodes: their days and types are what later
    # steps read (a large network holds hundreds more).
    moment = datetime.fromisoformat(view.now)
    serving = {f["node_id"] for f in facts if f["fact"] == "candidate"}
    context["node_days"] = {
        n: shipments.node_day(view.nodes[n]["timezone"], moment) for n in sorted(serving)
    }
    context["node_types"] = {n: view.nodes[n]["type"] for n in sorted(serving)}
    context["delivery"] = order["delivery"]
    return context


def date_shipments(decision: dict, order: dict, view: NetworkView) -> None:
    """Give each shipment its dates: when it leaves its node, and the day (and window) the
    customer gets it, by its carrier service or at the pickup store, later by a rule's
    ``extra_days``. They come from the calendars as they are now: a replay recomputes
    the shipments, not their dates."""
    moment = datetime.fromisoformat(view.now)
    extra = decision["explanation"]["attributes"].get("extra_days", {}).get("value", 0)
    zone = _customer_zone(order)
    pickup_id = order["delivery"].get("node_id")
    pickup = view.nodes.get(pickup_id) if pickup_id else None
    arrivals = {(s["node_id"], s["sku"]): s["eta"] for s in view.in_transit}
    for shipment in decision["shipments"]:
        node_id = shipment["node_id"]
        ready = moment
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


def _customer_zone(order: dict) -> ZoneInfo | None:
    name = (order["delivery"].get("address") or {}).get("timezone")
    return ZoneInfo(name) if name else None


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
    holds = list(evaluation.holds)
    if promise and promise["missed_lines"] and settings.get("promise_miss") == "hold":
        holds.append(
            {
                "rule": "promised-date",
                "reason": f"no node can deliver line(s) {', '.join(promise['missed_lines'])}"
                f" by {promise['promised_by']}",
            }
        )
    policy = policy_for(settings, attributes, service, carriers.rate(context, options))
    held = bool(holds)
    allocation = None if held else allocate(context["lines"], list(options.values()), policy)
    allocated = time.perf_counter()

    lines = {line["line_id"]: line for line in context["lines"]}
    rate = policy.rate
    pickup_id = context["delivery"].get("node_id")
    grouped: dict[str, list[dict]] = {}
    for assignment in allocation.assignments if allocation else []:
        grouped.setdefault(assignment["node_id"], []).append(assignment)
    shipment_list = []
    for node_id, assignments in sorted(grouped.items()):
        distance = options[assignments[0]["key"]]["distance_km"]
        weight = sum(lines[a["line_id"]]["weight_kg"] * a["qty"] for a in assignments)
        carried = None
        if context["method"] != "pickup" and not (
            context["method"] == "ship_to_store" and node_id == pickup_id
        ):
            carried = carriers.choose(
                distance,
                weight,
                any(lines[a["line_id"]]["hazmat"] for a in assignments),
                [candidate_facts[a["key"]] for a in assignments] if promise else None,
            )
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
            }
        )
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
    return decision


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


# Recording (writes) -------------------------------------------------------------------


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def commit(
    db: Database,
    order: dict,
    decision: dict,
    facts: list,
    context: dict,
    settings: dict,
    kind: str,
) -> dict:
    """Reserve, record, create shipments and outbox messages, move the order: one transaction.

    Must run inside ``database.immediate``; raises ``InsufficientStock`` or
    ``CapacityFull`` (and so rolls everything back) when stock or a node's day was
    promised elsewhere since the facts were read.
    """
    decision_id = decision["decision_id"]
    order_id = order["order_id"]
    now = datetime.now(UTC)
    check_capacity(db, decision, context, now)
    ttl = settings.get("reservation_ttl_seconds", 86400)
    allocated: dict[str, int] = {}
    for shipment in decision["shipments"]:
        shipment["shipment_id"] = new_id("shp")
    # The record, then the shipments (they refer to the record), then their reservations
    # (they refer to the shipments), all in one go: nothing is held unless all of it is.
    decisions.record(db, decision, kind, facts, context)
    for shipment in decision["shipments"]:
        shipments.create(
            db,
            {
                **shipment,
                "order_id": order_id,
                "decision_id": decision_id,
                "node_day": context["node_days"].get(shipment["node_id"]) or now.date().isoformat(),
            },
        )
    reservations.reserve(
        db,
        [
            reservations.Request(
                shipment["node_id"],
                line["sku"],
                line["qty"],
                reference=f"{order_id}/{line['line_id']}",
                supply=line["supply"],
                shipment_id=shipment["shipment_id"],
            )
            for shipment in decision["shipments"]
            for line in shipment["lines"]
        ],
        ttl,
        now=now,
    )
    for shipment in decision["shipments"]:
        for line in shipment["lines"]:
            allocated[line["line_id"]] = allocated.get(line["line_id"], 0) + line["qty"]
        outbox.enqueue(
            db,
            "fulfillment.requested",
            {
                "shipment_id": shipment["shipment_id"],
                "order_id": order_id,
                "node_id": shipment["node_id"],
                "lines": shipment["lines"],
                "destination": context["delivery"],
                "method": shipment["method"],
                "service_level": shipment["service_level"],
                "decision_id": decision_id,
                "ruleset": decision["ruleset"],
            },
            node_id=shipment["node_id"],
            shipment_id=shipment["shipment_id"],
            order_id=order_id,
        )
    orders.allocate(db, order_id, allocated)
    orders.set_status(db, order_id, decision["status"], {"decision_id": decision_id})
    return decision


class CapacityFull(Conflict):
    """A node's daily capacity was used by other orders since the facts were read."""

    code = "capacity_full"


def check_capacity(db, decision: dict, context: dict, now: datetime) -> None:
    """Raise ``CapacityFull`` unless every node can take its new shipments today."""
    wanted: dict[str, int] = {}
    for shipment in decision["shipments"]:
        wanted[shipment["node_id"]] = wanted.get(shipment["node_id"], 0) + 1
    if not wanted:
        return
    nodes.lock(db, wanted)
    info = nodes.existing(db, wanted)
    days = {
        node_id: context["node_days"].get(node_id)
        or shipments.node_day(info[node_id]["timezone"], now)
        for node_id in wanted
    }
    used = shipments.used_today(db, days)
    for node_id, count in sorted(wanted.items()):
        limit = info[node_id]["daily_capacity"]
        if limit is not None and used.get(node_id, 0) + count > limit:
            raise CapacityFull(
                f"node {node_id!r} has {max(0, limit - used.get(node_id, 0))} shipment(s)"
                f" left today, not {count}"
            )


class WaitingOrdersFirst(Exception):
    """Stock of the order's SKUs was freed and older orders waiting for it have not run yet."""


# The whole flow -----------------------------------------------------------------------


class OrderConflict(Conflict):
    code = "order_conflict"


def _replay_or_conflict(db, body: dict, digest: str) -> dict | None:
    existing = orders.find(db, body["order_id"])
    if existing is None:
        return None
    if existing["body_hash"] != digest:
        raise OrderConflict(f"order {body['order_id']!r} was received with a different body")
    return decisions.first_result(db, body["order_id"])


def decide_order(db: Database, body: dict, deferred: list | None = None) -> tuple[dict, bool]:
    """Decide a new order and commit it; return ``(decision, created)``.

    The same order again returns its first decision; a different body under the
    same id is a conflict. Facts are read and rules run outside the write lock; if
    the stock they saw was promised elsewhere meanwhile, the order is decided again
    with the lock held, so stock is never promised twice.

    Orders waiting for stock that was freed go first: a new order never takes stock
    ahead of an older back-order of the same SKU.

    Under a shadow experiment the challenger's evaluation is appended to ``deferred``
    (run it after answering the channel) or, without that list, run at once.
    """
    digest = stock.body_hash(body)
    replay = _replay_or_conflict(db, body, digest)
    if replay is not None:
        return replay, False
    check_references(db, body)
    version, experiment = experiments.choose(db, RULESET, body)
    settings = version["document"]["settings"]
    sku_list = sorted({line["sku"] for line in body["lines"]})
    if body.get("promise_id"):
        # The promise's hold changes hands in the order's own transaction.
        with database.immediate(db):
            stock.lock_skus(db, sku_list)
            _serve_waiting_orders(db, sku_list)
            result = _decide_promised(db, body, digest, version, settings, experiment)
    for attempt in range(0 if body.get("promise_id") else RETRIES_OUTSIDE_LOCK + 1):
        locked = attempt == RETRIES_OUTSIDE_LOCK
        try:
            if locked:
                with database.immediate(db):
                    # Decided under the locks of every stock row it could take.
                    stock.lock_skus(db, sku_list)
                    _serve_waiting_orders(db, sku_list)
                    result = _decide_and_commit(db, body, digest, version, settings, experiment)
            else:
                decision, facts, context = make_decision(db, body, version, settings)
                decision["experiment"] = experiment
                with database.immediate(db):
                    replay = _replay_or_conflict(db, body, digest)
                    if replay is not None:
                        return replay, False
                    if stock.raised(db, sku_list):
                        raise WaitingOrdersFirst
                    orders.create(db, body, digest)
                    commit(db, body, decision, facts, context, settings, "order")
                result = (decision, True, facts, context)
            break
        except (reservations.InsufficientStock, CapacityFull, WaitingOrdersFirst):
            if locked:
                raise
    decision, created, facts, context = result
    if created and experiment and experiment["mode"] == "shadow":
        job = _shadow_job(db, experiment, decision, facts, context)
        if deferred is None:
            job(db)
        else:
            deferred.append(job)
    return decision, created


def _shadow_job(db, experiment: dict, decision: dict, facts: list, context: dict):
    """The challenger's evaluation of the champion's facts, to run after the answer."""
    number = experiments.get(db, experiment["experiment_id"])["challenger"]
    challenger = registry.get(db, RULESET, number)
    record = {"facts": facts, "context": context, "decision": decision}

    def run_shadow(connection) -> None:
        shadow = replay(record, challenger)
        experiments.record_shadow(
            connection, decision["decision_id"], experiment["experiment_id"], decision, shadow
        )

    return run_shadow


def _serve_waiting_orders(db, sku_list: list[str]) -> None:
    """Run the back-orders waiting for freed stock of these SKUs, inside the caller's lock."""
    from app.lifecycle import orders as lifecycle

    if stock.raised(db, sku_list):
        lifecycle.resume_raised_safely(db, sku_list)


def _decide_promised(db, body, digest, version, settings, experiment):
    """Decide an order that quotes a held promise: from the nodes that hold it when they
    still can serve it all, else like any order; by the promised date either way."""
    from app.kinds.promising import promises

    replay = _replay_or_conflict(db, body, digest)
    if replay is not None:
        return replay, False, None, None
    held = promises.take(db, body)
    order = body
    if held is not None:
        # Kept as held: by its date, with its service level, unless the order says otherwise.
        order = {
            "promised_by": held["window"]["to"],
            **({"requested_service": held["service_level"]} if held["service_level"] else {}),
            **body,
        }
    decision = None
    if held is not None:
        decision, facts, context = make_decision(
            db, order, version, settings, only_nodes=promises.held_nodes(held)
        )
        if decision["status"] != "sourced":
            decision = None
    if decision is None:
        decision, facts, context = make_decision(db, order, version, settings)
    decision["experiment"] = experiment
    orders.create(db, body, digest)
    commit(db, order, decision, facts, context, settings, "order")
    if held is not None:
        # What the order did not take back from the hold is free for waiting orders.
        stock.note_raised(db, sorted(promises.held_nodes(held)))
    return decision, True, facts, context


def _decide_and_commit(db, body, digest, version, settings, experiment):
    replay = _replay_or_conflict(db, body, digest)
    if replay is not None:
        return replay, False, None, None
    decision, facts, context = make_decision(db, body, version, settings)
    decision["experiment"] = experiment
    orders.create(db, body, digest)
    commit(db, body, decision, facts, context, settings, "order")
    return decision, True, facts, context


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
    facts, context, view = facts_for(db, body, settings, excluded_nodes, only_nodes)
    built = time.perf_counter()
    decision = run(facts, context, version)
    date_shipments(decision, body, view)
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
    check_references(db, body)
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
