"""The engine wrapper: semantics, forward chaining, safeguards, threads, endurance."""

from __future__ import annotations

import itertools
import json
import resource
import threading

import pytest

from app.machinery.rules.engine import Engine, EngineError
from app.machinery.rules.patterns import passes
from tests.rules_helpers import LINE, ORDER, candidate, rule, ruleset

# Pure: the same on every database.
pytestmark = pytest.mark.one_database

_names = itertools.count()


def loaded(document) -> tuple[Engine, str]:
    engine = Engine()
    name = f"t{next(_names)}"
    engine.load(name, document)
    return engine, name


def tag_if(where: dict) -> dict:
    return ruleset(
        [
            rule(
                "r",
                [{"fact": "candidate", "as": "c", "where": where}],
                [{"exclude": "c", "reason": "matched"}],
            )
        ]
    )


VALUES = {
    "atp": [None, -1, 0, 2, 3, 7.5],
    "node_type": [None, "dc", "store", "3pl"],
    "in_transit": [None, True, False],
    "capabilities": [None, [], ["ship"], ["ship", "same_day"]],
    "node_id": [None, "ST-001", "DC-MID", "st-1"],
}
TESTS = [
    ("atp", "eq", 2),
    ("atp", "ne", 2),
    ("atp", "lt", 2),
    ("atp", "lte", 2),
    ("atp", "gt", 2),
    ("atp", "gte", 2.5),
    ("atp", "in", [0, 3]),
    ("atp", "not_in", [0, 3]),
    ("atp", "exists", True),
    ("atp", "exists", False),
    ("node_type", "eq", "dc"),
    ("node_type", "ne", "dc"),
    ("node_type", "in", ["dc", "3pl"]),
    ("node_type", "not_in", ["dc", "3pl"]),
    ("in_transit", "eq", True),
    ("in_transit", "ne", True),
    ("capabilities", "contains", "same_day"),
    ("node_id", "matches", "ST-[0-9]+"),
    ("node_id", "matches", "(DC|ST)-.*"),
]


@pytest.mark.parametrize(("field", "operator", "operand"), TESTS)
def test_engine_and_python_agree_on_every_operator(field, operator, operand):
    """The compiled test matches exactly the facts the reference semantics accept."""
    engine, name = loaded(tag_if({field: {operator: operand}}))
    facts = []
    for index, value in enumerate(VALUES[field]):
        facts.append(candidate(f"c{index}", **{field: value}))
    result = engine.evaluate(name, facts)
    expected = {f"c{i}" for i, v in enumerate(VALUES[field]) if passes(v, operator, operand)}
    assert set(result.excluded) == expected


def test_join_on_another_facts_field():
    document = ruleset(
        [
            rule(
                "big-line-store",
                [
                    {"fact": "line", "as": "l", "where": {"qty": {"gt": 5}}},
                    {
                        "fact": "candidate",
                        "as": "c",
                        "where": {
                            "line_id": {"eq": {"ref": "l.line_id"}},
                            "atp": {"lt": {"ref": "l.qty"}},
                        },
                    },
                ],
                [{"exclude": "c", "reason": "not enough"}],
            )
        ]
    )
    engine, name = loaded(document)
    facts = [
        {**LINE, "line_id": "L1", "qty": 8},
        {**LINE, "line_id": "L2", "qty": 2},
        candidate("a", "L1", atp=3),
        candidate("b", "L1", atp=9),
        candidate("c", "L2", atp=1),
    ]
    assert set(engine.evaluate(name, facts).excluded) == {"a"}


@pytest.mark.parametrize("order_first", [True, False])
def test_negation_holds_whatever_order_facts_arrive_in(order_first):
    document = ruleset(
        [
            rule(
                "no-dc-for-line",
                [
                    {"fact": "line", "as": "l"},
                    {
                        "fact": "candidate",
                        "not": True,
                        "where": {
                            "line_id": {"eq": {"ref": "l.line_id"}},
                            "node_type": {"eq": "dc"},
                        },
                    },
                ],
                [{"assert": "no_dc", "values": {"line_id": {"ref": "l.line_id"}}}],
            )
        ]
    )
    engine, name = loaded(document)
    lines = [{**LINE, "line_id": "L1"}, {**LINE, "line_id": "L2"}]
    candidates = [candidate("dc", "L1", node_type="dc"), candidate("st", "L2")]
    facts = lines + candidates if order_first else candidates + lines
    result = engine.evaluate(name, facts)
    assert [f["line_id"] for f in result.flags] == ["L2"]


def test_forward_chaining_three_rules_deep():
    document = ruleset(
        [
            rule("one", [{"fact": "order", "where": {"total": {"gte": 500}}}], [{"assert": "big"}]),
            rule(
                "two",
                [{"fact": "flag", "where": {"name": {"eq": "big"}}}],
                [{"assert": "bigger", "values": {"level": 2}}],
            ),
            rule(
                "three",
                [{"fact": "flag", "where": {"name": {"eq": "bigger"}, "level": {"gte": 2}}}],
                [{"assert": "biggest"}],
            ),
            rule(
                "four",
                [
                    {"fact": "flag", "where": {"name": {"eq": "biggest"}}},
                    {"fact": "candidate", "as": "c", "where": {"node_type": {"ne": "dc"}}},
                ],
                [{"exclude": "c", "reason": "biggest orders ship from a DC"}],
            ),
        ]
    )
    engine, name = loaded(document)
    facts = [{**ORDER, "total": 600.0}, candidate("st"), candidate("dc", node_type="dc")]
    result = engine.evaluate(name, facts)
    assert result.fired == ["one", "two", "three", "four"]
    assert [f["name"] for f in result.flags] == ["big", "bigger", "biggest"]
    assert set(result.excluded) == {"st"}
    assert result.trace[-1] == {"rule": "four", "facts": ["flag#3", "st"]}
    small = engine.evaluate(name, [{**ORDER, "total": 10.0}, candidate("st")])
    assert small.fired == [] and small.flags == []


def test_higher_priority_fires_first_and_wins_attributes():
    document = ruleset(
        [
            rule(
                "low",
                [{"fact": "order"}],
                [{"set": "service_level", "value": "standard"}],
                priority=-5,
            ),
            rule(
                "high",
                [{"fact": "order"}],
                [{"set": "service_level", "value": "express"}],
                priority=5,
            ),
            rule("middle", [{"fact": "order"}], [{"tag": "m"}]),
            rule("off", [{"fact": "order"}], [{"tag": "off"}], enabled=False),
        ]
    )
    engine, name = loaded(document)
    result = engine.evaluate(name, [ORDER])
    assert result.fired == ["high", "middle", "low"]
    assert result.attributes["service_level"] == {"value": "express", "rule": "high"}
    assert "off" not in result.tags


def test_rules_that_would_loop_end():
    document = ruleset(
        [
            rule(
                "echo",
                [{"fact": "flag", "as": "f", "where": {"name": {"eq": "ping"}}}],
                [{"assert": "ping", "values": {"n": {"ref": "f.n"}}}],
            ),
            rule("start", [{"fact": "order"}], [{"assert": "ping", "values": {"n": 1}}]),
        ]
    )
    engine, name = loaded(document)
    result = engine.evaluate(name, [ORDER])
    assert [f["name"] for f in result.flags] == ["ping"]


def test_scores_holds_and_tags():
    document = ruleset(
        [
            rule(
                "near",
                [{"fact": "candidate", "as": "c", "where": {"distance_km": {"lt": 20}}}],
                [{"score": "c", "add": 2, "reason": "near"}, {"tag": "near"}],
            ),
            rule(
                "dc",
                [{"fact": "candidate", "as": "c", "where": {"node_type": {"eq": "dc"}}}],
                [{"score": "c", "add": 3, "reason": "dc"}],
            ),
            rule(
                "hold",
                [{"fact": "order", "where": {"channel": {"eq": "social"}}}],
                [{"hold": "social orders are reviewed"}],
            ),
        ]
    )
    engine, name = loaded(document)
    result = engine.evaluate(
        name, [{**ORDER, "channel": "social"}, candidate("a", node_type="dc", distance_km=5.0)]
    )
    assert result.score_of("a") == 5
    assert result.holds == [{"rule": "hold", "reason": "social orders are reviewed"}]
    assert result.tags == ["near"]


def test_duplicate_keys_are_refused_before_the_engine_sees_them():
    engine, name = loaded(tag_if({"atp": {"gt": 0}}))
    with pytest.raises(ValueError, match="share the key"):
        engine.evaluate(name, [candidate("a"), candidate("a")])
    # the engine is unharmed
    assert set(engine.evaluate(name, [candidate("a")]).excluded) == {"a"}


def test_a_failing_action_is_raised_not_swallowed(monkeypatch):
    from app.machinery.rules import engine as engine_module

    engine, name = loaded(tag_if({"atp": {"gt": 0}}))

    def broken(*args):
        raise RuntimeError("action broke")

    monkeypatch.setattr(engine_module, "_run", broken)
    with pytest.raises(EngineError, match="action broke"):
        engine.evaluate(name, [candidate("a")])
    monkeypatch.undo()
    assert set(engine.evaluate(name, [candidate("a")]).excluded) == {"a"}


def test_facts_no_rule_matches_are_fine():
    engine, name = loaded(tag_if({"atp": {"gt": 100}}))
    result = engine.evaluate(
        name, [ORDER, LINE, {"fact": "customer", "customer_id": "c", "tier": "gold"}]
    )
    assert result.fired == []


def test_more_sessions_than_the_engine_limit():
    """Past 1,024 live sessions the engine crashes: every session must be deleted."""
    engine, name = loaded(tag_if({"atp": {"gt": 0}}))
    for _ in range(1500):
        assert len(engine.evaluate(name, [candidate("a"), ORDER]).excluded) == 1


def test_many_threads_share_one_ruleset():
    document = ruleset(
        [
            rule(
                "r",
                [
                    {"fact": "line", "as": "l"},
                    {
                        "fact": "candidate",
                        "as": "c",
                        "where": {"line_id": {"eq": {"ref": "l.line_id"}}, "atp": {"lt": 5}},
                    },
                ],
                [{"exclude": "c", "reason": "low"}],
            ),
            rule("f", [{"fact": "order", "where": {"total": {"gt": 50}}}], [{"assert": "big"}]),
        ]
    )
    engine, name = loaded(document)
    errors = []

    def work(thread: int):
        try:
            for i in range(300):
                low = (thread + i) % 7
                facts = [
                    ORDER,
                    {**LINE, "line_id": "L1"},
                    candidate("x", atp=low),
                    candidate("y", atp=10),
                ]
                result = engine.evaluate(name, facts)
                expected = {"x"} if low < 5 else set()
                if set(result.excluded) != expected or len(result.flags) != 1:
                    errors.append((thread, i, result.as_dict()))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


@pytest.mark.slow
def test_100000_evaluations_memory_stays_flat():
    engine, name = loaded(
        ruleset(
            [
                rule(
                    "r",
                    [{"fact": "candidate", "as": "c", "where": {"atp": {"lt": 5}}}],
                    [{"exclude": "c", "reason": "low"}],
                ),
                rule("f", [{"fact": "order"}], [{"assert": "seen"}]),
            ]
        )
    )
    facts = [ORDER, candidate("a", atp=1), candidate("b", atp=9)]

    def rss_kb() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize() // 1024

    for _ in range(10_000):  # warm up allocators and caches
        engine.evaluate(name, facts)
    before = rss_kb()
    for i in range(90_000):
        result = engine.evaluate(name, facts)
        if i % 10_000 == 0:
            assert set(result.excluded) == {"a"}
    grown = rss_kb() - before
    # A leak of one session's state (~1 KB) per evaluation would add ~90 MB.
    assert grown < 8 * 1024, f"resident memory grew {grown} KB over 90,000 evaluations"


def test_numbers_the_engine_would_misread_never_reach_it():
    # Python writes 0.00001 as "1e-05", which the engine misreads; it is as good as 0.
    engine, name = loaded(tag_if({"distance_km": {"lt": 0.0001}}))
    tiny = {**candidate("a"), "distance_km": 0.00001}
    assert set(engine.evaluate(name, [tiny]).excluded) == {"a"}
    engine, name = loaded(tag_if({"distance_km": {"gt": 1}}))
    with pytest.raises(ValueError, match="out of range"):
        engine.evaluate(name, [{**candidate("a"), "distance_km": 1e20}])
    assert set(engine.evaluate(name, [candidate("a")]).excluded) == {"a"}


def test_only_the_fields_the_engine_tests_reach_it():
    from app.machinery.rules.engine import _prepare, _Session

    engine, name = loaded(tag_if({"distance_km": {"lt": 100}}))
    session = _Session(engine._loaded[name])
    text = _prepare([{**candidate("a"), "capabilities": ["ship"]}, ORDER], session)
    # The order is not sent: no engine pattern names it. The candidate keeps its id,
    # its type and the one field tested; the whole fact stays in Python.
    distance = candidate("a")["distance_km"]
    assert json.loads(text) == [
        {"id": "$sentinel", "fact": "$sentinel"},
        {"id": "f0", "fact": "candidate", "distance_km": distance},
    ]
    assert session.facts[0]["capabilities"] == ["ship"]


@pytest.mark.parametrize(
    "text",
    [
        '"p0":{"id":"f0"',
        '","p1":{"id":"f3","fact":"candidate"}}',
        '{"id":"f2"}',
        'p0 \\ " { } [ ] f1',
        'é"p0":{"id":"f1"',
    ],
)
def test_values_that_look_like_the_engines_text_match_as_values(text):
    # Matches are read from the engine's text by fact id: a value written to look like
    # a match (or a fact) must neither add a match nor hide one.
    document = ruleset(
        [
            rule(
                "same-line",
                [
                    {"fact": "line", "as": "l", "where": {"category": {"eq": text}}},
                    {
                        "fact": "candidate",
                        "as": "c",
                        "where": {"line_id": {"eq": {"ref": "l.line_id"}}},
                    },
                ],
                [{"exclude": "c", "reason": "matched"}],
            )
        ]
    )
    engine, name = loaded(document)
    facts = [
        {**LINE, "line_id": text, "category": text},
        {**LINE, "line_id": "L2", "category": text + "x"},
        candidate("a", text, node_type=text),
        candidate("b", "L2", node_type=text),
    ]
    result = engine.evaluate(name, facts)
    assert set(result.excluded) == {"a"}
    assert result.trace == [{"rule": "same-line", "facts": ["line#0", "a"]}]


def test_the_engine_is_sent_only_facts_of_types_its_patterns_name():
    engine, name = loaded(tag_if({"atp": {"gt": 0}}))
    # An order with a value the engine could not read is never sent to it.
    result = engine.evaluate(name, [{**ORDER, "total": 1e300}, candidate("a")])
    assert set(result.excluded) == {"a"}
