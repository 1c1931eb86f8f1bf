"""Build the facts of one order: pure, from data gathered at the edge.

Candidates are the (line, node) pairs that could serve a line: active nodes with
stock to promise and the capability the delivery needs; the pickup store for a
pickup order; listed suppliers for drop-ship SKUs; in-transit supply when the
ruleset allows it and it arrives before the promise. Nodes that hold the SKU but
cannot serve are recorded as *screened*, with the reason, for explanations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from app.kinds.promising import carriers
from app.kinds.promising import schedule as schedules
from app.kinds.promising.dates import address_zone
from app.platform.db import parse_time
from app.platform.geo import distance_km, postcode_area

# Candidates per line when the ruleset does not say (the nearest ones are kept).
DEFAULT_MAX_CANDIDATES = 60
# The capability a node needs for each delivery method.
CAPABILITY = {"ship": "ship", "same_day": "same_day", "pickup": "pickup", "ship_to_store": "ship"}


@dataclass
class NetworkView:
    """What the facts are built from, read from the database for the order's SKUs only."""

    nodes: dict[str, dict]
    positions: list[dict]
    skus: dict[str, dict]
    capacity_used: dict[str, int]
    in_transit: list[dict] = field(default_factory=list)  # {node_id, sku, atp, eta}
    now: str = ""
    schedule: schedules.Schedule | None = None  # carrier services and calendars
    collected: dict[str, int] = field(default_factory=dict)  # today's, by limited service
    # Distances already worked out, by (node, destination): a promise builds the facts of
    # several ways to the same destination from one view.
    distances: dict[tuple, float] = field(default_factory=dict)


def destination(order: dict, nodes: dict[str, dict]) -> dict:
    """Where the goods go: the address, or the store for pickup and ship-to-store."""
    delivery = order["delivery"]
    if "address" in delivery:
        address = delivery["address"]
        return {
            "lat": address["lat"],
            "lon": address["lon"],
            "country": address["country"],
            "postcode": address["postcode"],
            "city": address.get("city"),
            "region": None,
        }
    node = nodes[delivery["node_id"]]
    return {
        "lat": node["lat"],
        "lon": node["lon"],
        "country": None,
        "postcode": None,
        "city": node.get("city"),
        "region": node.get("region"),
    }


def service_before_rules(order: dict, settings: dict) -> str:
    requested = order.get("requested_service")
    if order["delivery"]["method"] == "same_day" and "same_day" in settings["rate_card"]:
        return "same_day"
    if requested in settings["rate_card"]:
        return requested
    return settings.get("default_service", "standard")


def shipping_cost(rate: dict, distance: float, weight_kg: float) -> float:
    """Rate card price of one shipment: base + per km + per kg."""
    return round(rate["base"] + rate["per_km"] * distance + rate["per_kg"] * weight_kg, 4)


def rate_for(settings: dict, service: str) -> dict:
    card = settings["rate_card"]
    return (
        card.get(service)
        or card.get(settings.get("default_service", "standard"))
        or next(iter(card.values()))
    )


def build(
    order: dict,
    customer: dict,
    view: NetworkView,
    settings: dict,
    excluded_nodes: dict[str, set[str]] | None = None,
    only_nodes: dict[str, set[str]] | None = None,
) -> tuple[list, dict]:
    """Return ``(facts, context)`` for an order.

    ``context`` holds what allocation and explanation need besides the facts:
    the lines, the destination, the screened nodes, the node-local days.
    ``excluded_nodes`` maps a line id to the nodes that may not serve it again;
    ``only_nodes`` maps a SKU to the only nodes that may serve it (a held promise's).
    """
    dest = destination(order, view.nodes)
    method = order["delivery"]["method"]
    service = service_before_rules(order, settings)
    lines = _lines(order, view)
    services = list(view.schedule.services) if view.schedule else []
    facts: list[dict] = [
        _order_fact(order, lines, dest, view.now),
        {"fact": "customer", "key": "customer", **customer},
        *({"fact": "line", "key": f"line:{line['line_id']}", **line} for line in lines),
        *(schedules.fact(service, view.collected) for service in services),
    ]
    candidates = _Candidates(
        order,
        view,
        dest,
        Pricing(
            rate_for(settings, service),
            [schedules.compact(s) for s in services if s["service_level"] == service],
        ),
        _Promise.of(order, view, method, service) if order.get("promised_by") else None,
        excluded_nodes or {},
        only_nodes,
    )
    by_sku: dict[str, list[dict]] = {}
    for position in view.positions:
        by_sku.setdefault(position["sku"], []).append(position)
    limit = settings.get("max_candidates_per_line", DEFAULT_MAX_CANDIDATES)
    in_transit = settings.get("use_in_transit") and (order.get("promised_by") or order.get("quote"))
    for line in lines:
        facts.extend(candidates.on_hand(line, by_sku.get(line["sku"], []), limit))
        if in_transit:
            facts.extend(candidates.in_transit(line))
    context = {
        "lines": lines,
        "method": method,
        "destination": dest,
        "requested_service": order.get("requested_service"),
        "screened": candidates.screened_list(),
        "node_days": {},
        "now": view.now,
    }
    if services:
        context["carriers"] = [schedules.compact(s) for s in services]
    return facts, context


def _lines(order: dict, view: NetworkView) -> list[dict]:
    """The order's lines with what the rules see of their SKUs."""
    lines = []
    for line in order["lines"]:
        info = view.skus[line["sku"]]
        lines.append(
            {
                "line_id": line["line_id"],
                "sku": line["sku"],
                "qty": line["qty"],
                "unit_price": line["unit_price"],
                "value": round(line["qty"] * line["unit_price"], 2),
                "category": info["category"],
                "hazmat": info["hazmat"],
                "weight_kg": info["weight_kg"],
                "dropship": bool(info["suppliers"]),
            }
        )
    return lines


def _order_fact(order: dict, lines: list[dict], dest: dict, now: str) -> dict:
    """The ``order`` fact: its channel, size, value, delivery and destination."""
    total = 0.0
    for line in lines:
        total += line["value"]
    return {
        "fact": "order",
        "key": "order",
        "order_id": order["order_id"],
        "channel": order["channel"],
        "total": round(total, 2),
        "line_count": len(lines),
        "unit_count": sum(line["qty"] for line in lines),
        "delivery_method": order["delivery"]["method"],
        "requested_service": order.get("requested_service"),
        "pickup_node_id": order["delivery"].get("node_id"),
        "destination_country": dest["country"],
        "destination_postcode": dest["postcode"],
        "destination_lat": dest["lat"],
        "destination_lon": dest["lon"],
        "created_at": now,
        "created_hour": parse_time(now).hour,
        **_present(
            destination_city=dest.get("city"),
            destination_postcode_area=postcode_area(dest["postcode"]),
            destination_region=dest.get("region"),
            promised_by=order.get("promised_by"),
            promise_id=order.get("promise_id"),
            released=order.get("released"),
        ),
    }


@dataclass
class _Candidates:
    """Builds the candidate facts of an order's lines, noting each node screened out."""

    order: dict
    view: NetworkView
    dest: dict
    priced: Pricing
    promise: _Promise | None
    excluded_nodes: dict[str, set[str]]
    only_nodes: dict[str, set[str]] | None
    screened: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    distances: dict[str, float] = field(default_factory=dict)

    def screen(self, line_id: str, node_id: str, reason: str) -> None:
        self.screened.setdefault((line_id, reason), []).append(node_id)

    def screened_list(self) -> list[dict]:
        return [
            {"line_id": line_id, "reason": reason, "node_ids": sorted(node_ids)}
            for (line_id, reason), node_ids in sorted(self.screened.items())
        ]

    def on_hand(self, line: dict, positions: list[dict], limit: int) -> list[dict]:
        """The nearest ``limit`` nodes with stock of the line that may serve it."""
        view = self.view
        eligible = []
        for position in positions:
            node_id = position["node_id"]
            node = view.nodes[node_id]
            reason = _screen(
                self.order, line, node_id, node, view.skus[line["sku"]], position["atp"]
            )
            if node_id in self.excluded_nodes.get(line["line_id"], ()):
                reason = "the node rejected this line or let it lapse"
            elif (
                reason is None
                and self.only_nodes is not None
                and node_id not in self.only_nodes.get(line["sku"], ())
            ):
                reason = "the held promise is kept by other nodes"
            if reason:
                self.screen(line["line_id"], node_id, reason)
                continue
            if node_id not in self.distances:
                key = (node_id, self.dest["lat"], self.dest["lon"])
                if key not in view.distances:
                    view.distances[key] = _distance(node, self.dest)
                self.distances[node_id] = view.distances[key]
            eligible.append((self.distances[node_id], node_id, position))
        # The nearest candidates are the ones that can matter; the rest would only cost
        # time, so only they are built.
        eligible.sort(key=lambda entry: entry[:2])
        for _, node_id, _ in eligible[limit:]:
            self.screen(line["line_id"], node_id, f"farther than the {limit} nearest candidates")
        now = parse_time(view.now)
        return [
            _candidate(
                line,
                node_id,
                view.nodes[node_id],
                position["atp"],
                self.distances[node_id],
                self.priced,
                view,
                now,
                False,
                position["feed_as_of"],
                self.promise,
            )
            for _, node_id, position in eligible[:limit]
        ]

    def in_transit(self, line: dict) -> list[dict]:
        """Supply of the line's SKU in transit to nodes that may serve it, in time."""
        view = self.view
        now = parse_time(view.now)
        promised_by = (
            parse_time(self.order["promised_by"]) if self.order.get("promised_by") else None
        )
        found = []
        for supply in view.in_transit:
            if supply["sku"] != line["sku"] or supply["atp"] <= 0:
                continue
            if self.only_nodes is not None and supply["node_id"] not in self.only_nodes.get(
                line["sku"], ()
            ):
                continue
            node = view.nodes[supply["node_id"]]
            eta = parse_time(supply["eta"])
            if promised_by is not None and eta > promised_by:
                self.screen(
                    line["line_id"],
                    supply["node_id"],
                    "in-transit stock arrives after the promised date",
                )
                continue
            if _screen(self.order, line, supply["node_id"], node, view.skus[line["sku"]], 1):
                continue
            fact = _candidate(
                line,
                supply["node_id"],
                node,
                supply["atp"],
                _distance(node, self.dest),
                self.priced,
                view,
                max(now, eta),
                True,
                None,
                self.promise,
            )
            fact["in_transit_eta_days"] = round(max(0.0, (eta - now).total_seconds()) / 86400, 2)
            found.append(fact)
        return found


def _screen(order, line, node_id, node, sku_info, atp) -> str | None:
    """Why a node holding the SKU cannot serve this line, or None when it can."""
    method = order["delivery"]["method"]
    if not node["active"]:
        return "node is inactive"
    if atp <= 0:
        return "no stock to promise"
    if method == "pickup":
        if node_id != order["delivery"]["node_id"]:
            return "pickup orders are served by the chosen store"
        if "pickup" not in node["capabilities"]:
            return "node does not hand over pickups"
        return None
    if method == "ship_to_store" and node_id == order["delivery"]["node_id"]:
        return None if "pickup" in node["capabilities"] else "node does not hand over pickups"
    if node["type"] == "supplier":
        if node_id not in sku_info["suppliers"]:
            return "supplier does not drop-ship this SKU"
        if "dropship" not in node["capabilities"] or method not in ("ship", "ship_to_store"):
            return "drop-ship is for shipped orders only"
    needed = CAPABILITY[method]
    if method == "ship_to_store":
        needed = "ship_to_store"
    if needed not in node["capabilities"]:
        return f"node lacks the {needed} capability"
    return None


def _candidate(
    line,
    node_id,
    node,
    atp,
    distance: float,
    priced: Pricing,
    view,
    ready: datetime,
    in_transit: bool,
    feed_as_of: str | None,
    promise: _Promise | None = None,
):
    """``ready`` is when the supply is at the node: now, or an in-transit ETA."""
    now = parse_time(view.now) if in_transit else ready
    capacity = node.get("daily_capacity")
    used = view.capacity_used.get(node_id, 0)
    fact = {
        "fact": "candidate",
        "key": f"{line['line_id']}@{node_id}" + ("~transit" if in_transit else ""),
        "line_id": line["line_id"],
        "sku": line["sku"],
        "node_id": node_id,
        "node_type": node["type"],
        "capabilities": list(node["capabilities"]),
        "atp": atp,
        "atp_after": atp - line["qty"],
        "distance_km": distance,
        "estimated_cost": priced.cost(distance, line["weight_kg"] * line["qty"], line["hazmat"]),
        "capacity_left": None if capacity is None else capacity - used,
        "feed_age_hours": None
        if feed_as_of is None
        else round((now - _stored_time(feed_as_of)).total_seconds() / 3600, 2),
        "node_priority": node.get("priority", 0),
        "in_transit": in_transit,
        "node_lat": node["lat"],
        "node_lon": node["lon"],
        **_present(
            node_region=node.get("region"),
            node_city=node.get("city"),
            node_postcode_area=postcode_area(node.get("postcode")),
        ),
    }
    if promise is not None:
        fact.update(promise.fields(node_id, node, ready, distance, line))
    return fact


@dataclass(frozen=True)
class Pricing:
    """What one parcel of a service level costs: its cheapest carrier service that carries
    it, or the ruleset's rate card when none does (or none is set up)."""

    rate: dict
    services: list[dict]

    def cost(self, distance: float, weight_kg: float, hazmat: bool) -> float:
        found = schedules.cheapest(self.services, distance, weight_kg, hazmat)
        if found is None:
            return shipping_cost(self.rate, distance, weight_kg)
        return found[1]


@dataclass(frozen=True)
class _Promise:
    """What a candidate is told about an order's promised date: when it could deliver and
    with which carrier services in time."""

    schedule: schedules.Schedule
    method: str
    services: list[dict]
    promised: datetime
    zone: ZoneInfo | None  # the customer's; the node's when the order names none
    pickup_id: str | None
    pickup_node: dict | None

    @classmethod
    def of(cls, order, view: NetworkView, method: str, service: str):
        if view.schedule is None or (method != "pickup" and not view.schedule.of_level(service)):
            return None  # no carrier service to judge by: the promise is not judged
        pickup_id = order["delivery"].get("node_id")
        pickup_node = view.nodes.get(pickup_id) if pickup_id else None
        zone = address_zone(order["delivery"].get("address")) or (
            ZoneInfo(pickup_node["timezone"]) if pickup_node else None
        )
        return cls(
            schedule=view.schedule,
            method=method,
            services=view.schedule.of_level(service),
            promised=parse_time(order["promised_by"]),
            zone=zone,
            pickup_id=pickup_id,
            pickup_node=pickup_node,
        )

    def fields(self, node_id: str, node: dict, ready: datetime, distance: float, line) -> dict:
        method = self.method
        if method == "ship_to_store" and node_id == self.pickup_id:
            method = "pickup"
        if method == "pickup":
            found = schedules.dated(self.schedule, node, "pickup", None, ready, distance)
            dates = [] if found is None else [("", found)]
        else:
            dates = []
            for service in self.services:
                if not carriers.carries(service, line["weight_kg"], line["hazmat"]):
                    continue
                found = schedules.dated(
                    self.schedule,
                    node,
                    method,
                    service["service_id"],
                    ready,
                    distance,
                    self.zone,
                    self.pickup_node,
                )
                if found is not None:
                    dates.append((service["service_id"], found))
        if not dates:
            return {"meets_promise": False, "on_time_carriers": []}
        day = self.promised.astimezone(self.zone or self.schedule.node(node).zone).date()
        earliest = min(found.delivery_date for _, found in dates)
        on_time = sorted(sid for sid, found in dates if sid and found.delivery_date <= day)
        return {
            "delivery_date": earliest.isoformat(),
            "meets_promise": earliest <= day,
            "on_time_carriers": on_time,
        }


def _distance(node: dict, dest: dict) -> float:
    return round(distance_km(node["lat"], node["lon"], dest["lat"], dest["lon"]), 2)


@lru_cache(maxsize=4096)
def _stored_time(text: str) -> datetime:
    # Feeds stamp many positions with one time: each is parsed once.
    return parse_time(text)


def _present(**fields) -> dict:
    """The fields that have a value: the catalogue leaves unknown ones out."""
    return {name: value for name, value in fields.items() if value is not None}


def reprice(facts: list[dict], context: dict, settings: dict) -> list[dict]:
    """Recompute candidates' estimated cost under another ruleset's rate card (for replay)."""
    order = next(f for f in facts if f["fact"] == "order")
    service = service_before_rules(
        {
            "delivery": {"method": order["delivery_method"]},
            "requested_service": context.get("requested_service"),
        },
        settings,
    )
    pricing = Pricing(
        rate_for(settings, service),
        [c for c in context.get("carriers") or [] if c["service_level"] == service],
    )
    lines = {line["line_id"]: line for line in context["lines"]}
    priced = []
    for fact in facts:
        if fact["fact"] == "candidate":
            line = lines[fact["line_id"]]
            fact = {
                **fact,
                "estimated_cost": pricing.cost(
                    fact["distance_km"], line["weight_kg"] * line["qty"], line["hazmat"]
                ),
            }
        priced.append(fact)
    return priced
