"""Replenishment: demand feeds, supplier catalogues, runs, approval, and what suppliers
and DCs report on the orders they were sent."""

from __future__ import annotations

from flask import Blueprint, g, jsonify

from app.edges.api.endpoints import created_or_ok, endpoint
from app.kinds.replenishment import demand, runs, suppliers
from app.lifecycle import backorders
from app.platform.db import get_db
from app.platform.errors import NotFound

bp = Blueprint("replenishment", __name__, url_prefix="/v1")

PLANNERS = ("admin", "analyst")


@endpoint(
    bp,
    "/demand/feeds",
    "POST",
    summary="Record units sold per node, SKU and day (sales this service does not see)",
    roles=("admin", "node"),
    body="demand-feed",
    responses={
        200: "Replay of a feed already recorded: its first result",
        201: "Recorded",
        403: "A node key reporting another node's sales",
        409: "feed_id reused with a different body",
        422: "Invalid feed; nothing recorded",
    },
)
def post_demand_feed(body: dict):
    for node_id in sorted({item["node_id"] for item in body["items"]}):
        g.principal.require_node(node_id)
    result, replayed = demand.apply_feed(get_db(), body)
    return jsonify({**result, "replayed": replayed}), 200 if replayed else 201


@endpoint(
    bp,
    "/suppliers/<supplier_id>/catalogue",
    "PUT",
    summary="Replace a supplier's terms and catalogue (price, pack, minimums, lead time per SKU)",
    roles=("admin", "node"),
    body="supplier-catalogue",
    responses={
        200: "Replaced",
        201: "The supplier's first catalogue",
        403: "A node key for another node",
        404: "No supplier node with this id",
        422: "Invalid catalogue; nothing changed",
    },
)
def put_catalogue(supplier_id: str, body: dict):
    g.principal.require_node(supplier_id)
    catalogue, created = suppliers.put_catalogue(get_db(), supplier_id, body)
    return created_or_ok(catalogue, created)


@endpoint(
    bp,
    "/suppliers/<supplier_id>/catalogue",
    "GET",
    summary="Read a supplier's terms and catalogue",
    roles=(*PLANNERS, "node"),
    responses={200: "The catalogue", 404: "No catalogue for this supplier"},
)
def get_catalogue(supplier_id: str):
    g.principal.require_node(supplier_id)
    return jsonify(suppliers.get_catalogue(get_db(), supplier_id))


@endpoint(
    bp,
    "/replenishment/runs",
    "POST",
    summary="Plan replenishment now: proposed purchase orders and transfers for the positions"
    " in scope",
    roles=PLANNERS,
    body="replenishment-run",
    optional_body=True,
    responses={
        200: "The same run again",
        201: "Planned",
        404: "No active replenishment ruleset",
        409: "run_id reused with a different body",
        422: "Unknown nodes or SKUs in the scope",
    },
)
def post_run(body: dict):
    run, created = runs.start(get_db(), body, g.principal.author)
    return created_or_ok(run, created)


@endpoint(
    bp,
    "/replenishment/runs",
    "GET",
    summary="The latest replenishment runs, newest first",
    roles=PLANNERS,
)
def list_runs():
    return jsonify({"runs": runs.list_runs(get_db())})


@endpoint(
    bp,
    "/replenishment/runs/<run_id>",
    "GET",
    summary="A run: its progress, totals and orders",
    roles=PLANNERS,
    responses={200: "The run", 404: "No such run"},
)
def get_run(run_id: str):
    return jsonify(runs.get(get_db(), run_id))


@endpoint(
    bp,
    "/replenishment/runs/<run_id>/approve",
    "POST",
    summary="Approve a run's proposed orders, all or some, whole or cut down; they are sent",
    roles=PLANNERS,
    body="replenishment-approval",
    optional_body=True,
    responses={
        200: "Approved (orders already approved are listed as unchanged)",
        404: "No such run",
        409: "A dry run",
        422: "Orders or lines not in the run, or more than proposed",
    },
)
def approve(run_id: str, body: dict):
    return jsonify(runs.approve(get_db(), run_id, body, g.principal.author))


def _order_visible(db, order_id: str) -> dict:
    """The order, if this key may see it: a node key the orders it supplies or receives."""
    order = runs.get_order(db, order_id)
    principal = g.principal
    if principal.role == "node" and principal.node_id not in (
        order["source_node_id"],
        order["destination_node_id"],
    ):
        raise NotFound(f"replenishment order {order_id!r} does not exist")
    return order


@endpoint(
    bp,
    "/replenishment/orders/<order_id>",
    "GET",
    summary="A purchase order or transfer, with each line's explanation",
    roles=(*PLANNERS, "node"),
    responses={200: "The order", 404: "No such order for this key"},
)
def get_order(order_id: str):
    db = get_db()
    order = _order_visible(db, order_id)
    if g.principal.role != "node":
        order["explanation"] = runs.explain(db, order_id)
    return jsonify(order)


@endpoint(
    bp,
    "/replenishment/orders/<order_id>",
    "DELETE",
    summary="Cancel an order not yet accepted; a supplier or DC already asked is told",
    roles=PLANNERS,
    responses={200: "Cancelled", 404: "No such order", 409: "Already accepted"},
)
def cancel_order(order_id: str):
    return jsonify(runs.cancel(get_db(), order_id))


@endpoint(
    bp,
    "/replenishment/orders/<order_id>/events",
    "POST",
    summary="Report on an order: accepted, rejected or shipped (its source), received (its"
    " destination)",
    roles=("admin", "node"),
    body="replenishment-event",
    responses={
        200: "The same event again: its first result",
        201: "Applied",
        404: "No such order for this key",
        409: "Out of order, or event_id reused with a different body",
        422: "Invalid event",
    },
)
def post_event(order_id: str, body: dict):
    db = get_db()
    order = _order_visible(db, order_id)
    side = "destination_node_id" if body["type"] == "received" else "source_node_id"
    g.principal.require_node(order[side])
    result, replayed, raised = runs.record_event(db, order_id, body, g.principal.author)
    if raised:
        # A receipt puts stock on the shelf: the orders waiting for it go first.
        result["backorders_resumed"] = backorders.resume_raised_safely(db, raised)
    return created_or_ok(result, not replayed)
