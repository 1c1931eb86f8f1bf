"""Rules at run time: validate, store, activate, load the shipped files, evaluate, test.

Ties the pure parts (validation, scenarios) to storage (registry) and to the one
engine of this process. Every stored version is compiled at most once per process,
under a name that includes its hash, on first use; a version is registered with
the engine whole or not at all, so no evaluation sees a half-loaded version.
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import json
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from app.machinery.rules import kinds, registry, scenarios
from app.machinery.rules.engine import EngineError, Evaluation
from app.machinery.rules.language import FactCatalogue, content_hash
from app.machinery.rules.sandbox import Sandbox
from app.machinery.rules.validate import problems
from app.platform import logs, monitoring
from app.platform.db import Database
from app.platform.errors import ApiError, Conflict, InvalidInput, NotFound, field_error, pointer
from app.platform.schemas import Catalogue

log = logging.getLogger(__name__)

SANDBOX = Sandbox()
# The engine a thread evaluates in when it has one of its own (``engines``).
_OWN_SANDBOX: contextvars.ContextVar[Sandbox | None] = contextvars.ContextVar(
    "own_sandbox", default=None
)
RULESET_FILE = "ruleset.json"


class ScenariosFailed(Conflict):
    code = "scenarios_failed"


class RulesFailed(ApiError):
    """The engine could not finish an evaluation (e.g. more derived facts than it takes)."""

    status = 503
    code = "rules_failed"


def facts_catalogue(schemas: Catalogue, kind: str = kinds.DEFAULT) -> FactCatalogue:
    return FactCatalogue(schemas.documents[kinds.KINDS[kind].facts])


def validate(document, schemas: Catalogue) -> list[dict]:
    """Every problem of a ruleset document; empty when it can be stored and compiled."""
    return problems(document, schemas, facts_catalogue(schemas, kinds.of(document).name))


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
    return evaluate_many(version, [facts])[0]


def evaluate_many(version: dict, batch: list[list[dict]]) -> list[Evaluation]:
    """Evaluate several sets of facts under one version, in one exchange with the engine."""
    try:
        return (_OWN_SANDBOX.get() or SANDBOX).evaluate_many(
            engine_name(version), version["document"], batch, draft=bool(version.get("draft"))
        )
    except EngineError as exc:
        raise RulesFailed(f"the rules could not be evaluated: {exc}") from exc


# Engines kept for ``engines``: started on first use (an interpreter and its imports take a
# quarter of a second), then kept, like SANDBOX, for the life of the process.
_SPARE: list[Sandbox] = []
_SPARE_LOCK = threading.Lock()


@contextlib.contextmanager
def engines(count: int) -> Iterator[ThreadPoolExecutor]:
    """Threads that each evaluate in an engine of their own, under this process's budget,
    for work that evaluates batch after batch (a replay): while one thread waits for its
    engine, another works in Python, and the process's own engine stays free for
    requests. Two blocks at once share the engines; each engine serialises its calls."""
    with _SPARE_LOCK:
        while len(_SPARE) < count:
            _SPARE.append(Sandbox(SANDBOX.timeout, SANDBOX.memory_mb, reports=False))
        assigned = list(_SPARE[:count])
    for sandbox in assigned:
        sandbox.configure(SANDBOX.timeout, SANDBOX.memory_mb)
    lock = threading.Lock()

    def own_engine() -> None:
        with lock:
            _OWN_SANDBOX.set(assigned.pop())  # for every task this thread runs

    executor = ThreadPoolExecutor(count, thread_name_prefix="rules", initializer=own_engine)
    try:
        yield executor
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def active_version(db: Database, name: str) -> dict:
    """The version in force now; read from the database every time, so an activation
    made by any process is seen by all of them at once.

    A scheduled activation that has just fallen due has its scenarios run first, here,
    by whichever request or sweep meets it first: it is in force only if they pass.
    """
    activation = registry.active(db, name)
    if activation is not None and activation["status"] == "scheduled":
        confirm_due(db, name)
        activation = registry.active(db, name)
    if activation is None:
        raise NotFound(f"ruleset {name!r} has no active version")
    return registry.get(db, name, activation["version"])


def _schemas() -> Catalogue:
    """This service's schema catalogue, inside a request or outside one (the dispatcher)."""
    from flask import current_app, has_app_context

    from app.platform.schemas import catalogue
    from app.platform.settings import SETTINGS

    if has_app_context():
        return catalogue(current_app.config["SCHEMAS_DIR"])
    return catalogue(next(s.default for s in SETTINGS if s.name == "SCHEMAS_DIR"))


def confirm_due(db: Database, name: str | None = None) -> list[dict]:
    """Run the scenarios of scheduled activations that fell due; settle each. Returns them."""
    from app.platform import db as database

    settled = []
    for activation in registry.due(db):
        if name is not None and activation["ruleset"] != name:
            continue
        with database.immediate(db):
            db.wait_job_lock(f"ruleset {activation['ruleset']}")
            if not any(a["activation_id"] == activation["activation_id"] for a in registry.due(db)):
                continue  # another server settled it meanwhile
            version = registry.get(db, activation["ruleset"], activation["version"])
            try:
                require_passing(db, version, _schemas(), "activated")
                failure = None
            except ScenariosFailed as exc:
                failure = (
                    exc.message
                    + ": "
                    + "; ".join(f"{e['pointer']}: {e['message']}" for e in exc.errors)
                )
            except (RulesFailed, ApiError) as exc:
                failure = exc.message
            registry.settle(db, activation["activation_id"], failure)
            monitoring.ACTIVATIONS.labels(
                activation["ruleset"], "scheduled", "failed" if failure else "active"
            ).inc()
            logs.event(
                "ruleset.scheduled_activation_failed" if failure else "ruleset.activated",
                logging.WARNING if failure else logging.INFO,
                ruleset=activation["ruleset"],
                version=activation["version"],
                scheduled=True,
                failure=failure,
            )
            settled.append({**activation, "failure": failure})
    return settled


# Scenarios -----------------------------------------------------------------------------


def scenario_problems(case, document: dict, schemas: Catalogue, base: tuple = ()) -> list[dict]:
    """Every problem of a scenario for a ruleset document, with pointers under ``base``.

    The body against its schema, the facts against the fact catalogue, and every rule
    the expectations name against the document's rules.
    """
    found = [
        field_error(pointer(*base) + p["pointer"], p["message"])
        for p in schemas.errors("scenario", case)
    ]
    if found:
        return found
    found.extend(fact_problems(case["facts"], schemas, (*base, "facts"), kinds.of(document).name))
    rule_ids = [rule["id"] for rule in document["rules"]]
    for path, rule in scenarios.rule_references(case):
        if rule not in rule_ids:
            close = difflib.get_close_matches(rule, rule_ids, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            where = f"{document['ruleset']} version {document['version']}"
            found.append(
                field_error((*base, *path), f"rule {rule!r} does not exist in {where}{hint}")
            )
    return found


def require_valid_scenarios(cases: dict[str, dict], document: dict, schemas: Catalogue) -> None:
    """422 listing every problem of these scenarios (by id) under ``document``."""
    found = []
    for scenario_id, case in sorted(cases.items()):
        found.extend(scenario_problems(case, document, schemas, ("scenarios", scenario_id)))
    if found:
        raise InvalidInput(found, f"{len(found)} problem(s) in the scenarios this version carries")


def store_version(
    db: Database, document: dict, schemas: Catalogue, source: str, by: str, cases=None
) -> tuple[dict, bool]:
    """Validate and store a version with its scenarios (``cases``, else the draft set)."""
    require_valid(document, schemas)
    carried = registry.draft_scenarios(db, document["ruleset"]) if cases is None else cases
    require_valid_scenarios(carried, document, schemas)
    return registry.store(db, document, source, by, carried)


def test_draft(document, cases: dict[str, dict], schemas: Catalogue) -> dict:
    """Run scenarios (by id) against a ruleset document that is not stored; the report.

    422 with every problem of the document (under ``/document``) and of the scenarios
    (under ``/scenarios/<id>``) before anything runs.
    """
    found = validate(document, schemas)
    for entry in found:
        entry["pointer"] = "/document" + entry["pointer"]
    if not found:
        for scenario_id, case in sorted(cases.items()):
            found.extend(scenario_problems(case, document, schemas, ("scenarios", scenario_id)))
    if found:
        raise InvalidInput(found, f"the draft has {len(found)} problem(s)")
    listed = [{"scenario_id": sid, **case} for sid, case in sorted(cases.items())]
    return run_scenarios(draft_version(document), listed, schemas)


def version_cases(db: Database, name: str, version: int) -> list[dict]:
    """The scenarios a stored version carries, as ``run_scenarios`` takes them."""
    carried = registry.version_scenarios(db, name, version)
    return [{"scenario_id": sid, **case} for sid, case in carried.items()]


def require_passing(db: Database, version: dict, schemas: Catalogue, action: str) -> dict:
    """409 ``scenarios_failed`` unless the version's own scenarios pass under it; return
    the scenario report's counts."""
    report = run_scenarios(
        version, version_cases(db, version["ruleset"], version["version"]), schemas
    )
    counts = {"passed": report["passed"], "failed": report["failed"]}
    if report["failed"]:
        logs.event(
            "ruleset.activation_refused",
            logging.WARNING,
            ruleset=version["ruleset"],
            version=version["version"],
            action=action,
            scenarios=counts,
        )
        errors = [
            {"pointer": f"/scenarios/{row['scenario_id']}", "message": "; ".join(row["failures"])}
            for row in report["scenarios"]
            if not row["passed"]
        ]
        raise ScenariosFailed(
            f"{report['failed']} of the scenarios {version['ruleset']} version"
            f" {version['version']} carries fail under it; it cannot be {action}",
            errors=errors,
        )
    return counts


def run_scenarios(version: dict, cases: list[dict], schemas: Catalogue) -> dict:
    """Run scenarios against a version; return a report with one row per scenario."""
    rows = []
    kind = kinds.of(version["document"])
    for case in cases:
        failures = _fact_problems(case, schemas, kind.name)
        evaluation = None
        if not failures:
            try:
                evaluation = evaluate(version, case["facts"])
            except (ValueError, ApiError) as exc:
                failures = [str(exc)]
        if evaluation is not None:
            outcome = None
            if scenarios.needs_outcome(case):
                # The kind's own decision runs on the scenario's facts (sourcing: the
                # allocation; returns: the choice of point, dispositions and refunds).
                outcome = kind.outcome_of(case["facts"], version)
            failures = scenarios.check(case, evaluation, outcome)
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


def fact_problems(
    facts: list[dict], schemas: Catalogue, base: tuple = (), kind: str = kinds.DEFAULT
) -> list[dict]:
    """Check facts against the kind's fact catalogue; pointers lead into ``facts`` under
    ``base``.

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
        for problem in schemas.errors(kinds.KINDS[kind].facts, bare):
            found.append(field_error(at + problem["pointer"], problem["message"]))
    return found


def require_valid_facts(
    facts: list[dict], schemas: Catalogue, base: tuple = (), kind: str = kinds.DEFAULT
) -> None:
    found = fact_problems(facts, schemas, base, kind)
    if found:
        raise InvalidInput(found)


def _fact_problems(case: dict, schemas: Catalogue, kind: str) -> list[str]:
    problems = fact_problems(case["facts"], schemas, (), kind)
    return [f"{p['pointer']}: {p['message']}" for p in problems]


def activate(
    db: Database,
    schemas: Catalogue,
    name: str,
    version_number: int,
    created_by: str,
    effective_at: str | None = None,
    kind: str = "activate",
) -> dict:
    """Activate a version once its own scenarios pass under it."""
    version = registry.get(db, name, version_number)
    try:
        scenarios = require_passing(db, version, schemas, "activated")
    except ScenariosFailed:
        monitoring.ACTIVATIONS.labels(name, kind, "refused").inc()
        raise
    activation = registry.activate(db, name, version_number, created_by, effective_at, kind)
    monitoring.ACTIVATIONS.labels(name, kind, activation["status"]).inc()
    logs.touch(ruleset_version=f"{name}@{version_number}")
    logs.event(
        "ruleset.rolled_back" if kind == "rollback" else "ruleset.activated",
        ruleset=name,
        version=version_number,
        by=created_by,
        status=activation["status"],
        effective_at=activation.get("effective_at"),
        scenarios=scenarios,
    )
    return activation


# Shipped rulesets ----------------------------------------------------------------------


def load_shipped(db: Database, directory: str | Path, schemas: Catalogue) -> list:
    """Load each ``rulesets/<name>/ruleset.json`` with its ``scenarios/`` as a new version,
    only when that version is not stored yet; activate it if the ruleset has none active.

    A file never overwrites what is stored (through the API or an earlier start): a
    version number already stored is left as it is, and said so. Returns, and logs, one
    line per ruleset saying what was done and why. A file with problems is reported and
    skipped: it never half-loads, and the versions already stored keep serving.
    """
    report = []
    for folder in sorted(p for p in Path(directory).iterdir() if (p / RULESET_FILE).is_file()):
        path = folder / RULESET_FILE
        try:
            line = _load_folder(db, folder, schemas)
            log.info("ruleset file %s: %s", path, line)
        except (ApiError, ValueError) as exc:
            detail = exc.message if isinstance(exc, ApiError) else str(exc)
            errors = getattr(exc, "errors", None) or []
            more = "; ".join(f"{e['pointer']}: {e['message']}" for e in errors[:10])
            log.error("ruleset file %s not loaded: %s %s", path, detail, more)
            line = f"{path}: not loaded: {detail} {more}".strip()
        report.append(line)
    return report


def _load_folder(db: Database, folder: Path, schemas: Catalogue) -> str:
    document = json.loads((folder / RULESET_FILE).read_text())
    cases = {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("scenarios/*.json"))}
    require_valid(document, schemas)
    name, number = document["ruleset"], document["version"]
    try:
        stored = registry.get(db, name, number)
    except NotFound:
        stored = None
    if stored is None:
        store_version(db, document, schemas, str(folder / RULESET_FILE), "system", cases)
        line = f"{name} version {number} stored (new in the file, with {len(cases)} scenarios)"
    elif stored["sha256"] != content_hash(document):
        raise registry.VersionConflict(
            f"{name} version {number} is stored with other rules; the file is left unloaded"
            " (versions are immutable: give the file a new version number)"
        )
    elif content_hash(cases) != content_hash(registry.version_scenarios(db, name, number)):
        line = (
            f"{name} version {number} already stored; the scenario files differ from the"
            " scenarios it was stored with, which it keeps (a new version number releases them)"
        )
    else:
        line = f"{name} version {number} already stored, unchanged"
    if registry.active(db, name) is None:
        activate(db, schemas, name, number, "system", None, "initial")
        line += "; activated (the ruleset had no active version)"
    return line
