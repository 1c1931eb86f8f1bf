"""Delivery promises: the calendars and carrier services they are computed from, the
promises channels ask for and hold, and the report of promises kept."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from flask import Blueprint, g, jsonify

from app.domain import orders, shipments
from app.edges.api.endpoints import READERS, Param, created_or_ok, endpoint, query_args
from app.kinds.promising import calendars, carriers, promises, report
from app.kinds.sourcing import quotes
from app.machinery import decisions
from app.platform.db import get_db
from app.platform.errors import InvalidInput, field_error

bp = Blueprint("promising", __name__, url_prefix="/v1")

CARRIER_QUERY = (
    Param("service_level", "Only services of this level."),
    Param("active", "Only active (true) or inactive (false) services.", "boolean"),
)


@endpoint(
    bp,
    "/calendars/<calendar_id>",
    "PUT",
    summary="Create or replace a calendar of days without work (network: every node's)",
    roles=("admin",),
    body="calendar",
    responses={200: "Replaced", 201: "Created", 422: "Invalid calendar"},
)
def put_calendar(calendar_id: str, body: dict):
    calendar, created = calendars.put(get_db(), calendar_id, body)
    return created_or_ok(calendar, created)


@endpoint(
    bp,
    "/calendars/<calendar_id>",
    "GET",
    summary="Read a calendar",
    roles=READERS,
    responses={200: "The calendar", 404: "No such calendar"},
)
def get_calendar(calendar_id: str):
    return jsonify(calendars.get(get_db(), calendar_id))


@endpoint(
    bp,
    "/calendars",
    "GET",
    summary="List calendars",
    roles=READERS,
    responses={200: "The calendars"},
)
def list_calendars():
    found = calendars.list_calendars(get_db())
    return jsonify({"calendars": found, "count": len(found)})


@endpoint(
    bp,
    "/carrier-services/<service_id>",
    "PUT",
    summary="Create or replace a carrier service: collection, transit, delivery, rates",
    roles=("admin",),
    body="carrier-service",
    responses={200: "Replaced", 201: "Created", 422: "Invalid carrier service"},
)
def put_carrier_service(service_id: str, body: dict):
    service, created = carriers.put(get_db(), service_id, body)
    return created_or_ok(service, created)


@endpoint(
    bp,
    "/carrier-services/<service_id>",
    "GET",
    summary="Read a carrier service",
    roles=READERS,
    responses={200: "The carrier service", 404: "No such carrier service"},
)
def get_carrier_service(service_id: str):
    return jsonify(carriers.get(get_db(), service_id))


@endpoint(
    bp,
    "/carrier-services",
    "GET",
    summary="List carrier services",
    roles=READERS,
    query=CARRIER_QUERY,
    responses={200: "The carrier services", 422: "Invalid filter"},
)
def list_carrier_services():
    args = query_args(CARRIER_QUERY)
    found = carriers.list_services(get_db(), args.get("service_level"), args.get("active"))
    return jsonify({"carrier_services": found, "count": len(found)})


@endpoint(
    bp,
    "/promises",
    "POST",
    summary="Which ways these lines can reach a customer, by when, at what cost and price;"
    " with hold, hold the recommended one",
    roles=("admin", "channel"),
    body="promise-request",
    responses={
        200: "The options (or, with hold, the promise held before under this id)",
        201: "The options, and the recommended one held",
        409: "The promise id was held with a different body, or no option can be held",
        422: "Invalid request, or unknown SKU or customer, or a postcode that places nowhere",
    },
)
def post_promise(body: dict):
    g.principal.require_channel(body.get("channel", "web"))
    db = get_db()
    quotes.check(db, body)
    request = quotes.normalised(body)
    if request.get("hold"):
        found, created = quotes.hold(db, request)
        return created_or_ok(found, created)
    return jsonify(quotes.answer(db, request))


@endpoint(
    bp,
    "/promises/<promise_id>",
    "GET",
    summary="Read a held promise: its options, the option held, its state and its order",
    roles=READERS,
    responses={200: "The promise", 404: "No such promise"},
)
def get_promise(promise_id: str):
    found = promises.get(get_db(), promise_id)
    g.principal.require_channel(found["channel"])
    return jsonify(found)


@endpoint(
    bp,
    "/promises/<promise_id>",
    "DELETE",
    summary="Release a held promise's stock (the cart was abandoned)",
    roles=("admin", "channel"),
    responses={
        200: "Released (or already expired or released)",
        404: "No such promise",
        409: "An order used the promise",
    },
)
def delete_promise(promise_id: str):
    db = get_db()
    g.principal.require_channel(promises.get(db, promise_id)["channel"])
    return jsonify(promises.release(db, promise_id))


REPORT_QUERY = (
    Param("since", "First promised day (YYYY-MM-DD); 12 weeks ago when not given.", format="date"),
    Param(
        "until",
        "Day after the last promised day (YYYY-MM-DD); 4 weeks from today when not given.",
        format="date",
    ),
    Param(
        "group_by",
        "Comma-separated: channel, node, week, and per order cause (channel, node, week when"
        " not given).",
    ),
    Param(
        "per",
        "order (default): each order against the date its customer was quoted; shipment:"
        " each shipment against its own window.",
        enum=report.PER,
    ),
)


@endpoint(
    bp,
    "/reports/promises",
    "GET",
    summary="Promises kept, by channel, node and week: the share delivered in time and the"
    " mean lateness",
    roles=READERS,
    query=REPORT_QUERY,
    responses={200: "The report", 422: "Invalid query"},
)
def promises_report():
    args = query_args(REPORT_QUERY)
    per = args.get("per") or "order"
    allowed = report.ORDER_GROUPS if per == "order" else report.GROUPS
    group_by = tuple(dict.fromkeys((args.get("group_by") or ",".join(report.GROUPS)).split(",")))
    problems = [
        field_error(("group_by",), f"{name!r} is not one of {', '.join(allowed)}")
        for name in group_by
        if name not in allowed
    ]
    now = datetime.now(UTC)
    since = args.get("since") or (now.date() - timedelta(weeks=12)).isoformat()
    until = args.get("until") or (now.date() + timedelta(weeks=4)).isoformat()
    for name, value in (("since", since), ("until", until)):
        try:
            date.fromisoformat(value)
        except ValueError:
            problems.append(field_error((name,), "is not a calendar date"))
    if problems:
        raise InvalidInput(problems)
    db = get_db()
    if per == "order":
        judged = [
            entry
            for entry in judged_orders(db, since, until, now)
            if g.principal.sees_channel(entry["channel"])
        ]
        rows = report.summarise_orders(judged, group_by)
    else:
        outcomes = [
            o
            for o in shipments.promise_outcomes(db, since, until)
            if g.principal.sees_channel(o["channel"])
        ]
        rows = report.summarise(outcomes, group_by, now)
    return jsonify(
        {"since": since, "until": until, "per": per, "group_by": list(group_by), "rows": rows}
    )


def judged_orders(db, since: str, until: str, now: datetime) -> list[dict]:
    """Each order whose quoted date falls in ``[since, until)``, judged (``report``)."""
    judged = []
    for order_id in shipments.promised_orders(db, since, until):
        order = orders.require(db, order_id)
        waited = any(
            e["type"] == "status_changed" and e["to"] in ("backordered", "partially_sourced")
            for e in orders.timeline(db, order_id)
        )
        first = next(iter(decisions.for_order(db, order_id)), None)
        entry = report.judge_order(order, shipments.for_order(db, order_id), first, waited, now)
        if entry is not None and since <= entry["promised_by"][:10] < until:
            judged.append(entry)
    return judged
