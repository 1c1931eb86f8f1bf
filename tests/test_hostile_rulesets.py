"""Rulesets built to hang or crash the engine: refused by the validator, and, should one
get past it, stopped by the evaluation budget while the service answers everyone else.

The engine's limits here were found by running it: the over-limit cases below hang or
crash a real durable-rules engine (in the sandbox, which survives them), and the
at-limit cases compile and run.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import pytest

from app import create_app
from app.machinery.rules import runtime
from app.machinery.rules.engine import EngineError
from app.machinery.rules.language import MAX_DISTINCT_TESTS_PER_FIELD, MAX_RULES_PER_CONDITION
from app.machinery.rules.sandbox import BudgetExceeded, Sandbox
from app.platform import auth
from app.platform import db as database
from app.platform.schemas import Catalogue
from tests.conftest import Api
from tests.rules_helpers import ORDER, SETTINGS, candidate, rule, ruleset, shipped
from tests.servers import serving, status_of

SCHEMAS = Catalogue("schemas")
CANDIDATE = {"fact": "candidate", "as": "c"}
SMALL_ORDER = {
    "fact": "order",
    "key": "order",
    "order_id": "ORD-1",
    "total": 10.0,
    "channel": "web",
}
EXCLUDE = [{"exclude": "c", "reason": "r"}]
TAG = [{"tag": "t"}]


@pytest.fixture
def box():
    sandbox = Sandbox(timeout=10.0)
    yield sandbox
    sandbox.close()


def codes(document) -> list[tuple[str, str]]:
    return sorted({(p["pointer"], p["code"]) for p in runtime.validate(document, SCHEMAS)})


def order_rule(index: int, where: dict) -> dict:
    return rule(f"r{index}", [{"fact": "order", "where": where}], TAG)


def listed(count: int, spread: int = 1) -> dict:
    """``count`` distinct values of order_id across ``spread`` rules' in lists."""
    per_rule = count // spread
    return ruleset(
        [
            order_rule(i, {"order_id": {"in": [f"v{i}-{j}" for j in range(per_rule)]}})
            for i in range(spread)
        ]
    )


def shared(count: int) -> dict:
    return ruleset([order_rule(i, {"total": {"gt": 5}}) for i in range(count)])


def matching(expression: str, negated: bool = False) -> dict:
    pattern = {"fact": "order", "where": {"order_id": {"matches": expression}}}
    if negated:
        return ruleset([rule("r", [CANDIDATE, {**pattern, "not": True}], EXCLUDE)])
    return ruleset([rule("r", [pattern], TAG)])


def number(value) -> dict:
    return ruleset([order_rule(0, {"total": {"gt": value}})])


UNJOINED_TWO = ruleset([rule("r", [CANDIDATE, {"fact": "candidate", "as": "d"}], EXCLUDE)])
UNJOINED_THREE = ruleset(
    [
        rule(
            "r",
            [CANDIDATE, {"fact": "candidate", "as": "d"}, {"fact": "candidate", "as": "e"}],
            EXCLUDE,
        )
    ]
)
MANY_FLAGS = ruleset(
    [
        rule(
            "r",
            [CANDIDATE],
            [{"assert": "seen", "values": {"distance": {"ref": "c.distance_km"}}}],
        )
    ]
)


@pytest.mark.parametrize(
    ("name", "document", "expected"),
    [
        (
            "more than 500 values in in-lists on one field",
            listed(600, spread=6),
            [("/rules/5/when", "too_many_tests_on_field")],
        ),
        (
            "nested quantifiers",
            matching("((A*)*)*Z"),
            [("/rules/0/when/0/where/order_id/matches", "regex")],
        ),
        (
            "a repeated group of alternatives, negated",
            matching("(.|.)*Z", negated=True),
            [("/rules/0/when/1/where/order_id/matches", "regex")],
        ),
        (
            "a huge repetition",
            matching("A{99999}"),
            [("/rules/0/when/0/where/order_id/matches", "regex")],
        ),
        ("an empty group", matching("()"), [("/rules/0/when/0/where/order_id/matches", "regex")]),
        ("two unjoined candidate patterns", UNJOINED_TWO, [("/rules/0/when", "join_fan_out")]),
        ("three unjoined candidate patterns", UNJOINED_THREE, [("/rules/0/when", "join_fan_out")]),
        ("1e308", number(1e308), [("/rules/0/when/0/where/total/gt", "schema")]),
        ("5e-324", number(5e-324), [("/rules/0/when/0/where/total/gt", "value_range")]),
        ("0.00001", number(0.00001), [("/rules/0/when/0/where/total/gt", "value_range")]),
        (
            "one condition shared by too many rules",
            shared(MAX_RULES_PER_CONDITION + 1),
            [(f"/rules/{MAX_RULES_PER_CONDITION}/when", "condition_shared_too_widely")],
        ),
        ("more flags than the engine takes", MANY_FLAGS, [("/rules/0/then", "too_many_flags")]),
        (
            "a rate card that is a list",
            {**ruleset([]), "settings": {**SETTINGS, "rate_card": ["standard"]}},
            [("/settings/rate_card", "schema")],
        ),
        (
            "a rate card that is a number",
            {**ruleset([]), "settings": {**SETTINGS, "rate_card": 7}},
            [("/settings/rate_card", "schema")],
        ),
    ],
)
def test_the_validator_refuses_what_would_hang_or_crash_the_engine(name, document, expected):
    assert codes(document) == expected


@pytest.mark.parametrize(
    "document",
    [
        listed(MAX_DISTINCT_TESTS_PER_FIELD, spread=5),
        shared(MAX_RULES_PER_CONDITION),
        matching("^[A-Z]{1,100}-[0-9]+.*(X|Y)"),
        number(0.0001),
        number(999_999_999_999_999),
    ],
    ids=[
        "500 list values",
        "200 rules share a condition",
        "a regex at the limits",
        "0.0001",
        "1e15-1",
    ],
)
def test_what_the_validator_accepts_the_engine_compiles_and_runs(document, box):
    assert codes(document) == []
    version = {**runtime.draft_version(document), "draft": False}
    evaluation = box.evaluate(runtime.engine_name(version), document, [{**ORDER, "total": 6.0}])
    assert isinstance(evaluation.fired, list)


@pytest.mark.parametrize(
    "document",
    [listed(520), shared(300), matching("((A*)*)*Z")],
    ids=[
        "520 list values hang compilation",
        "300 rules sharing a condition fail",
        "nested quantifiers hang",
    ],
)
def test_past_the_limits_the_engine_really_fails_and_the_sandbox_survives_it(document, box):
    box.timeout = 2.0
    started = time.monotonic()
    with pytest.raises((BudgetExceeded, EngineError)):
        box.evaluate("hostile", document, [SMALL_ORDER])
    # Stopped, not hung: a hang never ends (the bound is loose for a busy machine).
    assert time.monotonic() - started < 30
    # The engine behind it was replaced: the next evaluation works.
    fine = box.evaluate("fine", shipped(), [ORDER, candidate("ST1")])
    assert isinstance(fine.fired, list)


def test_an_evaluation_over_its_budget_is_stopped_while_the_service_answers(tmp_path):
    path = str(tmp_path / "budget.db")
    app = create_app({"DATABASE": path})
    connection = database.open_from_config(app.config)
    key = auth.create_key(connection, "analyst")[1]
    connection.close()
    # Every candidate makes several rules act (a store near empty, a stale feed, nearly full,
    # in transit): well over the budget on any machine, not just over it on a slow one.
    busy = {"atp": 1, "atp_after": 0, "feed_age_hours": 200.0, "capacity_left": 5}
    facts = [ORDER] + [
        candidate(f"N{i}", line_id=f"L{i % 200}", node_type="store", in_transit=True, **busy)
        for i in range(19_999)
    ]
    probes: list[float] = []
    with serving(path, workers=2, EVALUATION_TIMEOUT_SECONDS="0.3") as port:
        done = threading.Event()

        def probe():
            while not done.is_set():
                started = time.monotonic()
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10).read()
                probes.append(time.monotonic() - started)
                time.sleep(0.05)

        prober = threading.Thread(target=probe)
        prober.start()
        try:
            started = time.monotonic()
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/rulesets/sourcing/evaluate",
                data=json.dumps({"facts": facts}).encode(),
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            )
            try:
                urllib.request.urlopen(request, timeout=60)
                status, body = 200, {}
            except urllib.error.HTTPError as error:
                status, body = error.code, json.loads(error.read())
            took = time.monotonic() - started
            # The engine was replaced: small evaluations go on at once.
            small = {"facts": [ORDER, candidate("ST1")]}
            after = status_of(port, key, "POST", "/v1/rulesets/sourcing/evaluate", small)
        finally:
            done.set()
            prober.join()
    assert status == 503 and body["error"]["code"] == "evaluation_budget_exceeded", body
    # Stopped, not hung; and the other worker answered throughout (loose bounds: a busy
    # machine is slow, a stalled service never answers).
    assert took < 30
    assert after == 200
    assert probes and max(probes) < 10


def test_channels_may_not_send_drafts_or_pick_versions(client, db, network):
    from tests.sourcing_helpers import build_network, order

    admin = Api(client, auth.create_key(db, "admin")[1])
    build_network(admin)
    channel = Api(client, auth.create_key(db, "channel")[1])
    body = order("what-if", [("MUG", 1, 5.0)])
    assert channel.post("/v1/decisions/simulate", json=body).status_code == 200
    for extra in ({"draft_ruleset": shipped(version=77)}, {"ruleset_version": 1}):
        refused = channel.post("/v1/decisions/simulate", json={**body, **extra})
        assert refused.status_code == 403, refused.get_json()
    analyst = Api(client, auth.create_key(db, "analyst")[1])
    allowed = analyst.post(
        "/v1/decisions/simulate", json={**body, "draft_ruleset": shipped(version=77)}
    )
    assert allowed.status_code == 200


def test_drafts_never_accumulate_in_a_serving_process(box):
    children = set()
    for number_ in range(45):
        draft = runtime.draft_version(shipped(version=1000 + number_))
        box.evaluate(runtime.engine_name(draft), draft["document"], [ORDER], draft=True)
        children.add(box._process.pid)
        assert len(box._loaded) <= 20
    assert len(children) == 3  # replaced after every 20 drafts


def test_a_batch_is_evaluated_in_one_exchange_and_fails_whole(box):
    draft = runtime.draft_version(
        ruleset([rule("r", [{"fact": "order", "where": {"total": {"gt": 10}}}], TAG)])
    )
    name = runtime.engine_name(draft)
    big, small = {**ORDER, "total": 50.0}, {**ORDER, "total": 5.0}
    results = box.evaluate_many(name, draft["document"], [[big], [small], [big]], draft=True)
    assert [r.fired for r in results] == [["r"], [], ["r"]]
    with pytest.raises(ValueError, match="share the key"):
        twice = [{**big, "key": "o"}, {**big, "key": "o"}]
        box.evaluate_many(name, draft["document"], [[big], twice], draft=True)
    # the child is still there and answers
    assert box.evaluate(name, draft["document"], [big], draft=True).fired == ["r"]


def test_a_new_engine_starting_up_is_not_charged_to_the_evaluation():
    """The budget is the rules' time: a child that takes longer than it to start (an
    interpreter and its imports, slower still on a busy machine) still evaluates."""
    sandbox = Sandbox(timeout=0.05)
    try:
        document = shipped(version=1)
        for _ in range(2):  # the first child, then its replacement after a stop
            evaluation = sandbox.evaluate(
                "sourcing@1#startup", document, [ORDER, candidate("ST1", node_type="store")]
            )
            assert evaluation.fired
            sandbox.close()
    finally:
        sandbox.close()
