"""How much work a ruleset can make the engine do on the largest order: a budget. Pure.

A rule whose patterns share no join matches every combination of their facts: two
unjoined candidate patterns on a 25-line order are 2.25 million combinations (4 s),
three are billions. So every rule is measured on the largest order the service takes
(``MAX_LINES`` lines, ``max_candidates_per_line`` candidates each) before it is
stored:

- **matches**: the product, over its patterns, of how many facts each can match
  given the ones before it (an ``eq`` join on ``line_id`` leaves a candidate pattern
  the candidates of one line, on ``node_id`` one per line, and so on). At most
  ``MAX_MATCHES``.
- **negation checks**: each match of a rule with ``"not": true`` patterns looks at the
  facts those patterns could match. At most ``MAX_NEGATION_CHECKS``.
- **flags**: a flag asserted with the same values counts once, so a rule asserts at
  most as many flags as its values have distinct combinations. Across the ruleset at
  most ``MAX_FLAGS`` (the engine's cap on derived facts per evaluation).

The figures are upper bounds computed from the rules alone; the evaluation's own
time and memory budget (``app/machinery/rules/sandbox.py``) stays the last line of defence.
"""

from __future__ import annotations

from app.machinery.rules.language import action_kind, is_ref, split_ref

MAX_LINES = 200  # order.schema.json: lines.maxItems
MAX_MATCHES = 200_000
MAX_NEGATION_CHECKS = 5_000_000
MAX_FLAGS = 10_000
# Active carrier services an evaluation sees at most (each is one fact).
MAX_CARRIERS = 50
DEFAULT_CANDIDATES_PER_LINE = 60
# Replenishment: positions one evaluation holds (a run evaluates them in batches of this
# many) and the sources each position is offered at most.
POSITIONS_PER_EVALUATION = 250
SOURCES_PER_POSITION = 12

# Fields that take few values, whatever the order: how many at most.
FEW_VALUES = {"node_type": 4, "delivery_method": 4, "tier": 4, "in_transit": 2, "hazmat": 2}


def problems(rules: list[tuple[int, dict]], settings: dict) -> list[dict]:
    """The rules that break the budget, each with its pointer, code and rule id."""
    per_line = settings.get("max_candidates_per_line", DEFAULT_CANDIDATES_PER_LINE)
    if not isinstance(per_line, int) or isinstance(per_line, bool) or per_line < 1:
        per_line = DEFAULT_CANDIDATES_PER_LINE
    sizes = {
        "order": 1,
        "customer": 1,
        "line": MAX_LINES,
        "candidate": MAX_LINES * per_line,
        "per_line": per_line,
    }
    enabled = [(index, rule) for index, rule in rules if rule.get("enabled", True)]
    flags: dict[str, int] = {}
    # Flags feed rules that assert flags: iterate until the bounds settle.
    for _ in range(8):
        asserted: dict[str, int] = {}
        for _, rule in enabled:
            matches, _ = _work(rule, sizes, flags)
            for action in rule["then"]:
                if action_kind(action) == "assert":
                    name = action["assert"]
                    count = _distinct_flags(rule, action, matches, sizes)
                    asserted[name] = min(MAX_FLAGS + 1, asserted.get(name, 0) + count)
        if asserted == flags:
            break
        flags = asserted
    found = []
    for index, rule in enabled:
        matches, checks = _work(rule, sizes, flags)
        at = f"/rules/{index}/when"
        if matches > MAX_MATCHES:
            found.append(
                _problem(
                    at,
                    f"on the largest order this rule can match {matches:,} combinations of"
                    f" facts (at most {MAX_MATCHES:,}); join its patterns with eq on"
                    " line_id, node_id or another field of an earlier pattern",
                    "join_fan_out",
                    rule["id"],
                )
            )
        elif checks > MAX_NEGATION_CHECKS:
            found.append(
                _problem(
                    at,
                    f"on the largest order this rule's negated patterns need {checks:,}"
                    f" checks (at most {MAX_NEGATION_CHECKS:,}); narrow the patterns",
                    "join_fan_out",
                    rule["id"],
                )
            )
    total = sum(flags.values())
    if total > MAX_FLAGS:
        index, rule = next(
            (i, r) for i, r in enabled if any(action_kind(a) == "assert" for a in r["then"])
        )
        found.append(
            _problem(
                f"/rules/{index}/then",
                f"the rules can assert up to {total:,} flags in one evaluation (at most"
                f" {MAX_FLAGS:,}); assert flags with fewer distinct values",
                "too_many_flags",
                rule["id"],
            )
        )
    return found


def _problem(at: str, message: str, code: str, rule_id: str) -> dict:
    return {"pointer": at, "message": message, "code": code, "rule_id": rule_id}


def _work(rule: dict, sizes: dict, flags: dict[str, int]) -> tuple[int, int]:
    """(combinations the positive patterns match, facts the negated ones then look at)."""
    matches = 1
    negated = 0
    bound: dict[str, str] = {}  # alias -> fact type
    for pattern in rule["when"]:
        size = _pattern_size(pattern, bound, sizes, flags)
        if pattern.get("not", False):
            negated += size
            continue
        matches *= size
        if pattern.get("as"):
            bound[pattern["as"]] = pattern["fact"]
    return matches, matches * negated


def _pattern_size(pattern: dict, bound: dict, sizes: dict, flags: dict[str, int]) -> int:
    """How many facts one pattern can match once the earlier patterns are fixed."""
    fact = pattern["fact"]
    where = pattern.get("where") or {}
    pinned = {
        field
        for field, tests in where.items()
        if isinstance(tests, dict)
        and "eq" in tests
        and (not is_ref(tests["eq"]) or split_ref(tests["eq"])[0] in bound)
    }
    if fact in ("order", "customer"):
        return 1
    if fact == "line":
        return 1 if pinned & {"line_id", "sku"} else sizes["line"]
    if fact == "candidate":
        if "key" in pinned or {"line_id", "node_id"} <= pinned:
            return 1
        if "line_id" in pinned:
            return sizes["per_line"]
        if "node_id" in pinned:
            return sizes["line"]
        return sizes["candidate"]
    if fact == "carrier":
        return 1 if "service_id" in pinned else MAX_CARRIERS
    if fact == "flag":
        name = where.get("name", {}).get("eq") if isinstance(where.get("name"), dict) else None
        count = flags.get(name, 0) if isinstance(name, str) else sum(flags.values())
        if pinned - {"name"}:
            return 1  # joined on a value: the flag of that value
        return max(1, count)
    if fact == "position":
        return 1 if "key" in pinned or {"node_id", "sku"} <= pinned else POSITIONS_PER_EVALUATION
    if fact == "source":
        if "key" in pinned or {"position_key", "source_id"} <= pinned:
            return 1
        if "position_key" in pinned:
            return SOURCES_PER_POSITION
        if "source_id" in pinned:
            return POSITIONS_PER_EVALUATION
        return POSITIONS_PER_EVALUATION * SOURCES_PER_POSITION
    return 1  # one per evaluation (run, return), or unknown: reported by the validator


def _distinct_flags(rule: dict, action: dict, matches: int, sizes: dict) -> int:
    """How many different flags one assert action can make: values' combinations."""
    values = action.get("values") or {}
    if not values:
        return 1
    aliases = {p["as"]: p["fact"] for p in rule["when"] if p.get("as")}
    combinations = 1
    for operand in values.values():
        if not is_ref(operand):
            continue
        alias, field = split_ref(operand)
        fact = aliases.get(alias)
        if field in FEW_VALUES:
            combinations *= FEW_VALUES[field]
        elif fact in ("order", "customer"):
            continue
        elif field in ("line_id", "sku"):
            combinations *= sizes["line"]
        else:
            combinations *= matches
    return max(1, min(matches, combinations))
