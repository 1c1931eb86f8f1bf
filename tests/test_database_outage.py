"""When the database goes away: 503 with Retry-After, nothing half-written, recovery alone.

The restart test restarts a PostgreSQL server in the middle of a burst of orders sent to
two real `dom serve` processes: a cluster the test starts for itself in a temporary
directory (``tests/pgcluster.py``), never the machine's. It is skipped, with its reason,
where PostgreSQL's ``initdb`` is not installed.
"""

from __future__ import annotations

import collections
import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from app import create_app
from app.platform import auth
from app.platform import db as database
from tests import pgcluster
from tests.conftest import Api
from tests.servers import serving, wait_for
from tests.sourcing_helpers import build_network, order, set_stock

UNREACHABLE = "postgresql://dom@127.0.0.1:9/nowhere"
KEYS = "dGVzdC1rZXktdGhhdC1pcy0zMi1ieXRlcy1sb25nISE="


def test_requests_get_503_with_retry_after_when_the_database_cannot_be_reached():
    app = create_app(
        {
            "DATABASE": UNREACHABLE,
            "SECRET_KEYS": "dGVzdC1rZXktdGhhdC1pcy0zMi1ieXRlcy1sb25nISE=",
            "AUTO_MIGRATE": False,
            "LOAD_RULESETS": False,
            "DATABASE_WAIT_SECONDS": 0.5,
            "DISPATCH_EMBEDDED": False,
        }
    )
    try:
        client = app.test_client()
        answer = client.post(
            "/v1/orders", json=order("o1", [("MUG", 1, 1.0)]), headers={"Authorization": "Bearer x"}
        )
        assert answer.status_code == 503
        assert answer.headers["Retry-After"] == "2"
        assert answer.get_json()["error"]["code"] == "database_unavailable"
        # Alive all the same (a liveness probe must not restart it), and not ready.
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "/checks/database" in [e["pointer"] for e in ready.get_json()["error"]["errors"]]
    finally:
        database.close_pools(UNREACHABLE)


def send(port: int, key: str, body: dict):
    """POST an order; (status, headers, json) or None when no answer came."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/orders",
        method="POST",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, dict(answer.headers), json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"null")
    except OSError:
        return None


def incomplete(url: str) -> list[str]:
    """Orders whose record is not whole: each has its decision, shipments and holds."""
    problems = []
    with database.open_database(url) as connection:
        for (order_id,) in connection.execute("SELECT order_id FROM orders").fetchall():
            decided = connection.execute(
                "SELECT result FROM decisions WHERE order_id = ? AND kind = 'order'", [order_id]
            ).fetchall()
            if len(decided) != 1:
                problems.append(f"{order_id}: {len(decided)} decisions")
                continue
            wanted = {s["node_id"]: s for s in json.loads(decided[0][0])["shipments"]}
            stored = connection.execute(
                "SELECT shipment_id, node_id FROM shipments WHERE order_id = ?", [order_id]
            ).fetchall()
            if sorted(row[1] for row in stored) != sorted(wanted):
                problems.append(f"{order_id}: shipments {stored} for {sorted(wanted)}")
            for shipment_id, node_id in stored:
                held = connection.execute(
                    "SELECT COALESCE(SUM(qty), 0) FROM reservations WHERE shipment_id = ?",
                    [shipment_id],
                ).fetchone()[0]
                if held != sum(line["qty"] for line in wanted[node_id]["lines"]):
                    problems.append(f"{order_id}: {shipment_id} holds {held}")
    return problems


@pytest.fixture
def restartable():
    """A database on a PostgreSQL cluster of the test's own, and the cluster."""
    with pgcluster.own_cluster() as cluster:
        url = cluster.create_database("dom_restart")
        yield url, cluster
        database.close_pools(url)


@pytest.mark.slow
@pytest.mark.one_database
@pytest.mark.skipif(pgcluster.why_not() is not None, reason=str(pgcluster.why_not()))
def test_a_database_restart_in_a_burst_of_orders_loses_nothing_and_heals(restartable):
    db_path, cluster = restartable
    app = create_app({"DATABASE": db_path, "SECRET_KEYS": KEYS})
    with database.open_from_config(app.config) as connection:
        key = auth.create_key(connection, "admin")[1]
    admin = Api(app.test_client(), key)
    build_network(admin)
    set_stock(admin, "DC1", {"MUG": 100_000})
    database.close_pools(db_path)

    answers: dict[str, object] = {}
    bodies: dict[str, dict] = {}
    stop = threading.Event()
    counter = iter(range(1_000_000))
    lock = threading.Lock()
    quiet = {"DISPATCH_EMBEDDED": "false", "DATABASE_WAIT_SECONDS": "2", "SECRET_KEYS": KEYS}
    with serving(db_path, 2, **quiet) as one, serving(db_path, 2, **quiet) as two:
        ports = [one, two]

        def burst() -> None:
            while not stop.is_set():
                with lock:
                    number = next(counter)
                body = order(f"b{number}", [("MUG", 1, 5.0)])
                answer = send(ports[number % 2], key, body)
                with lock:
                    bodies[body["order_id"]] = body
                    answers[body["order_id"]] = answer

        threads = [threading.Thread(target=burst) for _ in range(6)]
        for thread in threads:
            thread.start()
        # The restart comes in the middle of the burst, whatever the machine's speed.
        assert wait_for(lambda: len(answers) >= 10, 60)
        cluster.restart()
        back = time.monotonic()
        # Served again within seconds of the database's return, without a restart.
        assert wait_for(
            lambda: (
                send(ports[0], key, order(f"probe{time.monotonic()}", [("MUG", 1, 1)]))[0] == 201
            ),
            15,
            0.2,
        )
        healed_after = time.monotonic() - back
        time.sleep(1.0)
        stop.set()
        for thread in threads:
            thread.join()

        outcomes = collections.Counter("no answer" if a is None else a[0] for a in answers.values())
        assert set(outcomes) <= {201, 503, "no answer"}, outcomes
        assert outcomes[201] > 0
        for answer in answers.values():
            if answer is not None and answer[0] == 503:
                assert answer[1].get("Retry-After"), answer
                assert answer[2]["error"]["code"] in ("database_unavailable", "database_busy")
        # Every order that did not get 201 can be sent again: it is decided once.
        for order_id, answer in answers.items():
            if answer is None or answer[0] != 201:
                again = send(ports[0], key, bodies[order_id])
                assert again is not None and again[0] in (200, 201), (order_id, again)
    assert incomplete(db_path) == []
    print(f"restart: {dict(outcomes)}; served again {healed_after:.1f} s after the database")
