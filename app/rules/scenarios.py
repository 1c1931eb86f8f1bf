"""Scenarios: given facts, the rules must have these effects. Pure checks of one evaluation."""

from __future__ import annotations

from app.rules.engine import Evaluation


def check(scenario: dict, evaluation: Evaluation) -> list[str]:
    """Return what the evaluation got wrong against the scenario (empty: it passed)."""
    failures: list[str] = []
    expect = scenario.get("expect", {})
    absent = scenario.get("absent", {})
    excluded = set(evaluation.excluded)
    fired = set(evaluation.fired)
    flags = {flag["name"] for flag in evaluation.flags}
    tags = set(evaluation.tags)
    held = bool(evaluation.holds)

    def must_have(label, wanted, got):
        missing = sorted(set(wanted) - got)
        if missing:
            failures.append(f"expected {label} {', '.join(missing)}; got {_list(got)}")

    def must_not_have(label, unwanted, got):
        present = sorted(set(unwanted) & got)
        if present:
            failures.append(f"expected no {label} {', '.join(present)}")

    must_have("excluded", expect.get("excluded", []), excluded)
    must_have("fired", expect.get("fired", []), fired)
    must_have("flags", expect.get("flags", []), flags)
    must_have("tags", expect.get("tags", []), tags)
    must_not_have("excluded", absent.get("excluded", []), excluded)
    must_not_have("fired", absent.get("fired", []), fired)
    must_not_have("flags", absent.get("flags", []), flags)
    must_not_have("tags", absent.get("tags", []), tags)
    for key, score in expect.get("scored", {}).items():
        got = evaluation.score_of(key)
        if abs(got - score) > 1e-9:
            failures.append(f"expected score {score} for {key}; got {got}")
    for key in absent.get("scored", {}):
        if evaluation.scores.get(key):
            failures.append(f"expected no score for {key}; got {evaluation.score_of(key)}")
    for attribute, value in expect.get("attributes", {}).items():
        got = evaluation.attributes.get(attribute, {}).get("value")
        if got != value:
            failures.append(f"expected {attribute} = {value!r}; got {got!r}")
    for attribute in absent.get("attributes", {}):
        if attribute in evaluation.attributes:
            failures.append(f"expected {attribute} unset; a rule set it")
    if "held" in expect and expect["held"] != held:
        failures.append(f"expected held = {expect['held']}; got {held}")
    return failures


def _list(values) -> str:
    return ", ".join(sorted(values)) or "none"
