"""Publishing outbox messages to message brokers: RabbitMQ (AMQP 0-9-1, with pika) and NATS
JetStream (with nats-py).

A message goes out exactly as a webhook would: the same id, the same body, and the
Standard Webhooks headers (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``)
as message headers, so a consumer verifies it the same way. It counts as delivered only
once the broker has confirmed it (a publisher confirm on RabbitMQ, a JetStream
acknowledgement on NATS), and it is persistent there. Whatever goes wrong is an
``Outcome`` with an error class, retried on the outbox's schedule like a failed webhook.

The clients are imported, and connections opened, only when a message is published:
a service whose nodes all use webhooks needs no broker. Broker URLs and credentials
come from the settings only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from datetime import UTC, datetime

from app.platform.db import format_time
from app.platform.errors import InvalidInput, field_error
from app.platform.messaging import signing
from app.platform.messaging.deliver import EXCERPT, Outcome

KINDS = ("amqp", "nats")
# The setting that holds each broker's URL.
SETTING = {"amqp": "AMQP_URL", "nats": "NATS_URL"}


def destination(transport: dict | None) -> str | None:
    """A broker transport as stored: where to publish, never a secret."""
    if not transport:
        return None
    return json.dumps({k: v for k, v in sorted(transport.items()) if k != "secret"})


def check_configured(transport: dict | None, config, at: tuple = ("transport",)) -> None:
    """422 when a transport names a broker this service has no URL for."""
    if not transport:
        return
    setting = SETTING[transport["kind"]]
    if not config[setting]:
        raise InvalidInput(
            [
                field_error(
                    (*at, "kind"),
                    f"no {transport['kind']} broker is configured (set DOM_{setting})",
                )
            ]
        )


def message_headers(
    secrets_in_use: list[str], message_id: str, body: bytes, event_type: str, request_id
) -> dict:
    headers = {
        "content-type": "application/json",
        "dom-event-type": event_type,
        **signing.headers(secrets_in_use, message_id, int(time.time()), body),
    }
    if request_id:
        headers["x-request-id"] = request_id
    return headers


class Brokers:
    """This dispatcher's broker connections, opened on first use and again after a failure."""

    def __init__(self, config):
        self.config = config
        self._amqp = None
        self._nats = None

    def publish(
        self, transport: dict, secrets_in_use: list[str], message: dict, body: bytes
    ) -> Outcome:
        """Publish one message to the transport's broker; never raises."""
        started = time.perf_counter()
        started_at = format_time(datetime.now(UTC))

        def finished(**fields) -> Outcome:
            return Outcome(started_at, round((time.perf_counter() - started) * 1000, 3), **fields)

        url = self.config[SETTING[transport["kind"]]]
        if not url:
            return finished(
                error_class="no_broker",
                excerpt=f"DOM_{SETTING[transport['kind']]} is not set",
            )
        headers = message_headers(
            secrets_in_use,
            message["message_id"],
            body,
            message["event_type"],
            message.get("request_id"),
        )
        try:
            if transport["kind"] == "amqp":
                if self._amqp is None:
                    self._amqp = AmqpPublisher(url, self.config["BROKER_TIMEOUT_SECONDS"])
                self._amqp.publish(transport, message["message_id"], body, headers)
            else:
                if self._nats is None:
                    self._nats = NatsPublisher(url, self.config["BROKER_TIMEOUT_SECONDS"])
                self._nats.publish(transport, message["message_id"], body, headers)
        except BrokerError as exc:
            return finished(error_class=exc.error_class, excerpt=str(exc)[:EXCERPT])
        except Exception as exc:  # whatever the client raises is an outcome, not a crash
            return finished(error_class="broker", excerpt=f"{type(exc).__name__}: {exc}"[:EXCERPT])
        return finished(confirmed=True)

    def close(self) -> None:
        for publisher in (self._amqp, self._nats):
            if publisher is not None:
                publisher.close()
        self._amqp = self._nats = None


class BrokerError(Exception):
    """A publish that the broker did not confirm; ``error_class`` says how it failed."""

    def __init__(self, error_class: str, message: str):
        super().__init__(message)
        self.error_class = error_class


# RabbitMQ ---------------------------------------------------------------------------------


class AmqpPublisher:
    """One pika connection and confirming channel (pika is not thread-safe: one per thread)."""

    def __init__(self, url: str, timeout: float):
        self.url = url
        self.timeout = timeout
        self.connection = None
        self.channel = None
        self.declared: set[str] = set()

    def _connect(self) -> None:
        import pika

        parameters = pika.URLParameters(self.url)
        parameters.socket_timeout = self.timeout
        parameters.blocked_connection_timeout = self.timeout
        parameters.connection_attempts = 1
        self.connection = pika.BlockingConnection(parameters)
        self.channel = self.connection.channel()
        self.channel.confirm_delivery()
        self.declared = set()

    def _ready(self) -> None:
        """An open connection: a kept one is checked first (an idle dispatcher answers no
        heartbeats, so the broker may have closed it meanwhile) and replaced if it is gone."""
        from pika import exceptions

        if self.connection is not None and self.connection.is_open:
            try:
                self.connection.process_data_events(0)
            except (exceptions.AMQPError, OSError):
                self.close()
        if self.connection is None or self.connection.is_closed:
            self._connect()

    def publish(self, transport: dict, message_id: str, body: bytes, headers: dict) -> None:
        import pika
        from pika import exceptions

        try:
            self._ready()
            exchange = transport["exchange"]
            if exchange not in self.declared:
                self.channel.exchange_declare(exchange, exchange_type="topic", durable=True)
                self.declared.add(exchange)
            self.channel.basic_publish(
                exchange,
                transport["routing_key"],
                body,
                pika.BasicProperties(
                    content_type="application/json",
                    delivery_mode=pika.DeliveryMode.Persistent,
                    message_id=message_id,
                    headers=headers,
                ),
                mandatory=True,
            )
        except exceptions.UnroutableError as exc:
            raise BrokerError(
                "unroutable",
                f"no queue is bound to exchange {transport['exchange']!r} for routing key"
                f" {transport['routing_key']!r}",
            ) from exc
        except exceptions.NackError as exc:
            raise BrokerError("nack", "the broker refused the message") from exc
        except exceptions.ChannelClosedByBroker as exc:
            self.close()
            raise BrokerError("broker", f"the broker closed the channel: {exc}") from exc
        except (exceptions.AMQPError, OSError) as exc:
            self.close()
            raise BrokerError("connect", f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        connection, self.connection, self.channel = self.connection, None, None
        if connection is not None and connection.is_open:
            # Closing a broken connection: nothing more to do if that fails too.
            with contextlib.suppress(Exception):
                connection.close()


# NATS JetStream ----------------------------------------------------------------------------


class NatsPublisher:
    """A NATS connection on an event loop of its own thread, for a synchronous caller."""

    def __init__(self, url: str, timeout: float):
        self.url = url
        self.timeout = timeout
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="nats")
        self.thread.start()
        self.client = None
        self.streams: set[tuple[str, str]] = set()  # (stream, subject) known to be taken

    def publish(self, transport: dict, message_id: str, body: bytes, headers: dict) -> None:
        future = asyncio.run_coroutine_threadsafe(
            self._publish(transport, message_id, body, headers), self.loop
        )
        try:
            future.result(self.timeout * 2 + 1)
        except BrokerError:
            raise
        except TimeoutError as exc:
            future.cancel()
            self._drop()
            raise BrokerError("timeout", "the broker did not acknowledge in time") from exc

    async def _publish(self, transport: dict, message_id: str, body: bytes, headers: dict):
        from nats import errors as nats_errors
        from nats.js import errors as js_errors

        try:
            if self.client is None or not self.client.is_connected:
                self.client = await nats_connect(self.url, self.timeout)
                self.streams = set()
            jetstream = self.client.jetstream(timeout=self.timeout)
            stream = transport["stream"]
            if (stream, transport["subject"]) not in self.streams:
                await _ensure_stream(jetstream, stream, transport["subject"])
                self.streams.add((stream, transport["subject"]))
            # Nats-Msg-Id: the stream keeps one copy of a message published twice.
            await jetstream.publish(
                transport["subject"],
                body,
                timeout=self.timeout,
                stream=stream,
                headers={**headers, "Nats-Msg-Id": message_id},
            )
        except js_errors.NoStreamResponseError as exc:
            raise BrokerError(
                "no_stream", f"no stream takes subject {transport['subject']!r}"
            ) from exc
        except js_errors.APIError as exc:
            raise BrokerError("broker", f"JetStream refused the message: {exc}") from exc
        except (nats_errors.Error, OSError, TimeoutError) as exc:
            await self._close()
            timed_out = isinstance(exc, nats_errors.TimeoutError | TimeoutError)
            kind = "timeout" if timed_out else "connect"
            raise BrokerError(kind, f"{type(exc).__name__}: {exc}") from exc

    async def _close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()

    def _drop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self.loop)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing on the way out
            asyncio.run_coroutine_threadsafe(self._close(), self.loop).result(self.timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(self.timeout)
        if self.thread.is_alive():
            return
        # The client's own tasks end once cancelled: let them, then close the loop.
        pending = asyncio.all_tasks(self.loop)
        for task in pending:
            task.cancel()
        self.loop.run_until_complete(_settle(pending))
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()


async def _settle(tasks) -> None:
    await asyncio.gather(*tasks, return_exceptions=True)


async def nats_connect(url: str, timeout: float):
    """One attempt to connect, failing fast: the outbox's schedule does the retrying.

    nats-py's own error callback would log each failure with its traceback; the
    dispatcher's events say what failed.
    """
    import nats

    async def quiet(_error) -> None:
        return None

    # max_reconnect_attempts=1: with 0, nats-py tries a refusing server for ever.
    connecting = nats.connect(
        url,
        connect_timeout=timeout,
        allow_reconnect=False,
        max_reconnect_attempts=1,
        reconnect_time_wait=0,
        error_cb=quiet,
    )
    return await asyncio.wait_for(connecting, timeout * 2)


async def _ensure_stream(jetstream, stream: str, subject: str) -> None:
    """Make the stream take this subject: create it (file storage: persistent), or add the
    subject to it when nodes share the stream and none of its subjects covers this one."""
    from nats.js import errors as js_errors

    try:
        info = await jetstream.stream_info(stream)
    except js_errors.NotFoundError:
        await jetstream.add_stream(name=stream, subjects=[subject])
        return
    subjects = list(info.config.subjects or [])
    if not any(covers(pattern, subject) for pattern in subjects):
        info.config.subjects = [*subjects, subject]
        await jetstream.update_stream(info.config)


def covers(pattern: str, subject: str) -> bool:
    """Whether a NATS subject pattern (``*`` one token, ``>`` the rest) matches ``subject``."""
    wanted, given = pattern.split("."), subject.split(".")
    for index, token in enumerate(wanted):
        if token == ">":
            return len(given) > index
        if index >= len(given) or (token != "*" and token != given[index]):
            return False
    return len(wanted) == len(given)
