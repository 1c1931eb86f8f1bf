"""The ruleset language reference: generated, current, served, and its cookbook proven."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.machinery.rules import reference, runtime
from app.platform.schemas import catalogue

ROOT = Path(__file__).parent.parent
COOKBOOK = reference.cookbook(ROOT / "docs" / "cookbook")


def test_the_reference_in_the_repository_is_current():
    generated = reference.markdown(ROOT / "schemas", ROOT / "docs" / "cookbook")
    assert (ROOT / "docs" / "rulesets.md").read_text() == generated, (
        "docs/rulesets.md is stale: python -m app.machinery.rules.reference > docs/rulesets.md"
    )


def test_the_reference_names_every_fact_field_operator_action_and_setting():
    text = (ROOT / "docs" / "rulesets.md").read_text()
    facts = json.loads((ROOT / "schemas" / "facts.schema.json").read_text())
    for fact, spec in facts["$defs"].items():
        assert f"### `{fact}`" in text
        for field in spec["properties"]:
            if field != "fact":
                assert f"| `{field}` |" in text, field
    ruleset = json.loads((ROOT / "schemas" / "ruleset.schema.json").read_text())
    for operator in ruleset["$defs"]["tests"]["properties"]:
        assert f"| `{operator}` |" in text
    for action in ruleset["$defs"]["action"]["oneOf"]:
        assert f"| `{next(iter(action['properties']))}` |" in text
    for setting in ruleset["$defs"]["settings"]["properties"]:
        assert f"| `{setting}` |" in text
    assert len(COOKBOOK) >= 10


@pytest.mark.parametrize(("name", "entry"), COOKBOOK, ids=[name for name, _ in COOKBOOK])
def test_every_cookbook_policy_is_proven_by_its_scenario(name, entry):
    base = json.loads((ROOT / "rulesets" / "sourcing" / "ruleset.json").read_text())
    document = {**base, "ruleset": "cookbook", "version": 1, "rules": entry["rules"]}
    report = runtime.test_draft(
        document, {name: entry["scenario"]}, catalogue(str(ROOT / "schemas"))
    )
    assert report["passed"] == 1, report["scenarios"][0]["failures"]
    # The scenario proves the policy: without its rules, it fails.
    bare = {**document, "rules": [_inert()]}
    without = runtime.test_draft(bare, {}, catalogue(str(ROOT / "schemas")))
    assert without["failed"] == 0
    unproven = runtime.run_scenarios(
        runtime.draft_version(bare),
        [{"scenario_id": name, **entry["scenario"]}],
        catalogue(str(ROOT / "schemas")),
    )
    assert unproven["failed"] == 1, f"{name}'s scenario passes without its rules"


def _inert() -> dict:
    return {
        "id": "nothing",
        "when": [{"fact": "order", "where": {"total": {"lt": -1}}}],
        "then": [{"tag": "never"}],
    }


def test_the_reference_is_served_as_html(client, keys):
    page = client.get("/v1/docs/rulesets", headers={"Authorization": f"Bearer {keys['analyst']}"})
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "<h1>The ruleset language</h1>" in html
    assert "<table>" in html and "Drop-ship only as a last resort" in html
