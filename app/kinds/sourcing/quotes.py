"""Quotes: which ways a customer can get some lines (delivery options, each decided by the
sourcing rules as an order would be), and a hold of the recommended one.

A held promise (``promising.promises`` owns it) reserves the stock of its option's
shipments for the ruleset's ``promise_hold_minutes``; an order that quotes it takes those
reservations over. Holding is idempotent on ``promise_id``: the same body answers the
first result, another body is a conflict.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from app.domain import customers
from app.domain.network import nodes, reservations, skus, stock
from app.kinds.promising import promises
from app.kinds.promising.dates import timezone_problems
from app.kinds.sourcing import decide, gather, options
from app.machinery.rules import runtime
from app.platform import db as database
from app.platform.db import Database
from app.platform.errors import Conflict, InvalidInput, field_error
from app.platform.geo import distance_km, postcode_area

RETRIES_OUTSIDE_LOCK = 1


# What a decision sees of a customer the channel does not name (a product page).
ANONYMOUS = {
    "customer_id": "anonymous",
    "tier": "standard",
    "segments": [],
    "lifetime_orders": 0,
    "lifetime_value": 0.0,
}


class NothingToHold(Conflict):
    code = "nothing_to_hold"


def normalised(request: dict) -> dict:
    """The request with each line's id (its position when not given) and price (0)."""
    lines = [
        {
            "line_id": line.get("line_id") or str(index + 1),
            "sku": line["sku"],
            "qty": line["qty"],
            "unit_price": line.get("unit_price", 0),
        }
        for index, line in enumerate(request["lines"])
    ]
    return {**request, "lines": lines}


def check(db: Database, request: dict) -> None:
    """422 with a pointer for unknown SKUs or customer, repeated line ids, a postcode that
    places nowhere, or a time zone that does not exist."""
    problems = []
    known = skus.existing(db, [line["sku"] for line in request["lines"]])
    seen = set()
    for index, line in enumerate(request["lines"]):
        if line["sku"] not in known:
            problems.append(
                field_error(("lines", index, "sku"), f"SKU {line['sku']!r} does not exist")
            )
        line_id = line.get("line_id") or str(index + 1)
        if line_id in seen:
            problems.append(field_error(("lines", index, "line_id"), "is listed twice"))
        seen.add(line_id)
    customer_id = request.get("customer_id")
    if customer_id is not None and not customers.exists(db, customer_id):
        problems.append(field_error(("customer_id",), f"customer {customer_id!r} does not exist"))
    destination = request["destination"]
    if "lat" not in destination and _placed(db, destination) is None:
        problems.append(
            field_error(
                ("destination", "postcode"),
                f"no node is in postcode area {postcode_area(destination['postcode'])!r},"
                " so the postcode cannot be placed: send the address's coordinates",
            )
        )
    problems.extend(timezone_problems(destination.get("timezone"), ("destination", "timezone")))
    if problems:
        raise InvalidInput(problems)


def _placed(db: Database, destination: dict) -> tuple[float, float] | None:
    """Where a postcode without coordinates is: the middle of the nodes in its area."""
    area = postcode_area(destination["postcode"])
    points = [
        (node["address"]["lat"], node["address"]["lon"])
        for node in nodes.list_nodes(db)
        if postcode_area(node["address"].get("postcode")) == area
        and node["address"].get("country") == destination["country"]
    ]
    if not area or not points:
        return None
    return (
        round(sum(p[0] for p in points) / len(points), 5),
        round(sum(p[1] for p in points) / len(points), 5),
    )


def answer(db: Database, request: dict, version: dict | None = None) -> dict:
    """The options for a checked, normalised request, best first, under ``version`` (the
    active sourcing version unless given). Reads only."""
    version = version or runtime.active_version(db, decide.RULESET)
    settings = version["document"]["settings"]
    destination = dict(request["destination"])
    if "lat" not in destination:
        destination["lat"], destination["lon"] = _placed(db, destination)
    destination.setdefault("lines", ["-"])
    destination.setdefault("city", "")
    request = {**request, "destination": destination}
    now = database.now()
    view = gather.gather(
        db,
        {"lines": request["lines"], "delivery": {"method": "ship"}, "quote": True},
        settings,
        now,
    )
    stores = _stores(db, destination, settings)
    missing = [store_id for store_id, _ in stores if store_id not in view.nodes]
    view.nodes.update(nodes.existing(db, missing))
    customer = (
        customers.profile_for_decisions(customers.get(db, request["customer_id"]))
        if request.get("customer_id")
        else ANONYMOUS
    )
    ways, not_offered = options.ways(request, view, settings, stores)
    built = options.facts_of(ways, customer, view, settings)
    evaluations = runtime.evaluate_many(version, [facts for facts, _ in built])
    total = round(sum(line["qty"] * line["unit_price"] for line in request["lines"]), 2)
    offered = []
    for way, (facts, context), evaluation in zip(ways, built, evaluations, strict=True):
        decision = decide.run(facts, context, version, evaluation, explained=False)
        decide.date_shipments(decision, way["order"], view)
        found, why = options.option(way, decision, settings, total)
        if found is None:
            not_offered.append({"option_id": way["option_id"], "reason": why})
        else:
            offered.append(found)
    return {
        "quoted_at": now,
        "ruleset": {
            "name": version["ruleset"],
            "version": version["version"],
            "sha256": version["sha256"],
        },
        "options": options.rank(offered, settings.get("recommend", "earliest")),
        "not_offered": not_offered,
    }


def _stores(db: Database, destination: dict, settings: dict) -> list[tuple[str, float]]:
    """The nearest pickup points within the ruleset's radius, nearest first."""
    count = settings.get("pickup_stores", 3)
    radius = settings.get("pickup_radius_km", 50)
    if not count:
        return []
    # A degree of latitude is 111 km, of longitude less: a box first, then the distance.
    lat0, lon0 = destination["lat"], destination["lon"]
    box = radius / 111.0
    wide = box / max(0.01, math.cos(math.radians(min(89.0, abs(lat0)))))
    near = sorted(
        (round(distance_km(lat, lon, lat0, lon0), 2), node_id)
        for node_id, lat, lon in nodes.pickup_points(db)
        if abs(lat - lat0) <= box and abs((lon - lon0 + 180) % 360 - 180) <= wide
    )
    return [(node_id, d) for d, node_id in near if d <= radius][:count]


def hold(db: Database, request: dict) -> tuple[dict, bool]:
    """Answer and hold the recommended option's stock; return ``(promise, created)``.
    The same request again answers the first result."""
    promise_id = request["promise_id"]
    digest = stock.body_hash(request)
    first = promises.replay(db, promise_id, digest)
    if first is not None:
        return first, False
    sku_list = sorted({line["sku"] for line in request["lines"]})
    for attempt in range(RETRIES_OUTSIDE_LOCK + 1):
        locked = attempt == RETRIES_OUTSIDE_LOCK
        try:
            if locked:
                with database.immediate(db):
                    stock.lock_skus(db, sku_list)
                    return _hold(db, request, digest, answer(db, request))
            found = answer(db, request)
            with database.immediate(db):
                return _hold(db, request, digest, found)
        except reservations.InsufficientStock:
            if locked:
                raise
    raise AssertionError("unreachable")


def _hold(db: Database, request: dict, digest: str, found: dict) -> tuple[dict, bool]:
    promise_id = request["promise_id"]
    first = promises.replay(db, promise_id, digest)
    if first is not None:
        return first, False
    chosen = next((o for o in found["options"] if o["recommended"]), None)
    if chosen is None:
        raise NothingToHold("no option can be held: none serves every line")
    version = runtime.active_version(db, decide.RULESET)
    minutes = version["document"]["settings"].get("promise_hold_minutes", 15)
    moment = datetime.now(UTC)
    expires_at = database.format_time(moment + timedelta(minutes=minutes))
    reservations.reserve(
        db,
        [
            reservations.Request(
                shipment["node_id"],
                line["sku"],
                line["qty"],
                reference=promises.reference(promise_id),
                supply=line["supply"],
            )
            for shipment in chosen["shipments"]
            for line in shipment["lines"]
        ],
        minutes * 60,
        now=moment,
    )
    promises.record(db, request, digest, found, chosen, expires_at)
    return promises.get(db, promise_id), True
