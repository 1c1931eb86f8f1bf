"""The engine wrapper: the only module that imports durable-rules.

It registers compiled rulesets and evaluates facts against them, making the
engine's known crash modes (DESIGN.md) unreachable:

- the Host's background timer threads are never started; actions run in the
  calling thread;
- every session starts an action (an observer rule matches every fact, and a
  sentinel fact is always asserted), so deleting its state is safe;
- the session's state is deleted after every evaluation, so live sessions never
  pile up towards the engine's limit of 1,024;
- exceptions raised by actions are caught here and raised to the caller;
- every fact gets a unique id; derived facts are de-duplicated and capped;
- tests the engine gets wrong (joins other than eq crash it at random; an eq
  join beside an ``in`` is ignored) and negations are checked here, in Python,
  when a rule fires;
- each version is registered once under its own name (there is no unregister);
- one lock serialises all engine calls: the C extension never releases the GIL,
  so threads would gain nothing, and interleaved sessions are what crashes it.
"""

from __future__ import annotations

import itertools
import threading
from collections import defaultdict
from dataclasses import dataclass, field

from durable import engine as durable

from app.rules.compile import OBSERVER, RulePlan, compile_ruleset
from app.rules.language import RESERVED_FIELDS, is_ref, split_ref
from app.rules.patterns import passes, pattern_matches

SENTINEL = {"fact": "$sentinel", "id": "$sentinel"}
# Derived facts one evaluation may assert; far above any sane ruleset.
MAX_DERIVED_FACTS = 10_000
SMALLEST_NUMBER = 0.0001
LARGEST_NUMBER = 1e15


class EngineError(RuntimeError):
    """An evaluation failed; nothing it did should be used."""


class _Host(durable.Host):
    """A durable-rules host without its timer threads (they crash shared rulesets)."""

    def _run(self):
        self._d_timer = None
        self._t_timer = None


@dataclass
class Evaluation:
    """What the rules did to one set of facts."""

    fired: list[str] = field(default_factory=list)
    trace: list[dict] = field(default_factory=list)
    excluded: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))
    scores: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))
    attributes: dict[str, dict] = field(default_factory=dict)
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
            "holds": list(self.holds),
            "tags": list(self.tags),
            "flags": list(self.flags),
        }

    def score_of(self, key: str) -> float:
        return sum(entry["add"] for entry in self.scores.get(key, []))


class _Session:
    """The state of one evaluation while its actions run."""

    def __init__(self, sid: str, plans: dict[str, RulePlan]):
        self.sid = sid
        self.plans = plans
        self.result = Evaluation()
        self.started = False
        self.error: BaseException | None = None
        self.derived: set[tuple] = set()
        self.attribute_priority: dict[str, int] = {}
        self.by_type: dict[str, list[dict]] = defaultdict(list)


class Engine:
    """Registered rulesets and a way to evaluate facts against them."""

    def __init__(self):
        self._host = _Host()
        self._lock = threading.Lock()
        self._plans: dict[str, dict[str, RulePlan]] = {}
        self._session: _Session | None = None
        self._sids = itertools.count(1)

    def loaded(self, name: str) -> bool:
        return name in self._plans

    def load(self, name: str, document: dict) -> None:
        """Compile and register a validated ruleset under ``name``, once."""
        with self._lock:
            if name in self._plans:
                return
            definitions, plans = compile_ruleset(document)
            for rule_name, definition in definitions.items():
                definition["run"] = (
                    self._observe if rule_name == OBSERVER else self._action(plans[rule_name])
                )
            self._host.register_rulesets({name: definitions})
            self._plans[name] = plans

    def evaluate(self, name: str, facts: list[dict]) -> Evaluation:
        """Assert ``facts`` in a fresh session of ruleset ``name``; return the effects.

        Each fact is ``{"fact": type, "key"?: str, field: value, ...}``; ``key``
        names it in the result (default ``type#index``) and must be unique.
        Fields whose value is None are left out (absent).
        """
        if name not in self._plans:
            raise KeyError(f"ruleset {name!r} is not loaded")
        with self._lock:
            sid = f"s{next(self._sids)}"
            prepared = _prepare(facts, sid)
            session = _Session(sid, self._plans[name])
            for fact in prepared:
                session.by_type[fact["fact"]].append(fact)
            self._session = session
            try:
                self._host.assert_facts(name, prepared)
            except durable.MessageNotHandledException as exc:  # pragma: no cover - observer
                raise EngineError(f"the engine did not handle the facts: {exc.message}") from exc
            finally:
                self._session = None
                if session.started:
                    self._host.delete_state(name, sid)
            if session.error is not None:
                raise EngineError(f"a rule action failed: {session.error}") from session.error
            if not session.started:  # pragma: no cover - the observer always fires
                raise EngineError("the engine started no action for this evaluation")
            return session.result

    # Actions ---------------------------------------------------------------------------

    def _observe(self, c) -> None:
        if self._session is not None:
            self._session.started = True

    def _action(self, plan: RulePlan):
        def run(c) -> None:
            session = self._session
            if session is None or session.error is not None:
                return
            try:
                for frame in c.m:
                    _apply(session, plan, frame._d, c)
            except Exception as exc:
                session.error = exc

        return run


_PLAIN = (str, int, float, bool, list)


def _prepare(facts: list[dict], sid: str) -> list[dict]:
    prepared = [{**SENTINEL, "sid": sid}]
    seen: set[str] = set()
    for index, fact in enumerate(facts):
        kind = fact.get("fact")
        if not isinstance(kind, str):
            raise ValueError(f"fact {index} has no type")
        key = fact.get("key") or f"{kind}#{index}"
        if key in seen or key == SENTINEL["id"]:
            raise ValueError(f"two facts share the key {key!r}")
        seen.add(key)
        clean = {
            name: value
            for name, value in fact.items()
            if value is not None and name not in RESERVED_FIELDS
        }
        for name, value in clean.items():
            if not isinstance(value, _PLAIN):
                raise ValueError(f"fact {key}: field {name} is not a plain value")
            if isinstance(value, float):
                # The engine reads numbers as plain decimals: what Python writes with an
                # exponent it misreads. Below 0.0001 is as good as 0; 10**15 and more is no
                # quantity, price or distance this service has.
                if not abs(value) < LARGEST_NUMBER:
                    raise ValueError(f"fact {key}: field {name} is out of range ({value!r})")
                if abs(value) < SMALLEST_NUMBER:
                    clean[name] = 0.0
        clean.update(sid=sid, id=str(key), fact=kind)
        prepared.append(clean)
    return prepared


def _apply(session: _Session, plan: RulePlan, frame: dict, c) -> None:
    result = session.result
    for name, field_name, operator, operand, ref in plan.residual:
        if ref is not None:
            operand = frame[ref[0]].get(ref[1])
            if operand is None:
                return
        if not passes(frame[name].get(field_name), operator, operand):
            return
    if plan.negated:
        bound = {alias: frame[name] for alias, name in plan.aliases.items()}
        # Like the engine, a negated pattern looks only at facts the rule did not match.
        matched = {frame[name]["id"] for name in plan.patterns}
        for pattern in plan.negated:
            if any(
                pattern_matches(pattern, f, bound)
                for f in session.by_type[pattern["fact"]]
                if f["id"] not in matched
            ):
                return  # a fact this rule forbids arrived after the match was found
    keys = {alias: frame[name]["id"] for alias, name in plan.aliases.items()}
    result.trace.append({"rule": plan.rule_id, "facts": [frame[p]["id"] for p in plan.patterns]})
    if plan.rule_id not in result.fired:
        result.fired.append(plan.rule_id)
    for kind, action in plan.actions:
        if kind == "exclude":
            entry = {"rule": plan.rule_id, "reason": action["reason"]}
            result.excluded[keys[action["exclude"]]].append(entry)
        elif kind == "score":
            entry = {"rule": plan.rule_id, "add": action["add"], "reason": action["reason"]}
            result.scores[keys[action["score"]]].append(entry)
        elif kind == "set":
            attribute = action["set"]
            # The highest priority wins, whatever order the rules fired in.
            if session.attribute_priority.get(attribute, -(10**9)) < plan.priority:
                session.attribute_priority[attribute] = plan.priority
                result.attributes[attribute] = {"value": action["value"], "rule": plan.rule_id}
        elif kind == "hold":
            result.holds.append({"rule": plan.rule_id, "reason": action["hold"]})
        elif kind == "tag":
            if action["tag"] not in result.tags:
                result.tags.append(action["tag"])
        elif kind == "assert":
            _assert_flag(session, plan, action, frame, c)


def _assert_flag(session: _Session, plan: RulePlan, action: dict, frame: dict, c) -> None:
    values = {}
    for name, operand in (action.get("values") or {}).items():
        if is_ref(operand):
            alias, field_name = split_ref(operand)
            operand = frame[plan.aliases[alias]].get(field_name)
        if operand is not None:
            values[name] = operand
    flag = {"fact": "flag", "name": action["assert"], **values}
    identity = (action["assert"], *sorted(values.items()))
    # The same flag twice adds nothing, and de-duplicating here is what guarantees that
    # forward chaining ends: flags only carry values already present in the facts.
    if identity in session.derived:
        return
    if len(session.derived) >= MAX_DERIVED_FACTS:
        raise EngineError(f"more than {MAX_DERIVED_FACTS} derived facts in one evaluation")
    session.derived.add(identity)
    key = f"flag#{len(session.derived)}"
    session.result.flags.append({**flag, "key": key, "rule": plan.rule_id})
    asserted = {**flag, "sid": session.sid, "id": key}
    session.by_type["flag"].append(asserted)
    c.assert_fact(asserted)
