"""Returns: channels ask for them, return points report on them."""

from __future__ import annotations

from flask import Blueprint, g, jsonify

from app.domain import orders
from app.edges.api.endpoints import created_or_ok, endpoint, version_to_simulate
from app.kinds.returns import returns
from app.lifecycle import backorders
from app.platform.db import get_db
from app.platform.errors import NotFound

bp = Blueprint("returns", __name__, url_prefix="/v1")

CHANNELS = ("admin", "channel")


def _visible(db, return_id: str) -> dict:
    """The return, if this key may see it: a channel its channels' returns, a node the
    returns it is the point of (as if the others did not exist)."""
    found = returns.get(db, return_id)
    principal = g.principal
    hidden = (principal.role == "channel" and not principal.sees_channel(found["channel"])) or (
        principal.role == "node" and principal.node_id != found["point"]
    )
    if hidden:
        raise NotFound(f"return {return_id!r} does not exist")
    return found


def _order_visible(db, order_id: str) -> None:
    """404 for another channel's order, as if it did not exist; an unknown order is the
    return's 422 (its ``order_id`` is a field of the body)."""
    order = orders.find(db, order_id)
    if order is not None and not g.principal.sees_channel(order["channel"]):
        raise NotFound(f"order {order_id!r} does not exist")


@endpoint(
    bp,
    "/returns",
    "POST",
    summary="Return goods of an order: where they go, their disposition and the refund",
    roles=CHANNELS,
    body="return",
    responses={
        200: "The same return again: its decision",
        201: "Decided",
        404: "No such order for this key",
        409: "The return id was used with a different body",
        422: "Invalid return, or lines not delivered, over what was delivered, or past the"
        " return window",
    },
)
def post_return(body: dict):
    db = get_db()
    _order_visible(db, body["order_id"])
    found, created = returns.create(db, body)
    return created_or_ok(found, created)


@endpoint(
    bp,
    "/returns/simulate",
    "POST",
    summary="What would happen to a return: decided without recording, under a version or a draft",
    roles=("admin", "analyst", "channel"),
    body="return-simulation",
    responses={
        200: "The simulated decision",
        403: "A channel key sent a draft or a version",
        404: "No such order for this key, or no such ruleset version",
        422: "Invalid return, lines that cannot be returned, or an invalid draft",
    },
)
def simulate(body: dict):
    db = get_db()
    draft = body.pop("draft_ruleset", None)
    number = body.pop("ruleset_version", None)
    _order_visible(db, body["order_id"])
    version = version_to_simulate(db, returns.RULESET, draft, number)
    return jsonify(returns.simulate(db, body, version))


@endpoint(
    bp,
    "/returns/<return_id>",
    "GET",
    summary="A return: its point, lines, dispositions, refund, events and explanation",
    roles=("admin", "analyst", "channel", "node"),
    responses={200: "The return", 404: "No such return"},
)
def get_return(return_id: str):
    return jsonify(_visible(get_db(), return_id))


@endpoint(
    bp,
    "/returns/<return_id>",
    "DELETE",
    summary="Withdraw a return its point has not received; the point is told",
    roles=CHANNELS,
    responses={
        200: "Withdrawn (or already)",
        404: "No such return",
        409: "The point has received it",
    },
)
def cancel_return(return_id: str):
    db = get_db()
    _visible(db, return_id)
    return jsonify(returns.cancel(db, return_id))


@endpoint(
    bp,
    "/returns/<return_id>/events",
    "POST",
    summary="A return point reports: received, inspected (condition per line), disposed",
    roles=("admin", "node"),
    body="return-event",
    responses={
        200: "Replay of an event already applied",
        201: "Applied",
        403: "The return goes to another point",
        404: "No such return",
        409: "Not allowed in the return's state, or event id reused",
        422: "Invalid event, or an inspection that does not report every line",
    },
)
def return_event(return_id: str, body: dict):
    db = get_db()
    point = returns.get(db, return_id)["point"]
    g.principal.require_node(point or "")
    result, replayed, raised = returns.record_event(db, return_id, body)
    if raised:
        backorders.resume_raised_safely(db, raised)
    return jsonify({**result, "replayed": replayed}), 200 if replayed else 201


@endpoint(
    bp,
    "/returns/<return_id>/why-not/<node_id>",
    "GET",
    summary="Why a node did not take a return: not a point, excluded (by which rule), or dearer",
    roles=("admin", "analyst"),
    responses={200: "The reason", 404: "No such return or node"},
)
def why_not(return_id: str, node_id: str):
    return jsonify(returns.why_not(get_db(), return_id, node_id))
