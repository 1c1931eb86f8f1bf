"""Node events received over a message broker. Owns ``node_event_failures``.

A node whose system speaks to the retailer's broker publishes its events there instead
of calling ``POST /v1/shipments/{shipment_id}/events``. Each message is handled exactly as
that request is: the node proves who it is (the ``dom-node-id`` header and a Standard
Webhooks signature made with its signing secret, in place of its API key), the body is
checked against ``schemas/node-event.schema.json``, the event is applied with the same
idempotency and the same errors, and recorded.

The consumers run in the dispatcher process and acknowledge a message only once its
event is committed. An event that can never apply (bad signature, invalid body, unknown
shipment, a transition its state refuses) goes to a dead-letter queue with its error
body and is recorded here: never lost, never retried for ever. An event that failed for
a passing reason (the database unavailable) is left unacknowledged and comes back.
Several dispatchers consume one queue or durable consumer: each message goes to one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import threading
import time

from app.domain import shipments
from app.domain.network import nodes
from app.platform import db as database
from app.platform import logs, monitoring
from app.platform.db import Database
from app.platform.errors import ApiError, Forbidden, Unauthorized
from app.platform.messaging import brokers, signing
from app.platform.schemas import catalogue, parse_json

log = logging.getLogger(__name__)
NATS_CONSUMER = "dom-node-events"
BATCH = 10
# A passing failure is tried again after this long (the broker redelivers meanwhile).
RETRY_SECONDS = 2.0


class Refused(Exception):
    """The event can never apply: it goes to the dead-letter queue with ``error``."""

    def __init__(self, error: dict, node_id: str | None = None, shipment_id: str | None = None):
        super().__init__(error["error"]["message"])
        self.error = error
        self.node_id = node_id
        self.shipment_id = shipment_id


class TryLater(Exception):
    """The event could not be applied now (the database is away): leave it on the queue."""


def handle(db: Database, config, vault, headers: dict, body: bytes) -> dict:
    """Apply one node event from a broker message, as the HTTP endpoint would; return its
    result. Raises ``Refused`` (dead-letter it) or ``TryLater`` (leave it queued)."""
    from app.lifecycle import backorders, fulfilment

    lowered = {str(k).lower(): v for k, v in (headers or {}).items()}
    node_id = lowered.get("dom-node-id")
    shipment_id = None
    try:
        if not node_id:
            raise Unauthorized("the message names no node (header dom-node-id)")
        # No window on the timestamp: the broker hands each message over once and the
        # event id is idempotent per shipment, which is what the window guards over HTTP;
        # an event that waited out a dispatcher's outage in the queue is as good as new.
        problem = signing.verify(
            nodes.signing_secrets(db, str(node_id), vault),
            lowered,
            body,
            int(time.time()),
            tolerance=None,
        )
        if problem:
            raise Unauthorized(f"the message is not signed by node {node_id!r}: {problem}")
        document = parse_json(body)
        catalogue(config["SCHEMAS_DIR"]).validate("node-event", document)
        shipment_id = document["shipment_id"]
        if shipments.get(db, shipment_id)["node_id"] != node_id:
            raise Forbidden(f"shipment {shipment_id!r} belongs to another node")
        event = document["event"]
        result, replayed = fulfilment.record_event(db, shipment_id, event, config)
        if not replayed and event["type"] == "rejected":
            backorders.resume_raised_safely(db, None)
    except ApiError as exc:
        if db.in_transaction:
            db.rollback()
        if exc.status >= 500:
            raise TryLater(exc.message) from exc
        raise Refused(exc.body(), node_id, shipment_id) from exc
    logs.touch(shipment_id=shipment_id)
    return {**result, "replayed": replayed}


def record_failure(
    db: Database, transport: str, refused: Refused, message_id: str | None, body: bytes
) -> str:
    """Keep a refused event and its error (the broker's dead-letter queue has it too)."""
    failure_id = "nef_" + secrets.token_hex(8)
    with database.atomic(db):
        db.execute(
            "INSERT INTO node_event_failures (failure_id, transport, node_id, shipment_id,"
            " message_id, error, body, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                failure_id,
                transport,
                refused.node_id,
                refused.shipment_id,
                message_id,
                json.dumps(refused.error),
                body.decode("utf-8", "replace"),
                database.now(),
            ],
        )
    return failure_id


def failures(db: Database, after: tuple | None, limit: int) -> list[dict]:
    """Refused events, newest first (a page: ``after`` is (created_at, failure_id))."""
    sql = "SELECT * FROM node_event_failures"
    params: list = []
    if after:
        sql += " WHERE (created_at, failure_id) < (?, ?)"
        params += list(after)
    rows = db.execute(sql + " ORDER BY created_at DESC, failure_id DESC LIMIT ?", [*params, limit])
    return [{**dict(row), "error": json.loads(row["error"])} for row in rows]


def process(db: Database, config, vault, transport: str, headers: dict, body: bytes):
    """Handle one message; return ("ack", None), ("dead", error) or ("retry", None)."""
    lowered = {str(k).lower(): v for k, v in (headers or {}).items()}
    with logs.handling(lowered.get("x-request-id") or logs.new_request_id()):
        try:
            result = handle(db, config, vault, headers, body)
        except TryLater as exc:
            log.warning("node event left on the queue: %s", exc)
            return "retry", None
        except Refused as refused:
            record_failure(db, transport, refused, lowered.get("webhook-id"), body)
            monitoring.NODE_EVENTS.labels(transport, "dead").inc()
            logs.event(
                "node_event.dead_lettered",
                logging.WARNING,
                transport=transport,
                node_id=refused.node_id,
                shipment_id=refused.shipment_id,
                code=refused.error["error"]["code"],
                reason=refused.error["error"]["message"][:300],
            )
            return "dead", refused.error
        monitoring.NODE_EVENTS.labels(
            transport, "replayed" if result["replayed"] else "applied"
        ).inc()
        logs.event(
            "node_event.applied",
            transport=transport,
            node_id=lowered.get("dom-node-id"),
            shipment_id=result.get("shipment_id"),
            replayed=result["replayed"],
        )
        return "ack", None


# RabbitMQ ---------------------------------------------------------------------------------


class AmqpConsumer:
    """Consumes the node-events queue until stopped; dead letters go to ``<queue>.dead``."""

    kind = "amqp"

    def __init__(self, config, vault, stopping: threading.Event):
        self.config = config
        self.vault = vault
        self.stopping = stopping
        self.queue = config["NODE_EVENTS_QUEUE"]

    def run(self) -> None:
        import pika
        from pika import exceptions

        db = None
        while not self.stopping.is_set():
            connection = None
            try:
                if db is None:
                    db = database.open_from_config(self.config)
                parameters = pika.URLParameters(self.config["AMQP_URL"])
                parameters.connection_attempts = 1
                parameters.socket_timeout = self.config["BROKER_TIMEOUT_SECONDS"]
                connection = pika.BlockingConnection(parameters)
                channel = connection.channel()
                channel.confirm_delivery()
                channel.queue_declare(self.queue, durable=True)
                channel.queue_declare(f"{self.queue}.dead", durable=True)
                channel.basic_qos(prefetch_count=BATCH)
                for method, properties, body in channel.consume(self.queue, inactivity_timeout=0.5):
                    if self.stopping.is_set():
                        break
                    if method is None:
                        continue
                    headers = dict(properties.headers or {})
                    outcome, error = process(db, self.config, self.vault, "amqp", headers, body)
                    if outcome == "retry":
                        channel.basic_nack(method.delivery_tag, requeue=True)
                        raise TryLater("an event could not be applied now")
                    if outcome == "dead":
                        channel.basic_publish(
                            "",
                            f"{self.queue}.dead",
                            body,
                            pika.BasicProperties(
                                content_type="application/json",
                                delivery_mode=pika.DeliveryMode.Persistent,
                                headers={**headers, "dom-error": json.dumps(error)},
                            ),
                        )
                    channel.basic_ack(method.delivery_tag)
                with contextlib.suppress(exceptions.AMQPError):
                    channel.cancel()
            except (exceptions.AMQPError, OSError) as exc:
                log.warning(
                    "node events (amqp): the broker is unavailable: %s %s", type(exc).__name__, exc
                )
                self.stopping.wait(RETRY_SECONDS)
            except (database.DatabaseUnavailable, TryLater) as exc:
                log.warning("node events (amqp): waiting for the database: %s", exc)
                if db is not None:
                    db.close()
                    db = None
                self.stopping.wait(RETRY_SECONDS)
            finally:
                if connection is not None and connection.is_open:
                    with contextlib.suppress(exceptions.AMQPError, OSError):
                        connection.close()
        if db is not None:
            db.close()


# NATS JetStream ----------------------------------------------------------------------------


class NatsConsumer:
    """Consumes node events from JetStream through one durable consumer shared by every
    dispatcher; dead letters go to the dead-letter stream (``streams``)."""

    kind = "nats"

    def __init__(self, config, vault, stopping: threading.Event):
        self.config = config
        self.vault = vault
        self.stopping = stopping
        self.subject = config["NODE_EVENTS_SUBJECT"]
        self.stream, self.dead_stream = streams(self.subject)

    def run(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        from nats import errors as nats_errors
        from nats.js import api
        from nats.js import errors as js_errors

        db = None
        timeout = self.config["BROKER_TIMEOUT_SECONDS"]
        while not self.stopping.is_set():
            client = None
            try:
                if db is None:
                    db = database.open_from_config(self.config)
                client = await brokers.nats_connect(self.config["NATS_URL"], timeout)
                jetstream = client.jetstream(timeout=timeout)
                for stream, subject in (
                    (self.stream, f"{self.subject}.>"),
                    (self.dead_stream, f"{self.subject}-dead.>"),
                ):
                    try:
                        await jetstream.stream_info(stream)
                    except js_errors.NotFoundError:
                        await jetstream.add_stream(name=stream, subjects=[subject])
                subscription = await jetstream.pull_subscribe(
                    f"{self.subject}.>",
                    durable=NATS_CONSUMER,
                    stream=self.stream,
                    config=api.ConsumerConfig(
                        ack_wait=max(30.0, timeout * 3), max_deliver=-1, ack_policy="explicit"
                    ),
                )
                while not self.stopping.is_set():
                    try:
                        messages = await subscription.fetch(BATCH, timeout=0.5)
                    except (nats_errors.TimeoutError, TimeoutError):
                        continue  # nothing came within the wait (nats-py raises either)
                    for message in messages:
                        headers = dict(message.headers or {})
                        outcome, error = process(
                            db, self.config, self.vault, "nats", headers, message.data
                        )
                        if outcome == "retry":
                            await message.nak(delay=RETRY_SECONDS)
                            raise TryLater("an event could not be applied now")
                        if outcome == "dead":
                            node = str(headers.get("dom-node-id") or "unknown")
                            safe = "".join(c if c.isalnum() or c in "_-" else "_" for c in node)
                            await jetstream.publish(
                                f"{self.subject}-dead.{safe or 'unknown'}",
                                message.data,
                                stream=self.dead_stream,
                                headers={**headers, "dom-error": json.dumps(error)},
                            )
                        await message.ack_sync(timeout=timeout)
            except (nats_errors.Error, js_errors.Error, OSError, TimeoutError) as exc:
                log.warning(
                    "node events (nats): the broker is unavailable: %s %s", type(exc).__name__, exc
                )
                await asyncio.sleep(RETRY_SECONDS)
            except (database.DatabaseUnavailable, TryLater) as exc:
                log.warning("node events (nats): waiting for the database: %s", exc)
                if db is not None:
                    db.close()
                    db = None
                await asyncio.sleep(RETRY_SECONDS)
            finally:
                if client is not None:
                    with contextlib.suppress(Exception):
                        await client.close()
        if db is not None:
            db.close()


def streams(subject: str) -> tuple[str, str]:
    """The JetStream streams of the node-events subject and of its dead letters, named after
    it: dom.node-events -> DOM_NODE_EVENTS and DOM_NODE_EVENTS_DEAD."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", subject).upper()
    return name, f"{name}_DEAD"


CONSUMERS = {"amqp": AmqpConsumer, "nats": NatsConsumer}
