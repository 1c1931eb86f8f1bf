"""Webhook delivery: deliveries per second to a local receiver, and the outbox lag while
orders are decided at full speed by a server whose workers also deliver."""

from __future__ import annotations

import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from app import create_app
from app.domain.network import nodes
from app.edges import demo
from app.edges.dispatch.worker import Dispatcher
from app.platform import auth
from app.platform import db as database
from app.platform.messaging import outbox, signing
from bench.decisions import free_port, load, orders, serve

MESSAGES = 1500
LAG_SECONDS = 12.0


class Sink:
    """Answers 200 to every POST and counts them."""

    def __init__(self):
        self.count = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length", 0)))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()
                sink.count += 1

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def hook_every_node(db, url: str, vault) -> None:
    secret = signing.new_secret()
    for node in nodes.list_nodes(db):
        document = {k: node[k] for k in nodes.WRITABLE}
        webhook = {"url": url, "secret": secret}
        nodes.put(db, node["node_id"], {**document, "webhook": webhook}, vault)


AMQP = os.environ.get("DOM_BENCH_AMQP", "amqp://guest:guest@127.0.0.1:5672/%2F")
NATS = os.environ.get("DOM_BENCH_NATS", "nats://127.0.0.1:4222")


def deliveries_per_second(folder: str, sink: Sink, transport: dict | None = None) -> float:
    """Messages delivered per second by one dispatcher: signed POSTs to ``sink``, or, with
    ``transport``, messages published to a broker and confirmed by it."""
    path = str(Path(folder) / "dispatch.db")
    app = create_app(
        {
            "DATABASE": path,
            "WEBHOOK_ALLOW": "127.0.0.1",
            "LOG_LEVEL": "WARNING",
            "AMQP_URL": AMQP,
            "NATS_URL": NATS,
        }
    )
    db = database.open_database(path)
    demo.load(db)
    hook_every_node(db, sink.url, app.extensions["dom.vault"])
    if transport:
        node = nodes.get(db, "DC-MID")
        document = {k: node[k] for k in nodes.WRITABLE}
        nodes.put(
            db,
            "DC-MID",
            {**document, "transport": {**transport, "secret": signing.new_secret()}},
            app.extensions["dom.vault"],
        )
    payload = {
        "shipment_id": "shp_x",
        "order_id": "o",
        "node_id": "DC-MID",
        "lines": [{"line_id": "1", "sku": "SKU-0001", "qty": 1}],
    }
    with database.atomic(db):
        for _ in range(MESSAGES):
            outbox.enqueue(db, "bench.message", payload, node_id="DC-MID")
    dispatcher = Dispatcher(app.config, worker="bench")
    started = time.perf_counter()
    while dispatcher.run_once(db):
        pass
    elapsed = time.perf_counter() - started
    dispatcher.close()
    delivered = db.execute("SELECT COUNT(*) FROM outbox WHERE status = 'delivered'").fetchone()[0]
    db.close()
    assert delivered == MESSAGES, delivered
    return MESSAGES / elapsed


def broker_rates(kind: str, label: str, sink: Sink) -> None:
    """The same messages published to a local broker, each confirmed before the next."""
    tag = secrets.token_hex(4)
    if kind == "amqp":
        transport = {"kind": "amqp", "exchange": f"dom.bench.{tag}", "routing_key": "DC-MID"}
    else:
        transport = {"kind": "nats", "stream": f"DOMBENCH_{tag}", "subject": f"dombench.{tag}"}
    try:
        queue = _bind_queue(transport) if kind == "amqp" else None
    except Exception as exc:
        print(f"dispatch: messages per second to {label}: skipped, no broker ({exc})")
        return
    rates = []
    try:
        for _ in range(3):
            with tempfile.TemporaryDirectory() as folder:
                rates.append(deliveries_per_second(folder, sink, transport))
    except AssertionError as exc:
        print(f"dispatch: messages per second to {label}: skipped, not all delivered ({exc})")
        return
    finally:
        _clean(transport, queue)
    print(
        f"dispatch: messages per second to {label:<15} {statistics.median(rates):>8,.0f}"
        f"   (median of 3: {', '.join(f'{r:,.0f}' for r in rates)};"
        f" {MESSAGES:,} signed, persistent, each confirmed by the broker)"
    )


def _bind_queue(transport: dict) -> str:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(AMQP))
    channel = connection.channel()
    channel.exchange_declare(transport["exchange"], exchange_type="topic", durable=True)
    queue = transport["exchange"] + ".queue"
    channel.queue_declare(queue, durable=True)
    channel.queue_bind(queue, transport["exchange"], transport["routing_key"])
    connection.close()
    return queue


def _clean(transport: dict, queue: str | None) -> None:
    import contextlib

    with contextlib.suppress(Exception):
        if transport["kind"] == "amqp":
            import pika

            connection = pika.BlockingConnection(pika.URLParameters(AMQP))
            connection.channel().queue_delete(queue)
            connection.channel().exchange_delete(transport["exchange"])
            connection.close()
        else:
            import asyncio

            import nats

            async def delete():
                client = await nats.connect(NATS)
                await client.jetstream().delete_stream(transport["stream"])
                await client.close()

            asyncio.run(delete())


def lag_under_load(folder: str, sink: Sink) -> tuple[float, list[float], int]:
    path = str(Path(folder) / "lag.db")
    app = create_app({"DATABASE": path, "LOG_LEVEL": "WARNING"})
    db = database.open_database(path)
    demo.load(db)
    hook_every_node(db, sink.url, app.extensions["dom.vault"])
    key = auth.create_key(db, "channel")[1]
    setup = {
        "skus": [f"SKU-{n:04d}" for n in range(1, 501)],
        "customers": [f"C{n:05d}" for n in range(1, 301)],
    }
    bodies = orders(setup, path, 5000, "lag-", 7)
    port = free_port()
    env = {
        **os.environ,
        "DOM_DATABASE": path,
        "DOM_WORKERS": "2",
        "DOM_PORT": str(port),
        "DOM_WEBHOOK_ALLOW": "127.0.0.1",
        "DOM_LOG_LEVEL": "WARNING",
        "DOM_DISPATCH_POLL_SECONDS": "0.1",
    }
    server = serve([sys.executable, "-m", "app.edges.cli", "serve"], env, port)
    samples: list[float] = []
    stop = time.monotonic() + LAG_SECONDS
    result: list = []
    clients = threading.Thread(
        target=lambda: result.append(load(port, "/v1/orders", key, bodies, 6, until=stop))
    )
    try:
        clients.start()
        while time.monotonic() < stop:
            samples.append(outbox.oldest_pending_age(db))
            time.sleep(0.25)
        clients.join()
    finally:
        server.terminate()
        server.wait(10)
    placed = len(result[0][1])
    db.close()
    return placed / LAG_SECONDS, samples, placed


def main() -> None:
    sink = Sink()
    try:
        rates = []
        for _ in range(3):
            with tempfile.TemporaryDirectory() as folder:
                rates.append(deliveries_per_second(folder, sink))
        print(
            f"dispatch: deliveries per second, one dispatcher  {statistics.median(rates):>8,.0f}"
            f"   (median of 3: {', '.join(f'{r:,.0f}' for r in rates)};"
            f" {MESSAGES:,} signed POSTs to a local receiver)"
        )
        for kind, label in (("amqp", "RabbitMQ"), ("nats", "NATS JetStream")):
            broker_rates(kind, label, sink)
        with tempfile.TemporaryDirectory() as folder:
            rate, samples, placed = lag_under_load(folder, sink)
        print(
            f"dispatch: outbox lag while deciding {rate:,.0f} orders/s over HTTP"
            f" ({placed:,} orders, 2 workers delivering too):"
            f" median {statistics.median(samples):.2f} s, max {max(samples):.2f} s,"
            f" sampled every 0.25 s"
        )
    finally:
        sink.close()
