"""Several servers on one PostgreSQL database, for real.

Three `dom serve` processes on different ports and two `dom dispatch` processes share
one database, as they would behind a load balancer. Orders race for one stock across
them (daily capacity across three servers is in ``test_integrity_processes``, which runs
on both databases); dispatchers (embedded and standalone) race for the
outbox; an activation made through one server must be in force on the others within a
second; an experiment's assignment must not depend on the server that answers.
"""

from __future__ import annotations

import collections

import pytest

from app import create_app
from app.machinery import experiments
from app.platform import auth
from app.platform import db as database
from tests.conftest import NODE_DC, Api
from tests.databases import ON_POSTGRES
from tests.receiver import Receiver
from tests.rules_helpers import shipped
from tests.servers import call, dispatching, several, wait_for
from tests.sourcing_helpers import build_network, order, set_stock
from tests.test_dispatch import SECRET
from tests.test_experiments import experiment_body
from tests.test_integrity_processes import (
    RACING_DISPATCH,
    assert_each_sent_once,
    outbox_states,
    race,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not ON_POSTGRES, reason="several servers share a PostgreSQL database"),
]

QUIET = {"DISPATCH_EMBEDDED": "false", "WEBHOOK_ALLOW": "127.0.0.1"}


@pytest.fixture
def shop(db_path):
    """A network on the test's PostgreSQL database, with admin and analyst keys."""
    app = create_app({"DATABASE": db_path, "WEBHOOK_ALLOW": "127.0.0.1"})
    with database.open_from_config(app.config) as connection:
        key = auth.create_key(connection, "admin")[1]
        analyst = auth.create_key(connection, "analyst")[1]
    admin = Api(app.test_client(), key)
    build_network(admin)
    return {"url": db_path, "key": key, "analyst": analyst, "admin": admin}


def three_servers(url: str, **settings):
    return several(url, 3, **settings)


def query(url: str, sql: str, params=()) -> list:
    with database.open_database(url) as connection:
        return [tuple(row) for row in connection.execute(sql, params).fetchall()]


def test_orders_racing_for_one_stock_across_three_servers_never_oversell(shop):
    set_stock(shop["admin"], "DC1", {"MUG": 25})
    with three_servers(shop["url"], **QUIET) as ports:
        statuses = race(
            90,
            12,
            lambda n: call(
                ports[n % 3], shop["key"], "POST", "/v1/orders", order(f"r{n}", [("MUG", 1, 9.0)])
            )["status"],
        )
    assert collections.Counter(statuses) == {"sourced": 25, "backordered": 65}
    [(held,)] = query(
        shop["url"],
        "SELECT COALESCE(SUM(qty), 0) FROM reservations WHERE status = 'active'"
        " AND node_id = 'DC1' AND sku = 'MUG'",
    )
    assert held == 25


def test_eight_dispatchers_on_three_servers_and_two_processes_send_each_message_once(shop):
    receiver = Receiver([SECRET])
    try:
        admin = shop["admin"]
        webhook = {"url": receiver.url, "secret": SECRET}
        assert admin.put("/v1/nodes/DC1", json={**NODE_DC, "webhook": webhook}).status_code == 200
        set_stock(admin, "DC1", {"MUG": 40})
        receiver.script.extend([("sleep", 0.2)] * 100)
        # Every server worker runs a dispatcher too: 3 x 2 embedded, and 2 standalone.
        with (
            three_servers(shop["url"], **RACING_DISPATCH) as ports,
            dispatching(shop["url"], 2, **RACING_DISPATCH),
        ):
            race(
                40,
                8,
                lambda n: call(
                    ports[n % 3], shop["key"], "POST", "/v1/orders", order(f"d{n}", [("MUG", 1, 1)])
                ),
            )
            assert wait_for(lambda: outbox_states(shop["url"])["delivered"] == 40, 60), (
                outbox_states(shop["url"])
            )
        ids = {row[0] for row in query(shop["url"], "SELECT message_id FROM outbox")}
        assert len(ids) == 40
        assert_each_sent_once(shop["url"], receiver, ids)
    finally:
        receiver.close()


def test_an_activation_made_on_one_server_is_in_force_on_every_servers_next_order(shop):
    set_stock(shop["admin"], "DC1", {"MUG": 100})
    two = shipped(version=2, description="v2")
    two["settings"]["max_shipments"] = 1
    with three_servers(shop["url"], **QUIET) as ports:
        assert call(ports[0], shop["analyst"], "POST", "/v1/rulesets/sourcing/versions", two)
        for n, port in enumerate(ports):
            decision = call(
                port, shop["key"], "POST", "/v1/orders", order(f"a{n}", [("MUG", 1, 1)])
            )
            assert decision["ruleset"]["version"] == 1
        call(ports[0], shop["analyst"], "POST", "/v1/rulesets/sourcing/versions/2/activate", {})
        # No waiting: the very next order on each server is decided by the new version.
        for n, port in enumerate(ports):
            decision = call(
                port, shop["key"], "POST", "/v1/orders", order(f"b{n}", [("MUG", 1, 1)])
            )
            assert decision["ruleset"]["version"] == 2, port


def test_an_experiments_assignment_is_the_same_on_every_server(shop):
    admin = shop["admin"]
    set_stock(admin, "DC1", {"MUG": 500})
    set_stock(admin, "PL1", {"CUP": 500})
    two = shipped(version=2, description="one box per order")
    two["settings"]["max_shipments"] = 1
    with three_servers(shop["url"], **QUIET) as ports:
        analyst = shop["analyst"]
        call(ports[0], analyst, "POST", "/v1/rulesets/sourcing/versions", two)
        call(ports[1], analyst, "POST", "/v1/experiments", experiment_body())
        seen = collections.Counter()
        for n in range(30):
            placed = order(f"s{n}", [("MUG", 1, 10.0), ("CUP", 1, 5.0)])
            first = call(ports[n % 3], shop["key"], "POST", "/v1/orders", placed)
            again = call(ports[(n + 1) % 3], shop["key"], "POST", "/v1/orders", placed)
            variant = first["experiment"]["variant"]
            assert variant == experiments.assign("ab1", f"s{n}", 0.5)
            assert again["decision_id"] == first["decision_id"]
            assert again["experiment"]["variant"] == variant
            assert first["ruleset"]["version"] == (2 if variant == "challenger" else 1)
            seen[variant] += 1
    assert set(seen) == {"champion", "challenger"}
