"""Kinds of ruleset: what each kind of decision brings to the shared rules machinery.

Versions, validation, scenarios, activation, rollback, evaluation and the engine are the
same code for every kind. A kind adds only data: its fact catalogue, the attributes its
rules may set (for the decision, or for one fact such as a returned line), the fact
types its rules exclude and score, the settings its documents carry (in
``ruleset.schema.json``, chosen by ``kind``), and its decision's entry points: a
scenario's outcome, stored decisions decided again (replays), the part of a decision a
replay must reproduce, and why a node was not chosen. Its measures for experiments and
replays are in ``app/machinery/metrics.py``.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from app.machinery.rules.language import FactCatalogue

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"
DEFAULT = "sourcing"


@dataclass(frozen=True)
class Kind:
    name: str
    # Short name of the fact catalogue schema in schemas/ (``facts`` is facts.schema.json).
    facts: str
    # Attributes a ``set`` action may set on the decision, with their value types.
    attributes: dict[str, str]
    # The fact types ``exclude`` and ``score`` act on.
    excludable: tuple[str, ...]
    # Entry points of the kind's decision, as ``module:function``:
    # the outcome of a scenario's facts under a version (``serves`` and ``status``
    # expectations are checked against it): (facts, version) -> decision;
    outcome: str
    # stored decisions decided again: (records, version, explained) -> [decision];
    replay: str
    # the part of a decision a replay must reproduce: (decision) -> dict;
    reproduced: str
    # why a node did not take part: (decision, node_id) -> dict.
    why_not: str
    # Attributes a ``set`` action with ``for`` sets on one fact of ``item_type``.
    item_attributes: dict[str, str] = field(default_factory=dict)
    item_type: str | None = None
    # Allowed values of string attributes, decision or item.
    choices: dict[str, tuple] = field(default_factory=dict)
    # The values that make sense for numeric attributes, decision or item: (least, most).
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    # What happened after real decisions, for experiment reports (``module:function``):
    # (db, decision ids) -> {decision id: {measure: value}}; none: nothing to add.
    observed: str | None = None

    def outcome_of(self, facts: list[dict], version: dict) -> dict:
        return _call(self.outcome, facts, version)

    def replay_many(self, records: list[dict], version: dict, explained: bool = True) -> list:
        return _call(self.replay, records, version, explained)

    def reproduce(self, decision: dict) -> dict:
        return _call(self.reproduced, decision)

    def explain_why_not(self, decision: dict, node_id: str) -> dict:
        return _call(self.why_not, decision, node_id)

    def observe(self, db, decision_ids: list[str]) -> dict[str, dict]:
        return _call(self.observed, db, decision_ids) if self.observed else {}


def _call(path: str, *args):
    module, _, function = path.partition(":")
    return getattr(importlib.import_module(module), function)(*args)


SOURCING = Kind(
    name="sourcing",
    facts="facts",
    attributes={
        "service_level": "string",
        "max_shipments": "integer",
        "ship_complete": "boolean",
        "allow_split_lines": "boolean",
        "allow_partial": "boolean",
        # Promises: days added to every date, and what delivery costs the customer.
        "extra_days": "integer",
        "price_as": "string",
        "free_delivery": "boolean",
    },
    # Nodes that could serve a line, and carrier services that could carry a shipment.
    excludable=("candidate", "carrier"),
    outcome="app.kinds.sourcing.decide:scenario_outcome",
    replay="app.kinds.sourcing.decide:replay_many",
    reproduced="app.kinds.sourcing.decide:outcome",
    why_not="app.kinds.sourcing.explain:why_not",
    ranges={"max_shipments": (1, 100), "extra_days": (0, 60)},
)

DISPOSITIONS = ("restock", "send_to_dc", "refurbish", "return_to_vendor", "dispose")
REFUND_DUE = ("at_decision", "at_drop_off", "on_receipt", "after_inspection")

RETURNS = Kind(
    name="returns",
    facts="returns-facts",
    attributes={
        # The customer keeps the goods and is refunded: no trip, no point.
        "keep_it": "boolean",
        "refund_due": "string",
        # Deducted from every line's refund unless a line has its own.
        "restocking_fee_percent": "number",
        "deduct_return_shipping": "boolean",
    },
    excludable=("point",),
    outcome="app.kinds.returns.decide:scenario_outcome",
    replay="app.kinds.returns.decide:replay_many",
    reproduced="app.kinds.returns.decide:outcome",
    why_not="app.kinds.returns.decide:why_not",
    observed="app.kinds.returns.returns:observed",
    item_attributes={
        "disposition": "string",
        "restocking_fee_percent": "number",
        # Withheld when the inspection finds the line worse than the customer said.
        "inspection_deduction_percent": "number",
    },
    item_type="item",
    choices={"refund_due": REFUND_DUE, "disposition": DISPOSITIONS},
    ranges={"restocking_fee_percent": (0, 100), "inspection_deduction_percent": (0, 100)},
)

POLICIES = ("service_level", "min_max", "none")

REPLENISHMENT = Kind(
    name="replenishment",
    facts="replenishment-facts",
    attributes={
        # Orders worth less are approved by rule; the rest wait for an analyst.
        "approve_under_value": "number",
    },
    excludable=("source",),
    outcome="app.kinds.replenishment.decide:scenario_outcome",
    replay="app.kinds.replenishment.decide:replay_many",
    reproduced="app.kinds.replenishment.decide:outcome",
    why_not="app.kinds.replenishment.decide:why_not",
    item_attributes={
        # service_level (targets from demand, lead time and a service level), min_max
        # (targets set per position) or none (the position is not replenished).
        "policy": "string",
        "service_level": "number",
        "review_days": "integer",
        # Fixes the days of sales one delivery covers (otherwise the plan chooses).
        "cycle_days": "integer",
        "min_qty": "integer",
        "max_qty": "integer",
    },
    item_type="position",
    choices={"policy": POLICIES},
    ranges={
        "service_level": (0.5, 0.9999),
        "review_days": (1, 90),
        "cycle_days": (1, 365),
        "min_qty": (0, 1_000_000_000),
        "max_qty": (0, 1_000_000_000),
        "approve_under_value": (0, 10_000_000_000),
    },
)

KINDS = {kind.name: kind for kind in (SOURCING, RETURNS, REPLENISHMENT)}


def of_decision(decision: dict) -> Kind:
    """The kind of a stored decision (sourcing when it names none: made before kinds)."""
    return KINDS.get(decision.get("kind", DEFAULT), SOURCING)


def of(document) -> Kind:
    """The kind of a ruleset document (sourcing when it names none or an unknown one;
    the schema reports an unknown kind)."""
    name = document.get("kind", DEFAULT) if isinstance(document, dict) else DEFAULT
    return KINDS.get(name, SOURCING) if isinstance(name, str) else SOURCING


@cache
def catalogue(kind_name: str) -> FactCatalogue:
    """The fact catalogue of a kind, read once per process."""
    path = SCHEMAS / f"{KINDS[kind_name].facts}.schema.json"
    return FactCatalogue(json.loads(path.read_text()))


def many() -> frozenset:
    """Fact types an evaluation has many of, in any kind (the compiler orders joins by it)."""
    return frozenset().union(*(catalogue(name).many for name in KINDS))
