"""A/B comparisons: assignment, split and shadow experiments, guardrails, reports, replays."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from click.testing import CliRunner

from app.edges.cli import main
from app.machinery import experiments, replays
from app.machinery.rules import runtime
from app.machinery.rules.engine import EngineError
from app.machinery.rules.sandbox import Sandbox
from app.platform import auth
from tests.conftest import Api
from tests.rules_helpers import shipped
from tests.sourcing_helpers import build_network, order, set_stock


@pytest.fixture
def analyst(client, keys):
    return Api(client, keys["analyst"])


@pytest.fixture
def shop(admin, analyst, network):
    build_network(admin)
    set_stock(admin, "DC1", {"MUG": 500})
    set_stock(admin, "PL1", {"CUP": 500})
    two = shipped(version=2, description="one box per order")
    two["settings"]["max_shipments"] = 1
    assert analyst.post("/v1/rulesets/sourcing/versions", json=two).status_code == 201
    return admin


def two_line_order(order_id, customer="C1"):
    # MUG only at DC1, CUP only at PL1: v1 ships both, v2 (one shipment) only one line.
    return order(order_id, [("MUG", 1, 10.0), ("CUP", 1, 5.0)], customer)


def experiment_body(**changes) -> dict:
    return {
        "experiment_id": "ab1",
        "ruleset": "sourcing",
        "champion": 1,
        "challenger": 2,
        "mode": "split",
        "challenger_share": 0.5,
        **changes,
    }


def experiment(analyst, **changes):
    return analyst.post("/v1/experiments", json=experiment_body(**changes))


def test_assignment_is_sticky_and_matches_the_share():
    keys = [f"order-{n}" for n in range(10_000)]
    counts = Counter(experiments.assign("exp-a", key, 0.3) for key in keys)
    assert counts["challenger"] / 10_000 == pytest.approx(0.3, abs=0.015)
    again = [experiments.assign("exp-a", key, 0.3) for key in keys[:500]]
    assert again == [experiments.assign("exp-a", key, 0.3) for key in keys[:500]]
    other = [experiments.assign("exp-b", key, 0.3) for key in keys[:500]]
    assert other != again  # another experiment shuffles differently
    assert {experiments.assign("x", k, 0.0) for k in keys[:200]} == {"champion"}
    assert {experiments.assign("x", k, 1.0) for k in keys[:200]} == {"challenger"}


def test_experiments_are_checked_when_created(shop, analyst):
    assert experiment(analyst, challenger=9).status_code == 422
    assert experiment(analyst, challenger=1).status_code == 422
    assert experiment(analyst).status_code == 201
    second = experiment(analyst, experiment_id="ab2")
    assert second.status_code == 409
    assert second.get_json()["error"]["code"] == "experiment_running"


def test_a_challenger_failing_its_scenarios_cannot_run(shop, analyst):
    broken = shipped(version=3)
    hazmat = next(r for r in broken["rules"] if r["id"] == "hazmat-not-from-stores")
    hazmat["when"][2]["where"]["node_type"] = {"eq": "supplier"}  # stores ship hazmat again
    analyst.post("/v1/rulesets/sourcing/versions", json=broken)
    response = experiment(analyst, challenger=3)
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "scenarios_failed"


def test_split_mode_decides_with_the_assigned_version(shop, analyst):
    assert experiment(analyst, challenger_share=0.5).status_code == 201
    variants = Counter()
    for number in range(24):
        decision = shop.post("/v1/orders", json=two_line_order(f"s{number}")).get_json()
        variant = decision["experiment"]["variant"]
        assert variant == experiments.assign("ab1", f"s{number}", 0.5)
        assert decision["ruleset"]["version"] == (2 if variant == "challenger" else 1)
        variants[variant] += 1
    assert set(variants) == {"champion", "challenger"}
    report = analyst.get("/v1/experiments/ab1/report").get_json()
    total = sum(v["decisions"] for v in report["variants"].values())
    assert total == 24
    fill = report["challenger_minus_champion"]["fill_rate"]
    assert fill["enough_data"] is False
    assert "not enough data" in fill["note"]


def test_guardrail_stops_a_harmful_challenger(shop, analyst):
    guardrails = {"max_fill_rate_drop": 0.02, "min_decisions": 5}
    experiment(analyst, guardrails=guardrails)
    for number in range(40):
        shop.post("/v1/orders", json=two_line_order(f"g{number}"))
    report = analyst.get("/v1/experiments/ab1/report").get_json()
    assert report["variants"]["challenger"]["fill_rate"] == pytest.approx(0.5)
    assert report["variants"]["champion"]["fill_rate"] == pytest.approx(1.0)
    stopped = analyst.get("/v1/experiments/ab1").get_json()
    assert stopped["status"] == "stopped"
    assert "fill rate fell" in stopped["stop_reason"]
    decision = shop.post("/v1/orders", json=two_line_order("after")).get_json()
    assert decision["experiment"] is None  # back to the active version alone


def test_shadow_mode_records_the_challenger_without_acting(shop, analyst, db):
    assert experiment(analyst, mode="shadow").status_code == 201
    for number in range(6):
        response = shop.post("/v1/orders", json=two_line_order(f"h{number}"))
        response.close()  # the shadow evaluation runs once the answer is delivered
        decision = response.get_json()
        assert decision["experiment"]["variant"] == "champion"
        assert decision["status"] == "sourced"
    assert db.execute("SELECT COUNT(*) FROM shadow_decisions").fetchone()[0] == 6
    assert db.execute("SELECT COUNT(*) FROM shipments").fetchone()[0] == 12  # champion only
    report = analyst.get("/v1/experiments/ab1/report").get_json()
    assert report["disagreement_rate"] == 1.0
    assert report["variants"]["challenger"]["fill_rate"] == pytest.approx(0.5)
    # v2 ships one box: the CUP line leaves PL1 on every order.
    assert {"node_id": "PL1", "lines_gained": 0, "lines_lost": 6} in report[
        "nodes_making_the_difference"
    ]
    assert all(
        count <= report["disagreements"] for _, count in report["rules_making_the_difference"]
    )
    listed = analyst.get("/v1/experiments/ab1/disagreements?limit=4").get_json()
    assert len(listed["disagreements"]) == 4 and listed["next_cursor"]
    first = listed["disagreements"][0]
    pair = analyst.get(f"/v1/experiments/ab1/disagreements/{first['decision_id']}").get_json()
    assert pair["agrees"] is False
    assert len(pair["champion"]["shipments"]) == 2 and len(pair["challenger"]["shipments"]) == 1
    assert analyst.get("/v1/experiments/ab1/disagreements/dec_nope").status_code == 404


def test_promote_and_stop(shop, analyst):
    experiment(analyst)
    promoted = analyst.post("/v1/experiments/ab1/promote").get_json()
    assert promoted["status"] == "promoted"
    assert analyst.get("/v1/rulesets/sourcing").get_json()["active_version"] == 2
    again = analyst.post("/v1/experiments/ab1/stop")
    assert again.status_code == 409


def wait_for(analyst, replay_id):
    deadline = time.monotonic() + 30
    while True:
        replay = analyst.get(f"/v1/replays/{replay_id}").get_json()
        if replay["status"] in ("done", "failed") or time.monotonic() > deadline:
            return replay
        time.sleep(0.05)


def test_replaying_a_version_over_its_own_decisions_changes_nothing(shop, analyst):
    for number in range(30):
        shop.post("/v1/orders", json=two_line_order(f"r{number}", ["C1", "VIP"][number % 2]))
    started = analyst.post(
        "/v1/replays", json={"ruleset": "sourcing", "champion": 1, "challenger": 1}
    )
    assert started.status_code == 202
    same = wait_for(analyst, started.get_json()["replay_id"])
    assert same["status"] == "done"
    assert (same["total"], same["report"]["changed"], same["changes"]) == (30, 0, [])
    started = analyst.post(
        "/v1/replays", json={"ruleset": "sourcing", "champion": 1, "challenger": 2}
    )
    different = wait_for(analyst, started.get_json()["replay_id"])
    assert different["report"]["changed"] == 30
    change = different["changes"][0]
    assert change["difference"]["same_nodes"] is False
    assert different["report"]["challenger_minus_champion"]["fill_rate"][
        "difference"
    ] == pytest.approx(-0.5)
    draft = shipped(version=77)
    by_draft = analyst.post(
        "/v1/replays",
        json={"ruleset": "sourcing", "champion": 1, "draft": draft, "channel": "web", "limit": 5},
    )
    replay = wait_for(analyst, by_draft.get_json()["replay_id"])
    assert (replay["total"], replay["report"]["changed"]) == (5, 0)
    listed = analyst.get("/v1/replays?limit=2").get_json()
    assert listed["replays"][0]["replay_id"] == replay["replay_id"]
    assert listed["next_cursor"] is not None
    rest = analyst.get(f"/v1/replays?cursor={listed['next_cursor']}").get_json()["replays"]
    assert len(listed["replays"]) + len(rest) == 3


def test_a_replay_decides_in_engines_of_its_own_and_keeps_the_order(shop, analyst, db, monkeypatch):
    # 60 decisions: three chunks, decided by two threads at once.
    for number in range(60):
        shop.post("/v1/orders", json=two_line_order(f"o{number}", ["C1", "VIP"][number % 2]))

    def refuse(*args, **kwargs):
        raise AssertionError("a replay evaluated in the engine the requests use")

    monkeypatch.setattr(runtime.SANDBOX, "evaluate_many", refuse)
    request = {"ruleset": "sourcing", "champion": 1, "challenger": 2}
    started = analyst.post("/v1/replays", json=request)
    replay = wait_for(analyst, started.get_json()["replay_id"])
    assert (replay["status"], replay["total"], replay["report"]["changed"]) == ("done", 60, 60)
    # Every decision changed, and the changes come in the order the decisions were chosen.
    assert [change["decision_id"] for change in replay["changes"]] == replays.select(db, request)
    # Each replay's own engines stay free of the requests': a decision still evaluates.
    monkeypatch.undo()
    assert shop.post("/v1/orders", json=two_line_order("after")).status_code == 201


def test_a_replay_whose_engine_fails_is_failed(shop, analyst, monkeypatch):
    for number in range(30):
        shop.post("/v1/orders", json=two_line_order(f"f{number}"))

    def broken(*args, **kwargs):
        raise EngineError("the engine stopped")

    monkeypatch.setattr(Sandbox, "evaluate_many", broken)
    started = analyst.post(
        "/v1/replays", json={"ruleset": "sourcing", "champion": 1, "challenger": 2}
    )
    replay = wait_for(analyst, started.get_json()["replay_id"])
    assert replay["status"] == "failed"
    assert "the engine stopped" in replay["error"]


def test_cli_report_and_replay(shop, analyst, db_path, monkeypatch):
    experiment(analyst)
    for number in range(6):
        shop.post("/v1/orders", json=two_line_order(f"c{number}"))
    monkeypatch.setenv("DOM_DATABASE", db_path)
    report = CliRunner().invoke(main, ["experiments", "report", "ab1"])
    assert report.exit_code == 0, report.output
    assert "fill_rate" in report.output and "not enough data" in report.output
    replay = CliRunner().invoke(main, ["replay", "--champion", "1", "--challenger", "2"])
    assert replay.exit_code == 0, replay.output
    assert "decisions changed" in replay.output


def test_an_analyst_key_is_needed(client, network, db):
    channel = Api(client, auth.create_key(db, "channel")[1])
    assert channel.get("/v1/experiments").status_code == 403
