"""Promise options: which ways a customer can get some lines, by when, at what cost and
price, worked out from the same facts, rules and allocation as a sourcing decision.

Each way of delivering is decided as an order would be (a shipped order per service
level, a same-day order, a pickup or ship-to-store order per nearby store); all of
them are evaluated by the rules in one batch. An option is offered when its decision
sources every line; it is dated by its shipments' carrier services and the calendars.
Pure: the network view and schedule are read by ``quotes.answer``.
"""

from __future__ import annotations

from app.kinds.sourcing import gather
from app.kinds.sourcing.facts import NetworkView, build
from app.platform.geo import distance_km

METHODS = ("ship", "same_day", "pickup", "ship_to_store")
DEFAULT_PRICES = {"pickup": {"price": 0.0}, "ship_to_store": {"price": 0.0}}


def ship_levels(view: NetworkView, settings: dict) -> tuple[list[str], list[str]]:
    """``(levels shipped in days, levels delivered the same day)`` the network offers:
    those with an active carrier service, or the rate card's when none is set up."""
    services = view.schedule.services if view.schedule else ()
    if not services:
        card = sorted(settings["rate_card"])
        return [level for level in card if level != "same_day"], [
            level for level in card if level == "same_day"
        ]
    days = sorted({s["service_level"] for s in services if not s.get("same_day")})
    same = sorted({s["service_level"] for s in services if s.get("same_day")})
    return days, same


def ways(
    request: dict, view: NetworkView, settings: dict, stores: list[tuple[str, float]]
) -> tuple[list[dict], list[dict]]:
    """The orders to decide, one per way of delivering the request asks about, each
    ``{"option_id", "order"}``, and the ways not worth deciding with the reason, each
    ``{"option_id", "reason"}``. ``stores`` are the nearby pickup stores with distances."""
    methods = request.get("methods") or METHODS
    wanted_levels = set(request.get("service_levels") or ())
    days, same = ship_levels(view, settings)
    base = {
        "order_id": "promise",
        "channel": request.get("channel", "web"),
        "customer_id": request.get("customer_id") or "anonymous",
        "lines": request["lines"],
        "quote": True,  # in-transit supply counts, with its ETA, where the ruleset allows
    }
    address = request["destination"]
    found, skipped = [], []
    for method, levels in (("ship", days), ("same_day", same)):
        if method not in methods:
            continue
        for level in levels:
            if wanted_levels and level not in wanted_levels:
                continue
            if method == "same_day" and (why := _no_same_day(request, view, level)):
                skipped.append({"option_id": f"{method}:{level}", "reason": why})
            else:
                found.append(
                    {
                        "option_id": f"{method}:{level}",
                        "order": {
                            **base,
                            "delivery": {"method": method, "address": address},
                            "requested_service": level,
                        },
                    }
                )
    # A store with every line on its shelves is offered for pickup, the others for
    # ship-to-store: deciding both for every store would double the work for nothing.
    atp = {(p["node_id"], p["sku"]): p["atp"] for p in view.positions}
    for store_id, _ in stores:
        stocked = all(atp.get((store_id, line["sku"]), 0) >= line["qty"] for line in base["lines"])
        method = "pickup" if stocked else "ship_to_store"
        if method in methods:
            found.append(
                {
                    "option_id": f"{method}:{store_id}",
                    "order": {**base, "delivery": {"method": method, "node_id": store_id}},
                }
            )
    return found, skipped


def _no_same_day(request: dict, view: NetworkView, level: str) -> str | None:
    """Why no node can deliver every line the same day, when that is plain without
    deciding: none that delivers the same day holds it within the services' reach."""
    services = view.schedule.of_level(level) if view.schedule else []
    if not services:
        return None  # priced by the rate card alone: decided like any way
    reach = max(s["same_day"]["radius_km"] for s in services if s.get("same_day"))
    destination = request["destination"]
    near = {
        p["sku"]
        for p in view.positions
        if p["atp"] > 0
        and "same_day" in view.nodes[p["node_id"]]["capabilities"]
        and view.nodes[p["node_id"]]["active"]
        and distance_km(
            view.nodes[p["node_id"]]["lat"],
            view.nodes[p["node_id"]]["lon"],
            destination["lat"],
            destination["lon"],
        )
        <= reach
    }
    missing = sorted({line["sku"] for line in request["lines"]} - near)
    if missing:
        return f"no node within {reach:g} km delivers {', '.join(missing)} the same day"
    return None


def facts_of(ways_: list[dict], customer: dict, view: NetworkView, settings: dict) -> list:
    """``(facts, context)`` of each way, as a sourcing decision builds them."""
    built = []
    for way in ways_:
        facts, context = build(way["order"], customer, view, settings)
        built.append((facts, gather.complete(context, facts, way["order"], view)))
    return built


def price(settings: dict, key: str, total: float, attributes: dict) -> float:
    """What the customer pays for delivery by ``key`` (a service level, pickup or
    ship_to_store) on an order worth ``total``: the ruleset's price, or the one a rule
    names (``price_as``), nothing when a rule says ``free_delivery``."""
    if attributes.get("free_delivery"):
        return 0.0
    if key not in ("pickup", "ship_to_store") and attributes.get("price_as"):
        key = attributes["price_as"]
    entry = {**DEFAULT_PRICES, **(settings.get("prices") or {})}.get(key)
    if entry is None:
        return 0.0
    if entry.get("free_over") is not None and total >= entry["free_over"]:
        return 0.0
    return round(float(entry["price"]), 2)


def option(way: dict, decision: dict, settings: dict, total: float) -> tuple[dict | None, str]:
    """The option a way's decision makes, or ``(None, why not)``."""
    order = way["order"]
    method = order["delivery"]["method"]
    if decision["status"] != "sourced":
        reasons = sorted({u["message"] for u in decision["unfulfilled"]})
        return None, "; ".join(reasons) or decision["status"]
    shipments = decision["shipments"]
    if any(s["promised_date"] is None for s in shipments):
        return None, "no carrier service or calendar gives a date"
    last = max(shipments, key=lambda s: (s["promised_date"], s["delivery_window"]["to"]))
    attributes = {k: v["value"] for k, v in decision["explanation"]["attributes"].items()}
    level = decision["service_level"] if method in ("ship", "same_day") else method
    return {
        "option_id": way["option_id"],
        "method": method,
        "service_level": decision["service_level"] if method in ("ship", "same_day") else None,
        "store_id": order["delivery"].get("node_id"),
        "delivery_date": last["promised_date"],
        "window": dict(last["delivery_window"]),
        "cost": round(sum(s["estimated_cost"] for s in shipments), 2),
        "price": price(settings, level, total, attributes),
        "split": len(shipments) > 1,
        "nodes": sorted({s["node_id"] for s in shipments}),
        "shipments": [
            {
                "node_id": s["node_id"],
                "carrier_service": s["carrier_service"],
                "dispatch_date": s["dispatch_date"],
                "delivery_date": s["promised_date"],
                "cost": s["estimated_cost"],
                "lines": [
                    {k: line[k] for k in ("line_id", "sku", "qty", "supply")} for line in s["lines"]
                ],
            }
            for s in shipments
        ],
        "rules_fired": list(decision["explanation"]["rules_fired"]),
    }, ""


def rank(options: list[dict], recommend: str) -> list[dict]:
    """Sorted earliest first (then cheapest for the customer, then for the retailer), the
    ruleset's choice marked ``recommended``."""

    def earliest(o):
        return (o["window"]["from"], o["price"], o["cost"], o["option_id"])

    def cheapest(o):
        return (o["price"], o["window"]["from"], o["cost"], o["option_id"])

    ordered = sorted(options, key=earliest)
    if ordered:
        best = min(ordered, key=cheapest if recommend == "cheapest" else earliest)
        for o in ordered:
            o["recommended"] = o is best
    return ordered
