"""Integrity across processes: real `dom serve` and `dom dispatch` processes on one database.

Daily capacity and writes under load against two server processes; leases and circuit
breakers with two dispatcher processes and a real receiver on 127.0.0.1.
"""

from __future__ import annotations

import collections
import threading

import pytest

from app import create_app
from app.platform import auth
from app.platform import db as database
from tests.conftest import NODE_DC, Api
from tests.receiver import Receiver
from tests.servers import call, dispatching, serving, several, status_of, wait_for
from tests.sourcing_helpers import CUSTOMERS, NODES, SKUS, build_network, order, set_stock
from tests.test_dispatch import SECRET

pytestmark = pytest.mark.slow


@pytest.fixture
def shop(db_path):
    """A network on the test's database, and an admin key for it."""
    path = db_path
    app = create_app({"DATABASE": path, "WEBHOOK_ALLOW": "127.0.0.1"})
    connection = database.open_from_config(app.config)
    key = auth.create_key(connection, "admin")[1]
    connection.close()
    admin = Api(app.test_client(), key)
    build_network(admin)
    return {"path": path, "key": key, "admin": admin}


def race(count: int, threads: int, work) -> list:
    """Run ``work(n)`` for n in range(count) from several threads; collect the answers."""
    results = []
    numbers = iter(range(count))
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                number = next(numbers, None)
            if number is None:
                return
            answer = work(number)
            with lock:
                results.append(answer)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return results


def test_daily_capacity_holds_under_racing_orders_on_three_servers(shop):
    admin = shop["admin"]
    for node_id in ("DC1", "PL1"):
        node = {**NODES[node_id], "daily_capacity": 10}
        assert admin.put(f"/v1/nodes/{node_id}", json=node).status_code == 200
    set_stock(admin, "DC1", {"MUG": 500})
    set_stock(admin, "PL1", {"MUG": 500})
    with several(shop["path"], 3, DISPATCH_EMBEDDED="false") as ports:
        statuses = race(
            80,
            12,
            lambda n: call(
                ports[n % 3], shop["key"], "POST", "/v1/orders", order(f"c{n}", [("MUG", 1, 9.0)])
            )["status"],
        )
    connection = database.open_database(shop["path"])
    used = dict(
        connection.execute(
            "SELECT node_id, COUNT(*) FROM shipments WHERE status != 'cancelled' GROUP BY node_id"
        ).fetchall()
    )
    connection.close()
    assert used == {"DC1": 10, "PL1": 10}
    assert collections.Counter(statuses) == {"sourced": 20, "backordered": 60}


def test_writes_never_fail_on_the_lock_while_orders_flow(shop):
    admin = shop["admin"]
    set_stock(admin, "DC1", {"MUG": 10_000})
    quiet = {"DISPATCH_EMBEDDED": "false"}
    with serving(shop["path"], 2, **quiet) as one, serving(shop["path"], 2, **quiet) as two:
        ports = [one, two]

        def work(n: int) -> tuple[str, int]:
            port = ports[n % 2]
            if n % 4 == 0:
                kind = ("nodes/ST1", "skus/CUP", "customers/C1")[n // 4 % 3]
                body = {
                    "nodes/ST1": NODES["ST1"],
                    "skus/CUP": SKUS["CUP"],
                    "customers/C1": CUSTOMERS["C1"],
                }[kind]
                return "put", status_of(port, shop["key"], "PUT", f"/v1/{kind}", body)
            body = order(f"w{n}", [("MUG", 1, 9.0), ("CUP", 1, 2.0)])
            return "order", status_of(port, shop["key"], "POST", "/v1/orders", body)

        answers = race(240, 8, work)
    puts = [status for kind, status in answers if kind == "put"]
    orders_placed = [status for kind, status in answers if kind == "order"]
    assert len(puts) == 60
    assert set(puts) == {200}, collections.Counter(puts)
    assert set(orders_placed) == {201}, collections.Counter(orders_placed)


def hooked(shop, receiver: Receiver, orders: int) -> set[str]:
    """DC1 sends to the receiver; ``orders`` orders each queue one request for it."""
    admin = shop["admin"]
    webhook = {"url": receiver.url, "secret": SECRET}
    assert admin.put("/v1/nodes/DC1", json={**NODE_DC, "webhook": webhook}).status_code == 200
    set_stock(admin, "DC1", {"MUG": orders})
    for number in range(orders):
        assert admin.post("/v1/orders", json=order(f"h{number}", [("MUG", 1, 1.0)])).status_code
    connection = database.open_database(shop["path"])
    ids = {row[0] for row in connection.execute("SELECT message_id FROM outbox")}
    connection.close()
    assert len(ids) == orders
    return ids


def outbox_states(path: str) -> collections.Counter:
    connection = database.open_database(path)
    try:
        return collections.Counter(
            row[0] for row in connection.execute("SELECT status FROM outbox")
        )
    finally:
        connection.close()


# A batch takes longer than the claim's lease: another dispatcher may claim its tail.
RACING_DISPATCH = {
    "WEBHOOK_ALLOW": "127.0.0.1",
    "DISPATCH_LEASE_SECONDS": "1",
    "WEBHOOK_TIMEOUT_SECONDS": "1",
    "DISPATCH_POLL_SECONDS": "0.05",
}


def assert_each_sent_once(path: str, receiver: Receiver, ids: set[str]) -> None:
    """Each message reached the receiver once, never two sends at once, one attempt each."""
    sent = collections.Counter(r["id"] for r in receiver.received)
    assert set(sent) == ids
    assert max(sent.values()) == 1, [i for i, n in sent.items() if n > 1]
    assert receiver.overlaps == 0
    connection = database.open_database(path)
    attempts = connection.execute("SELECT COUNT(*) FROM delivery_attempts").fetchone()[0]
    connection.close()
    assert attempts == len(ids)


def test_two_dispatchers_never_send_one_message_twice(shop):
    receiver = Receiver([SECRET])
    try:
        ids = hooked(shop, receiver, 30)
        receiver.script.extend([("sleep", 0.25)] * 100)
        with dispatching(shop["path"], 2, **RACING_DISPATCH):
            assert wait_for(lambda: outbox_states(shop["path"])["delivered"] == 30, 60)
        assert_each_sent_once(shop["path"], receiver, ids)
    finally:
        receiver.close()


def test_a_brief_outage_dead_letters_nothing(shop):
    receiver = Receiver([SECRET])
    try:
        ids = hooked(shop, receiver, 60)
        # The outage starts with the first send, however long the dispatchers take to start.
        receiver.down_from_first(1.5)
        settings = {
            "WEBHOOK_ALLOW": "127.0.0.1",
            "WEBHOOK_TIMEOUT_SECONDS": "1",
            "DISPATCH_POLL_SECONDS": "0.05",
            "RETRY_SCHEDULE": "0.2,0.2,0.2",
            "RETRY_JITTER": "0",
            "CIRCUIT_WAIT_SECONDS": "0.2",
            "ENDPOINT_DISABLE_AFTER_SECONDS": "600",
        }
        with dispatching(shop["path"], 2, **settings):
            assert wait_for(lambda: outbox_states(shop["path"])["delivered"] == 60, 60), (
                outbox_states(shop["path"])
            )
        assert receiver.delivered_ids() == ids
        failed = [r for r in receiver.received if r["status"] != 200]
        # The circuit opened after a few failures: the backlog was not burnt during the outage.
        assert 0 < len(failed) < 20
        node = shop["admin"].get("/v1/nodes/DC1").get_json()
        assert node["webhook"]["disabled_at"] is None
        assert node["webhook"]["failures"] == 0
    finally:
        receiver.close()
