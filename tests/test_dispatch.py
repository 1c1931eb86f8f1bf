"""Delivering webhooks: signatures, retries, faults, endpoints, and crash safety."""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import time
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook

from app import create_app
from app.edges.dispatch.worker import Dispatcher
from app.platform import db as database
from app.platform.messaging import deliver, signing, urls
from tests.conftest import NODE_DC, Api
from tests.databases import ON_POSTGRES
from tests.receiver import Receiver
from tests.servers import start_dom
from tests.sourcing_helpers import build_network, order, set_stock

SECRET = signing.new_secret()
FAST = {
    "WEBHOOK_ALLOW": "127.0.0.1",
    "RETRY_SCHEDULE": (0.0, 0.0, 0.0, 0.0),
    "RETRY_JITTER": 0.0,
    "WEBHOOK_TIMEOUT_SECONDS": 1.0,
    "DISPATCH_LEASE_SECONDS": 30.0,
    "DISPATCH_POLL_SECONDS": 0.05,
}


@pytest.fixture
def receiver():
    served = Receiver([SECRET])
    yield served
    served.close()


@pytest.fixture
def app(db_path):
    return create_app({"DATABASE": db_path, **FAST})


@pytest.fixture
def shop(admin, network, receiver):
    build_network(admin)
    hooked = {**NODE_DC, "webhook": {"url": receiver.url, "secret": SECRET}}
    assert admin.put("/v1/nodes/DC1", json=hooked).status_code == 200
    return admin


def drain(app, rounds: int = 20) -> Dispatcher:
    dispatcher = Dispatcher(app.config, worker="test", rng=random.Random(1))
    db = dispatcher.connect()
    try:
        for _ in range(rounds):
            if dispatcher.run_once(db) == 0:
                break
    finally:
        dispatcher.close()
        db.close()
    return dispatcher


def place(shop, order_id="o", qty=1):
    set_stock(shop, "DC1", {"MUG": 20})
    decision = shop.post("/v1/orders", json=order(order_id, [("MUG", qty, 10.0)])).get_json()
    assert decision["shipments"][0]["node_id"] == "DC1"
    return decision


def test_signatures_match_the_standard_webhooks_library():
    body = b'{"type":"x","data":{}}'
    headers = signing.headers([SECRET], "msg_1", int(time.time()), body)
    assert Webhook(SECRET).verify(body, headers) == {"type": "x", "data": {}}
    other = signing.new_secret()
    both = signing.headers([other, SECRET], "msg_1", int(time.time()), body)
    assert Webhook(SECRET).verify(body, both)
    assert Webhook(other).verify(body, both)


@pytest.mark.parametrize(
    ("status", "retry_after", "attempts_before", "expected_status", "delay"),
    [
        (200, None, 0, "delivered", None),
        (500, None, 0, "pending", 5.0),
        (500, None, 2, "pending", 1800.0),
        (500, None, 7, "dead", None),
        (410, None, 0, "dead", None),
        (429, 120.0, 0, "pending", 120.0),
        (503, 1.0, 1, "pending", 300.0),
        (None, None, 0, "pending", 5.0),
    ],
)
def test_retry_schedule(status, retry_after, attempts_before, expected_status, delay):
    schedule = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    outcome = deliver.Outcome(
        "t",
        1.0,
        status_code=status,
        retry_after=retry_after,
        error_class=None if status == 200 else "http",
    )
    result, next_at = deliver.next_step(outcome, attempts_before, schedule, 0.2, 0.5, now)
    assert result == expected_status
    if delay is None:
        assert next_at is None
    else:
        assert database.parse_time(next_at) - now == timedelta(seconds=delay)


def test_jitter_stays_within_its_share():
    now = datetime(2026, 11, 25, tzinfo=UTC)
    outcome = deliver.Outcome("t", 1.0, status_code=500, error_class="http")
    delays = {
        (
            database.parse_time(deliver.next_step(outcome, 1, (5.0, 300.0), 0.2, share, now)[1])
            - now
        ).total_seconds()
        for share in (0.0, 0.5, 0.999)
    }
    assert min(delays) == pytest.approx(240.0)
    assert max(delays) == pytest.approx(360.0, abs=0.2)


@pytest.mark.parametrize(
    ("url", "allow", "ok"),
    [
        ("ftp://1.1.1.1/x", "", False),
        ("https://user:pw@1.1.1.1/x", "", False),
        ("http://10.1.2.3/x", "", False),
        ("http://169.254.169.254/latest/meta-data", "", False),
        ("http://127.0.0.1:9/x", "", False),
        ("http://[::1]/x", "", False),
        ("http://127.0.0.1:9/x", "127.0.0.1", True),
        ("http://10.1.2.3/x", "10.0.0.0/8", True),
        ("https://1.1.1.1/x", "", True),
    ],
)
def test_webhook_urls(url, allow, ok):
    if ok:
        urls.check(url, allow)
    else:
        with pytest.raises(urls.UnsafeURL):
            urls.check(url, allow)


def test_unsafe_node_url_is_refused_when_set(admin):
    body = {**NODE_DC, "webhook": {"url": "http://169.254.169.254/x", "secret": SECRET}}
    response = admin.put("/v1/nodes/DC9", json=body)
    assert response.status_code == 422
    assert response.get_json()["error"]["errors"][0]["pointer"] == "/webhook/url"


def test_a_decision_reaches_its_node_signed(shop, app, receiver, db):
    decision = place(shop)
    drain(app)
    [got] = receiver.received
    assert got["verified"] == {SECRET: True}
    assert got["body"]["type"] == "fulfillment.requested"
    data = got["body"]["data"]
    assert data["shipment_id"] == decision["shipments"][0]["shipment_id"]
    assert data["decision_id"] == decision["decision_id"]
    assert data["ruleset"]["version"] == 1
    [delivery] = shop.get("/v1/deliveries?node_id=DC1").get_json()["deliveries"]
    assert delivery["status"] == "delivered"
    assert delivery["message_id"] == got["id"]
    detail = shop.get(f"/v1/deliveries/{got['id']}").get_json()
    assert detail["attempt_log"][0]["status_code"] == 200
    assert SECRET not in json.dumps(detail)
    shipment = shop.get("/v1/orders/o").get_json()["shipments"][0]
    assert shipment["status"] == "requested"


def test_faults_are_retried_with_the_same_id_until_delivered(shop, app, receiver):
    receiver.script.extend(
        [500, ("sleep", 1.5), (429, {"Retry-After": "0"}), ("redirect", "http://127.0.0.1:9/")]
    )
    place(shop)
    for _ in range(12):
        drain(app)
        if receiver.delivered_ids():
            break
        time.sleep(0.05)
    ids = {r["id"] for r in receiver.received}
    assert len(ids) == 1  # one webhook-id across every retry
    assert all(all(r["verified"].values()) for r in receiver.received)
    detail = shop.get(f"/v1/deliveries/{ids.pop()}").get_json()
    classes = [(a["error_class"], a["status_code"]) for a in detail["attempt_log"]]
    assert classes == [
        ("http", 500),
        ("timeout", None),
        ("http", 429),
        ("redirect", 302),
        (None, 200),
    ]
    assert detail["status"] == "delivered"


def test_refused_connections_end_dead_and_can_be_replayed(shop, app, receiver, admin):
    closed = {**NODE_DC, "webhook": {"url": "http://127.0.0.1:9/hooks", "secret": SECRET}}
    admin.put("/v1/nodes/DC1", json=closed)
    place(shop)
    drain(app)
    [delivery] = shop.get("/v1/deliveries?status=dead").get_json()["deliveries"]
    detail = shop.get(f"/v1/deliveries/{delivery['message_id']}").get_json()
    assert [a["error_class"] for a in detail["attempt_log"]] == ["connect"] * 5
    admin.put("/v1/nodes/DC1", json={**NODE_DC, "webhook": {"url": receiver.url}})
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    recovered = shop.post(f"/v1/nodes/DC1/deliveries/recover?since={since}").get_json()
    assert recovered["requeued"] == 1
    drain(app)
    assert receiver.delivered_ids() == {delivery["message_id"]}


def test_410_disables_the_endpoint(shop, app, receiver, admin):
    receiver.script.append(410)
    place(shop, "a")
    drain(app)
    node = admin.get("/v1/nodes/DC1").get_json()
    assert node["webhook"]["disabled_reason"] == "the endpoint answered 410 Gone"
    place(shop, "b")
    drain(app)
    assert len(receiver.received) == 1  # nothing more is sent to a disabled endpoint
    statuses = {
        d["order_id"]: d["status"] for d in admin.get("/v1/deliveries").get_json()["deliveries"]
    }
    assert statuses == {"a": "dead", "b": "dead"}


def test_secret_rotation_sends_both_signatures(shop, app, admin):
    new_secret = signing.new_secret()
    both = Receiver([SECRET, new_secret])
    try:
        body = {**NODE_DC, "webhook": {"url": both.url, "secret": new_secret}}
        admin.put("/v1/nodes/DC1", json=body)
        place(shop)
        drain(app)
        [got] = both.received
        assert got["verified"] == {SECRET: True, new_secret: True}
        assert len(got["headers"]["webhook-signature"].split(" ")) == 2
    finally:
        both.close()


def test_two_dispatchers_never_deliver_one_message_at_once(shop, app, receiver):
    receiver.script.extend([("sleep", 0.05)] * 40)
    for number in range(12):
        place(shop, f"o{number}")
    first, second = Dispatcher(app.config, "one"), Dispatcher(app.config, "two")
    threads = [first.start_thread(), second.start_thread()]
    deadline = time.monotonic() + 20
    while len(receiver.delivered_ids()) < 12 and time.monotonic() < deadline:
        time.sleep(0.05)
    first.stop()
    second.stop()
    for thread in threads:
        thread.join(5)
    assert len(receiver.delivered_ids()) == 12
    assert receiver.overlaps == 0
    assert len(receiver.received) == 12  # no message twice


@pytest.mark.slow
def test_a_killed_worker_loses_nothing(db_path, receiver):
    path = db_path
    app = create_app({"DATABASE": path, **FAST})
    connection = database.open_from_config(app.config)
    from app.platform import auth

    key = auth.create_key(connection, "admin")[1]
    connection.close()
    admin = Api(app.test_client(), key)
    build_network(admin)
    admin.put("/v1/nodes/DC1", json={**NODE_DC, "webhook": {"url": receiver.url, "secret": SECRET}})
    receiver.script.extend([("sleep", 0.15)] * 200)
    set_stock(admin, "DC1", {"MUG": 100})
    ids = set()
    for number in range(30):
        admin.post("/v1/orders", json=order(f"k{number}", [("MUG", 1, 1.0)]))
    connection = database.open_database(path)
    ids = {row[0] for row in connection.execute("SELECT message_id FROM outbox")}
    env = {
        **os.environ,
        "DOM_DATABASE": path,
        "DOM_WEBHOOK_ALLOW": "127.0.0.1",
        "DOM_DISPATCH_LEASE_SECONDS": "1",
        "DOM_WEBHOOK_TIMEOUT_SECONDS": "1",
        # A lease outlives the slowest attempt a dispatcher could make, brokers' included:
        # short timeouts keep the dead worker's message waiting seconds, not most of a minute.
        "DOM_BROKER_TIMEOUT_SECONDS": "1",
        "DOM_DISPATCH_POLL_SECONDS": "0.05",
        "DOM_RETRY_SCHEDULE": "0,0,0",
    }
    worker = start_dom("dispatch", env, "dispatch-killed")
    deadline = time.monotonic() + 20
    while len(receiver.delivered_ids()) < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    worker.send_signal(signal.SIGKILL)
    worker.wait(5)
    assert len(receiver.delivered_ids()) < 30  # it died in the middle
    survivor = start_dom("dispatch", env, "dispatch-survivor")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (
            receiver.delivered_ids() != ids
            or connection.execute(
                "SELECT COUNT(*) FROM outbox WHERE status != 'delivered'"
            ).fetchone()[0]
        ):
            time.sleep(0.1)
    finally:
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(10) == 0
    assert receiver.delivered_ids() == ids
    pending = connection.execute(
        "SELECT COUNT(*) FROM outbox WHERE status != 'delivered'"
    ).fetchone()[0]
    assert pending == 0
    # Every request the receiver saw is in the deliveries log, the one cut short included
    # (a worker killed between logging and sending leaves an attempt nobody received).
    logged = dict(
        connection.execute(
            "SELECT message_id, COUNT(*) FROM delivery_attempts GROUP BY message_id"
        ).fetchall()
    )
    seen = collections.Counter(r["id"] for r in receiver.received)
    assert all(logged.get(message_id, 0) >= count for message_id, count in seen.items())
    connection.close()


def test_an_endpoint_failing_for_too_long_is_disabled_and_messages_run_their_schedule(
    db_path, keys
):
    app = create_app(
        {
            "DATABASE": db_path,
            **FAST,
            "ENDPOINT_DISABLE_AFTER_SECONDS": 0,
            "CIRCUIT_OPEN_AFTER": 100,
            "RETRY_SCHEDULE": (0.0,) * 3,
        }
    )
    admin = Api(app.test_client(), keys["admin"])
    build_network(admin)
    closed = {**NODE_DC, "webhook": {"url": "http://127.0.0.1:9/hooks", "secret": SECRET}}
    admin.put("/v1/nodes/DC1", json=closed)
    place(admin)
    drain(app)
    node = admin.get("/v1/nodes/DC1").get_json()
    assert node["webhook"]["disabled_reason"].startswith("failing without a success since")
    [delivery] = admin.get("/v1/deliveries").get_json()["deliveries"]
    # Disabled, the message still ran out its own schedule before it was given up.
    assert delivery["status"] == "dead"
    assert delivery["attempts"] == 4
    log = admin.get(f"/v1/deliveries/{delivery['message_id']}").get_json()["attempt_log"]
    assert [a["error_class"] for a in log] == ["connect"] + ["no_endpoint"] * 3


@pytest.mark.skipif(not ON_POSTGRES, reason="PostgreSQL's row locks (SQLite has one writer)")
def test_settling_a_delivery_never_waits_for_a_node_row_a_decision_holds(db_path, admin, network):
    # A decision holds the node's row (capacity checks lock it) while the dispatcher settles
    # a delivery to that node: the settle must not need the row, or the two deadlock.
    served = Receiver([SECRET])
    try:
        build_network(admin)
        hooked = {**NODE_DC, "webhook": {"url": served.url, "secret": SECRET}}
        assert admin.put("/v1/nodes/DC1", json=hooked).status_code == 200
        set_stock(admin, "DC1", {"MUG": 5})
        assert admin.post("/v1/orders", json=order("lk1", [("MUG", 1, 1.0)])).status_code == 201
        quick = create_app({"DATABASE": db_path, **FAST, "LOCK_TIMEOUT_MS": 1500})
        holder = database.open_from_config(quick.config)
        try:
            holder.begin()
            holder.execute("SELECT node_id FROM nodes WHERE node_id = 'DC1' FOR UPDATE")
            drain(quick, rounds=3)
            with database.open_from_config(quick.config) as reader:
                states = [row[0] for row in reader.execute("SELECT status FROM outbox")]
        finally:
            holder.rollback()
            holder.close()
        assert states == ["delivered"]
        assert len(served.received) == 1  # delivered once, settled once
        node = admin.get("/v1/nodes/DC1").get_json()
        assert node["webhook"]["failures"] == 0
    finally:
        served.close()


def test_a_settle_that_loses_a_race_is_run_again_not_sent_again(shop, app, receiver, monkeypatch):
    from app.platform.messaging import outbox

    set_stock(shop, "DC1", {"MUG": 5})
    assert shop.post("/v1/orders", json=order("race1", [("MUG", 1, 1.0)])).status_code == 201
    real = outbox.finish_attempt
    calls = []

    def deadlocks_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise database.Retry("deadlock")  # what PostgreSQL's DeadlockDetected becomes
        return real(*args, **kwargs)

    monkeypatch.setattr(outbox, "finish_attempt", deadlocks_once)
    drain(app)
    with database.open_from_config(app.config) as reader:
        states = [row[0] for row in reader.execute("SELECT status FROM outbox")]
    assert states == ["delivered"] and len(calls) == 2
    assert len(receiver.received) == 1
