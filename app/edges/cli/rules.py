"""Rulesets: ``dom rules`` validate, test, versions, diff, activate, rollback, load."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from app.edges.cli.common import (
    api_errors,
    author,
    load_config,
    schemas,
    with_db,
)
from app.platform import db as database
from app.platform.errors import ApiError

log = logging.getLogger("dom.service")


@click.group()
def rules():
    """Rulesets: validate, test with their scenarios, load the shipped ones.

    \b
    Example:
        dom rules validate rulesets/sourcing/ruleset.json
    """


@rules.command("validate")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def rules_validate(path: str):
    """Check a ruleset file and list every problem with its pointer and rule id.

    Exits 1 when there are problems.

    \b
    Example:
        dom rules validate rulesets/sourcing/ruleset.json
    """
    from app.machinery.rules import runtime

    try:
        document = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{path} is not JSON: {exc}") from exc
    found = runtime.validate(document, schemas())
    if not found:
        click.echo(f"{path}: valid ({len(document['rules'])} rules)")
        return
    for entry in found:
        rule = f" [{entry['rule_id']}]" if entry.get("rule_id") else ""
        click.echo(f"{entry['pointer']}{rule}: {entry['message']} ({entry['code']})")
    click.echo(f"{path}: {len(found)} problem(s)", err=True)
    sys.exit(1)


@rules.command("test")
@click.argument("target", required=False)
@click.option("--version", "version_number", type=int, help="Test this stored version.")
def rules_test(target: str | None, version_number: int | None):
    """Run scenarios and print a table; exits 1 on a failure.

    TARGET is a ruleset file (a draft, tested with the scenarios in the scenarios/
    folder beside it, nothing stored), or the name of a stored ruleset (its active
    version, or --version N, with that version's own scenarios); without it, every
    stored ruleset.

    \b
    Example:
        dom rules test rulesets/sourcing/ruleset.json
        dom rules test sourcing --version 2
    """
    from app.machinery.rules import runtime

    if target and Path(target).is_file():
        path = Path(target)
        try:
            document = json.loads(path.read_text())
            cases = {
                p.stem: json.loads(p.read_text())
                for p in sorted(path.parent.glob("scenarios/*.json"))
            }
        except json.JSONDecodeError as exc:
            raise click.ClickException(f"not JSON: {exc}") from exc
        try:
            report = runtime.test_draft(document, cases, schemas())
        except ApiError as exc:
            for entry in exc.errors or []:
                click.echo(f"{entry['pointer']}: {entry['message']}")
            raise click.ClickException(exc.message) from exc
        if _print_report(f"{path} (draft, {len(cases)} scenarios)", report):
            sys.exit(1)
        return
    _test_stored(target, version_number)


@with_db
def _test_stored(db, name: str | None, version_number: int | None):
    from app.machinery.rules import registry, runtime

    catalogue = schemas()
    runtime.load_shipped(db, load_config()["RULESETS_DIR"], catalogue)
    failed = 0
    for ruleset in [name] if name else registry.names(db):
        if version_number:
            version = registry.get(db, ruleset, version_number)
        else:
            version = runtime.active_version(db, ruleset)
        cases = runtime.version_cases(db, ruleset, version["version"])
        report = runtime.run_scenarios(version, cases, catalogue)
        failed += _print_report(f"{ruleset} version {version['version']}", report)
    if failed:
        sys.exit(1)


def _print_report(title: str, report: dict) -> int:
    """Print a scenario report as a table; return how many failed."""
    click.echo(title)
    width = max((len(r["scenario_id"]) for r in report["scenarios"]), default=10)
    for row in report["scenarios"]:
        mark = "pass" if row["passed"] else "FAIL"
        click.echo(f"  {mark}  {row['scenario_id']:<{width}}  {row['scenario']}")
        for failure in row["failures"]:
            click.echo(f"        {'':<{width}}  - {failure}")
    click.echo(f"  {report['passed']} passed, {report['failed']} failed")
    return report["failed"]


@rules.command("versions")
@click.argument("name")
@with_db
@api_errors
def rules_versions(db, name: str):
    """List a ruleset's versions: which is active, who made each, and its change note.

    \b
    Example:
        dom rules versions sourcing
    """
    from app.machinery.rules import registry, runtime

    active = runtime.active_version(db, name)["version"]
    for version in registry.versions(db, name):
        mark = "*" if version["version"] == active else " "
        note = version["change_note"] or version["description"] or ""
        made = version["created_at"][:19]
        click.echo(
            f"{mark} v{version['version']:<4} {version['sha256'][:12]}  {made}"
            f"  {version['created_by']:<20}  {note}"
        )


@rules.command("diff")
@click.argument("name")
@click.argument("old", type=int)
@click.argument("new", type=int)
@with_db
@api_errors
def rules_diff(db, name: str, old: int, new: int):
    """What changed between two versions: rules added, removed and changed, and settings.

    \b
    Example:
        dom rules diff sourcing 1 2
    """
    from app.machinery.rules import diff, registry

    changes = diff.diff(
        registry.get(db, name, old)["document"], registry.get(db, name, new)["document"]
    )
    click.echo(json.dumps(changes, indent=2))


@rules.command("activate")
@click.argument("name")
@click.argument("version", type=int)
@click.option("--at", default=None, help="Activate at this future time (RFC 3339).")
@with_db
@api_errors
def rules_activate(db, name: str, version: int, at: str | None):
    """Activate a version (now, or --at a time) once its own scenarios pass.

    Recorded as made by DOM_AUTHOR (default: your login name).

    \b
    Example:
        DOM_AUTHOR="Priya Shah" dom rules activate sourcing 2
    """
    from app.machinery.rules import runtime

    when = database.normalize_time(at) if at else None
    activation = runtime.activate(db, schemas(), name, version, author(), when)
    click.echo(
        f"{name} v{activation['version']} {activation['status']} from {activation['effective_at']}"
        f" (was v{activation['previous_version']})"
    )


@rules.command("rollback")
@click.argument("name")
@with_db
@api_errors
def rules_rollback(db, name: str):
    """Make the version that was active before the current one active again.

    \b
    Example:
        dom rules rollback sourcing
    """
    from app.machinery.rules import registry, runtime

    target = registry.previous_version(db, name)
    activation = runtime.activate(db, schemas(), name, target, author(), kind="rollback")
    click.echo(f"{name} rolled back to v{activation['version']}")


@rules.command("load")
@with_db
def rules_load(db):
    """Load the rulesets in DOM_RULESETS_DIR: new content becomes a new version.

    \b
    Example:
        DOM_RULESETS_DIR=./rulesets dom rules load
    """
    from app.machinery.rules import runtime

    report = runtime.load_shipped(db, load_config()["RULESETS_DIR"], schemas())
    for line in report:
        click.echo(line)
    if any("not loaded" in line for line in report):
        sys.exit(1)
