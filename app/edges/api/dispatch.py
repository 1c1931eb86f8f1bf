"""Webhooks: deliveries and their attempts, channel subscriptions, node callbacks."""

from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify

from app.domain import subscriptions
from app.domain.network import nodes
from app.domain.shipments import get as get_shipment
from app.edges.api import listing
from app.edges.api.endpoints import Param, endpoint, query_args
from app.edges.dispatch import node_events
from app.lifecycle import backorders, fulfilment
from app.platform.db import get_db, normalize_time
from app.platform.errors import InvalidInput, field_error
from app.platform.messaging import brokers, outbox, signing, urls

bp = Blueprint("dispatch", __name__, url_prefix="/v1")

DELIVERY_QUERY = (
    Param("node_id", "Only messages for this node."),
    Param("status", "pending, delivered or dead.", enum=outbox.STATUSES),
    Param("event", "Only this event type, e.g. fulfillment.requested."),
    Param("since", "Created at or after this time (RFC 3339).", format="date-time"),
    Param("until", "Created before this time (RFC 3339).", format="date-time"),
    Param("limit", "At most this many (default 100).", "integer", minimum=1, maximum=1000),
)
RECOVER_QUERY = (
    Param(
        "since",
        "Replay dead messages created at or after this time (RFC 3339).",
        required=True,
        format="date-time",
    ),
)


def _times(args: dict) -> dict:
    for name in ("since", "until"):
        if name in args:
            try:
                args[name] = normalize_time(args[name])
            except ValueError as exc:
                raise InvalidInput([field_error((name,), "is not an RFC 3339 time")]) from exc
    return args


@endpoint(
    bp,
    "/node-events/failures",
    "GET",
    summary="Node events received over a broker that could not apply, with their errors,"
    " newest first (each is also in the broker's dead-letter queue)",
    roles=("admin",),
    query=listing.PAGE_QUERY,
    responses={200: "A page of refused events and the cursor of the next"},
)
def list_node_event_failures():
    args = query_args(listing.PAGE_QUERY)
    return listing.answer("failures", "failure_id", node_events.failures, args)


@endpoint(
    bp,
    "/deliveries",
    "GET",
    summary="Webhook deliveries, filtered",
    roles=("admin",),
    query=DELIVERY_QUERY,
)
def list_deliveries():
    args = _times(query_args(DELIVERY_QUERY))
    limit = min(max(args.get("limit", 100), 1), 1000)
    found = outbox.search(get_db(), args, limit)
    return jsonify({"deliveries": found, "count": len(found)})


@endpoint(
    bp,
    "/deliveries/<message_id>",
    "GET",
    summary="A delivery with every attempt",
    roles=("admin",),
    responses={200: "The delivery", 404: "No such delivery"},
)
def get_delivery(message_id: str):
    return jsonify(outbox.get(get_db(), message_id))


@endpoint(
    bp,
    "/deliveries/<message_id>/retry",
    "POST",
    summary="Send a message again now",
    roles=("admin",),
    responses={200: "Queued", 404: "No such delivery", 409: "Already delivered"},
)
def retry_delivery(message_id: str):
    return jsonify(outbox.retry(get_db(), message_id))


@endpoint(
    bp,
    "/nodes/<node_id>/deliveries/recover",
    "POST",
    summary="Replay every dead message of a node since a time; re-enable its endpoint",
    roles=("admin",),
    query=RECOVER_QUERY,
    responses={200: "Queued", 404: "No such node"},
)
def recover(node_id: str):
    args = _times(query_args(RECOVER_QUERY))
    db = get_db()
    nodes.get(db, node_id)
    nodes.reenable_webhook(db, node_id)
    return jsonify({"node_id": node_id, "requeued": outbox.recover(db, node_id, args["since"])})


@endpoint(
    bp,
    "/subscriptions",
    "POST",
    summary="Subscribe a URL (or a broker destination) to order events",
    roles=("admin", "channel"),
    body="subscription",
    responses={
        201: "Subscribed (a generated secret is shown this once)",
        422: "Invalid or unsafe URL",
    },
)
def subscribe(body: dict):
    if body.get("url"):
        try:
            urls.check(body["url"], current_app.config["WEBHOOK_ALLOW"], need_dns=False)
        except urls.UnsafeURL as exc:
            raise InvalidInput([field_error(("url",), str(exc))]) from exc
    brokers.check_configured(body.get("transport"), current_app.config)
    principal = g.principal
    if principal.role == "channel" and principal.channels is not None:
        # A channel key hears about its own channels' orders only.
        if body.get("channel") is None and len(principal.channels) == 1:
            body["channel"] = principal.channels[0]
        elif body.get("channel") is None:
            raise InvalidInput(
                [field_error(("channel",), f"name one of {', '.join(principal.channels)}")]
            )
        principal.require_channel(body["channel"])
    secret = body.get("secret") or signing.new_secret()
    created = subscriptions.create(
        get_db(), principal.key_id, body, secret, current_app.extensions["dom.vault"]
    )
    if "secret" not in body:
        created["secret"] = secret
    return jsonify(created), 201


def _owner() -> str | None:
    return None if g.principal.role == "admin" else g.principal.key_id


@endpoint(
    bp,
    "/subscriptions",
    "GET",
    summary="This key's subscriptions (all, for admin)",
    roles=("admin", "channel"),
)
def list_subscriptions():
    return jsonify({"subscriptions": subscriptions.list_for(get_db(), _owner())})


@endpoint(
    bp,
    "/subscriptions/<subscription_id>",
    "DELETE",
    summary="Unsubscribe",
    roles=("admin", "channel"),
    responses={204: "Deleted", 404: "No such subscription"},
)
def unsubscribe(subscription_id: str):
    subscriptions.delete(get_db(), subscription_id, _owner())
    return "", 204


@endpoint(
    bp,
    "/shipments/<shipment_id>/events",
    "POST",
    summary="A node reports on its shipment: accepted, rejected, picked, shipped, delivered",
    roles=("admin", "node"),
    body="shipment-event",
    responses={
        200: "Replay of an event already applied",
        201: "Applied",
        403: "The shipment belongs to another node",
        404: "No such shipment",
        409: "Not allowed in the shipment's state, or event id reused",
    },
)
def shipment_event(shipment_id: str, body: dict):
    db = get_db()
    g.principal.require_node(get_shipment(db, shipment_id)["node_id"])
    result, replayed = fulfilment.record_event(db, shipment_id, body, current_app.config)
    if not replayed and body["type"] == "rejected":
        backorders.resume_raised_safely(db, None)
    return jsonify({**result, "replayed": replayed}), 200 if replayed else 201
