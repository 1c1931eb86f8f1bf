"""Operations against real `dom serve` and `dom dispatch` processes: a request id from the
channel to the node and back, metrics summed over workers, SIGTERM in the middle of a
burst, a dispatcher that hands back its leases, a backup under load restored to a working
service."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from app import create_app
from app.domain.network import nodes
from app.platform import auth
from app.platform import db as database
from tests.conftest import Api
from tests.databases import ON_POSTGRES, POSTGRES
from tests.receiver import Receiver
from tests.servers import free_port, log_path, serving, start_dom, status_of, wait_for
from tests.sourcing_helpers import build_network, order, set_stock
from tests.test_dispatch import FAST, SECRET, drain

pytestmark = pytest.mark.slow


@pytest.fixture
def shop(db_path):
    """A network with plenty of MUG at DC1; keys for admin and DC1's node."""
    app = create_app({"DATABASE": db_path, **FAST})
    with database.open_from_config(app.config) as connection:
        key = auth.create_key(connection, "admin")[1]
    admin = Api(app.test_client(), key)
    build_network(admin)
    set_stock(admin, "DC1", {"MUG": 100_000, "CUP": 100_000})
    with database.open_from_config(app.config) as connection:
        node_key = auth.create_key(connection, "node", "DC1")[1]
    return {"url": db_path, "app": app, "admin": admin, "key": key, "node_key": node_key}


def post(port: int, key: str, path: str, body: dict, headers: dict | None = None):
    """POST JSON; return (status, body, headers); raise OSError when not answered."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
            **(headers or {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read()), dict(answer.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}"), dict(error.headers)


def log_lines(port: int) -> list[dict]:
    """The server's log: every line must be one JSON object."""
    text = log_path(f"serve-{port}").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def webhook_to(admin, receiver: Receiver) -> None:
    node = admin.get("/v1/nodes/DC1").get_json()
    body = {k: v for k, v in node.items() if k in nodes.WRITABLE}
    hook = {"url": receiver.url, "secret": SECRET}
    assert admin.put("/v1/nodes/DC1", json={**body, "webhook": hook}).status_code == 200


def query(url: str, sql: str) -> list:
    with database.open_database(url) as connection:
        return [tuple(row) for row in connection.execute(sql).fetchall()]


# A request id from the channel to the node and back ------------------------------------


def test_a_request_id_follows_the_order_to_the_node_and_back(shop):
    receiver = Receiver([SECRET])
    webhook_to(shop["admin"], receiver)
    try:
        with serving(
            shop["url"], workers=2, WEBHOOK_ALLOW="127.0.0.1", DISPATCH_POLL_SECONDS="0.05"
        ) as port:
            status, decision, headers = post(
                port,
                shop["key"],
                "/v1/orders",
                order("trace-1", [("MUG", 1, 5.0)]),
                {"X-Request-Id": "chan-7f3a"},
            )
            assert status == 201 and headers["X-Request-Id"] == "chan-7f3a"
            [shipment] = decision["shipments"]
            assert wait_for(lambda: receiver.received, 20)
            webhook = receiver.received[0]
            assert webhook["headers"]["x-request-id"] == "chan-7f3a"
            assert webhook["verified"][SECRET]
            # The node's system sends the id back with its callback, as a caller would.
            status, _, _ = post(
                port,
                shop["node_key"],
                f"/v1/shipments/{shipment['shipment_id']}/events",
                {"event_id": "n-1", "type": "accepted"},
                {"X-Request-Id": webhook["headers"]["x-request-id"]},
            )
            assert status == 201
            wait_for(
                lambda: any(line.get("event") == "delivery.attempted" for line in log_lines(port)),
                10,
            )
    finally:
        receiver.close()
    chain = [line for line in log_lines(port) if line.get("request_id") == "chan-7f3a"]
    seen = [(line["event"], line.get("route")) for line in chain]
    assert ("http.request", "/v1/orders") in seen
    assert ("decision.made", None) in seen
    assert ("delivery.attempted", None) in seen
    assert ("http.request", "/v1/shipments/<shipment_id>/events") in seen
    delivered = next(line for line in chain if line["event"] == "delivery.attempted")
    assert (
        delivered["result"] == "delivered" and delivered["shipment_id"] == (shipment["shipment_id"])
    )
    callback = next(line for line in chain if line.get("route", "").startswith("/v1/shipments"))
    assert callback["role"] == "node" and callback["shipment_id"] == shipment["shipment_id"]


# Metrics over several workers -------------------------------------------------------------


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        return answer.read().decode()


def total(text: str, name: str, **labels) -> float:
    found = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(have.get(k) == v for k, v in labels.items()):
            found += float(line.rsplit(" ", 1)[1])
    return found


def test_metrics_from_every_worker_add_up_to_the_requests_sent(shop, tmp_path):
    folder = tmp_path / "metrics"
    with serving(shop["url"], workers=3, METRICS_DIR=folder, DISPATCH_EMBEDDED="false") as port:
        outcomes = []

        def client(number: int, batch: int) -> None:
            for n in range(10):
                outcomes.append(
                    post(
                        port,
                        shop["key"],
                        "/v1/orders",
                        order(f"w{batch}-{number}-{n}", [("MUG", 1, 2.0)]),
                    )[0]
                )
                outcomes.append(
                    status_of(port, shop["key"], "GET", f"/v1/orders/none-{batch}-{number}-{n}")
                )

        # Which worker accepts a connection is the kernel's choice: send batches of 60
        # orders until at least two workers have served some (a slow machine may let one
        # worker keep up with a whole batch).
        for batch in range(5):
            threads = [threading.Thread(target=client, args=(n, batch)) for n in range(6)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            pids = {path.stem.rsplit("_", 1)[1] for path in folder.glob("counter_*.db")}
            if len(pids) >= 2:
                break
        assert sorted(set(outcomes)) == [201, 404]
        # Each worker wrote its own files; any worker's scrape sums all of them.
        assert len(pids) >= 2, pids
        sent = 60 * (batch + 1)
        for _ in range(4):
            text = scrape(port)
            assert total(text, "dom_http_requests_total", route="/v1/orders", status="201") == sent
            assert (
                total(
                    text,
                    "dom_http_requests_total",
                    route="/v1/orders/<order_id>",
                    method="GET",
                    status="404",
                )
                == sent
            )
            assert total(text, "dom_decisions_total", kind="order") == sent
            durations = total(text, "dom_http_request_duration_seconds_count", route="/v1/orders")
            assert durations == sent
            assert total(text, "dom_decision_phase_seconds_count", phase="commit") == sent
            assert total(text, "dom_reservations_active") == sent
            assert total(text, "dom_outbox_pending") == sent


# SIGTERM in the middle of a burst ---------------------------------------------------------


def test_sigterm_during_a_burst_loses_no_accepted_request(shop):
    port = free_port()
    env = {
        **os.environ,
        "DOM_DATABASE": shop["url"],
        "DOM_PORT": str(port),
        "DOM_WORKERS": "2",
        "DOM_SHUTDOWN_GRACE_SECONDS": "20",
    }
    server = start_dom("serve", env, f"serve-{port}")
    assert wait_for(lambda: status_of_health(port) == 200, 30)
    outcomes: dict[str, object] = {}
    lock = threading.Lock()

    def client(number: int) -> None:
        refused = 0
        for n in range(10_000):
            order_id = f"b{number}-{n}"
            try:
                status = post(port, shop["key"], "/v1/orders", order(order_id, [("MUG", 1, 2.0)]))[
                    0
                ]
            except OSError as exc:
                status = type(exc).__name__
                refused += 1
            with lock:
                outcomes[order_id] = status
            if refused >= 3:
                return

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    assert wait_for(lambda: sum(1 for s in list(outcomes.values()) if s == 201) >= 20, 30)
    server.send_signal(signal.SIGTERM)
    assert server.wait(40) == 0
    for thread in threads:
        thread.join(60)
    accepted = {order_id for order_id, status in outcomes.items() if status == 201}
    failed = {order_id for order_id, status in outcomes.items() if status != 201}
    assert {s for s in outcomes.values() if isinstance(s, int)} == {201}
    stored = {row[0] for row in query(shop["url"], "SELECT order_id FROM orders")}
    # Every order that was answered is stored, and nothing stored went unanswered.
    assert stored == accepted
    # The dispatchers handed back their messages and said they stopped.
    assert (
        query(shop["url"], "SELECT COUNT(*) FROM outbox WHERE lease_owner IS NOT NULL")[0][0] == 0
    )
    assert query(shop["url"], "SELECT COUNT(*) FROM dispatchers")[0][0] == 0
    # What was refused is sent again to a new server, and is decided once.
    with serving(shop["url"], workers=2) as again:
        for order_id in sorted(failed):
            assert (
                post(again, shop["key"], "/v1/orders", order(order_id, [("MUG", 1, 2.0)]))[0] == 201
            )
    stored = {row[0] for row in query(shop["url"], "SELECT order_id FROM orders")}
    assert stored == set(outcomes)
    decisions = query(shop["url"], "SELECT COUNT(*) FROM decisions WHERE kind = 'order'")[0][0]
    assert decisions == len(outcomes)


def status_of_health(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            return answer.status
    except OSError:
        return None


# A stopped dispatcher hands back its leases -------------------------------------------------


def test_a_stopped_dispatcher_hands_its_messages_to_another_at_once(shop):
    receiver = Receiver([SECRET])
    receiver.script.extend([("sleep", 1.5)] * 3)
    webhook_to(shop["admin"], receiver)
    try:
        for number in range(8):
            made = shop["admin"].post("/v1/orders", json=order(f"h{number}", [("MUG", 1, 2.0)]))
            assert made.status_code == 201
        env = {
            **os.environ,
            "DOM_DATABASE": shop["url"],
            "DOM_WEBHOOK_ALLOW": "127.0.0.1",
            "DOM_DISPATCH_LEASE_SECONDS": "600",  # an unreleased lease would hold for 10 minutes
            "DOM_DISPATCH_POLL_SECONDS": "0.05",
            "DOM_WEBHOOK_TIMEOUT_SECONDS": "5",
        }
        worker = start_dom("dispatch", env, "dispatch-handback")
        assert wait_for(lambda: sum(receiver.in_flight.values()) >= 1, 20)
        claimed = query(shop["url"], "SELECT COUNT(*) FROM outbox WHERE lease_owner IS NOT NULL")[
            0
        ][0]
        assert claimed >= 2  # it holds a batch, not only the message in hand
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(20) == 0
        # The message in hand was finished; the others are free now, not in 10 minutes.
        assert len(receiver.delivered_ids()) >= 1
        held = query(
            shop["url"],
            "SELECT COUNT(*) FROM outbox WHERE lease_owner IS NOT NULL AND status = 'pending'",
        )[0][0]
        assert held == 0
        drain(shop["app"], rounds=10)
        assert query(shop["url"], "SELECT COUNT(*) FROM outbox WHERE status = 'pending'")[0][0] == 0
        assert len(receiver.delivered_ids()) == 8
    finally:
        receiver.close()
    lines = log_path("dispatch-handback").read_text().splitlines()
    stopped = [json.loads(line) for line in lines if '"dispatcher.stopped"' in line]
    assert stopped and stopped[-1]["released"] >= 1


# Backups ---------------------------------------------------------------------------------


def dom(*args: str, url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.edges.cli", *args],
        env={**os.environ, "DOM_DATABASE": url},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif(
    ON_POSTGRES and not (shutil.which("pg_dump") and shutil.which("pg_restore")),
    reason="PostgreSQL's client tools (pg_dump, pg_restore) are not installed",
)
def test_a_backup_under_load_restores_to_a_working_service(shop, tmp_path):
    stop = threading.Event()
    made = []

    def writer() -> None:
        client = Api(shop["app"].test_client(), shop["key"])
        number = 0
        while not stop.is_set():
            answer = client.post("/v1/orders", json=order(f"k{number}", [("MUG", 1, 2.0)]))
            assert answer.status_code == 201
            made.append(number)
            number += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert wait_for(lambda: len(made) >= 20, 30)
        before = len(made)
        file = tmp_path / "dom.backup"
        done = dom("db", "backup", str(file), url=shop["url"])
        after = len(made)
        assert done.returncode == 0, done.stderr
        assert "database:" in done.stderr
        assert after > before  # orders kept coming while the copy was made
        wait_for(lambda: len(made) >= after + 5, 10)
    finally:
        stop.set()
        thread.join(30)
    assert json.loads(done.stdout)["file"] == str(file)
    again = dom("db", "backup", str(file), url=shop["url"])
    assert again.returncode != 0 and "exists" in again.stderr  # never overwritten by accident
    target = POSTGRES.empty() if ON_POSTGRES else str(tmp_path / "restored.db")
    try:
        restored = dom("db", "restore", str(file), "--yes", url=target)
        assert restored.returncode == 0, restored.stderr
        count = query(target, "SELECT COUNT(*) FROM orders")[0][0]
        assert before <= count <= after + 1
        # A consistent snapshot: each order with its decision, each shipment with its stock.
        undecided = query(
            target,
            "SELECT COUNT(*) FROM orders o WHERE NOT EXISTS (SELECT 1 FROM decisions d"
            " WHERE d.order_id = o.order_id AND d.kind = 'order')",
        )[0][0]
        unreserved = query(
            target,
            "SELECT COUNT(*) FROM shipments s WHERE NOT EXISTS (SELECT 1 FROM reservations r"
            " WHERE r.shipment_id = s.shipment_id)",
        )[0][0]
        assert (undecided, unreserved) == (0, 0)
        with serving(target, workers=2) as port:
            status, decision, _ = post(
                port, shop["key"], "/v1/orders", order("after", [("MUG", 1, 2.0)])
            )
            assert status == 201 and decision["status"] == "sourced"
            assert status_of(port, shop["key"], "GET", "/v1/orders/k0") == 200
            assert status_of(port, shop["key"], "GET", f"/v1/orders/k{after + 1}") == 404
    finally:
        if ON_POSTGRES:
            database.close_pools(target)
            POSTGRES.drop(target)


@pytest.mark.skipif(ON_POSTGRES, reason="about the SQLite file")
def test_a_restore_refuses_what_is_not_a_backup(shop, tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    refused = dom("db", "restore", str(junk), "--yes", url=str(tmp_path / "target.db"))
    assert refused.returncode != 0
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    refused = dom("db", "restore", str(empty), "--yes", url=str(tmp_path / "target.db"))
    assert refused.returncode != 0 and "not a DOM database" in refused.stderr
    # The key file that encrypts webhook secrets travels with the backup.
    file = tmp_path / "with-key.backup"
    assert dom("db", "backup", str(file), url=shop["url"]).returncode == 0
    assert Path(str(file) + ".key").read_bytes() == Path(shop["url"] + ".key").read_bytes()
    assert Path(str(file)).stat().st_mode & 0o777 == 0o600
