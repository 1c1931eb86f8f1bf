"""Every shipped ruleset validates, and its scenarios pass and cover every rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.machinery.rules import runtime
from app.machinery.rules.language import content_hash
from app.platform.schemas import Catalogue

# Pure: the same on every database.
pytestmark = pytest.mark.one_database

ROOT = Path(__file__).parent.parent / "rulesets"
SCHEMAS = Catalogue("schemas")
FOLDERS = sorted(p for p in ROOT.iterdir() if (p / "ruleset.json").is_file())


def load(folder: Path):
    document = json.loads((folder / "ruleset.json").read_text())
    cases = []
    for path in sorted((folder / "scenarios").glob("*.json")):
        case = json.loads(path.read_text())
        cases.append({"scenario_id": path.stem, **case})
    return document, cases


def as_version(document: dict) -> dict:
    return {
        "ruleset": document["ruleset"],
        "version": document["version"],
        "sha256": content_hash(document),
        "document": document,
    }


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_shipped_ruleset_is_valid_and_documented(folder):
    document, cases = load(folder)
    assert document["ruleset"] == folder.name
    assert runtime.validate(document, SCHEMAS) == []
    assert 15 <= len(document["rules"]) <= 40
    for rule in document["rules"]:
        assert rule.get("description"), rule["id"]
    for case in cases:
        assert (
            SCHEMAS.errors("scenario", {k: v for k, v in case.items() if k != "scenario_id"}) == []
        )


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_shipped_scenarios_pass_and_cover_every_rule(folder):
    document, cases = load(folder)
    report = runtime.run_scenarios(as_version(document), cases, SCHEMAS)
    failures = {r["scenario_id"]: r["failures"] for r in report["scenarios"] if not r["passed"]}
    assert failures == {}
    fired = {rule_id for row in report["scenarios"] for rule_id in row["fired"]}
    expected = {r["id"] for r in document["rules"] if r.get("enabled", True)}
    assert expected - fired == set(), "every rule needs a scenario in which it fires"


def test_a_broken_rule_makes_scenarios_fail():
    """The scenarios can fail: drop hazmat protection and they notice."""
    document, cases = load(ROOT / "sourcing")
    broken = json.loads(json.dumps(document))
    broken["rules"] = [r for r in broken["rules"] if r["id"] != "hazmat-not-from-stores"]
    report = runtime.run_scenarios(as_version(broken), cases, SCHEMAS)
    failed = {r["scenario_id"] for r in report["scenarios"] if not r["passed"]}
    assert failed == {"hazmat-not-from-stores", "hazmat-other-lines-unaffected"}
