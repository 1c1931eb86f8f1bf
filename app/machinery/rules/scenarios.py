"""Scenarios: given facts, the rules must have these effects. Pure checks of one evaluation."""

from __future__ import annotations

from app.machinery.rules.engine import Evaluation

# Expectations about the decision as a whole, which the allocation after the rules makes.
OUTCOME_FIELDS = ("serves", "status")


def needs_outcome(scenario: dict) -> bool:
    return any(
        field in (scenario.get(side) or {})
        for side in ("expect", "absent")
        for field in OUTCOME_FIELDS
    )


def check(scenario: dict, evaluation: Evaluation, outcome: dict | None = None) -> list[str]:
    """Return what the evaluation (and the decision, ``outcome``) got wrong against the
    scenario (empty: it passed)."""
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
        failures.extend(_score_failures(key, score, evaluation.score_of(key)))
    for key, rule in expect.get("excluded_by", {}).items():
        by = [entry["rule"] for entry in evaluation.excluded.get(key, [])]
        if rule not in by:
            failures.append(f"expected {key} excluded by rule {rule}; {_excluders(key, by)}")
    for key, rule in absent.get("excluded_by", {}).items():
        if rule in [entry["rule"] for entry in evaluation.excluded.get(key, [])]:
            failures.append(f"expected rule {rule} not to exclude {key}; it did")
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
    for key, wanted in expect.get("item_attributes", {}).items():
        got_all = evaluation.item_attributes.get(key, {})
        for attribute, value in wanted.items():
            got = got_all.get(attribute, {}).get("value")
            if got != value:
                failures.append(f"expected {attribute} = {value!r} for {key}; got {got!r}")
    for key, unwanted in absent.get("item_attributes", {}).items():
        for attribute in unwanted:
            if attribute in evaluation.item_attributes.get(key, {}):
                failures.append(f"expected {attribute} unset for {key}; a rule set it")
    if "held" in expect and expect["held"] != held:
        failures.append(f"expected held = {expect['held']}; got {held}")
    if outcome is not None:
        failures.extend(_outcome_failures(expect, absent, outcome))
    return failures


def _outcome_failures(expect: dict, absent: dict, outcome: dict) -> list[str]:
    failures = []
    serving: dict[str, list[str]] = {}
    for shipment in outcome["shipments"]:
        for line in shipment["lines"]:
            serving.setdefault(line["line_id"], []).append(shipment["node_id"])
    for line_id, node_id in expect.get("serves", {}).items():
        if node_id not in serving.get(line_id, []):
            got = ", ".join(serving.get(line_id, [])) or "no node"
            failures.append(f"expected {node_id} to serve line {line_id}; {got} did")
    for line_id, node_id in absent.get("serves", {}).items():
        if node_id in serving.get(line_id, []):
            failures.append(f"expected {node_id} not to serve line {line_id}; it did")
    if "status" in expect and expect["status"] != outcome["status"]:
        failures.append(f"expected the order {expect['status']}; it was {outcome['status']}")
    return failures


def _score_failures(key: str, wanted, got: float) -> list[str]:
    """An exact score, or a range: ``{"at_least": x, "at_most": y}``."""
    if not isinstance(wanted, dict):
        return (
            [] if abs(got - wanted) <= 1e-9 else [f"expected score {wanted} for {key}; got {got}"]
        )
    found = []
    if "at_least" in wanted and got < wanted["at_least"] - 1e-9:
        found.append(f"expected a score of at least {wanted['at_least']} for {key}; got {got}")
    if "at_most" in wanted and got > wanted["at_most"] + 1e-9:
        found.append(f"expected a score of at most {wanted['at_most']} for {key}; got {got}")
    return found


def _excluders(key: str, rules: list[str]) -> str:
    return f"excluded by {', '.join(rules)}" if rules else f"{key} was not excluded"


def rule_references(scenario: dict) -> list[tuple[tuple, str]]:
    """Every rule id a scenario names, with the path to it: ``[((part, ...), rule_id)]``."""
    found = []
    for side in ("expect", "absent"):
        effects = scenario.get(side) or {}
        for index, rule in enumerate(effects.get("fired", [])):
            found.append(((side, "fired", index), rule))
        for key, rule in (effects.get("excluded_by") or {}).items():
            found.append(((side, "excluded_by", key), rule))
    return found


def _list(values) -> str:
    return ", ".join(sorted(values)) or "none"
