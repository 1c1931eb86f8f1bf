"""Nodes and SKUs: the shape of the network."""

from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify

from app.domain.network import nodes, skus, stock
from app.edges.api.endpoints import ALL_ROLES, Param, created_or_ok, endpoint, query_args
from app.kinds.promising import dates
from app.platform.db import atomic, get_db
from app.platform.errors import InvalidInput, field_error
from app.platform.messaging import brokers, urls

bp = Blueprint("network", __name__, url_prefix="/v1")

NODE_QUERY = (
    Param("type", "Only nodes of this type.", enum=nodes.NODE_TYPES),
    Param("active", "Only active (true) or inactive (false) nodes.", "boolean"),
)


@endpoint(
    bp,
    "/nodes/<node_id>",
    "PUT",
    summary="Create or replace a node",
    roles=("admin",),
    body="node",
    responses={200: "Replaced", 201: "Created", 422: "Invalid node"},
)
def put_node(node_id: str, body: dict):
    _check_timezone(body["timezone"])
    problems = dates.fulfilment_problems(body.get("fulfilment"))
    if problems:
        raise InvalidInput(problems)
    if body.get("webhook"):
        try:
            urls.check(body["webhook"]["url"], current_app.config["WEBHOOK_ALLOW"], need_dns=False)
        except urls.UnsafeURL as exc:
            raise InvalidInput([field_error(("webhook", "url"), str(exc))]) from exc
    check_transport(body, current_app.config)
    db = get_db()
    with atomic(db):
        node, created = nodes.put(
            db,
            node_id,
            body,
            current_app.extensions["dom.vault"],
            current_app.config["WEBHOOK_SECRET_GRACE_SECONDS"],
        )
        # An active node (perhaps just reactivated, or able to do more) may serve back-orders.
        if node["active"]:
            stock.note_raised_at(db, node_id=node_id)
    return created_or_ok(node, created)


def check_transport(body: dict, config) -> None:
    """422 for a broker transport beside a webhook, or one whose broker is not configured."""
    if body.get("transport") and body.get("webhook"):
        raise InvalidInput(
            [field_error(("transport",), "messages go by webhook or by a broker, not both")]
        )
    brokers.check_configured(body.get("transport"), config)


def _check_timezone(name: str) -> None:
    problems = dates.timezone_problems(name, ("timezone",))
    if problems:
        raise InvalidInput(problems)


@endpoint(
    bp,
    "/nodes/<node_id>",
    "GET",
    summary="Read a node (never its webhook secret)",
    roles=ALL_ROLES,
    responses={200: "The node", 404: "No such node"},
)
def get_node(node_id: str):
    return jsonify(_for_role(nodes.get(get_db(), node_id)))


def _for_role(node: dict) -> dict:
    """A node as this key may see it: its webhook (URL, failures) is for admins only."""
    if g.principal.role != "admin":
        node.pop("webhook", None)
    return node


@endpoint(
    bp,
    "/nodes",
    "GET",
    summary="List nodes",
    roles=ALL_ROLES,
    query=NODE_QUERY,
    responses={200: "The nodes", 422: "Invalid filter"},
)
def list_nodes():
    args = query_args(NODE_QUERY)
    if "type" in args and args["type"] not in nodes.NODE_TYPES:
        raise InvalidInput(
            [field_error(("type",), f"must be one of {', '.join(nodes.NODE_TYPES)}")]
        )
    found = [_for_role(n) for n in nodes.list_nodes(get_db(), args.get("type"), args.get("active"))]
    return jsonify({"nodes": found, "count": len(found)})


@endpoint(
    bp,
    "/skus/<sku>",
    "PUT",
    summary="Create or replace a SKU and its drop-ship suppliers",
    roles=("admin",),
    body="sku",
    responses={200: "Replaced", 201: "Created", 422: "Invalid SKU"},
)
def put_sku(sku: str, body: dict):
    document, created = skus.put(get_db(), sku, body)
    return created_or_ok(document, created)


SKU_QUERY = (
    Param("q", "Only SKUs whose code or name contains this text (any case)."),
    Param("limit", "At most this many (default 50).", "integer", minimum=1, maximum=500),
)


@endpoint(
    bp,
    "/skus",
    "GET",
    summary="SKUs by code, or those whose code or name contains some text",
    roles=ALL_ROLES,
    query=SKU_QUERY,
    responses={200: "The SKUs", 422: "Invalid filter"},
)
def list_skus():
    args = query_args(SKU_QUERY)
    found = skus.search(get_db(), args.get("q"), args.get("limit", 50))
    return jsonify({"skus": found, "count": len(found)})


@endpoint(
    bp,
    "/skus/<sku>",
    "GET",
    summary="Read a SKU",
    roles=ALL_ROLES,
    responses={200: "The SKU", 404: "No such SKU"},
)
def get_sku(sku: str):
    return jsonify(skus.get(get_db(), sku))
