"""Rules at run time: validate, store, activate, load the shipped files, evaluate, test.

Ties the pure parts (validation, scenarios) to storage (registry) and to the one
engine of this process. Every stored version is compiled at most once per process,
under a name that includes its hash, on first use; a version is registered with
the engine whole or not at all, so no evaluation sees a half-loaded version.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from app.db import Database
from app.errors import (
    ApiError,
    Conflict,
    InvalidInput,
    NotFound,
    field_error,
    pointer,
)
from app.rules import registry, scenarios
from app.rules.engine import EngineError, Evaluation
from app.rules.language import FactCatalogue, content_hash
from app.rules.sandbox import Sandbox
from app.rules.validate import problems
from app.schemas import Catalogue

log = logging.getLogger(__name__)

SANDBOX = Sandbox()
RULESET_FILE = "ruleset.json"


class ScenariosFailed(Conflict):
    code = "scenarios_failed"


class RulesFailed(ApiError):
    """The engine could not finish an evaluation (e.g. more derived facts than it takes)."""

    status = 503
    code = "rules_failed"


def facts_catalogue(schemas: Catalogue) -> FactCatalogue:
    return FactCatalogue(schemas.documents["facts"])


def validate(document, schemas: Catalogue) -> list[dict]:
    """Every problem of a ruleset document; empty when it can be stored and compiled."""
    return problems(document, schemas, facts_catalogue(schemas))


def require_valid(document, schemas: Catalogue) -> None:
    found = validate(document, schemas)
    if found:
        count = len(found)
        raise InvalidInput(found, f"the ruleset has {count} problem{'s' if count != 1 else ''}")


def draft_version(document: dict) -> dict:
    """A ruleset document not stored as a version, in the shape evaluations take."""
    return {
        "ruleset": document["ruleset"],
        "version": document["version"],
        "sha256": content_hash(document),
        "document": document,
        "draft": True,
    }


def check_draft(document, schemas: Catalogue, at: str) -> dict:
    """Validate a draft sent inside a request (at pointer ``at``); return its version."""
    found = validate(document, schemas)
    if found:
        for entry in found:
            entry["pointer"] = at + entry["pointer"]
        raise InvalidInput(found, "the draft ruleset has problems")
    return draft_version(document)


def engine_name(version: dict) -> str:
    return f"{version['ruleset']}@{version['version']}#{version['sha256'][:16]}"


def evaluate(version: dict, facts: list[dict]) -> Evaluation:
    """Evaluate facts under a version (stored or draft) within the evaluation budget.

    The engine runs in this process's sandbox child (``sandbox.py``), which compiles
    each version once; a draft (``version["draft"]``) never compiles in this process.
    """
    try:
        return SANDBOX.evaluate(
            engine_name(version), version["document"], facts, draft=bool(version.get("draft"))
        )
    except EngineError as exc:
        raise RulesFailed(f"the rules could not be evaluated: {exc}") from exc


def active_version(db: Database, name: str) -> dict:
    """The version in force now; read from the database every time, so an activation
    made by any process is seen by all of them at once."""
    activation = registry.active(db, name)
    if activation is None:
        raise NotFound(f"ruleset {name!r} has no active version")
    return registry.get(db, name, activation["version"])


# Scenarios -----------------------------------------------------------------------------


def run_scenarios(version: dict, cases: list[dict], schemas: Catalogue) -> dict:
    """Run scenarios against a version; return a report with one row per scenario."""
    rows = []
    for case in cases:
        failures = _fact_problems(case, schemas)
        evaluation = None
        if not failures:
            try:
                evaluation = evaluate(version, case["facts"])
            except (ValueError, ApiError) as exc:
                failures = [str(exc)]
        if evaluation is not None:
            failures = scenarios.check(case, evaluation)
        rows.append(
            {
                "scenario_id": case.get("scenario_id"),
                "scenario": case["scenario"],
                "passed": not failures,
                "failures": failures,
                "fired": evaluation.fired if evaluation else [],
            }
        )
    return {
        "ruleset": version["ruleset"],
        "version": version["version"],
        "passed": sum(row["passed"] for row in rows),
        "failed": sum(not row["passed"] for row in rows),
        "scenarios": rows,
    }


def fact_problems(facts: list[dict], schemas: Catalogue, base: tuple = ()) -> list[dict]:
    """Check facts against the fact catalogue; pointers lead into ``facts`` under ``base``.

    A fact's ``key`` (its name in results) must be a unique string.
    """
    found = []
    keys: set[str] = set()
    for index, fact in enumerate(facts):
        at = pointer(*base, index)
        key = fact.get("key")
        if key is not None:
            if not isinstance(key, str) or not key:
                found.append(field_error(f"{at}/key", "must be a non-empty string"))
            elif key in keys:
                found.append(field_error(f"{at}/key", f"key {key!r} is used twice"))
            keys.add(key)
        bare = {k: v for k, v in fact.items() if k != "key"}
        for problem in schemas.errors("facts", bare):
            found.append(field_error(at + problem["pointer"], problem["message"]))
    return found


def require_valid_facts(facts: list[dict], schemas: Catalogue, base: tuple = ()) -> None:
    found = fact_problems(facts, schemas, base)
    if found:
        raise InvalidInput(found)


def _fact_problems(case: dict, schemas: Catalogue) -> list[str]:
    return [f"{p['pointer']}: {p['message']}" for p in fact_problems(case["facts"], schemas)]


def activate(
    db: Database,
    schemas: Catalogue,
    name: str,
    version_number: int,
    created_by: str,
    effective_at: str | None = None,
    kind: str = "activate",
) -> dict:
    """Activate a version once its ruleset's scenarios pass under it."""
    version = registry.get(db, name, version_number)
    report = run_scenarios(version, registry.scenarios(db, name), schemas)
    if report["failed"]:
        errors = [
            {"pointer": f"/scenarios/{row['scenario_id']}", "message": "; ".join(row["failures"])}
            for row in report["scenarios"]
            if not row["passed"]
        ]
        raise ScenariosFailed(
            f"{report['failed']} scenario(s) fail under {name} version {version_number};"
            " it cannot be activated",
            errors=errors,
        )
    return registry.activate(db, name, version_number, created_by, effective_at, kind)


# Shipped rulesets ----------------------------------------------------------------------


def load_shipped(db: Database, directory: str | Path, schemas: Catalogue) -> list:
    """Load ``rulesets/<name>/ruleset.json`` and its scenarios; activate each first version.

    Returns one line of report per ruleset. A file with problems is reported and
    skipped: it never half-loads, and the versions already stored keep serving.
    """
    report = []
    for folder in sorted(p for p in Path(directory).iterdir() if (p / RULESET_FILE).is_file()):
        path = folder / RULESET_FILE
        try:
            document = json.loads(path.read_text())
            require_valid(document, schemas)
            version, created = registry.store(db, document, str(path), "system")
            for case_path in sorted((folder / "scenarios").glob("*.json")):
                case = json.loads(case_path.read_text())
                schemas.validate("scenario", case)
                registry.put_scenario(db, version["ruleset"], case_path.stem, case, str(case_path))
            line = f"{version['ruleset']} version {version['version']}"
            line += " stored" if created else " already stored"
            if registry.active(db, version["ruleset"]) is None:
                activate(
                    db, schemas, version["ruleset"], version["version"], "system", None, "initial"
                )
                line += ", activated"
            report.append(line)
        except (ApiError, ValueError) as exc:
            detail = exc.message if isinstance(exc, ApiError) else str(exc)
            errors = getattr(exc, "errors", None) or []
            more = "; ".join(f"{e['pointer']}: {e['message']}" for e in errors[:10])
            log.error("ruleset file %s not loaded: %s %s", path, detail, more)
            report.append(f"{path}: not loaded: {detail} {more}".strip())
    return report
