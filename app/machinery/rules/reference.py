"""The ruleset language reference, generated from the schemas, the fact catalogue and the
cookbook, so that it cannot drift from what the service takes (pure: data in, Markdown out).

``docs/rulesets.md`` is this module's output (``python -m app.machinery.rules.reference`` writes
it; a test checks it is current); ``GET /v1/docs/rulesets`` serves it as HTML.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from app.machinery.rules import regex
from app.machinery.rules.language import OPERATORS_BY_TYPE

# An example per operator: the field it tests and the test, as an analyst writes it.
EXAMPLES = {
    "eq": ("candidate", "node_type", {"eq": "store"}),
    "ne": ("order", "channel", {"ne": "marketplace"}),
    "lt": ("candidate", "atp_after", {"lt": 2}),
    "lte": ("candidate", "capacity_left", {"lte": 0}),
    "gt": ("candidate", "distance_km", {"gt": 30}),
    "gte": ("order", "total", {"gte": 500}),
    "in": ("order", "destination_postcode_area", {"in": ["E", "EC", "N", "SW"]}),
    "not_in": ("customer", "tier", {"not_in": ["vip", "staff"]}),
    "exists": ("candidate", "capacity_left", {"exists": True}),
    "matches": ("order", "created_at", {"matches": "2026-12-2[0-4]T.*"}),
    "contains": ("customer", "segments", {"contains": "b2b"}),
}
TYPE_NAMES = {
    "string": "text",
    "integer": "whole number",
    "number": "number",
    "boolean": "true/false",
    "array": "list of text",
}


def _cell(text) -> str:
    return str(text or "").replace("|", "\\|").replace("\n", " ")


def _type(spec: dict) -> str:
    kind = spec.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    words = " or ".join(TYPE_NAMES.get(k, str(k)) for k in kinds if k)
    if spec.get("enum"):
        words += ": " + ", ".join(f"`{v}`" for v in spec["enum"])
    return words


def _json(value) -> str:
    return json.dumps(value, indent=2)


def facts_section(facts: dict, title: str = "Facts", prefix: str = "") -> list[str]:
    out = [f"## {title}", "", facts.get("description", ""), ""]
    for name, spec in facts["$defs"].items():
        out += [f"### {prefix}`{name}`", "", spec.get("description", ""), ""]
        required = set(spec.get("required", []))
        out += ["| field | type | meaning |", "|---|---|---|"]
        for field, field_spec in spec.get("properties", {}).items():
            if field == "fact":
                continue
            mark = " (always there)" if field in required else ""
            meaning = _cell(field_spec.get("description"))
            out.append(f"| `{field}` | {_type(field_spec)}{mark} | {meaning} |")
        out.append("")
    return out


def operators_section(ruleset: dict) -> list[str]:
    tests = ruleset["$defs"]["tests"]["properties"]
    out = [
        "## Operators",
        "",
        "A pattern's `where` tests fields: `{field: {operator: operand}}`; every test must pass."
        ' An operand `{"ref": "alias.field"}` compares with a field of a fact matched by an'
        " earlier pattern (a join; `eq`, `ne`, `lt`, `lte`, `gt` and `gte` only).",
        "",
        "| operator | meaning | applies to | example |",
        "|---|---|---|---|",
    ]
    for operator, spec in tests.items():
        kinds = sorted(
            TYPE_NAMES[kind]
            for kind, allowed in OPERATORS_BY_TYPE.items()
            if operator in allowed and kind in TYPE_NAMES
        )
        fact, field, test = EXAMPLES[operator]
        example = json.dumps({"fact": fact, "where": {field: test}})
        out.append(
            f"| `{operator}` | {_cell(spec.get('description'))} | {', '.join(kinds)} |"
            f" `{example}` |"
        )
    out += ["", "### `matches`: the regular-expression dialect", ""]
    out += [line.strip() if not line.startswith("- ") else line for line in _dialect()]
    return [*out, ""]


def _dialect() -> list[str]:
    doc = regex.__doc__ or ""
    body = doc.split("\n\n", 1)[1] if "\n\n" in doc else doc
    return body.split("\n\n``problems``")[0].strip().splitlines()


def rules_section(ruleset: dict) -> list[str]:
    rule = ruleset["$defs"]["rule"]
    pattern = ruleset["$defs"]["pattern"]
    out = ["## Rules", "", rule.get("description", ""), "", "| field | meaning |", "|---|---|"]
    out += [f"| `{k}` | {_cell(v.get('description'))} |" for k, v in rule["properties"].items()]
    out += ["", "A pattern of `when`:", "", "| field | meaning |", "|---|---|"]
    out += [f"| `{k}` | {_cell(v.get('description'))} |" for k, v in pattern["properties"].items()]
    out += ["", "## Actions", "", "| action | fields | what it does |", "|---|---|---|"]
    for action in ruleset["$defs"]["action"]["oneOf"]:
        fields = list(action.get("properties", {}))
        details = "; ".join(
            f"`{k}`: {_cell(v.get('description'))}"
            for k, v in action["properties"].items()
            if v.get("description")
        )
        out.append(
            f"| `{fields[0]}` | {', '.join(f'`{f}`' for f in fields)} | "
            f"{_cell(action.get('description'))} {details} |"
        )
    return [*out, ""]


def settings_section(ruleset: dict, key: str = "settings", title: str = "Settings") -> list[str]:
    settings = ruleset["$defs"][key]
    out = [f"## {title}", "", settings.get("description", ""), "", "| setting | type | meaning |"]
    out.append("|---|---|---|")
    for name, spec in settings["properties"].items():
        meaning = _cell(spec.get("description"))
        out.append(f"| `{name}` | {_type(spec) or 'object'} | {meaning} |")
    return [*out, ""]


def cookbook_section(entries: list[tuple[str, dict]]) -> list[str]:
    out = [
        "## Cookbook",
        "",
        "Common policies, each with the scenario that proves it (the test suite runs every one"
        " against a ruleset holding just that policy's rules, in `tests/test_reference.py`)."
        " Copy a policy's rules into a draft, and its scenario into the draft set.",
        "",
    ]
    for name, entry in entries:
        out += [f"### {entry['title']}", "", entry["policy"], "", f"`docs/cookbook/{name}.json`"]
        out += ["", "```json", _json(entry["rules"]), "```", ""]
        scenario = entry["scenario"]
        expected = {k: scenario[k] for k in ("expect", "absent") if k in scenario}
        out += [f"Scenario: *{scenario['scenario']}*, expecting", "", "```json"]
        out += [_json(expected), "```", ""]
    return out


def cookbook(directory: str | Path) -> list[tuple[str, dict]]:
    return [(p.stem, json.loads(p.read_text())) for p in sorted(Path(directory).glob("*.json"))]


def markdown(schemas_dir: str | Path, cookbook_dir: str | Path) -> str:
    """The whole reference as Markdown."""
    schemas_dir = Path(schemas_dir)
    facts = json.loads((schemas_dir / "facts.schema.json").read_text())
    returns_facts = json.loads((schemas_dir / "returns-facts.schema.json").read_text())
    replenishment_facts = json.loads((schemas_dir / "replenishment-facts.schema.json").read_text())
    ruleset = json.loads((schemas_dir / "ruleset.schema.json").read_text())
    out = [
        "# The ruleset language",
        "",
        "<!-- Generated by `python -m app.machinery.rules.reference` from schemas/ and"
        " docs/cookbook/: edit those, not this file. -->",
        "",
        "A ruleset is JSON: a name, a version, `settings` and `rules`. When an order is decided,"
        " the service asserts facts about it (the order, each line, the customer, one"
        " candidate per line and node that could serve it, and one carrier per active carrier"
        " service); every rule whose patterns all match fires, in priority order, and its"
        " actions exclude or score candidates and carriers, set decision attributes, hold the"
        " order, tag it or assert flags other rules match. Then the allocation picks nodes for"
        " the lines, minimising the objective in `settings`, and each shipment its carrier."
        " Promises (`POST /v1/promises`) are decided by the same rules.",
        "",
        "A ruleset has a `kind`. The above is `sourcing`, the default. A `returns` ruleset"
        " decides returns (`POST /v1/returns`): its facts are the return, each returned line"
        " (`item`), the customer and one `point` per node that could take it; its rules"
        " exclude and score points, set `keep_it`, `refund_due`, `restocking_fee_percent`"
        " and `deduct_return_shipping` on the decision, and `disposition` or"
        " `restocking_fee_percent` or `inspection_deduction_percent` on one line (`set`"
        " with `for` naming an item pattern)."
        " A `replenishment` ruleset decides what stores and DCs reorder"
        " (`POST /v1/replenishment/runs`): its facts are the run, one `position` per node"
        " and SKU and one `source` per supplier or DC that could replenish it; its rules"
        " exclude and score sources, set `approve_under_value` on the run, and on one"
        " position its `policy` (`service_level`, `min_max` or `none`), `service_level`,"
        " `review_days`, `cycle_days`, `min_qty` and `max_qty`."
        " The same operators, versions, scenarios and release steps apply to every kind.",
        "",
    ]
    out += facts_section(facts)
    out += facts_section(returns_facts, "Facts of returns rulesets", "returns: ")
    out += facts_section(replenishment_facts, "Facts of replenishment rulesets", "replenishment: ")
    out += operators_section(ruleset)
    out += rules_section(ruleset)
    out += settings_section(ruleset)
    out += settings_section(ruleset, "returns_settings", "Settings of returns rulesets")
    out += settings_section(ruleset, "replenishment_settings", "Settings of replenishment rulesets")
    out += cookbook_section(cookbook(cookbook_dir))
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":  # python -m app.machinery.rules.reference > docs/rulesets.md
    root = Path(__file__).resolve().parents[3]
    sys.stdout.write(markdown(root / "schemas", root / "docs" / "cookbook"))
