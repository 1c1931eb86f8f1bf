"""The analyst's release workflow: scenarios travel with versions.

A version keeps the scenarios it was stored with; the draft set is what the next version
will carry. Activation, rollback and experiments run the version's own scenarios, so a
rollback is never held up by scenarios written later. Scenarios are checked when stored.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import pytest

from app import create_app
from tests.conftest import Api
from tests.rules_helpers import shipped
from tests.sourcing_helpers import NODES, build_network, order, set_stock

ROOT = Path(__file__).parent.parent
PREFERENCES = json.loads(
    (ROOT / "rulesets/sourcing/scenarios/node-type-preferences.json").read_text()
)


@pytest.fixture
def analyst(client, keys):
    return Api(client, keys["analyst"])


def with_weight(version: int, add: int) -> dict:
    """The shipped ruleset as ``version``, with prefer-dc adding ``add`` instead of 3."""
    document = shipped(version=version, description=f"prefer-dc +{add}")
    rule = next(r for r in document["rules"] if r["id"] == "prefer-dc")
    rule["then"][0]["add"] = add
    return document


def exact_dc_score(score) -> dict:
    case = copy.deepcopy(PREFERENCES)
    case["expect"]["scored"]["L1@DC-MID"] = score
    return case


def test_a_version_keeps_the_scenarios_it_was_stored_with(analyst):
    first = analyst.get("/v1/rulesets/sourcing/versions/1").get_json()
    assert "node-type-preferences" in first["scenarios"]
    assert (
        analyst.put(
            "/v1/rulesets/sourcing/scenarios/dc-at-least-2", json=exact_dc_score({"at_least": 2})
        ).status_code
        == 201
    )
    assert (
        analyst.delete("/v1/rulesets/sourcing/scenarios/node-type-preferences").status_code == 204
    )
    stored = analyst.post("/v1/rulesets/sourcing/versions", json=with_weight(2, 2))
    assert stored.status_code == 201, stored.get_json()
    second = stored.get_json()
    assert "dc-at-least-2" in second["scenarios"]
    assert "node-type-preferences" not in second["scenarios"]
    # The draft changes after; the stored versions do not.
    assert (
        analyst.put(
            "/v1/rulesets/sourcing/scenarios/later", json=exact_dc_score({"at_most": 100})
        ).status_code
        == 201
    )
    again = analyst.get("/v1/rulesets/sourcing/versions/2").get_json()
    assert again["scenarios_sha256"] == second["scenarios_sha256"]
    assert "later" not in again["scenarios"]
    own = analyst.get("/v1/rulesets/sourcing/versions/1/scenarios").get_json()["scenarios"]
    assert {case["scenario_id"] for case in own} == set(first["scenarios"])
    one = analyst.get("/v1/rulesets/sourcing/versions/2/scenarios/dc-at-least-2")
    assert one.get_json()["expect"]["scored"]["L1@DC-MID"] == {"at_least": 2}
    missing = analyst.get("/v1/rulesets/sourcing/versions/1/scenarios/dc-at-least-2")
    assert missing.status_code == 404


def test_a_changed_weight_passes_scenarios_that_give_a_range(analyst):
    analyst.put("/v1/rulesets/sourcing/scenarios/node-type-preferences", json=exact_dc_score(3))
    # An exact score pins the weight: the new version fails its own scenario.
    analyst.post("/v1/rulesets/sourcing/versions", json=with_weight(2, 2))
    pinned = analyst.post("/v1/rulesets/sourcing/versions/2/activate", json={})
    assert pinned.status_code == 409
    assert pinned.get_json()["error"]["errors"][0]["pointer"] == "/scenarios/node-type-preferences"
    # A range says what matters (DCs are preferred) and survives the change.
    analyst.put(
        "/v1/rulesets/sourcing/scenarios/node-type-preferences",
        json=exact_dc_score({"at_least": 1, "at_most": 5}),
    )
    analyst.post("/v1/rulesets/sourcing/versions", json=with_weight(3, 2))
    assert analyst.post("/v1/rulesets/sourcing/versions/3/activate", json={}).status_code == 201
    report = analyst.post("/v1/rulesets/sourcing/versions/3/test").get_json()
    assert report["failed"] == 0


def test_rollback_is_never_blocked_by_scenarios_written_later(analyst):
    analyst.put("/v1/rulesets/sourcing/scenarios/node-type-preferences", json=exact_dc_score(2))
    assert analyst.post("/v1/rulesets/sourcing/versions", json=with_weight(2, 2)).status_code == 201
    assert analyst.post("/v1/rulesets/sourcing/versions/2/activate", json={}).status_code == 201
    # The draft now asserts what only version 2 does; version 1 still carries its own.
    rolled = analyst.post("/v1/rulesets/sourcing/rollback")
    assert rolled.status_code == 201, rolled.get_json()
    assert analyst.get("/v1/rulesets/sourcing").get_json()["active_version"] == 1
    # Its own scenarios pass; the draft set would not.
    draft = analyst.post("/v1/rulesets/sourcing/versions/1/test?scenarios=draft").get_json()
    assert draft["failed"] == 1


@pytest.mark.parametrize(
    ("change", "pointer", "message"),
    [
        (
            lambda c: c["expect"].update(fired=["prefer-dc", "prefer-dcs"]),
            "/expect/fired/1",
            "rule 'prefer-dcs' does not exist in sourcing version 1; did you mean 'prefer-dc'?",
        ),
        (
            lambda c: c.update(absent={"excluded_by": {"L1@ST-005": "no-such-rule"}}),
            "/absent/excluded_by/L1@ST-005",
            "rule 'no-such-rule' does not exist in sourcing version 1",
        ),
        (lambda c: c["facts"][0].update(total="lots"), "/facts/0/total", None),
        (lambda c: c.pop("expect"), "/expect", "is required"),
    ],
)
def test_scenarios_are_checked_when_stored(analyst, change, pointer, message):
    case = copy.deepcopy(PREFERENCES)
    change(case)
    response = analyst.put("/v1/rulesets/sourcing/scenarios/bad", json=case)
    assert response.status_code == 422
    errors = response.get_json()["error"]["errors"]
    assert pointer in [e["pointer"] for e in errors], errors
    if message:
        assert message in [e["message"] for e in errors]
    assert analyst.get("/v1/rulesets/sourcing/scenarios/bad").status_code == 404


def test_a_version_whose_rules_lose_a_rule_its_scenarios_name_is_refused(analyst):
    document = shipped(version=2)
    document["rules"] = [r for r in document["rules"] if r["id"] != "prefer-dc"]
    response = analyst.post("/v1/rulesets/sourcing/versions", json=document)
    assert response.status_code == 422
    pointers = [e["pointer"] for e in response.get_json()["error"]["errors"]]
    assert "/scenarios/node-type-preferences/expect/fired/0" in pointers
    assert analyst.get("/v1/rulesets/sourcing/versions/2").status_code == 404


def test_excluded_by_names_the_rule_that_excluded(analyst):
    case = copy.deepcopy(PREFERENCES)
    case["expect"] = {"excluded_by": {"L1@ST-005": "prefer-dc"}}
    analyst.put("/v1/rulesets/sourcing/scenarios/wrong-rule", json=case)
    report = analyst.post("/v1/rulesets/sourcing/versions/1/test?scenarios=draft").get_json()
    row = next(r for r in report["scenarios"] if r["scenario_id"] == "wrong-rule")
    assert row["failures"] == [
        "expected L1@ST-005 excluded by rule prefer-dc; L1@ST-005 was not excluded"
    ]


def test_deleting_a_scenario_leaves_the_versions_alone(analyst):
    assert analyst.delete("/v1/rulesets/sourcing/scenarios/protect-store-stock").status_code == 204
    assert analyst.delete("/v1/rulesets/sourcing/scenarios/protect-store-stock").status_code == 404
    assert "protect-store-stock" not in analyst.get("/v1/rulesets/sourcing").get_json()["scenarios"]
    assert (
        "protect-store-stock"
        in analyst.get("/v1/rulesets/sourcing/versions/1").get_json()["scenarios"]
    )


def test_a_restart_never_overwrites_what_analysts_stored(analyst, db_path, caplog):
    edited = exact_dc_score({"at_least": 0})
    analyst.put("/v1/rulesets/sourcing/scenarios/node-type-preferences", json=edited)
    with caplog.at_level(logging.INFO, logger="app.machinery.rules.runtime"):
        create_app({"DATABASE": db_path})
    assert "sourcing version 1 already stored, unchanged" in caplog.text
    kept = analyst.get("/v1/rulesets/sourcing/scenarios/node-type-preferences").get_json()
    assert kept["expect"]["scored"]["L1@DC-MID"] == {"at_least": 0}


def test_shipped_files_load_as_a_new_version_only_when_new(tmp_path, db_path, caplog, keys, client):
    folder = tmp_path / "rulesets" / "sourcing"
    (folder / "scenarios").mkdir(parents=True)
    (folder / "ruleset.json").write_text(json.dumps(with_weight(2, 2)))
    (folder / "scenarios" / "dc-preferred.json").write_text(
        json.dumps(exact_dc_score({"at_least": 1}))
    )
    with caplog.at_level(logging.INFO, logger="app.machinery.rules.runtime"):
        create_app({"DATABASE": db_path, "RULESETS_DIR": str(tmp_path / "rulesets")})
    assert "sourcing version 2 stored (new in the file, with 1 scenarios)" in caplog.text
    analyst = Api(client, keys["analyst"])
    ruleset = analyst.get("/v1/rulesets/sourcing").get_json()
    assert ruleset["active_version"] == 1  # a new file version is stored, not released
    assert analyst.get("/v1/rulesets/sourcing/versions/2").get_json()["scenarios"] == [
        "dc-preferred"
    ]
    # The file's scenarios change, under the same number: the stored version keeps its own.
    (folder / "scenarios" / "dc-preferred.json").write_text(
        json.dumps(exact_dc_score({"at_least": 2}))
    )
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="app.machinery.rules.runtime"):
        create_app({"DATABASE": db_path, "RULESETS_DIR": str(tmp_path / "rulesets")})
    assert "the scenario files differ from the scenarios it was stored with" in caplog.text
    kept = analyst.get("/v1/rulesets/sourcing/versions/2/scenarios/dc-preferred").get_json()
    assert kept["expect"]["scored"]["L1@DC-MID"] == {"at_least": 1}


def test_a_real_decision_becomes_a_scenario_without_personal_data(admin, analyst, keys, client):
    build_network(admin)
    set_stock(admin, "DC1", {"MUG": 5})
    set_stock(admin, "ST1", {"MUG": 5})
    decision = admin.post("/v1/orders", json=order("o1", [("MUG", 2, 9.0)])).get_json()
    assert decision["status"] == "sourced"
    # Analysts see the facts the rules saw; channels do not.
    seen = analyst.get(f"/v1/decisions/{decision['decision_id']}").get_json()
    assert any(f["fact"] == "candidate" for f in seen["facts"])
    channel = Api(client, keys["channel"])
    assert "facts" not in channel.get(f"/v1/decisions/{decision['decision_id']}").get_json()

    made = analyst.client.post(
        f"/v1/decisions/{decision['decision_id']}/scenario", headers=analyst.headers
    )
    assert made.status_code == 201, made.get_json()
    case = made.get_json()
    assert case["scenario_id"] == f"from-{decision['decision_id']}"
    served = decision["shipments"][0]["node_id"]
    assert case["expect"]["status"] == "sourced"
    assert case["expect"]["serves"] == {"1": served}
    text = json.dumps(case["facts"])
    assert "C1" not in [f.get("customer_id") for f in case["facts"]]
    assert "LE1 5WW" not in text
    report = analyst.post("/v1/rulesets/sourcing/versions/1/test?scenarios=draft").get_json()
    row = next(r for r in report["scenarios"] if r["scenario_id"] == case["scenario_id"])
    assert row["passed"], row["failures"]
    # Edited to expect another node, it fails with the analyst's words.
    case["expect"]["serves"] = {"1": "ST2"}
    case.pop("scenario_id")
    analyst.put("/v1/rulesets/sourcing/scenarios/edited", json=case)
    report = analyst.post("/v1/rulesets/sourcing/versions/1/test?scenarios=draft").get_json()
    row = next(r for r in report["scenarios"] if r["scenario_id"] == "edited")
    assert row["failures"] == [f"expected ST2 to serve line 1; {served} did"]


def test_action_endpoints_take_no_body(analyst):
    analyst.post("/v1/rulesets/sourcing/versions", json=with_weight(2, 3))
    bare = analyst.client.post("/v1/rulesets/sourcing/versions/2/activate", headers=analyst.headers)
    assert bare.status_code == 201, bare.get_json()


def fall_due(db, activation_id: int) -> None:
    """Move a scheduled activation's time into the past, as the clock would."""
    from app.platform import db as database

    with database.atomic(db):
        db.execute(
            "UPDATE ruleset_activations SET effective_at = ? WHERE activation_id = ?",
            [database.now(), activation_id],
        )


def test_a_scheduled_activation_takes_effect_only_if_its_scenarios_still_pass(analyst, db):
    analyst.post("/v1/rulesets/sourcing/versions", json=with_weight(2, 3))
    analyst.post("/v1/rulesets/sourcing/versions", json=with_weight(3, 3))
    later = {"at": "2099-01-01T00:00:00Z"}
    good = analyst.post("/v1/rulesets/sourcing/versions/2/activate", json=later).get_json()
    assert good["status"] == "scheduled"
    fall_due(db, good["activation_id"])
    ruleset = analyst.get("/v1/rulesets/sourcing").get_json()
    assert ruleset["active_version"] == 2
    assert ruleset["activations"][-1]["status"] == "effective"

    bad = analyst.post("/v1/rulesets/sourcing/versions/3/activate", json=later).get_json()
    # Between scheduling and the time it falls due, what the scenarios see changes (here
    # the stored expectation, as a new engine or fact catalogue would change the result).
    from app.platform import db as database

    case = exact_dc_score(99)
    with database.atomic(db):
        db.execute(
            "UPDATE ruleset_version_scenarios SET document = ?"
            " WHERE name = 'sourcing' AND version = 3 AND scenario_id = 'node-type-preferences'",
            [json.dumps(case)],
        )
    fall_due(db, bad["activation_id"])
    ruleset = analyst.get("/v1/rulesets/sourcing").get_json()
    assert ruleset["active_version"] == 2  # the previous version stays
    failed = next(a for a in ruleset["activations"] if a["activation_id"] == bad["activation_id"])
    assert failed["status"] == "failed"
    assert "expected score 99 for L1@DC-MID" in failed["failure"]


def test_a_draft_is_tested_with_its_scenarios_without_storing_it(analyst):
    draft = with_weight(7, 2)
    cases = {"dc-first": exact_dc_score({"at_least": 1}), "pinned": exact_dc_score(3)}
    response = analyst.post(
        "/v1/rulesets/sourcing/test", json={"document": draft, "scenarios": cases}
    )
    assert response.status_code == 200, response.get_json()
    report = response.get_json()
    assert (report["passed"], report["failed"]) == (1, 1)
    assert analyst.get("/v1/rulesets/sourcing/versions/7").status_code == 404
    # Without scenarios, the draft set runs.
    default = analyst.post("/v1/rulesets/sourcing/test", json={"document": shipped(version=7)})
    assert default.get_json()["failed"] == 0
    assert default.get_json()["passed"] == len(
        analyst.get("/v1/rulesets/sourcing").get_json()["scenarios"]
    )
    # Every problem of the draft and its scenarios, at once, before anything runs.
    broken = shipped(version=7)
    broken["settings"]["max_shipments"] = "two"
    bad_case = exact_dc_score(3)
    bad_case["expect"]["fired"] = ["prefer-dcx"]
    refused = analyst.post(
        "/v1/rulesets/sourcing/test", json={"document": broken, "scenarios": {"x": bad_case}}
    )
    assert refused.status_code == 422
    pointers = [e["pointer"] for e in refused.get_json()["error"]["errors"]]
    assert "/document/settings/max_shipments" in pointers


def test_every_problem_comes_in_one_answer_in_an_analysts_words(analyst):
    document = shipped(version=2)
    rules = document["rules"]
    rules.append(
        {
            "id": "london-stores",
            "when": [
                {"fact": "candidate", "as": "c", "where": {"distance_km": {">": 10}}},
                {"fact": "candidate", "where": {"atp_after": {"gte": "2"}}},
            ],
            "then": [{"score": "c", "add": "lots", "reason": "x"}],  # a schema error
        }
    )
    rules.append({**rules[0]})  # the same id again
    document["settings"]["objective"]["distnace"] = 1
    response = analyst.post("/v1/rulesets/sourcing/versions", json=document)
    assert response.status_code == 422
    errors = {e["pointer"]: e["message"] for e in response.get_json()["error"]["errors"]}
    last, dup = len(rules) - 2, len(rules) - 1
    assert errors[f"/rules/{last}/when/0/where/distance_km/>"] == (
        "'>' is not an operator; did you mean 'gt'?"
    )
    # The rule has a schema error, and its sound pattern is still checked.
    assert errors[f"/rules/{last}/when/1/where/atp_after/gte"] == (
        'atp_after is a whole number; you wrote the text "2"'
    )
    assert errors[f"/rules/{last}/then/0/add"].startswith("must be a number; you wrote the text")
    assert "is already used by /rules/0" in errors[f"/rules/{dup}/id"]
    assert (
        errors["/settings/objective/distnace"] == "is not a known field; did you mean 'distance'?"
    )


def test_candidates_carry_where_the_node_is_and_where_the_goods_go(admin, analyst):
    build_network(admin)
    region = {**NODES["ST1"], "region": "East Midlands"}
    assert admin.put("/v1/nodes/ST1", json=region).status_code == 200
    assert admin.get("/v1/nodes/ST1").get_json()["region"] == "East Midlands"
    set_stock(admin, "ST1", {"MUG": 5})
    decision = admin.post("/v1/orders", json=order("o1", [("MUG", 1, 9.0)])).get_json()
    facts = analyst.get(f"/v1/decisions/{decision['decision_id']}").get_json()["facts"]
    placed = next(f for f in facts if f["fact"] == "order")
    assert (placed["destination_city"], placed["destination_postcode_area"]) == ("Leicester", "LE")
    store = next(f for f in facts if f["fact"] == "candidate" and f["node_id"] == "ST1")
    assert store["node_region"] == "East Midlands"
    assert (store["node_city"], store["node_postcode_area"]) == ("Leicester", "LE")
    assert (store["node_lat"], store["node_lon"]) == (52.6369, -1.1398)
    # A rule can now prefer stores in the order's own postcode area.
    draft = shipped(version=5)
    draft["rules"].append(
        {
            "id": "local-stores",
            "when": [
                {"fact": "order", "as": "o"},
                {
                    "fact": "candidate",
                    "as": "c",
                    "where": {
                        "node_type": {"eq": "store"},
                        "node_postcode_area": {"eq": {"ref": "o.destination_postcode_area"}},
                    },
                },
            ],
            "then": [{"score": "c", "add": 2, "reason": "a store in the order's area"}],
        }
    )
    case = {
        "scenario": "A store in the order's postcode area is preferred",
        "facts": [f for f in facts if f["fact"] != "customer"]
        + [
            {
                "fact": "customer",
                "customer_id": "C",
                "tier": "standard",
                "segments": [],
                "lifetime_orders": 1,
                "lifetime_value": 10.0,
            }
        ],
        "expect": {"fired": ["local-stores"], "scored": {store["key"]: {"at_least": 2}}},
    }
    tested = analyst.post(
        "/v1/rulesets/sourcing/test", json={"document": draft, "scenarios": {"local": case}}
    )
    assert tested.status_code == 200, tested.get_json()
    assert tested.get_json()["passed"] == 1, tested.get_json()


def test_a_version_records_its_change_note_and_the_person_who_released_it(client, db):
    from app.platform import auth

    priya = Api(client, auth.create_key(db, "analyst", name="Priya Shah")[1])
    document = with_weight(2, 2)
    document["change_note"] = "DCs cost more to pick this winter: prefer-dc +3 becomes +2."
    analyst_case = exact_dc_score({"at_least": 1})
    priya.put("/v1/rulesets/sourcing/scenarios/node-type-preferences", json=analyst_case)
    stored = priya.post("/v1/rulesets/sourcing/versions", json=document).get_json()
    assert stored["created_by"] == "Priya Shah"
    assert stored["change_note"].startswith("DCs cost more")
    activation = priya.post("/v1/rulesets/sourcing/versions/2/activate").get_json()
    assert activation["created_by"] == "Priya Shah"
    listed = priya.get("/v1/rulesets/sourcing/versions").get_json()["versions"]
    assert [v["version"] for v in listed] == [1, 2]
    assert listed[1]["change_note"] == document["change_note"]
    active = priya.get("/v1/rulesets/sourcing/active").get_json()
    assert active["version"] == 2 and active["activation"]["created_by"] == "Priya Shah"
    assert "node-type-preferences" in active["scenarios"]


def test_why_not_for_a_node_that_does_not_exist_is_404(admin, analyst):
    build_network(admin)
    set_stock(admin, "DC1", {"MUG": 5})
    decision = admin.post("/v1/orders", json=order("o1", [("MUG", 1, 9.0)])).get_json()
    path = f"/v1/decisions/{decision['decision_id']}/why-not"
    assert analyst.get(f"{path}/NOPE").status_code == 404
    assert analyst.get(f"{path}/ST2").status_code == 200


def test_why_not_says_which_way_the_objective_goes(admin, analyst):
    build_network(admin)
    set_stock(admin, "DC1", {"MUG": 5})
    set_stock(admin, "ST2", {"MUG": 5})  # Manchester: far from the Leicester address
    decision = admin.post("/v1/orders", json=order("o1", [("MUG", 1, 9.0)])).get_json()
    chosen = decision["shipments"][0]["node_id"]
    other = "ST2" if chosen == "DC1" else "DC1"
    answer = analyst.get(f"/v1/decisions/{decision['decision_id']}/why-not/{other}").get_json()
    reason = answer["lines"][0]["reason"]
    assert reason.startswith("lower is better: "), reason
    assert f"for {chosen} beat" in reason and reason.endswith(f"for {other}")


def test_the_draft_follows_a_new_shipped_version_unless_analysts_edited_it(
    tmp_path, db_path, keys, client
):
    folder = tmp_path / "rulesets" / "sourcing"
    (folder / "scenarios").mkdir(parents=True)
    (folder / "ruleset.json").write_text(json.dumps(with_weight(2, 2)))
    (folder / "scenarios" / "dc-preferred.json").write_text(
        json.dumps(exact_dc_score({"at_least": 1}))
    )
    create_app({"DATABASE": db_path, "RULESETS_DIR": str(tmp_path / "rulesets")})
    analyst = Api(client, keys["analyst"])
    # Nobody had edited the draft: the next version starts from version 2's scenarios.
    assert analyst.get("/v1/rulesets/sourcing").get_json()["scenarios"] == ["dc-preferred"]
    analyst.put("/v1/rulesets/sourcing/scenarios/mine", json=exact_dc_score({"at_least": 0}))
    (folder / "ruleset.json").write_text(json.dumps(with_weight(3, 2)))
    create_app({"DATABASE": db_path, "RULESETS_DIR": str(tmp_path / "rulesets")})
    # Version 3 came from the file, but the analyst's edited draft stays as it was.
    assert analyst.get("/v1/rulesets/sourcing").get_json()["scenarios"] == ["dc-preferred", "mine"]
    assert analyst.get("/v1/rulesets/sourcing/versions/3").get_json()["scenarios"] == [
        "dc-preferred"
    ]
