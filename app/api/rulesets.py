"""Rulesets: validate, store versions, compare, activate, roll back, test with scenarios."""

from __future__ import annotations

from flask import Blueprint, g, jsonify

from app.api import Param, created_or_ok, endpoint, query_args, schemas
from app.db import get_db, normalize_time, now
from app.errors import InvalidInput, field_error
from app.rules import diff, registry, runtime

bp = Blueprint("rulesets", __name__, url_prefix="/v1")

AUTHORS = ("admin", "analyst")
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
    version, created = registry.store(get_db(), body, "api", g.principal.key_id)
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
    current = registry.active(db, name)
    history = registry.activations(db, name)
    return jsonify(
        {
            "ruleset": name,
            "active_version": current["version"] if current else None,
            "versions": stored,
            "activations": history,
            "scenarios": [s["scenario_id"] for s in registry.scenarios(db, name)],
        }
    )


@endpoint(
    bp,
    "/rulesets/<name>/versions/<int:version>",
    "GET",
    summary="One stored version with its document and hash",
    roles=AUTHORS,
    responses={200: "The version", 404: "No such version"},
)
def get_version(name: str, version: int):
    return jsonify(registry.get(get_db(), name, version))


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
    activation = runtime.activate(get_db(), schemas(), name, version, g.principal.key_id, at)
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
    activation = runtime.activate(db, schemas(), name, target, g.principal.key_id, kind="rollback")
    return jsonify(activation), 201


@endpoint(
    bp,
    "/rulesets/<name>/scenarios/<scenario_id>",
    "PUT",
    summary="Create or replace a scenario of a ruleset",
    roles=AUTHORS,
    body="scenario",
    responses={200: "Replaced", 201: "Created", 404: "No such ruleset"},
)
def put_scenario(name: str, scenario_id: str, body: dict):
    db = get_db()
    registry.versions(db, name)  # 404 for an unknown ruleset
    scenario, created = registry.put_scenario(db, name, scenario_id, body, "api")
    return created_or_ok(scenario, created)


@endpoint(
    bp,
    "/rulesets/<name>/scenarios",
    "GET",
    summary="The scenarios of a ruleset",
    roles=AUTHORS,
)
def list_scenarios(name: str):
    return jsonify({"scenarios": registry.scenarios(get_db(), name)})


@endpoint(
    bp,
    "/rulesets/<name>/versions/<int:version>/test",
    "POST",
    summary="Run the ruleset's scenarios against a version and report each",
    roles=AUTHORS,
    responses={200: "The report (see passed and failed)", 404: "No such version"},
)
def test_version(name: str, version: int):
    db = get_db()
    report = runtime.run_scenarios(
        registry.get(db, name, version), registry.scenarios(db, name), schemas()
    )
    return jsonify(report)


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
    runtime.require_valid_facts(body["facts"], schemas(), ("facts",))
    result = runtime.evaluate(version, body["facts"])
    return jsonify(
        {
            "ruleset": name,
            "version": version["version"],
            "sha256": version["sha256"],
            **result.as_dict(),
        }
    )
