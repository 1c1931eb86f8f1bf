"""Ruleset versions over HTTP: store, read, compare, activate, roll back, evaluate."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.machinery.rules import registry
from app.platform import auth
from app.platform import db as database
from tests.conftest import Api
from tests.rules_helpers import shipped
from tests.servers import call, serving

SCENARIO = json.loads(
    (
        Path(__file__).parent.parent / "rulesets/sourcing/scenarios/protect-store-stock.json"
    ).read_text()
)


@pytest.fixture
def analyst(client, keys):
    return Api(client, keys["analyst"])


def version_two(**changes):
    document = shipped(version=2, description="v2: fewer splits")
    document["settings"]["max_shipments"] = 2
    prefer_dc = next(r for r in document["rules"] if r["id"] == "prefer-dc")
    prefer_dc["description"] = "DCs are cheapest per unit."
    document.update(changes)
    return document


def test_shipped_ruleset_is_loaded_and_active(analyst):
    listing = analyst.get("/v1/rulesets").get_json()["rulesets"]
    assert listing == [
        {
            "ruleset": "replenishment",
            "kind": "replenishment",
            "active_version": 1,
            "latest_version": 1,
            "versions": 1,
        },
        {
            "ruleset": "returns",
            "kind": "returns",
            "active_version": 2,
            "latest_version": 2,
            "versions": 1,
        },
        {
            "ruleset": "sourcing",
            "kind": "sourcing",
            "active_version": 1,
            "latest_version": 1,
            "versions": 1,
        },
    ]
    detail = analyst.get("/v1/rulesets/sourcing").get_json()
    assert detail["activations"][0]["kind"] == "initial"
    assert "protect-store-stock" in detail["scenarios"]


def test_store_versions_idempotently_and_immutably(analyst):
    response = analyst.post("/v1/rulesets/sourcing/versions", json=version_two())
    assert response.status_code == 201
    stored = response.get_json()
    assert len(stored["sha256"]) == 64
    again = analyst.post("/v1/rulesets/sourcing/versions", json=version_two())
    assert again.status_code == 200
    assert again.get_json()["sha256"] == stored["sha256"]
    # the same content with keys in another order is the same version
    reordered = json.loads(json.dumps(version_two(), sort_keys=True))
    assert analyst.post("/v1/rulesets/sourcing/versions", json=reordered).status_code == 200
    changed = version_two(description="something else")
    conflict = analyst.post("/v1/rulesets/sourcing/versions", json=changed)
    assert conflict.status_code == 409
    assert conflict.get_json()["error"]["code"] == "version_conflict"
    fetched = analyst.get("/v1/rulesets/sourcing/versions/2").get_json()
    assert fetched["document"] == version_two()


def test_invalid_versions_are_refused_with_every_problem(analyst):
    document = version_two()
    document["rules"][0]["when"][0]["where"]["atp_afer"] = {"lt": 2}
    document["rules"][1]["then"][0]["exclude"] = "nobody"
    response = analyst.post("/v1/rulesets/sourcing/versions", json=document)
    assert response.status_code == 422
    errors = response.get_json()["error"]["errors"]
    assert {(e["rule_id"], e["code"]) for e in errors} == {
        ("protect-store-stock", "unknown_field"),
        ("hazmat-not-from-stores", "unbound_alias"),
    }
    assert analyst.get("/v1/rulesets/sourcing/versions/2").status_code == 404
    wrong_name = analyst.post("/v1/rulesets/other/versions", json=version_two())
    assert wrong_name.status_code == 422
    assert wrong_name.get_json()["error"]["errors"][0]["pointer"] == "/ruleset"


def test_validate_endpoint(analyst):
    assert analyst.post("/v1/rulesets/validate", json=shipped()).get_json() == {
        "valid": True,
        "rules": 30,
    }
    bad = analyst.post("/v1/rulesets/validate", json={"ruleset": "x"})
    assert bad.status_code == 422
    assert {e["pointer"] for e in bad.get_json()["error"]["errors"]} == {
        "/version",
        "/settings",
        "/rules",
    }


def test_diff(analyst):
    # The draft scenario that names 3pl-fees goes first: a version cannot drop a rule
    # its scenarios expect.
    analyst.delete("/v1/rulesets/sourcing/scenarios/node-type-preferences")
    document = version_two()
    document["rules"] = [r for r in document["rules"] if r["id"] != "3pl-fees"]
    document["rules"].append(
        {
            "id": "social-hold",
            "when": [{"fact": "order", "where": {"channel": {"eq": "social"}}}],
            "then": [{"hold": "social orders are checked"}],
        }
    )
    analyst.post("/v1/rulesets/sourcing/versions", json=document)
    diff = analyst.get("/v1/rulesets/sourcing/diff?from=1&to=2").get_json()
    assert diff["rules"]["added"] == ["social-hold"]
    assert diff["rules"]["removed"] == ["3pl-fees"]
    assert diff["rules"]["changed"] == [
        {
            "id": "prefer-dc",
            "fields": {
                "description": {
                    "from": "DCs pick and pack at the lowest cost per unit.",
                    "to": "DCs are cheapest per unit.",
                }
            },
        }
    ]
    assert diff["settings"] == {"max_shipments": {"from": 3, "to": 2}}
    assert analyst.get("/v1/rulesets/sourcing/diff?from=1").status_code == 422
    assert analyst.get("/v1/rulesets/sourcing/diff?from=1&to=9").status_code == 404


def test_activate_and_roll_back(analyst, keys, db):
    analyst.post("/v1/rulesets/sourcing/versions", json=version_two())
    response = analyst.post("/v1/rulesets/sourcing/versions/2/activate", json={})
    assert response.status_code == 201
    activation = response.get_json()
    assert (activation["version"], activation["previous_version"]) == (2, 1)
    assert activation["created_by"].startswith("key_")
    assert analyst.get("/v1/rulesets/sourcing").get_json()["active_version"] == 2

    rolled = analyst.post("/v1/rulesets/sourcing/rollback")
    assert rolled.status_code == 201
    assert (rolled.get_json()["version"], rolled.get_json()["kind"]) == (1, "rollback")
    assert analyst.get("/v1/rulesets/sourcing").get_json()["active_version"] == 1
    history = analyst.get("/v1/rulesets/sourcing").get_json()["activations"]
    assert [(a["kind"], a["version"]) for a in history] == [
        ("initial", 1),
        ("activate", 2),
        ("rollback", 1),
    ]


def test_nothing_to_roll_back_to(analyst):
    response = analyst.post("/v1/rulesets/sourcing/rollback")
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "nothing_to_roll_back"


def test_scheduled_activation(analyst, db):
    analyst.post("/v1/rulesets/sourcing/versions", json=version_two())
    later = datetime.now(UTC) + timedelta(hours=2)
    response = analyst.post(
        "/v1/rulesets/sourcing/versions/2/activate", json={"at": later.isoformat()}
    )
    assert response.status_code == 201
    assert analyst.get("/v1/rulesets/sourcing").get_json()["active_version"] == 1
    after = database.format_time(later + timedelta(seconds=1))
    assert registry.active(db, "sourcing", after)["version"] == 2
    assert (
        analyst.post("/v1/rulesets/sourcing/versions/2/activate", json={"at": "soon"}).status_code
        == 422
    )


def test_failing_scenarios_block_activation(analyst):
    document = version_two(version=3)
    document["rules"][0]["when"][0]["where"]["atp_after"] = {"lt": 0}
    analyst.post("/v1/rulesets/sourcing/versions", json=document)
    report = analyst.post("/v1/rulesets/sourcing/versions/3/test").get_json()
    assert report["failed"] == 1
    assert [r["scenario_id"] for r in report["scenarios"] if not r["passed"]] == [
        "protect-store-stock"
    ]
    response = analyst.post("/v1/rulesets/sourcing/versions/3/activate", json={})
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "scenarios_failed"
    assert error["errors"][0]["pointer"] == "/scenarios/protect-store-stock"
    assert analyst.get("/v1/rulesets/sourcing").get_json()["active_version"] == 1


def test_scenarios_can_be_added_over_the_api(analyst):
    scenario = copy.deepcopy(SCENARIO)
    scenario["expect"]["excluded"] = ["L1@ST-003"]  # wrong on purpose
    response = analyst.put("/v1/rulesets/sourcing/scenarios/my-case", json=scenario)
    assert response.status_code == 201
    report = analyst.post("/v1/rulesets/sourcing/versions/1/test?scenarios=draft").get_json()
    assert [r["scenario_id"] for r in report["scenarios"] if not r["passed"]] == ["my-case"]
    # Version 1's own scenarios do not include it.
    own = analyst.post("/v1/rulesets/sourcing/versions/1/test").get_json()
    assert own["failed"] == 0 and "my-case" not in [r["scenario_id"] for r in own["scenarios"]]
    assert analyst.put("/v1/rulesets/nope/scenarios/x", json=scenario).status_code == 404


def test_evaluate_under_active_and_named_versions(analyst):
    analyst.post("/v1/rulesets/sourcing/versions", json=version_two())
    facts = SCENARIO["facts"]
    active = analyst.post("/v1/rulesets/sourcing/evaluate", json={"facts": facts}).get_json()
    assert active["version"] == 1
    assert "L1@ST-012" in active["excluded"]
    named = analyst.post(
        "/v1/rulesets/sourcing/evaluate", json={"facts": facts, "version": 2}
    ).get_json()
    assert named["version"] == 2
    bad = analyst.post(
        "/v1/rulesets/sourcing/evaluate",
        json={"facts": [{"fact": "order", "total": "lots"}, {"fact": "planet"}]},
    )
    assert bad.status_code == 422
    pointers = {e["pointer"] for e in bad.get_json()["error"]["errors"]}
    assert {"/facts/0/total", "/facts/1/fact"} <= pointers


@pytest.mark.slow
def test_activation_reaches_every_server_process_within_a_second(tmp_path):
    """Three gunicorn workers; after one activates v2, every answer uses v2 at once."""
    path = str(tmp_path / "served.db")
    with serving(path, workers=3) as port:
        connection = database.open_database(path)
        key = auth.create_key(connection, "analyst")[1]
        connection.close()
        facts = {"facts": SCENARIO["facts"]}
        for _ in range(12):  # every worker compiles and serves version 1
            assert call(port, key, "POST", "/v1/rulesets/sourcing/evaluate", facts)["version"] == 1
        call(port, key, "POST", "/v1/rulesets/sourcing/versions", version_two())
        call(port, key, "POST", "/v1/rulesets/sourcing/versions/2/activate", {})
        # No waiting: every request after the activation, on every worker, sees version 2.
        seen = [
            call(port, key, "POST", "/v1/rulesets/sourcing/evaluate", facts)["version"]
            for _ in range(30)
        ]
        assert seen == [2] * 30
