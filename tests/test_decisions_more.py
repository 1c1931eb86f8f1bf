"""Simulation, replay, in-transit supply, and orders racing for the same stock."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from app.domain.network import stock
from app.edges.cli import main
from app.kinds.sourcing import decide
from app.machinery import decisions
from app.machinery.rules import registry
from app.platform import auth
from app.platform import db as database
from tests.rules_helpers import shipped
from tests.servers import call, serving
from tests.sourcing_helpers import build_network, order, set_stock


@pytest.fixture
def shop(admin, network):
    build_network(admin)
    return admin


def test_simulation_reserves_nothing_and_logs_the_decision(shop, db):
    set_stock(shop, "DC1", {"MUG": 5})
    response = shop.post("/v1/decisions/simulate", json=order("s", [("MUG", 2, 10.0)]))
    assert response.status_code == 200
    decision = response.get_json()
    assert decision["simulated"] is True
    assert decision["shipments"][0]["node_id"] == "DC1"
    assert db.execute("SELECT COUNT(*) FROM reservations").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 0
    assert db.execute("SELECT kind FROM decisions").fetchall()[0][0] == "simulation"
    assert stock.atp(db, "DC1", "MUG") == 5


def test_simulation_under_a_draft_ruleset(shop):
    set_stock(shop, "DC1", {"MUG": 5})
    set_stock(shop, "PL1", {"CUP": 5})
    body = order("s", [("MUG", 1, 10.0), ("CUP", 1, 5.0)])
    normal = shop.post("/v1/decisions/simulate", json=body).get_json()
    assert normal["status"] == "sourced"
    draft = shipped(version=99)
    draft["settings"]["max_shipments"] = 1
    one_box = shop.post("/v1/decisions/simulate", json={**body, "draft_ruleset": draft})
    decision = one_box.get_json()
    assert decision["ruleset"]["version"] == 99
    assert decision["status"] == "partially_sourced"
    assert decision["unfulfilled"][0]["reason"] == "max_shipments"
    broken = shipped(version=100)
    broken["rules"][0]["when"][0]["where"]["node_typ"] = {"eq": "store"}
    refused = shop.post("/v1/decisions/simulate", json={**body, "draft_ruleset": broken})
    assert refused.status_code == 422
    assert refused.get_json()["error"]["errors"][0]["pointer"].startswith("/draft_ruleset/rules/0/")
    both = shop.post(
        "/v1/decisions/simulate", json={**body, "draft_ruleset": draft, "ruleset_version": 1}
    )
    assert both.status_code == 422


def test_replay_is_identical_over_many_orders(shop, db, env_db_path=None):
    rng = random.Random(5)
    for node_id in ("DC1", "ST1", "ST2", "PL1"):
        set_stock(shop, node_id, {sku: rng.randint(0, 30) for sku in ("MUG", "CUP", "HAZ", "BIG")})
    set_stock(shop, "SUP1", {"SOFA": 40})
    ids = []
    for number in range(40):
        lines = [
            (rng.choice(["MUG", "CUP", "HAZ", "BIG", "SOFA"]), rng.randint(1, 4), 25.0)
            for _ in range(rng.randint(1, 3))
        ]
        extra = {"channel": rng.choice(["web", "marketplace", "app"])}
        customer = rng.choice(["C1", "VIP", "B2B"])
        response = shop.post("/v1/orders", json=order(f"r{number}", lines, customer, **extra))
        assert response.status_code == 201
        ids.append(response.get_json()["decision_id"])
    statuses = set()
    for decision_id in ids:
        replay = shop.post(f"/v1/decisions/{decision_id}/replay", json={}).get_json()
        assert replay["identical"], replay
        statuses.add(replay["original"]["status"])
    assert {"sourced", "partially_sourced"} <= statuses  # the orders were not all alike
    # A replay run (which leaves out each candidate's weighing) decides the same, with the
    # same rules fired.
    records = [decisions.get(db, decision_id) for decision_id in ids]
    version = registry.get(db, "sourcing", records[0]["decision"]["ruleset"]["version"])
    for record, light in zip(
        records, decide.replay_many(records, version, explained=False), strict=True
    ):
        assert decide.outcome(light) == decide.outcome(record["decision"])
        fired = record["decision"]["explanation"]["rules_fired"]
        assert light["explanation"]["rules_fired"] == fired
        assert light["explanation"]["considered"] == []


def test_replay_under_another_version(shop, db):
    set_stock(shop, "DC1", {"MUG": 5})
    set_stock(shop, "PL1", {"CUP": 5})
    decision = shop.post("/v1/orders", json=order("o", [("MUG", 1, 1.0), ("CUP", 1, 1.0)]))
    decision_id = decision.get_json()["decision_id"]
    two = shipped(version=2)
    two["settings"]["max_shipments"] = 1
    analyst_key = auth.create_key(db, "analyst")[1]
    headers = {"Authorization": f"Bearer {analyst_key}"}
    assert (
        shop.client.post("/v1/rulesets/sourcing/versions", json=two, headers=headers).status_code
        == 201
    )
    replay = shop.post(f"/v1/decisions/{decision_id}/replay", json={"version": 2}).get_json()
    assert replay["identical"] is False
    assert replay["replayed"]["status"] == "partially_sourced"


def test_cli_replay(shop, db, db_path, monkeypatch):
    set_stock(shop, "DC1", {"MUG": 5})
    decision_id = shop.post("/v1/orders", json=order("o", [("MUG", 1, 1.0)])).get_json()[
        "decision_id"
    ]
    monkeypatch.setenv("DOM_DATABASE", db_path)
    result = CliRunner().invoke(main, ["decisions", "replay", decision_id])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("identical")


def test_in_transit_supply_when_the_ruleset_allows_it(shop, db):
    analyst_key = auth.create_key(db, "analyst")[1]
    headers = {"Authorization": f"Bearer {analyst_key}"}
    two = shipped(version=2)
    two["settings"]["use_in_transit"] = True
    shop.client.post("/v1/rulesets/sourcing/versions", json=two, headers=headers)
    assert (
        shop.client.post(
            "/v1/rulesets/sourcing/versions/2/activate", json={}, headers=headers
        ).status_code
        == 201
    )
    eta = datetime.now(UTC) + timedelta(days=2)
    shop.post(
        "/v1/inventory/transfers",
        json={
            "transfer_id": "T1",
            "sku": "MUG",
            "qty": 10,
            "destination_node_id": "DC1",
            "eta": eta.isoformat(),
        },
    )
    late = order("late", [("MUG", 2, 5.0)], promised_by=(eta - timedelta(days=1)).isoformat())
    assert shop.post("/v1/orders", json=late).get_json()["status"] == "backordered"
    fits = order("fits", [("MUG", 2, 5.0)], promised_by=(eta + timedelta(days=1)).isoformat())
    decision = shop.post("/v1/orders", json=fits).get_json()
    assert decision["status"] == "sourced"
    assert decision["shipments"][0]["lines"][0]["supply"] == "in_transit"
    supply = db.execute("SELECT supply FROM reservations WHERE status = 'active'").fetchall()
    assert [row[0] for row in supply] == ["in_transit"]
    # the goods arrive: the reservation now holds stock on hand, and the late order,
    # waiting for MUG, is served from it
    receipt = shop.post("/v1/inventory/transfers/T1/receipt", json={}).get_json()
    assert receipt["backorders_resumed"] == ["late"]
    supply = db.execute("SELECT supply FROM reservations WHERE status = 'active'").fetchall()
    assert [row[0] for row in supply] == ["on_hand", "on_hand"]
    assert stock.atp(db, "DC1", "MUG") == 6


def test_threads_racing_for_the_same_stock(shop, db, app):
    set_stock(shop, "DC1", {"MUG": 10})
    results = []

    def place(number: int) -> None:
        client = app.test_client()
        response = client.post(
            "/v1/orders", json=order(f"t{number}", [("MUG", 1, 10.0)]), headers=shop.headers
        )
        results.append((response.status_code, response.get_json()["status"]))

    threads = [threading.Thread(target=place, args=(n,)) for n in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(code == 201 for code, _ in results)
    assert sorted(status for _, status in results).count("sourced") == 10
    reserved = db.execute(
        "SELECT SUM(qty) FROM reservations WHERE status = 'active' AND sku = 'MUG'"
    ).fetchone()[0]
    assert reserved == 10
    assert stock.atp(db, "DC1", "MUG") == 0


@pytest.mark.slow
def test_server_processes_racing_for_the_same_stock(db_path):
    from app import create_app

    path = db_path
    app = create_app({"DATABASE": path})
    connection = database.open_from_config(app.config)
    key = auth.create_key(connection, "admin")[1]
    connection.close()
    client = app.test_client()
    from tests.conftest import Api

    admin = Api(client, key)
    build_network(admin)
    set_stock(admin, "DC1", {"MUG": 12})
    with serving(path, workers=4) as port:
        results = []

        def place(number: int) -> None:
            body = order(f"p{number}", [("MUG", 1, 10.0)])
            results.append(call(port, key, "POST", "/v1/orders", body)["status"])

        threads = [threading.Thread(target=place, args=(n,)) for n in range(30)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(results) == 30
    assert results.count("sourced") == 12
    connection = database.open_database(path)
    reserved = connection.execute(
        "SELECT SUM(qty) FROM reservations WHERE status = 'active'"
    ).fetchone()[0]
    assert reserved == 12
    assert stock.atp(connection, "DC1", "MUG") == 0
    connection.close()
