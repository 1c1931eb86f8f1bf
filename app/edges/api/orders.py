"""Orders and decisions: the endpoints channels call."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import Blueprint, current_app, g, jsonify, make_response, request, url_for

from app.domain import orders
from app.domain.network import nodes
from app.edges import customer
from app.edges.api import listing
from app.edges.api.endpoints import (
    Param,
    created_or_ok,
    endpoint,
    query_args,
    schemas,
    version_to_simulate,
)
from app.kinds.sourcing import casebook, decide
from app.lifecycle import backorders, intake, tracking, waiting
from app.lifecycle import orders as lifecycle
from app.machinery import decisions
from app.machinery.rules import kinds, registry, runtime
from app.platform import db as database
from app.platform import privacy
from app.platform.db import get_db, normalize_time
from app.platform.errors import InvalidInput, NotFound

bp = Blueprint("orders", __name__, url_prefix="/v1")
log = logging.getLogger(__name__)

CHANNELS = ("admin", "channel")
READERS = ("admin", "analyst", "channel")


ORDER_QUERY = (
    Param("status", "Only orders in this status.", enum=tuple(orders.TRANSITIONS)),
    Param("channel", "Only orders from this channel."),
    Param("created_after", "Only orders created at or after this time.", format="date-time"),
    Param("created_before", "Only orders created before this time.", format="date-time"),
    Param("sku", "Only orders with a line of this SKU."),
    Param("node_id", "Only orders with a shipment from this node."),
    *listing.PAGE_QUERY,
)
DECISION_QUERY = (
    Param("order_id", "Only decisions of this order."),
    Param(
        "kind",
        "Only this kind.",
        enum=("order", "backorder", "resource", "simulation", "return", "replenishment"),
    ),
    Param("ruleset_version", "Only decisions made under this version.", "integer", minimum=1),
    Param("rule", "Only decisions in which this rule fired."),
    Param("node_id", "Only decisions with a shipment from this node."),
    Param("experiment", "Only decisions made under this experiment."),
    *listing.PAGE_QUERY,
)


@endpoint(
    bp,
    "/orders",
    "GET",
    summary="Find orders, newest first; Accept: text/csv or application/x-ndjson exports all",
    roles=READERS,
    query=ORDER_QUERY,
    responses={200: "A page of orders and the cursor of the next"},
)
def list_orders():
    args = query_args(ORDER_QUERY)
    for name in ("created_after", "created_before"):
        if args.get(name):
            args[name] = normalize_time(args[name])
    channels = None if g.principal.role != "channel" else g.principal.channels
    return listing.answer(
        "orders",
        "order_id",
        lambda db, after, limit: orders.search(db, args, after, limit, channels),
        args,
    )


@endpoint(
    bp,
    "/decisions",
    "GET",
    summary="Find decisions, newest first; Accept: text/csv or application/x-ndjson exports all",
    roles=("admin", "analyst"),
    query=DECISION_QUERY,
    responses={200: "A page of decisions and the cursor of the next"},
)
def list_decisions():
    args = query_args(DECISION_QUERY)
    return listing.answer(
        "decisions",
        "decision_id",
        lambda db, after, limit: decisions.search(db, args, after, limit),
        args,
    )


@endpoint(
    bp,
    "/orders",
    "POST",
    summary="Decide an order: reserve stock, record the decision, queue node messages",
    roles=CHANNELS,
    body="order",
    responses={
        200: "The same order again: its stored decision",
        201: "Decided",
        409: "The order id was used with a different body",
        422: "Invalid order, or unknown customer, SKU or node",
    },
)
def post_order(body: dict):
    g.principal.require_channel(body["channel"])
    deferred: list = []
    decision, created = intake.decide_order(get_db(), body, deferred)
    response = created_or_ok(decision, created)
    if deferred:
        # Shadow evaluations run after the channel has its answer.
        response = make_response(response)
        config = current_app.config
        response.call_on_close(lambda: _run_deferred(config, deferred))
    return response


def _run_deferred(config, jobs: list) -> None:
    connection = database.open_from_config(config)
    try:
        for job in jobs:
            try:
                job(connection)
            except Exception:  # the channel's decision stands whatever happens here
                log.exception("shadow evaluation failed")
    finally:
        connection.close()


@endpoint(
    bp,
    "/decisions/simulate",
    "POST",
    summary="What would happen: decide without reserving, under a version or a draft",
    roles=READERS,
    body="decision-simulation",
    responses={
        200: "The simulated decision",
        403: "A channel key sent a draft or a version, or another channel's order",
        404: "No such ruleset version",
        422: "Invalid order or draft ruleset",
    },
)
def simulate(body: dict):
    db = get_db()
    draft = body.pop("draft_ruleset", None)
    number = body.pop("ruleset_version", None)
    g.principal.require_channel(body["channel"])
    version = version_to_simulate(db, decide.RULESET, draft, number)
    return jsonify(decide.simulate(db, body, version))


@endpoint(
    bp,
    "/orders/<order_id>",
    "GET",
    summary="An order: status, lines, shipments and their states, decisions, timeline",
    roles=READERS,
    responses={200: "The order", 404: "No such order"},
)
def get_order(order_id: str):
    db = get_db()
    visible_order(db, order_id)
    view = lifecycle.view(db, order_id)
    if g.principal.role == "analyst":
        view["delivery"] = privacy.delivery_for_analysts(view["delivery"])
    return jsonify(view)


def visible_order(db, order_id: str) -> None:
    """404 for an order this key may not see: a channel key sees its channels' orders only
    (as if the others did not exist, so their ids reveal nothing)."""
    order = orders.require(db, order_id)
    if not g.principal.sees_channel(order["channel"]):
        raise NotFound(f"order {order_id!r} does not exist")


def visible_decision(db, decision_id: str) -> dict:
    """The stored decision, if this key may see its order (or its simulated order)."""
    record = decisions.get(db, decision_id)
    channel = next((f.get("channel") for f in record["facts"] if f.get("fact") == "order"), None)
    if not g.principal.sees_channel(channel):
        raise NotFound(f"decision {decision_id!r} does not exist")
    return record


@endpoint(
    bp,
    "/orders/<order_id>/tracking",
    "GET",
    summary="What the customer sees: status, promise, lines, parcels with tracking, messages",
    roles=CHANNELS,
    responses={200: "The customer's view of the order", 404: "No such order"},
)
def get_tracking(order_id: str):
    db = get_db()
    visible_order(db, order_id)
    return jsonify(tracking.view(db, order_id))


@endpoint(
    bp,
    "/orders/<order_id>/tracking-link",
    "POST",
    summary="A signed link to the order's tracking page, for the customer (no sign-in)",
    roles=CHANNELS,
    body="tracking-link",
    optional_body=True,
    responses={
        200: "The link and when it stops working",
        404: "No such order",
        422: "Invalid body",
    },
)
def tracking_link(order_id: str, body: dict):
    visible_order(get_db(), order_id)
    config = current_app.config
    days = min(body.get("valid_days", config["TRACKING_LINK_DAYS"]), config["TRACKING_LINK_DAYS"])
    token, expires = customer.make_link(order_id, days, current_app.extensions["dom.vault"])
    base = (config["PUBLIC_URL"] or request.host_url).rstrip("/")
    return jsonify(
        {
            "order_id": order_id,
            "url": f"{base}{url_for('customer.page', token=token)}",
            "expires_at": database.format_time(datetime.fromtimestamp(expires, UTC)),
        }
    )


@endpoint(
    bp,
    "/orders/<order_id>/cancel",
    "POST",
    summary="Cancel an order and release what it reserved",
    roles=CHANNELS,
    responses={
        200: "Cancelled (or already cancelled)",
        404: "No such order",
        409: "The order can no longer be cancelled (completed, or goods already shipped)",
    },
)
def cancel_order(order_id: str):
    db = get_db()
    visible_order(db, order_id)
    view = lifecycle.cancel(db, order_id)
    backorders.resume_raised_safely(db, [line["sku"] for line in view["lines"]])
    return jsonify(view)


@endpoint(
    bp,
    "/orders/<order_id>/release",
    "POST",
    summary="Release an order from its hold: it is decided again without the rules' holds",
    roles=CHANNELS,
    body="order-release",
    optional_body=True,
    responses={
        200: "Released and decided again (or released already)",
        404: "No such order",
        409: "The order is not on hold",
        422: "Invalid body, or a pickup store that cannot take the order",
    },
)
def release_order(order_id: str, body: dict):
    db = get_db()
    visible_order(db, order_id)
    return jsonify(lifecycle.release(db, order_id, body, g.principal.author))


OPEN_QUERY = (
    Param("reason", "Only orders waiting for this reason.", enum=waiting.REASONS),
    Param("limit", "Most orders listed (oldest first).", "integer", minimum=1, maximum=5000),
)


@endpoint(
    bp,
    "/reports/open-orders",
    "GET",
    summary="Every open order with why it waits, what happens next and its age; counts by reason",
    roles=READERS,
    query=OPEN_QUERY,
    responses={200: "The report", 422: "Invalid query"},
)
def open_orders_report():
    args = query_args(OPEN_QUERY)
    channels = None if g.principal.role != "channel" else g.principal.channels
    found = waiting.report(
        get_db(), reason=args.get("reason"), channels=channels, limit=args.get("limit") or 500
    )
    return jsonify(found)


@endpoint(
    bp,
    "/decisions/<decision_id>",
    "GET",
    summary="A decision with its explanation and timings",
    roles=READERS,
    responses={200: "The decision", 404: "No such decision"},
)
def get_decision(decision_id: str):
    record = visible_decision(get_db(), decision_id)
    if g.principal.role in ("admin", "analyst"):
        # Analysts read what the rules saw, without what identifies the customer.
        return jsonify({**record["decision"], "facts": casebook.anonymous_facts(record["facts"])})
    return jsonify(record["decision"])


@endpoint(
    bp,
    "/decisions/<decision_id>/scenario",
    "POST",
    summary="Turn a decision into a scenario of its ruleset's draft set, ready to edit",
    roles=("admin", "analyst"),
    body="decision_scenario",
    optional_body=True,
    responses={
        201: "The scenario, stored in the draft set",
        404: "No such decision",
        422: "The scenario does not fit the ruleset's latest version",
    },
)
def decision_scenario(decision_id: str, body: dict):
    db = get_db()
    record = decisions.get(db, decision_id)
    original = record["decision"]
    name = original["ruleset"]["name"]
    version = registry.get(db, name, original["ruleset"]["version"])
    facts = casebook.anonymous_facts(record["facts"])
    evaluation = runtime.evaluate(version, facts)
    outcome = kinds.of(version["document"]).outcome_of(facts, version)
    case = casebook.scenario({**original, "decision_id": decision_id}, facts, evaluation, outcome)
    if body.get("scenario"):
        case["scenario"] = body["scenario"]
    scenario_id = body.get("scenario_id") or f"from-{decision_id}"
    latest = registry.versions(db, name)[-1]
    found = runtime.scenario_problems(
        case, registry.get(db, name, latest["version"])["document"], schemas()
    )
    if found:
        raise InvalidInput(found, "the scenario does not fit the ruleset's latest version")
    stored, _ = registry.put_scenario(db, name, scenario_id, case, f"decision {decision_id}")
    return jsonify(stored), 201


@endpoint(
    bp,
    "/decisions/<decision_id>/why-not/<node_id>",
    "GET",
    summary="Why a node did not serve the order's lines",
    roles=READERS,
    responses={200: "The answer, line by line", 404: "No such decision"},
)
def why_not(decision_id: str, node_id: str):
    db = get_db()
    record = visible_decision(db, decision_id)
    nodes.get(db, node_id)  # 404 for a node that does not exist, not "it had no stock"
    decision = record["decision"]
    return jsonify(kinds.of_decision(decision).explain_why_not(decision, node_id))


@endpoint(
    bp,
    "/decisions/<decision_id>/replay",
    "POST",
    summary="Re-decide a stored decision from its facts, under its own or another version",
    roles=("admin", "analyst"),
    body="replay",
    optional_body=True,
    responses={200: "The replayed decision and whether it matches", 404: "No such decision"},
)
def replay(decision_id: str, body: dict):
    db = get_db()
    record = decisions.get(db, decision_id)
    original = record["decision"]
    number = body.get("version", original["ruleset"]["version"])
    version = registry.get(db, original["ruleset"]["name"], number)
    kind = kinds.of_decision(original)
    [replayed] = kind.replay_many([record], version)
    same = kind.reproduce(replayed) == kind.reproduce(original)
    return jsonify(
        {
            "decision_id": decision_id,
            "version": number,
            "identical": same,
            "original": kind.reproduce(original),
            "replayed": {**kind.reproduce(replayed), "explanation": replayed["explanation"]},
        }
    )
