"""Inventory: feeds, in-transit transfers, safety stock, ATP per SKU and availability."""

from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify

from app.domain.network import availability, receipts, skus, stock, transfers
from app.edges.api.endpoints import READERS, Param, created_or_ok, endpoint, query_args
from app.lifecycle import backorders, holds
from app.platform.db import get_db, now
from app.platform.errors import InvalidInput, NotFound, field_error

bp = Blueprint("inventory", __name__, url_prefix="/v1")

AVAILABILITY_QUERY = (
    Param(
        "sku", "A SKU to report; repeat for several (at most 100).", required=True, repeated=True
    ),
    Param(
        "lat", "Latitude of the point to measure distance from.", "number", minimum=-90, maximum=90
    ),
    Param(
        "lon",
        "Longitude of the point to measure distance from.",
        "number",
        minimum=-180,
        maximum=180,
    ),
    Param(
        "radius_km",
        "Only nodes within this distance of lat/lon.",
        "number",
        minimum=0,
        maximum=40_075,
    ),
)
MAX_AVAILABILITY_SKUS = 100


@endpoint(
    bp,
    "/inventory/feeds",
    "POST",
    summary="Apply an inventory feed (snapshot or delta) from a node",
    roles=("admin", "node"),
    body="inventory-feed",
    responses={
        200: "Replay of a feed already applied: its first result",
        201: "Applied",
        403: "A node key feeding another node",
        409: "feed_id reused with a different body",
        422: "Invalid feed; nothing applied",
    },
)
def post_feed(body: dict):
    g.principal.require_node(body["node_id"])
    db = get_db()
    result, replayed = holds.apply_feed(db, body, current_app.config)
    resumed = [] if replayed else backorders.resume_raised_safely(db, _counted(body))
    return jsonify({**result, "replayed": replayed, "backorders_resumed": resumed}), (
        200 if replayed else 201
    )


def _counted(feed: dict) -> list[str] | None:
    """The SKUs a feed may have raised (None: any SKU at the node, for a complete snapshot)."""
    if feed["mode"] == "snapshot" and feed.get("complete"):
        return None
    return sorted({item["sku"] for item in feed["items"]})


@endpoint(
    bp,
    "/inventory/transfers",
    "POST",
    summary="Record stock in transit to a node",
    roles=("admin", "node"),
    body="transfer",
    responses={200: "Replay", 201: "Recorded", 409: "transfer_id reused", 422: "Invalid"},
)
def post_transfer(body: dict):
    principal = g.principal
    if principal.role == "node" and principal.node_id not in (
        body.get("origin_node_id"),
        body["destination_node_id"],
    ):
        principal.require_node(body["destination_node_id"])
    transfer, created = transfers.create(get_db(), body)
    return created_or_ok(transfer, created)


@endpoint(
    bp,
    "/inventory/transfers/<transfer_id>",
    "GET",
    summary="Read a transfer",
    roles=(*READERS, "node"),
    responses={200: "The transfer", 404: "No such transfer"},
)
def get_transfer(transfer_id: str):
    transfer = transfers.get(get_db(), transfer_id)
    principal = g.principal
    if principal.role == "node" and principal.node_id not in (
        transfer["origin_node_id"],
        transfer["destination_node_id"],
    ):
        # A node reads only the transfers it is party to; others look as if absent.
        raise NotFound(f"transfer {transfer_id!r} does not exist")
    return jsonify(transfer)


@endpoint(
    bp,
    "/inventory/transfers/<transfer_id>/receipt",
    "POST",
    summary="Receive a transfer: its quantity moves into on-hand at the destination",
    roles=("admin", "node"),
    body="transfer-receipt",
    responses={200: "Already received (replay)", 201: "Received", 409: "Received differently"},
)
def post_receipt(transfer_id: str, body: dict):
    db = get_db()
    g.principal.require_node(transfers.get(db, transfer_id)["destination_node_id"])
    transfer, received_now = receipts.receive(db, transfer_id, body)
    resumed = backorders.resume_raised_safely(db, [transfer["sku"]]) if received_now else []
    return created_or_ok({**transfer, "backorders_resumed": resumed}, received_now)


@endpoint(
    bp,
    "/nodes/<node_id>/safety-stock/<sku>",
    "PUT",
    summary="Set the safety stock of a SKU at a node",
    roles=("admin",),
    body="safety-stock",
    responses={200: "Set", 404: "No such node or SKU"},
)
def put_safety_stock(node_id: str, sku: str, body: dict):
    return jsonify(stock.set_safety_stock(get_db(), node_id, sku, body["quantity"]))


@endpoint(
    bp,
    "/safety-stock/defaults/<node_type>",
    "PUT",
    summary="Set the default safety stock for a node type",
    roles=("admin",),
    body="safety-stock",
    responses={200: "Set", 404: "No such node type"},
)
def put_default_safety_stock(node_type: str, body: dict):
    return jsonify(stock.set_default_safety_stock(get_db(), node_type, body["quantity"]))


@endpoint(
    bp,
    "/safety-stock/defaults",
    "GET",
    summary="Read the default safety stock per node type",
    roles=READERS,
)
def get_default_safety_stock():
    return jsonify({"defaults": stock.default_safety_stock(get_db())})


@endpoint(
    bp,
    "/inventory/<sku>",
    "GET",
    summary="Stock of a SKU at every node: on hand, reserved, safety stock, ATP, in transit",
    roles=READERS,
    responses={200: "The SKU's inventory", 404: "No such SKU"},
)
def get_inventory(sku: str):

    db = get_db()
    skus.get(db, sku)  # 404 for an unknown SKU rather than an empty view
    moment = now()
    view = availability.inventory_view(
        sku, stock.positions(db, [sku]), transfers.in_transit(db, [sku]), moment
    )
    return jsonify({**view, "as_of": moment})


@endpoint(
    bp,
    "/availability",
    "GET",
    summary="ATP per SKU across the network or within a radius, nearest nodes first",
    roles=READERS,
    query=AVAILABILITY_QUERY,
    responses={200: "Availability", 422: "Invalid query"},
)
def get_availability():
    args = query_args(AVAILABILITY_QUERY)
    problems = []
    sku_list = list(dict.fromkeys(args["sku"]))
    if len(sku_list) > MAX_AVAILABILITY_SKUS:
        problems.append(field_error(("sku",), f"at most {MAX_AVAILABILITY_SKUS} SKUs"))
    has_point = "lat" in args or "lon" in args
    if has_point and not ("lat" in args and "lon" in args):
        problems.append(field_error(("lat" if "lat" not in args else "lon",), "give lat and lon"))
    if "radius_km" in args and not has_point:
        problems.append(field_error(("radius_km",), "needs lat and lon"))
    if problems:
        raise InvalidInput(problems, "the query string has invalid parameters")
    moment = now()
    result = availability.availability(
        sku_list,
        stock.positions(get_db(), sku_list),
        args.get("lat"),
        args.get("lon"),
        args.get("radius_km"),
    )
    return jsonify({**result, "as_of": moment})
