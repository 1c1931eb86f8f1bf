"""Nodes instructed, and heard, over the real RabbitMQ and NATS JetStream brokers.

Skipped with the reason when a broker does not answer (``.ci/run`` starts them where it
can). Every test uses exchanges, queues, streams and subjects of its own.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import secrets
import signal
import time

import pytest
from standardwebhooks.webhooks import Webhook

from app import create_app
from app.domain.network import nodes
from app.edges.dispatch import node_events
from app.edges.dispatch.worker import Dispatcher
from app.platform import auth
from app.platform import db as database
from app.platform.messaging import brokers, signing
from tests.conftest import Api
from tests.servers import Proxy, start_dom, wait_for
from tests.sourcing_helpers import build_network, order, set_stock
from tests.test_dispatch import FAST, SECRET, drain

AMQP = os.environ.get("DOM_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/%2F")
NATS = os.environ.get("DOM_TEST_NATS", "nats://127.0.0.1:4222")
NODE_SECRET = signing.new_secret()


def _amqp_up() -> bool:
    import pika

    try:
        parameters = pika.URLParameters(AMQP)
        parameters.connection_attempts = 1
        parameters.socket_timeout = 2
        pika.BlockingConnection(parameters).close()
    except Exception:
        return False
    return True


def _nats_up() -> bool:
    import nats

    async def probe():
        client = await nats.connect(NATS, connect_timeout=2, allow_reconnect=False)
        await client.jetstream().account_info()
        await client.close()

    try:
        asyncio.run(probe())
    except Exception:
        return False
    return True


UP = {"amqp": _amqp_up(), "nats": _nats_up()}
pytestmark = pytest.mark.slow


def needs(kind: str):
    return pytest.mark.skipif(
        not UP[kind],
        reason=f"no {kind} broker answers at {AMQP if kind == 'amqp' else NATS}"
        " (.ci/run starts RabbitMQ and NATS where it can)",
    )


BOTH = [pytest.param("amqp", marks=needs("amqp")), pytest.param("nats", marks=needs("nats"))]


# The brokers, as a node's system sees them -------------------------------------------------


class AmqpNode:
    """A node's queue bound to the exchange its instructions go to."""

    def __init__(self, url: str = AMQP):
        import pika

        tag = secrets.token_hex(4)
        self.url = url
        self.transport = {
            "kind": "amqp",
            "exchange": f"dom.test.{tag}",
            "routing_key": f"node.{tag}",
            "secret": SECRET,
        }
        self.queue = f"dom.test.{tag}.instructions"
        connection = pika.BlockingConnection(pika.URLParameters(AMQP))
        channel = connection.channel()
        channel.exchange_declare(self.transport["exchange"], exchange_type="topic", durable=True)
        channel.queue_declare(self.queue, durable=True)
        channel.queue_bind(self.queue, self.transport["exchange"], self.transport["routing_key"])
        connection.close()

    def messages(self) -> list[dict]:
        """Every message on the node's queue (taken off it)."""
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(AMQP))
        channel = connection.channel()
        found = []
        while True:
            method, properties, body = channel.basic_get(self.queue, auto_ack=True)
            if method is None:
                break
            found.append(
                {
                    "headers": dict(properties.headers or {}),
                    "body": body,
                    "persistent": properties.delivery_mode == 2,
                    "message_id": properties.message_id,
                }
            )
        connection.close()
        return found

    def close(self) -> None:
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(AMQP))
        channel = connection.channel()
        channel.queue_delete(self.queue)
        channel.exchange_delete(self.transport["exchange"])
        connection.close()


class NatsNode:
    """A node reading its subject from the stream its instructions are stored in."""

    def __init__(self):
        tag = secrets.token_hex(4)
        self.transport = {
            "kind": "nats",
            "stream": f"DOMTEST_{tag}",
            "subject": f"domtest.{tag}.instructions",
            "secret": SECRET,
        }

    def messages(self) -> list[dict]:
        """Every message stored in the stream (the stream keeps them)."""
        import nats

        async def read():
            client = await nats.connect(NATS)
            jetstream = client.jetstream()
            found = []
            try:
                info = await jetstream.stream_info(self.transport["stream"])
            except Exception:
                await client.close()
                return found
            for sequence in range(info.state.first_seq, info.state.last_seq + 1):
                message = await jetstream.get_msg(self.transport["stream"], sequence)
                found.append(
                    {
                        "headers": dict(message.headers or {}),
                        "body": message.data,
                        "persistent": str(info.config.storage).endswith("file"),
                        "message_id": (message.headers or {}).get("Nats-Msg-Id"),
                    }
                )
            await client.close()
            return found

        return asyncio.run(read())

    def close(self) -> None:
        delete_streams(self.transport["stream"])


def delete_streams(*names: str) -> None:
    import nats

    async def delete():
        client = await nats.connect(NATS)
        for name in names:
            with contextlib.suppress(Exception):  # already gone
                await client.jetstream().delete_stream(name)
        await client.close()

    asyncio.run(delete())


NODES = {"amqp": AmqpNode, "nats": NatsNode}


def verified(message: dict) -> dict:
    """The message's body once its Standard Webhooks signature checks out."""
    headers = {k: str(v) for k, v in message["headers"].items()}
    return Webhook(SECRET).verify(message["body"], headers)


# A shop whose nodes use brokers ----------------------------------------------------------


def make_app(path: str, amqp: str = AMQP, nats: str = NATS, **extra):
    tag = secrets.token_hex(4)
    return create_app(
        {
            "DATABASE": path,
            **FAST,
            "AMQP_URL": amqp,
            "NATS_URL": nats,
            "BROKER_TIMEOUT_SECONDS": 3.0,
            "NODE_EVENTS_QUEUE": f"dom.test.{tag}.node-events",
            "NODE_EVENTS_SUBJECT": f"domtest-{tag}-events",
            **extra,
        }
    )


def shop(app) -> Api:
    with database.open_from_config(app.config) as connection:
        admin = Api(app.test_client(), auth.create_key(connection, "admin")[1])
    build_network(admin)
    set_stock(admin, "DC1", {"MUG": 1000})
    set_stock(admin, "PL1", {"CUP": 1000})
    return admin


def use_transport(admin, node_id: str, transport: dict) -> dict:
    node = admin.get(f"/v1/nodes/{node_id}").get_json()
    body = {k: v for k, v in node.items() if k in nodes.WRITABLE}
    answer = admin.put(f"/v1/nodes/{node_id}", json={**body, "transport": transport})
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def outbox(app, sql_where: str = "1 = 1") -> list[dict]:
    with database.open_from_config(app.config) as connection:
        return [
            dict(row)
            for row in connection.execute(
                "SELECT message_id, node_id, status, attempts, payload FROM outbox"
                f" WHERE {sql_where}"
            )
        ]


# Instructions ------------------------------------------------------------------------------


@needs("amqp")
@needs("nats")
def test_orders_instruct_an_amqp_node_and_a_nats_node(db_path):
    app = make_app(db_path)
    admin = shop(app)
    amqp_node, nats_node = AmqpNode(), NatsNode()
    try:
        shown = use_transport(admin, "DC1", amqp_node.transport)
        assert shown["transport"]["kind"] == "amqp" and "secret" not in shown["transport"]
        assert shown["transport"]["secret_set"] and shown["webhook"] is None
        use_transport(admin, "PL1", nats_node.transport)
        decision = admin.post(
            "/v1/orders",
            json=order("bk1", [("MUG", 1, 10.0), ("CUP", 1, 5.0)]),
            headers={"X-Request-Id": "broker-trace-1"},
        ).get_json()
        assert {s["node_id"] for s in decision["shipments"]} == {"DC1", "PL1"}
        drain(app)
        sent = {m["node_id"]: m for m in outbox(app)}
        assert {m["status"] for m in sent.values()} == {"delivered"}
        for node_id, node in (("DC1", amqp_node), ("PL1", nats_node)):
            [message] = node.messages()
            body = verified(message)
            assert body == json.loads(sent[node_id]["payload"])  # the same body, byte for byte
            assert message["body"] == sent[node_id]["payload"].encode()
            assert message["headers"]["webhook-id"] == sent[node_id]["message_id"]
            assert message["headers"]["x-request-id"] == "broker-trace-1"
            assert message["headers"]["dom-event-type"] == "fulfillment.requested"
            assert message["persistent"]
            assert body["data"]["shipment_id"] in {s["shipment_id"] for s in decision["shipments"]}
        # The deliveries log shows the broker's confirmation like any other attempt.
        delivery = admin.get(f"/v1/deliveries/{sent['DC1']['message_id']}").get_json()
        assert delivery["status"] == "delivered" and len(delivery["attempt_log"]) == 1
        assert delivery["attempt_log"][0]["error_class"] is None
    finally:
        amqp_node.close()
        nats_node.close()


@needs("nats")
def test_nodes_sharing_one_stream_are_each_instructed_on_their_subject(db_path):
    app = make_app(db_path)
    admin = shop(app)
    first, second = NatsNode(), NatsNode()
    shared = {**second.transport, "stream": first.transport["stream"]}
    try:
        use_transport(admin, "DC1", first.transport)
        use_transport(admin, "PL1", shared)
        decision = admin.post(
            "/v1/orders", json=order("bk9", [("MUG", 1, 10.0), ("CUP", 1, 5.0)])
        ).get_json()
        assert {s["node_id"] for s in decision["shipments"]} == {"DC1", "PL1"}
        drain(app)
        assert {m["node_id"]: m["status"] for m in outbox(app)} == {
            "DC1": "delivered",
            "PL1": "delivered",
        }
        subjects = {
            verified(m)["data"]["node_id"]: m["headers"].get("dom-event-type")
            for m in first.messages()
        }
        assert set(subjects) == {"DC1", "PL1"}
    finally:
        first.close()


def test_a_subject_pattern_covers_what_nats_would_route_to_it():
    assert brokers.covers("a.b.c", "a.b.c") and not brokers.covers("a.b", "a.b.c")
    assert brokers.covers("a.*.c", "a.x.c") and not brokers.covers("a.*", "a.x.c")
    assert brokers.covers("a.>", "a.x.c") and not brokers.covers("a.>", "a")
    assert brokers.covers(">", "a") and not brokers.covers("a.b.c.d", "a.b.c")


@needs("amqp")
def test_a_message_no_queue_takes_is_not_delivered(db_path):
    app = make_app(db_path)
    admin = shop(app)
    unbound = {"kind": "amqp", "exchange": f"dom.test.{secrets.token_hex(4)}", "routing_key": "x"}
    use_transport(admin, "DC1", {**unbound, "secret": SECRET})
    admin.post("/v1/orders", json=order("bk2", [("MUG", 1, 10.0)]))
    drain(app, rounds=1)
    [message] = outbox(app)
    assert message["status"] == "pending" and message["attempts"] == 1
    delivery = admin.get(f"/v1/deliveries/{message['message_id']}").get_json()
    assert delivery["attempt_log"][0]["error_class"] == "unroutable"


@needs("amqp")
def test_a_subscription_hears_order_events_over_the_broker(db_path):
    app = make_app(db_path)
    admin = shop(app)
    node = AmqpNode()
    try:
        destination = {k: v for k, v in node.transport.items() if k != "secret"}
        made = admin.post(
            "/v1/subscriptions",
            json={"transport": destination, "event_types": ["order.status_changed"]},
        )
        assert made.status_code == 201, made.get_json()
        created = made.get_json()
        assert (
            created["url"] is None
            and created["transport"]["exchange"] == node.transport["exchange"]
        )
        admin.post("/v1/orders", json=order("bk3", [("MUG", 1, 10.0)]))
        drain(app)
        bodies = [
            Webhook(created["secret"]).verify(
                m["body"], {k: str(v) for k, v in m["headers"].items()}
            )
            for m in node.messages()
        ]
        assert bodies and {b["type"] for b in bodies} == {"order.status_changed"}
    finally:
        node.close()


def test_a_transport_needs_its_broker_and_excludes_a_webhook(db_path):
    app = make_app(db_path, amqp="", nats="")
    admin = shop(app)
    node = admin.get("/v1/nodes/DC1").get_json()
    body = {k: v for k, v in node.items() if k in nodes.WRITABLE}
    transport = {"kind": "amqp", "exchange": "x", "routing_key": "y", "secret": SECRET}
    refused = admin.put("/v1/nodes/DC1", json={**body, "transport": transport})
    assert refused.status_code == 422
    assert refused.get_json()["error"]["errors"][0]["pointer"] == "/transport/kind"
    assert "DOM_AMQP_URL" in refused.get_json()["error"]["errors"][0]["message"]
    both = admin.put(
        "/v1/nodes/DC1",
        json={**body, "transport": transport, "webhook": {"url": "https://n.example/h"}},
    )
    assert both.status_code == 422
    assert both.get_json()["error"]["errors"][0]["pointer"] == "/transport"
    bad = admin.put(
        "/v1/nodes/DC1",
        json={**body, "transport": {"kind": "nats", "stream": "a b", "subject": "x"}},
    )
    assert bad.status_code == 422
    assert (
        admin.post(
            "/v1/subscriptions",
            json={
                "transport": {"kind": "nats", "stream": "S", "subject": "s.x"},
                "event_types": ["order.status_changed"],
            },
        ).status_code
        == 422
    )


# Outages and crashes -------------------------------------------------------------------------


def received_ids(node) -> collections.Counter:
    return collections.Counter(m["headers"]["webhook-id"] for m in node.messages())


@pytest.mark.parametrize("kind", BOTH)
def test_a_broker_outage_loses_nothing_and_sends_nothing_twice(db_path, kind):
    proxy = Proxy("127.0.0.1", 5672 if kind == "amqp" else 4222)
    through = (
        f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F"
        if kind == "amqp"
        else f"nats://127.0.0.1:{proxy.port}"
    )
    # Five failures open the endpoint's circuit: one probe goes when its short wait ends.
    app = make_app(
        db_path,
        **{"AMQP_URL" if kind == "amqp" else "NATS_URL": through},
        CIRCUIT_WAIT_SECONDS=0.2,
    )
    admin = shop(app)
    node = NODES[kind]()
    try:
        use_transport(admin, "DC1", node.transport)
        admin.post("/v1/orders", json=order("up-0", [("MUG", 1, 1.0)]))
        dispatcher = Dispatcher(app.config, worker="outage")
        db = dispatcher.connect()
        try:
            dispatcher.run_once(db)
            proxy.stop()  # connection refused from here on
            for number in range(1, 6):
                admin.post("/v1/orders", json=order(f"up-{number}", [("MUG", 1, 1.0)]))
            dispatcher.run_once(db)
            failing = admin.get("/v1/deliveries?status=pending").get_json()["deliveries"]
            assert len(failing) == 5
            for delivery in failing:
                attempts = admin.get(f"/v1/deliveries/{delivery['message_id']}").get_json()
                assert attempts["attempt_log"][-1]["error_class"] in ("connect", "timeout")
            proxy.start()
            for _ in range(50):
                dispatcher.run_once(db)
                if not outbox(app, "status != 'delivered'"):
                    break
                time.sleep(0.1)
        finally:
            dispatcher.close()
            db.close()
        assert not outbox(app, "status != 'delivered'")
        counts = received_ids(node)
        assert set(counts) == {m["message_id"] for m in outbox(app)}
        assert set(counts.values()) == {1}
    finally:
        proxy.stop()
        node.close()


@pytest.mark.parametrize("kind", BOTH)
def test_a_dispatcher_killed_mid_publish_leaves_the_rest_to_the_next(db_path, kind):
    app = make_app(db_path)
    admin = shop(app)
    node = NODES[kind]()
    try:
        use_transport(admin, "DC1", node.transport)
        for number in range(300):
            admin.post("/v1/orders", json=order(f"kill-{number}", [("MUG", 1, 1.0)]))
        env = {
            **os.environ,
            "DOM_DATABASE": db_path,
            "DOM_AMQP_URL": AMQP,
            "DOM_NATS_URL": NATS,
            # A lease outlives the slowest attempt: 2 x (2 x 1 s + 1) + 5 = 11 s here.
            "DOM_DISPATCH_LEASE_SECONDS": "1",
            "DOM_BROKER_TIMEOUT_SECONDS": "1",
            "DOM_WEBHOOK_TIMEOUT_SECONDS": "1",
            "DOM_DISPATCH_POLL_SECONDS": "0.05",
            "DOM_RETRY_SCHEDULE": "0,0,0",
            "DOM_NODE_EVENTS_QUEUE": app.config["NODE_EVENTS_QUEUE"],
            "DOM_NODE_EVENTS_SUBJECT": app.config["NODE_EVENTS_SUBJECT"],
        }
        first = start_dom("dispatch", env, f"dispatch-broker-{kind}")
        assert wait_for(lambda: len(outbox(app, "status = 'delivered'")) >= 1, 30, every=0.01)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert len(outbox(app, "status = 'delivered'")) < 300  # it died in the middle
        second = start_dom("dispatch", env, f"dispatch-broker-{kind}-2")
        try:
            assert wait_for(lambda: not outbox(app, "status != 'delivered'"), 60)
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(20) == 0
        counts = received_ids(node)
        # Nothing lost; at most the message in flight when it died is sent again (and on
        # NATS the stream keeps one copy of it, by its Nats-Msg-Id).
        assert set(counts) == {m["message_id"] for m in outbox(app)}
        assert sum(counts.values()) - len(counts) <= (1 if kind == "amqp" else 0)
    finally:
        node.close()


# Node events over the broker -----------------------------------------------------------------


def signed_event(
    node_id: str, secret: str, document: dict, request_id: str | None = None, age: int = 0
):
    """A node event as a node publishes it, signed ``age`` seconds ago."""
    body = json.dumps(document).encode()
    message_id = "ev_" + secrets.token_hex(6)
    headers = {
        "dom-node-id": node_id,
        "content-type": "application/json",
        **signing.headers([secret], message_id, int(time.time()) - age, body),
    }
    if request_id:
        headers["x-request-id"] = request_id
    return headers, body


def publish_event(kind: str, config, headers: dict, body: bytes) -> None:
    if kind == "amqp":
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(AMQP))
        channel = connection.channel()
        channel.queue_declare(config["NODE_EVENTS_QUEUE"], durable=True)
        channel.basic_publish(
            "",
            config["NODE_EVENTS_QUEUE"],
            body,
            pika.BasicProperties(delivery_mode=2, headers=headers),
        )
        connection.close()
        return
    import nats
    import nats.js.errors

    async def send():
        client = await nats.connect(NATS)
        jetstream = client.jetstream()
        stream, _ = node_events.streams(config["NODE_EVENTS_SUBJECT"])
        try:
            try:
                await jetstream.stream_info(stream)
            except Exception:
                subjects = [f"{config['NODE_EVENTS_SUBJECT']}.>"]
                await jetstream.add_stream(name=stream, subjects=subjects)
            # The dispatcher makes the same stream as it starts: on a busy machine the
            # stream may not take messages yet. A node tries again, and so does this one.
            for attempt in range(50):
                try:
                    await jetstream.publish(
                        f"{config['NODE_EVENTS_SUBJECT']}.{headers.get('dom-node-id', 'x')}",
                        body,
                        headers=headers,
                    )
                    break
                except nats.js.errors.NoStreamResponseError:
                    if attempt == 49:
                        raise
                    await asyncio.sleep(0.2)
        finally:
            await client.close()

    asyncio.run(send())


def dead_letters(kind: str, config) -> list[dict]:
    if kind == "amqp":
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(AMQP))
        channel = connection.channel()
        found = []
        while True:
            method, properties, body = channel.basic_get(
                f"{config['NODE_EVENTS_QUEUE']}.dead", auto_ack=True
            )
            if method is None:
                break
            found.append({"headers": dict(properties.headers or {}), "body": body})
        connection.close()
        return found
    import nats

    async def read():
        client = await nats.connect(NATS)
        jetstream = client.jetstream()
        _, dead = node_events.streams(config["NODE_EVENTS_SUBJECT"])
        found = []
        try:
            info = await jetstream.stream_info(dead)
        except Exception:
            await client.close()
            return found
        for sequence in range(info.state.first_seq, info.state.last_seq + 1):
            message = await jetstream.get_msg(dead, sequence)
            found.append({"headers": dict(message.headers or {}), "body": message.data})
        await client.close()
        return found

    return asyncio.run(read())


def cleanup_events(kind: str, config) -> None:
    if kind == "amqp":
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(AMQP))
        channel = connection.channel()
        for queue in (config["NODE_EVENTS_QUEUE"], f"{config['NODE_EVENTS_QUEUE']}.dead"):
            channel.queue_delete(queue)
        connection.close()
    else:
        delete_streams(*node_events.streams(config["NODE_EVENTS_SUBJECT"]))


@pytest.mark.parametrize("kind", BOTH)
def test_node_events_over_the_broker_advance_shipments_and_bad_ones_are_dead_lettered(
    db_path, kind
):
    app = make_app(db_path)
    admin = shop(app)
    node = NODES[kind]()
    other = NODES[kind]()
    try:
        use_transport(admin, "DC1", {**node.transport, "secret": NODE_SECRET})
        use_transport(admin, "PL1", {**other.transport, "secret": SECRET})
        decision = admin.post(
            "/v1/orders", json=order("ev1", [("MUG", 1, 10.0), ("CUP", 1, 5.0)])
        ).get_json()
        by_node = {s["node_id"]: s["shipment_id"] for s in decision["shipments"]}
        dispatcher = Dispatcher(app.config, worker=f"events-{kind}")
        dispatcher.start_thread()
        try:
            accepted = {
                "shipment_id": by_node["DC1"],
                "event": {"event_id": "e1", "type": "accepted"},
            }
            headers, body = signed_event("DC1", NODE_SECRET, accepted, "node-trace-9")
            publish_event(kind, app.config, headers, body)

            def status() -> str:
                view = admin.get("/v1/orders/ev1").get_json()
                return next(s["status"] for s in view["shipments"] if s["node_id"] == "DC1")

            assert wait_for(lambda: status() == "accepted", 30)
            # The same event again: idempotent, as over HTTP.
            headers, body = signed_event("DC1", NODE_SECRET, accepted)
            publish_event(kind, app.config, headers, body)
            # What can never apply goes to the dead-letter queue with its error.
            bad = [
                signed_event("DC1", SECRET, accepted),  # signed with another node's secret
                signed_event(
                    "DC1",
                    NODE_SECRET,
                    {"shipment_id": by_node["DC1"], "event": {"type": "accepted"}},
                ),
                signed_event(
                    "DC1",
                    NODE_SECRET,
                    {
                        "shipment_id": by_node["PL1"],
                        "event": {"event_id": "e2", "type": "accepted"},
                    },
                ),
                signed_event(
                    "DC1",
                    NODE_SECRET,
                    {"shipment_id": "nope", "event": {"event_id": "e3", "type": "accepted"}},
                ),
                signed_event(
                    "DC1",
                    NODE_SECRET,
                    {
                        "shipment_id": by_node["DC1"],
                        "event": {"event_id": "e4", "type": "delivered"},
                    },
                ),
            ]
            for headers, body in bad:
                publish_event(kind, app.config, headers, body)
            publish_event(kind, app.config, {"content-type": "application/json"}, b"{not json")
            assert wait_for(lambda: len(dead_letters_seen(admin)) == 6, 30)
        finally:
            dispatcher.stop(wait=20)
        failures = dead_letters_seen(admin)
        codes = sorted(f["error"]["error"]["code"] for f in failures)
        assert codes == sorted(
            [
                "unauthorized",
                "invalid_input",
                "forbidden",
                "not_found",
                "illegal_transition",
                "unauthorized",
            ]
        )
        schema_error = next(f for f in failures if f["error"]["error"]["code"] == "invalid_input")
        assert schema_error["error"]["error"]["errors"][0]["pointer"] == "/event/event_id"
        assert all(f["transport"] == kind for f in failures)
        letters = dead_letters(kind, app.config)
        assert len(letters) == 6
        assert all(
            json.loads(str(letter["headers"]["dom-error"]))["error"]["code"] for letter in letters
        )
        with database.open_from_config(app.config) as connection:
            applied = connection.execute(
                "SELECT COUNT(*) FROM shipment_events WHERE shipment_id = ?", [by_node["DC1"]]
            ).fetchone()[0]
        assert applied == 1
    finally:
        node.close()
        other.close()
        cleanup_events(kind, app.config)


@pytest.mark.parametrize("kind", BOTH)
def test_a_node_event_that_waited_out_an_outage_in_the_queue_still_applies(db_path, kind):
    app = make_app(db_path)
    admin = shop(app)
    node = NODES[kind]()
    try:
        use_transport(admin, "DC1", {**node.transport, "secret": NODE_SECRET})
        decision = admin.post("/v1/orders", json=order("old1", [("MUG", 1, 10.0)])).get_json()
        [shipment] = decision["shipments"]
        # Published an hour ago, while no dispatcher was running to consume it.
        accepted = {
            "shipment_id": shipment["shipment_id"],
            "event": {"event_id": "late-1", "type": "accepted"},
        }
        publish_event(kind, app.config, *signed_event("DC1", NODE_SECRET, accepted, age=3600))
        dispatcher = Dispatcher(app.config, worker=f"late-{kind}")
        dispatcher.start_thread()
        try:

            def status() -> str:
                return admin.get("/v1/orders/old1").get_json()["shipments"][0]["status"]

            assert wait_for(lambda: status() == "accepted", 30), dead_letters_seen(admin)
        finally:
            dispatcher.stop(wait=20)
        assert dead_letters_seen(admin) == []
    finally:
        node.close()
        cleanup_events(kind, app.config)


def dead_letters_seen(admin) -> list[dict]:
    return admin.get("/v1/node-events/failures").get_json()["failures"]


def test_signatures_are_checked_as_a_receiver_would():
    body = b'{"a": 1}'
    now = int(time.time())
    headers = signing.headers([SECRET], "m1", now, body)
    assert signing.verify([SECRET], headers, body, now) is None
    assert signing.verify([NODE_SECRET, SECRET], headers, body, now) is None
    assert "no signature" in signing.verify([NODE_SECRET], headers, body, now)
    assert "too far" in signing.verify([SECRET], headers, body, now + 301)
    assert signing.verify([SECRET], headers, body, now + 3600, tolerance=None) is None
    assert "lacks" in signing.verify([SECRET], {"webhook-id": "m1"}, body, now)
    assert "no signature" in signing.verify([SECRET], headers, body + b" ", now)
    upper = {k.upper(): v for k, v in headers.items()}
    assert signing.verify([SECRET], upper, body, now) is None


@pytest.mark.parametrize("kind", BOTH)
def test_several_dispatchers_share_the_node_events_each_applied_once(db_path, kind, caplog):
    caplog.set_level(logging.WARNING, logger="app.edges.dispatch.node_events")
    app = make_app(db_path)
    admin = shop(app)
    node = NODES[kind]()
    try:
        use_transport(admin, "DC1", {**node.transport, "secret": NODE_SECRET})
        shipments = []
        for number in range(20):
            made = admin.post("/v1/orders", json=order(f"sh{number}", [("MUG", 1, 1.0)]))
            shipments.append(made.get_json()["shipments"][0]["shipment_id"])
        for number, shipment_id in enumerate(shipments):
            document = {
                "shipment_id": shipment_id,
                "event": {"event_id": f"a{number}", "type": "accepted"},
            }
            publish_event(kind, app.config, *signed_event("DC1", NODE_SECRET, document))
        dispatchers = [Dispatcher(app.config, worker=f"share-{n}") for n in range(2)]
        for dispatcher in dispatchers:
            dispatcher.start_thread()

        def applied() -> int:
            with database.open_from_config(app.config) as connection:
                return connection.execute("SELECT COUNT(*) FROM shipment_events").fetchone()[0]

        try:
            assert wait_for(lambda: applied() == 20, 30)
            time.sleep(1.5)  # nothing more arrives: no event was applied twice
        finally:
            for dispatcher in dispatchers:
                dispatcher.stop(wait=20)
        assert applied() == 20
        states = {
            admin.get(f"/v1/orders/sh{n}").get_json()["shipments"][0]["status"] for n in range(20)
        }
        assert states == {"accepted"}
        assert dead_letters_seen(admin) == []
        # Idle consumers wait on the broker; they do not drop and reconnect.
        assert [
            r.getMessage() for r in caplog.records if r.name == "app.edges.dispatch.node_events"
        ] == []
    finally:
        node.close()
        cleanup_events(kind, app.config)


@needs("amqp")
def test_a_connection_the_broker_closed_while_idle_is_replaced_before_publishing(db_path):
    # The dispatcher reaches the broker through a proxy of the test's own: cutting it drops
    # the dispatcher's connection alone, never another client's.
    proxy = Proxy("127.0.0.1", 5672)
    app = make_app(db_path, amqp=f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F")
    admin = shop(app)
    node = AmqpNode()
    dispatcher = Dispatcher(app.config, worker="idle")
    db = dispatcher.connect()
    try:
        use_transport(admin, "DC1", node.transport)
        admin.post("/v1/orders", json=order("idle-1", [("MUG", 1, 1.0)]))
        dispatcher.run_once(db)
        # The connection drops, as the broker drops one that missed its heartbeats.
        proxy.cut()
        admin.post("/v1/orders", json=order("idle-2", [("MUG", 1, 1.0)]))
        dispatcher.run_once(db)
        # Delivered on its first attempt: no failed attempt was spent on the dead connection.
        assert [(m["status"], m["attempts"]) for m in outbox(app)] == [("delivered", 1)] * 2
        assert len(node.messages()) == 2
    finally:
        dispatcher.close()
        db.close()
        node.close()
        proxy.stop()
