"""Rulesets: validate, store versions, compare, activate, roll back, test with scenarios."""

from __future__ import annotations

from flask import Blueprint, g, jsonify

from app.edges.api.endpoints import Param, created_or_ok, endpoint, query_args, schemas
from app.machinery.rules import diff, kinds, registry, runtime
from app.platform.db import get_db, normalize_time, now
from app.platform.errors import InvalidInput, NotFound, field_error

bp = Blueprint("rulesets", __name__, url_prefix="/v1")

AUTHORS = ("admin", "analyst")
TEST_QUERY = (
    Param(
        "scenarios",
        "Whose scenarios to run: the version's own (default), or the draft set.",
        enum=("version", "draft"),
    ),
)
DIFF_QUERY = (
    Param("from", "The older version.", "integer", required=True, minimum=1),
    Param("to", "The newer version.", "integer", required=True, minimum=1),
)


@endpoint(
    bp,
    "/rulesets/validate",
    "POST",
    summary="Check a ruleset: every problem at once, with pointers and rule ids",
    roles=AUTHORS,
    body="ruleset",
    check_body=False,
    responses={200: "Valid", 422: "Problems, each with pointer, rule_id and code"},
)
def validate_ruleset(body):
    runtime.require_valid(body, schemas())
    return jsonify({"valid": True, "rules": len(body["rules"])})


@endpoint(
    bp,
    "/rulesets/<name>/versions",
    "POST",
    summary="Store a new immutable ruleset version",
    roles=AUTHORS,
    body="ruleset",
    check_body=False,
    responses={
        200: "The same content was already stored under this version",
        201: "Stored",
        409: "Other content is stored under this version number",
        422: "The ruleset has problems; nothing stored",
    },
)
def post_version(name: str, body):
    runtime.require_valid(body, schemas())
    if body["ruleset"] != name:
        raise InvalidInput([field_error(("ruleset",), f"must be {name!r}, the name in the URL")])
    # The version carries the draft set of scenarios, checked against its own rules.
    version, created = runtime.store_version(get_db(), body, schemas(), "api", g.principal.author)
    return created_or_ok(version, created)


@endpoint(bp, "/rulesets", "GET", summary="List rulesets with their active version", roles=AUTHORS)
def list_rulesets():
    db = get_db()
    found = []
    for name in registry.names(db):
        current = registry.active(db, name)
        stored = registry.versions(db, name)
        found.append(
            {
                "ruleset": name,
                "kind": stored[-1]["kind"],
                "active_version": current["version"] if current else None,
                "latest_version": stored[-1]["version"],
                "versions": len(stored),
            }
        )
    return jsonify({"rulesets": found})


@endpoint(
    bp,
    "/rulesets/<name>",
    "GET",
    summary="A ruleset: its versions, the active one, scheduled and past activations",
    roles=AUTHORS,
    responses={200: "The ruleset", 404: "No such ruleset"},
)
def get_ruleset(name: str):
    db = get_db()
    stored = registry.versions(db, name)
    runtime.confirm_due(db, name)  # a scheduled activation that fell due is checked first
    current = registry.active(db, name)
    history = registry.activations(db, name)
    return jsonify(
        {
            "ruleset": name,
            "active_version": current["version"] if current else None,
            "versions": stored,
            "activations": history,
            # The draft set: what the next version will carry.
            "scenarios": [s["scenario_id"] for s in registry.scenarios(db, name)],
        }
    )


@endpoint(
    bp,
    "/rulesets/<name>/versions",
    "GET",
    summary="The stored versions of a ruleset, oldest first (without their documents)",
    roles=AUTHORS,
    responses={200: "The versions", 404: "No such ruleset"},
)
def list_versions(name: str):
    return jsonify({"ruleset": name, "versions": registry.versions(get_db(), name)})


@endpoint(
    bp,
    "/rulesets/<name>/active",
    "GET",
    summary="The version in force now, with its document and the scenarios it carries",
    roles=AUTHORS,
    responses={200: "The active version", 404: "No such ruleset, or none active"},
)
def get_active(name: str):
    db = get_db()
    version = runtime.active_version(db, name)
    activation = registry.active(db, name)
    return jsonify({**registry.detail(db, name, version["version"]), "activation": activation})


@endpoint(
    bp,
    "/rulesets/<name>/versions/<int:version>",
    "GET",
    summary="One stored version with its document, hash and the scenarios it carries",
    roles=AUTHORS,
    responses={200: "The version", 404: "No such version"},
)
def get_version(name: str, version: int):
    return jsonify(registry.detail(get_db(), name, version))


@endpoint(
    bp,
    "/rulesets/<name>/versions/<int:version>/scenarios",
    "GET",
    summary="The scenarios a version was stored with (immutable, like its rules)",
    roles=AUTHORS,
    responses={200: "The scenarios", 404: "No such version"},
)
def list_version_scenarios(name: str, version: int):
    db = get_db()
    registry.get(db, name, version)
    return jsonify({"scenarios": runtime.version_cases(db, name, version)})


@endpoint(
    bp,
    "/rulesets/<name>/versions/<int:version>/scenarios/<scenario_id>",
    "GET",
    summary="One scenario of a version",
    roles=AUTHORS,
    responses={200: "The scenario", 404: "No such version or scenario"},
)
def get_version_scenario(name: str, version: int, scenario_id: str):
    db = get_db()
    registry.get(db, name, version)
    carried = registry.version_scenarios(db, name, version)
    if scenario_id not in carried:
        raise NotFound(f"{name} version {version} carries no scenario {scenario_id!r}")
    return jsonify({"scenario_id": scenario_id, **carried[scenario_id]})


@endpoint(
    bp,
    "/rulesets/<name>/diff",
    "GET",
    summary="What changed between two versions: rules added, removed, changed; settings",
    roles=AUTHORS,
    query=DIFF_QUERY,
    responses={200: "The differences", 404: "No such version", 422: "Invalid query"},
)
def get_diff(name: str):
    args = query_args(DIFF_QUERY)
    db = get_db()
    old = registry.get(db, name, args["from"])["document"]
    new = registry.get(db, name, args["to"])["document"]
    return jsonify(diff.diff(old, new))


@endpoint(
    bp,
    "/rulesets/<name>/versions/<int:version>/activate",
    "POST",
    summary="Activate a version now or at a future time, once its scenarios pass",
    roles=AUTHORS,
    body="activation",
    optional_body=True,
    responses={
        201: "Activation recorded",
        404: "No such version",
        409: "Scenarios fail under this version",
    },
)
def activate_version(name: str, version: int, body: dict):
    at = normalize_time(body["at"]) if body.get("at") else None
    if at is not None and at <= now():
        # A time already passed would rewrite what was in force then: leave ``at`` out.
        raise InvalidInput([field_error(("at",), "is in the past; leave it out to activate now")])
    activation = runtime.activate(get_db(), schemas(), name, version, g.principal.author, at)
    return jsonify(activation), 201


@endpoint(
    bp,
    "/rulesets/<name>/rollback",
    "POST",
    summary="Re-activate the version that was active before the current one",
    roles=AUTHORS,
    responses={201: "Rolled back", 404: "No active version", 409: "Nothing to roll back to"},
)
def rollback(name: str):
    db = get_db()
    target = registry.previous_version(db, name)
    activation = runtime.activate(db, schemas(), name, target, g.principal.author, kind="rollback")
    return jsonify(activation), 201


@endpoint(
    bp,
    "/rulesets/<name>/scenarios/<scenario_id>",
    "PUT",
    summary="Create or replace a scenario in the ruleset's draft set (the next version's)",
    roles=AUTHORS,
    body="scenario",
    responses={
        200: "Replaced",
        201: "Created",
        404: "No such ruleset",
        422: "Facts or expectations do not fit the ruleset's latest version",
    },
)
def put_scenario(name: str, scenario_id: str, body: dict):
    db = get_db()
    latest = registry.versions(db, name)[-1]  # 404 for an unknown ruleset
    base = registry.get(db, name, latest["version"])["document"]
    found = runtime.scenario_problems(body, base, schemas())
    if found:
        raise InvalidInput(found, f"the scenario does not fit {name} version {base['version']}")
    scenario, created = registry.put_scenario(db, name, scenario_id, body, "api")
    return created_or_ok(scenario, created)


@endpoint(
    bp,
    "/rulesets/<name>/scenarios/<scenario_id>",
    "GET",
    summary="One scenario of the ruleset's draft set",
    roles=AUTHORS,
    responses={200: "The scenario", 404: "No such scenario"},
)
def get_scenario(name: str, scenario_id: str):
    return jsonify(registry.draft_scenario(get_db(), name, scenario_id))


@endpoint(
    bp,
    "/rulesets/<name>/scenarios/<scenario_id>",
    "DELETE",
    summary="Take a scenario out of the draft set (stored versions keep theirs)",
    roles=AUTHORS,
    responses={204: "Deleted", 404: "No such scenario"},
)
def delete_scenario(name: str, scenario_id: str):
    registry.delete_scenario(get_db(), name, scenario_id)
    return "", 204


@endpoint(
    bp,
    "/rulesets/<name>/scenarios",
    "GET",
    summary="The ruleset's draft set of scenarios: what its next version will carry",
    roles=AUTHORS,
)
def list_scenarios(name: str):
    return jsonify({"scenarios": registry.scenarios(get_db(), name)})


@endpoint(
    bp,
    "/rulesets/<name>/versions/<int:version>/test",
    "POST",
    summary="Run a version's own scenarios (or the draft set) against it and report each",
    roles=AUTHORS,
    query=TEST_QUERY,
    responses={200: "The report (see passed and failed)", 404: "No such version"},
)
def test_version(name: str, version: int):
    db = get_db()
    args = query_args(TEST_QUERY)
    stored = registry.get(db, name, version)
    if args.get("scenarios") == "draft":
        cases = registry.scenarios(db, name)
    else:
        cases = runtime.version_cases(db, name, version)
    return jsonify(runtime.run_scenarios(stored, cases, schemas()))


@endpoint(
    bp,
    "/rulesets/<name>/test",
    "POST",
    summary="Test a draft ruleset with its scenarios (or the draft set) without storing it",
    roles=AUTHORS,
    body="draft_test",
    responses={
        200: "The report (see passed and failed)",
        404: "No such ruleset",
        422: "The draft or its scenarios have problems; nothing ran",
    },
)
def test_draft(name: str, body: dict):
    db = get_db()
    registry.versions(db, name)  # 404 for an unknown ruleset
    document = body["document"]
    if isinstance(document, dict) and document.get("ruleset") not in (None, name):
        raise InvalidInput([field_error(("document", "ruleset"), f"must be {name!r}")])
    cases = body.get("scenarios")
    if cases is None:
        cases = registry.draft_scenarios(db, name)
    return jsonify(runtime.test_draft(document, cases, schemas()))


@endpoint(
    bp,
    "/rulesets/<name>/evaluate",
    "POST",
    summary="Evaluate facts under the active (or a named) version: effects and trace",
    roles=AUTHORS,
    body="evaluation-request",
    responses={200: "What the rules did", 404: "No such ruleset or version", 422: "Invalid facts"},
)
def evaluate(name: str, body: dict):
    db = get_db()
    if "version" in body:
        version = registry.get(db, name, body["version"])
    else:
        version = runtime.active_version(db, name)
    kind = kinds.of(version["document"]).name
    runtime.require_valid_facts(body["facts"], schemas(), ("facts",), kind)
    result = runtime.evaluate(version, body["facts"])
    return jsonify(
        {
            "ruleset": name,
            "version": version["version"],
            "sha256": version["sha256"],
            **result.as_dict(),
        }
    )
