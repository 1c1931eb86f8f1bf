"""The engine wrapper: the only module that imports durable-rules.

It registers compiled rulesets and evaluates facts against them, making the
engine's known crash modes (DESIGN.md) unreachable:

- it drives the engine's C layer itself: no Host (whose timer threads crash shared
  rulesets), and actions run in the calling thread;
- every session starts an action (a sentinel fact, matched by a rule that does
  nothing, is always asserted), so deleting its state is safe;
- the session's state is deleted after every evaluation, so live sessions never
  pile up towards the engine's limit of 1,024;
- exceptions raised while actions run are raised to the caller, and the session is
  still cleared;
- every fact gets a unique id; derived facts are de-duplicated and capped;
- tests the engine gets wrong (joins other than eq crash it at random; an eq
  join beside an ``in`` is ignored) and negations are checked here, in Python,
  when a rule fires;
- each version is registered once under its own name (there is no unregister);
- one lock serialises all engine calls: the C extension never releases the GIL,
  so threads would gain nothing, and interleaved sessions are what crashes it.

What costs time is moving facts in and matches out, so (measured in bench/rules.py):

- a fact carries to the engine only the fields the engine tests, and a fact type no
  engine pattern names is not sent; the whole fact stays here, for the tests that
  run in Python and for the explanation;
- matches come out as the engine's JSON text, from which only the fact ids are read
  (every fact's text starts with its id, so a regular expression finds them: the
  values are plain, so ``"p0":{"id":"f`` can only be where a match names a fact);
- the effects of each rule's actions are planned when it is compiled.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import re
import threading
from collections import defaultdict
from dataclasses import dataclass, field

import durable_rules_engine as rules_engine
import orjson

from app.machinery.rules import kinds
from app.machinery.rules.compile import SENTINEL_FACT, SENTINEL_RULE, RulePlan, compile_ruleset
from app.machinery.rules.language import is_ref, split_ref
from app.machinery.rules.patterns import passes, pattern_matches

SENTINEL = {"id": SENTINEL_FACT, "fact": SENTINEL_FACT}
# The one session every evaluation runs in (facts without a sid go to the engine's "0").
SESSION = "0"
# Where each match names a fact: pattern position and fact index (see above).
MATCHED = re.compile(r'"p(\d+)":\{"id":"f(\d+)"')
MATCHED_ALONE = re.compile(r'"p0":\{"id":"f(\d+)"')  # a rule of one pattern
# The engine's result codes for a batch of facts: some facts may match no rule.
HANDLED = (0, 1)
# The engine allocates each session's pools afresh, growing them by half again as facts
# arrive (a stored fact takes kilobytes), and frees them when the session is deleted.
# With glibc's defaults, blocks past 128 KB are mapped and unmapped, or the heap is
# trimmed, every time: each evaluation of more than 16 facts then pays to fault its
# pages in again (measured: 18 facts 233 µs, 83 µs with the limits below). Keeping
# freed blocks for reuse costs only the largest evaluation's memory, kept.
MALLOC_TRIM_THRESHOLD, MALLOC_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
KEEP_BYTES = 32 * 1024 * 1024  # the largest mmap threshold glibc accepts on 64-bit


def _keep_freed_memory() -> bool:
    """Ask glibc to reuse freed blocks instead of returning them; False elsewhere."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):  # not glibc (musl, macOS): nothing to tune
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mapped = mallopt(MALLOC_MMAP_THRESHOLD, KEEP_BYTES)
    return bool(mapped and mallopt(MALLOC_TRIM_THRESHOLD, 4 * KEEP_BYTES))


MEMORY_TUNED = _keep_freed_memory()
# Fact types an evaluation has many of, from the shipped catalogue (``x-count``).
MANY = kinds.many()
# Derived facts one evaluation may assert; far above any sane ruleset.
MAX_DERIVED_FACTS = 10_000
SMALLEST_NUMBER = 0.0001
LARGEST_NUMBER = 1e16
LARGEST_INTEGER = 2**63


class EngineError(RuntimeError):
    """An evaluation failed; nothing it did should be used."""


class EngineBroken(EngineError):
    """The engine's own state could not be cleared: this engine must not be used again."""


@dataclass
class Evaluation:
    """What the rules did to one set of facts."""

    fired: list[str] = field(default_factory=list)
    trace: list[dict] = field(default_factory=list)
    excluded: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))
    scores: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))
    attributes: dict[str, dict] = field(default_factory=dict)
    # Attributes set on one fact (``set`` with ``for``): fact key -> attribute -> entry.
    item_attributes: dict[str, dict] = field(default_factory=dict)
    holds: list[dict] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    flags: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "fired": list(self.fired),
            "trace": list(self.trace),
            "excluded": {k: list(v) for k, v in self.excluded.items()},
            "scores": {k: list(v) for k, v in self.scores.items()},
            "attributes": dict(self.attributes),
            "item_attributes": {k: dict(v) for k, v in self.item_attributes.items()},
            "holds": list(self.holds),
            "tags": list(self.tags),
            "flags": list(self.flags),
        }

    def score_of(self, key: str) -> float:
        return sum(entry["add"] for entry in self.scores.get(key, []))


# What a rule's action does to each match, planned when the ruleset is loaded.
EXCLUDE, SCORE, SET, HOLD, TAG, ASSERT, SET_FOR = range(7)


@dataclass(frozen=True)
class _Rule:
    """A compiled rule and the steps its actions take for each match."""

    plan: RulePlan
    checked: bool  # whether matches need tests in Python (residual or negated)
    # (EXCLUDE | SCORE, position, entry), (SET, attribute, value), (HOLD, entry, None),
    # (SET_FOR, (attribute, position), value),
    # (TAG, tag, None), (ASSERT, flag name, ((value name, position | None, field | literal)))
    # An entry is the same for every match of the rule, so one is shared (and pickled once).
    steps: tuple


def _plan_rule(plan: RulePlan) -> _Rule:
    steps = []
    rule_id = plan.rule_id
    for kind, action in plan.actions:
        if kind == "exclude":
            entry = {"rule": rule_id, "reason": action["reason"]}
            steps.append((EXCLUDE, plan.aliases[action["exclude"]], entry))
        elif kind == "score":
            entry = {"rule": rule_id, "add": action["add"], "reason": action["reason"]}
            steps.append((SCORE, plan.aliases[action["score"]], entry))
        elif kind == "set" and "for" in action:
            position = plan.aliases[action["for"]]
            steps.append((SET_FOR, (action["set"], position), action["value"]))
        elif kind == "set":
            steps.append((SET, action["set"], action["value"]))
        elif kind == "hold":
            steps.append((HOLD, {"rule": rule_id, "reason": action["hold"]}, None))
        elif kind == "tag":
            steps.append((TAG, action["tag"], None))
        elif kind == "assert":
            values = []
            for name, operand in (action.get("values") or {}).items():
                if is_ref(operand):
                    alias, field_name = split_ref(operand)
                    values.append((name, plan.aliases[alias], field_name))
                else:
                    values.append((name, None, operand))
            steps.append((ASSERT, action["assert"], tuple(sorted(values, key=lambda v: v[0]))))
    return _Rule(plan, bool(plan.residual or plan.negated), tuple(steps))


@dataclass
class _Loaded:
    """A ruleset registered with the engine, and how to run its actions."""

    handle: int
    rules: dict[str, _Rule]
    fields: dict[str, tuple]


class _Session:
    """The state of one evaluation while its actions run."""

    def __init__(self, loaded: _Loaded):
        self.loaded = loaded
        self.result = Evaluation()
        self.fired: set[str] = set()
        self.facts: list[dict] = []  # every fact, derived ones included; engine id f<index>
        self.keys: list[str] = []
        self.types: list[str] = []
        self.by_type: dict[str, list[int]] = defaultdict(list)
        self.derived: set[tuple] = set()
        self.attribute_priority: dict = {}  # attribute or (fact key, attribute) -> priority
        self.pending: list[dict] = []  # derived facts for the engine, asserted per action


class Engine:
    """Registered rulesets and a way to evaluate facts against them."""

    def __init__(self, many: frozenset | None = None):
        self._lock = threading.Lock()
        self._loaded: dict[str, _Loaded] = {}
        self._many = MANY if many is None else many
        self._broken: str | None = None

    def loaded(self, name: str) -> bool:
        return name in self._loaded

    def load(self, name: str, document: dict) -> None:
        """Compile and register a validated ruleset under ``name``, once."""
        with self._lock:
            if name in self._loaded:
                return
            compiled = compile_ruleset(document, self._many)
            text = json.dumps(compiled.definitions, ensure_ascii=False)
            handle = rules_engine.create_ruleset(name, text)
            rules = {rule_id: _plan_rule(plan) for rule_id, plan in compiled.plans.items()}
            fields = {kind: tuple(sorted(names)) for kind, names in compiled.fields.items()}
            self._loaded[name] = _Loaded(handle, rules, fields)

    def evaluate(self, name: str, facts: list[dict]) -> Evaluation:
        """Assert ``facts`` in a fresh session of ruleset ``name``; return the effects.

        Each fact is ``{"fact": type, "key"?: str, field: value, ...}``; ``key``
        names it in the result (default ``type#index``) and must be unique.
        Fields whose value is None are left out (absent).
        """
        loaded = self._loaded.get(name)
        if loaded is None:
            raise KeyError(f"ruleset {name!r} is not loaded")
        with self._lock:
            if self._broken:
                raise EngineBroken(self._broken)
            session = _Session(loaded)
            text = _prepare(facts, session)
            handle, state = loaded.handle, None
            try:
                code, state = rules_engine.assert_facts(handle, text)
                _check(code)
                started = rules_engine.start_action_for_state(handle, state)
                if started is None:  # pragma: no cover - the sentinel rule always fires
                    raise EngineError("the engine started no action for this evaluation")
                message = started[1]
                while message is not None:
                    _run(session, message)
                    if session.pending:
                        _check(rules_engine.assert_facts(handle, _encode(session.pending))[0])
                        session.pending = []
                    message = rules_engine.complete_and_start_action(handle, state)
            except EngineError:
                self._clear(handle, state, True)
                raise
            except Exception as exc:
                self._clear(handle, state, True)
                raise EngineError(f"a rule action failed: {exc}") from exc
            self._clear(handle, state, False)
            return session.result

    def _clear(self, handle: int, state: int, in_action: bool) -> None:
        # Every evaluation runs in the one session SESSION and deletes it afterwards, so
        # live sessions never pile up towards the engine's limit and no fact outlives
        # its evaluation. If that fails, the next evaluation would see stale facts.
        try:
            if in_action and state is not None:
                rules_engine.abandon_action(handle, state)
            rules_engine.delete_state(handle, SESSION)
        except Exception as exc:  # pragma: no cover - the engine's own failure
            self._broken = f"the engine could not clear an evaluation: {exc}"
            raise EngineBroken(self._broken) from exc


_SCALAR = (str, int, float, bool)
_PLAIN = (*_SCALAR, list)
# In the text of plain facts: where a number was written with an exponent (orjson
# always writes a sign there). A string may look like it too; that costs only time.
SUSPECT = re.compile(r"e[-+]\d")


def _check(code: int) -> None:
    if code not in HANDLED:
        raise EngineError(f"the engine refused the facts (code {code})")


def _encode(facts: list[dict]) -> str:
    # orjson writes a thousand facts in a tenth of the time json does (measured), with
    # no spaces; it writes NaN and infinities as null, which no checked fact holds.
    return orjson.dumps(facts).decode()


def _prepare(facts: list[dict], session: _Session) -> str:
    """Record the facts in the session; return the text of those the engine tests."""
    wanted = session.loaded.fields
    keys, by_type = session.keys, session.by_type
    session.facts = facts = list(facts)
    engine_facts = [SENTINEL]
    selected = []
    # One pass: this runs for every candidate of every evaluation.
    for index, fact in enumerate(facts):
        kind = fact.get("fact")
        if not isinstance(kind, str):
            raise ValueError(f"fact {index} has no type")
        keys.append(fact.get("key") or f"{kind}#{index}")
        by_type[kind].append(index)
        names = wanted.get(kind)
        if names is not None:
            selected.append(index)
            copy = {"id": f"f{index}", "fact": kind}
            for name in names:
                if (value := fact.get(name)) is not None:
                    copy[name] = value
            engine_facts.append(copy)
    if len(set(keys)) != len(keys) or SENTINEL_FACT in keys:
        seen: set[str] = set()
        for key in keys:
            if key in seen or key == SENTINEL_FACT:
                raise ValueError(f"two facts share the key {key!r}")
            seen.add(key)
    try:
        text = _encode(engine_facts)
    except TypeError:
        text = None
    # Most facts are plain, and the text shows it: one object per fact, no number with
    # an exponent, no null. Otherwise (or where a string only looks like that) each
    # value is checked.
    if (
        text is None
        or text.count("{") != len(engine_facts)
        or "null" in text
        or SUSPECT.search(text)
    ):
        engine_facts[1:] = [
            _engine_fact(index, facts[index], wanted[facts[index]["fact"]], keys[index])
            for index in selected
        ]
        text = _encode(engine_facts)
    return text


def _engine_fact(index: int, fact: dict, fields: tuple, key: str) -> dict:
    """The engine's copy of a fact, each value checked: its id first, then the fields
    the engine tests."""
    copy = {"id": f"f{index}", "fact": fact["fact"]}
    for name in fields:
        value = fact.get(name)
        if value is None:
            continue
        if isinstance(value, float):
            # The engine reads numbers as plain decimals: what is written with an
            # exponent it misreads. Below 0.0001 is as good as 0; 10**16 and more is no
            # quantity, price or distance this service has.
            if not abs(value) < LARGEST_NUMBER:
                raise ValueError(f"fact {key}: field {name} is out of range ({value!r})")
            if abs(value) < SMALLEST_NUMBER:
                value = 0.0
        elif isinstance(value, int) and not abs(value) < LARGEST_INTEGER:
            raise ValueError(f"fact {key}: field {name} is out of range ({value!r})")
        elif not isinstance(value, _PLAIN) or (
            isinstance(value, list) and not all(isinstance(v, _SCALAR) for v in value)
        ):
            raise ValueError(f"fact {key}: field {name} is not a plain value")
        copy[name] = value
    return copy


def _run(session: _Session, message: str) -> None:
    """Apply one action's matches: ``{"rule":[{"p0":{"id":"f3",...},...},...]}``."""
    end = message.index('"', 2)
    rule_id = message[2:end]
    if rule_id == SENTINEL_RULE:
        return
    rule = session.loaded.rules[rule_id]
    width = rule.plan.patterns
    if width == 1:
        frames = [(int(index),) for index in MATCHED_ALONE.findall(message, end)]
    else:
        found = MATCHED.findall(message, end)
        if len(found) % width:
            raise EngineError(f"the engine's matches of rule {rule_id} could not be read")
        frames = []
        for start in range(0, len(found), width):
            frame = [0] * width
            for position, index in found[start : start + width]:
                frame[int(position)] = int(index)
            frames.append(frame)
    if not frames:
        raise EngineError(f"the engine's matches of rule {rule_id} could not be read")
    if rule.checked:
        frames = [frame for frame in frames if _holds(session, rule.plan, frame)]
    if frames:
        _apply(session, rule, frames)


def _holds(session: _Session, plan: RulePlan, frame) -> bool:
    """Whether a match passes the tests the engine left to Python."""
    facts = session.facts
    for position, field_name, operator, operand, ref in plan.residual:
        if ref is not None:
            operand = facts[frame[ref[0]]].get(ref[1])
            if operand is None:
                return False
        if not passes(facts[frame[position]].get(field_name), operator, operand):
            return False
    if plan.negated:
        bound = {alias: facts[frame[position]] for alias, position in plan.aliases.items()}
        # Like the engine, a negated pattern looks only at facts the rule did not match.
        matched = set(frame)
        for pattern in plan.negated:
            if any(
                pattern_matches(pattern, facts[index], bound)
                for index in session.by_type[pattern["fact"]]
                if index not in matched
            ):
                return False  # a fact this rule forbids arrived after the match was found
    return True


def _apply(session: _Session, rule: _Rule, frames: list) -> None:
    """The effects of a rule's matches: each is its facts' indices, in pattern order."""
    keys = session.keys
    result = session.result
    plan = rule.plan
    rule_id = plan.rule_id
    if plan.patterns == 1:
        result.trace.extend([{"rule": rule_id, "facts": [keys[f[0]]]} for f in frames])
    else:
        result.trace.extend([{"rule": rule_id, "facts": [keys[i] for i in f]} for f in frames])
    if rule_id not in session.fired:
        session.fired.add(rule_id)
        result.fired.append(rule_id)
    for step, first, second in rule.steps:
        if step in (EXCLUDE, SCORE):
            found = result.excluded if step == EXCLUDE else result.scores
            for frame in frames:
                found[keys[frame[first]]].append(second)
        elif step == SET:
            # The highest priority wins, whatever order the rules fired in.
            if session.attribute_priority.get(first, -(10**9)) < plan.priority:
                session.attribute_priority[first] = plan.priority
                result.attributes[first] = {"value": second, "rule": rule_id}
        elif step == SET_FOR:
            attribute, position = first
            for frame in frames:
                key = keys[frame[position]]
                slot = (key, attribute)
                if session.attribute_priority.get(slot, -(10**9)) < plan.priority:
                    session.attribute_priority[slot] = plan.priority
                    entry = {"value": second, "rule": rule_id}
                    result.item_attributes.setdefault(key, {})[attribute] = entry
        elif step == HOLD:
            result.holds.extend([first] * len(frames))
        elif step == TAG:
            if first not in result.tags:
                result.tags.append(first)
        else:
            facts = session.facts
            for frame in frames:
                values = {}
                for value_name, position, operand in second:
                    if position is not None:
                        operand = facts[frame[position]].get(operand)
                    if operand is not None:
                        values[value_name] = operand
                # The same flag twice adds nothing, and de-duplicating here is what
                # guarantees that forward chaining ends: flags only carry values already
                # present in the facts. (Value names are sorted when the rule is planned.)
                identity = (first, *values.items())
                if identity not in session.derived:
                    _assert_flag(session, rule_id, first, values, identity)


def _assert_flag(session: _Session, rule_id: str, name: str, values: dict, identity) -> None:
    if len(session.derived) >= MAX_DERIVED_FACTS:
        raise EngineError(f"more than {MAX_DERIVED_FACTS} derived facts in one evaluation")
    session.derived.add(identity)
    key = f"flag#{len(session.derived)}"
    flag = {"fact": "flag", "name": name, **values}
    session.result.flags.append({**flag, "key": key, "rule": rule_id})
    index = len(session.facts)
    session.facts.append(flag)
    session.keys.append(key)
    session.by_type["flag"].append(index)
    fields = session.loaded.fields.get("flag")
    if fields is not None:
        session.pending.append(_engine_fact(index, flag, fields, key))
