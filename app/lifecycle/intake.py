"""Placing an order: the pipeline from a channel's body to a committed decision.

    intake    the body's references checked; the same order again answers its first
              decision (a different body under its id is a conflict); a quoted promise
              taken over
    gather    the network around the order's SKUs read (``sourcing.gather``)
    facts     the order, its lines, its customer and one candidate per (line, node)
    rules     the sourcing ruleset's verdict on them (in the engine's child)
    allocate  lines given to candidates at the least cost (``sourcing.decide.run``)
    commit    stock reserved, decision recorded, shipments created (``sourcing.commit``)
    instruct  one outbox message per shipment to its node

Facts are read and rules run outside the write lock; if the stock they saw was promised
elsewhere meanwhile, the order is decided again with the lock held, so stock is never
promised twice. Orders waiting for stock that was freed go first: a new order never
takes stock ahead of an older back-order of the same SKU.
"""

from __future__ import annotations

from app.domain import orders
from app.domain.network import reservations, stock
from app.kinds.promising import promises
from app.kinds.sourcing import commit, decide, gather
from app.lifecycle import backorders, substitution
from app.machinery import decisions, experiments
from app.machinery.rules import registry
from app.platform import db as database
from app.platform.db import Database
from app.platform.errors import Conflict


class WaitingOrdersFirst(Exception):
    """Stock of the order's SKUs was freed and older orders waiting for it have not run yet."""


class OrderConflict(Conflict):
    code = "order_conflict"


def decide_order(db: Database, body: dict, deferred: list | None = None) -> tuple[dict, bool]:
    """Decide a new order and commit it; return ``(decision, created)``.

    The same order again returns its first decision; a different body under the
    same id is a conflict. Under a shadow experiment the challenger's evaluation is
    appended to ``deferred`` (run it after answering the channel) or, without that
    list, run at once.
    """
    # Intake: the same order again, its references, the version that decides it.
    digest = stock.body_hash(body)
    first = _first_decision(db, body, digest)
    if first is not None:
        return first, False
    gather.check_references(db, body)
    version, experiment = experiments.choose(db, decide.RULESET, body)
    # Gather, facts, rules, allocate (decide.make_decision); commit and instruct
    # (commit.decision) in the transaction that creates the order.
    if body.get("promise_id"):
        placed = _place_promised(db, body, digest, version, experiment)
    else:
        placed = _place(db, body, digest, version, experiment)
    decision, created, facts, context = placed
    if created and experiment and experiment["mode"] == "shadow":
        job = _shadow_job(db, experiment, decision, facts, context)
        if deferred is None:
            job(db)
        else:
            deferred.append(job)
    return decision, created


def _first_decision(db, body: dict, digest: str) -> dict | None:
    """The decision an order with this id got, if it came before with this body."""
    existing = orders.find(db, body["order_id"])
    if existing is None:
        return None
    if existing["body_hash"] != digest:
        raise OrderConflict(f"order {body['order_id']!r} was received with a different body")
    return decisions.first_result(db, body["order_id"])


def _place(db, body: dict, digest: str, version: dict, experiment) -> tuple:
    """Decide outside the write lock and commit inside it; when the stock or a node's day
    the decision saw was taken meanwhile, or older orders wait for freed stock, decide
    again holding the locks of every stock row it could take."""
    settings = version["document"]["settings"]
    sku_list = substitution.skus_to_lock(db, body)
    try:
        decided = _decide(db, body, version, settings)
        with database.immediate(db):
            first = _first_decision(db, body, digest)
            if first is not None:
                return first, False, None, None
            if stock.raised(db, sku_list):
                raise WaitingOrdersFirst
            return _commit(db, body, digest, *decided, settings, experiment)
    except (reservations.InsufficientStock, commit.CapacityFull, WaitingOrdersFirst):
        pass
    with database.immediate(db):
        stock.lock_skus(db, sku_list)
        _serve_waiting_orders(db, sku_list)
        first = _first_decision(db, body, digest)
        if first is not None:
            return first, False, None, None
        decided = _decide(db, body, version, settings)
        return _commit(db, body, digest, *decided, settings, experiment)


def _decide(db, body: dict, version: dict, settings: dict, **kwargs) -> tuple:
    """``(decided body, decision, facts, context)``: the body as decided, with a substitute
    on each short line that allows one and can be served by it."""
    made = decide.make_decision(db, body, version, settings, **kwargs)
    if made[0]["status"] == "sourced":
        return body, *made
    return substitution.consider(db, body, made, version, settings, **kwargs)


def _place_promised(db, body: dict, digest: str, version: dict, experiment) -> tuple:
    """Decide an order that quotes a held promise, under the locks of its SKUs (the
    promise's hold changes hands in the order's own transaction): from the nodes that
    hold it when they still can serve it all, else like any order; by the promised date
    either way."""
    settings = version["document"]["settings"]
    sku_list = substitution.skus_to_lock(db, body)
    with database.immediate(db):
        stock.lock_skus(db, sku_list)
        _serve_waiting_orders(db, sku_list)
        first = _first_decision(db, body, digest)
        if first is not None:
            return first, False, None, None
        held = promises.take(db, body)
        order = body
        decision = None
        if held is not None:
            # Kept as held: by its date, with its service level, unless the order says
            # otherwise.
            order = {
                "promised_by": held["window"]["to"],
                **({"requested_service": held["service_level"]} if held["service_level"] else {}),
                **body,
            }
            decision, facts, context = decide.make_decision(
                db, order, version, settings, only_nodes=promises.held_nodes(held)
            )
            if decision["status"] != "sourced":
                decision = None
        if decision is None:
            order, decision, facts, context = _decide(db, order, version, settings)
        placed = _commit(db, body, digest, order, decision, facts, context, settings, experiment)
        if held is not None:
            # What the order did not take back from the hold is free for waiting orders.
            stock.note_raised(db, sorted(promises.held_nodes(held)))
        return placed


def _commit(db, body, digest, order, decision, facts, context, settings, experiment):
    """Create the order from its body and commit its decision (reserve, record, instruct
    the nodes); ``order`` is the body as decided: with the promise a held promise added,
    and the substitutes that serve short lines."""
    decision["experiment"] = experiment
    orders.create(db, body, digest, order)
    for swap in decision.get("substitutions", []):
        orders.substitute(
            db,
            body["order_id"],
            swap["line_id"],
            swap["to_sku"],
            {"from_sku": swap["from_sku"], "decision_id": decision["decision_id"]},
        )
    commit.decision(db, order, decision, facts, context, settings, "order")
    return decision, True, facts, context


def _serve_waiting_orders(db, sku_list: list[str]) -> None:
    """Run the back-orders waiting for freed stock of these SKUs, inside the caller's lock."""
    if stock.raised(db, sku_list):
        backorders.resume_raised_safely(db, sku_list)


def _shadow_job(db, experiment: dict, decision: dict, facts: list, context: dict):
    """The challenger's evaluation of the champion's facts, to run after the answer."""
    number = experiments.get(db, experiment["experiment_id"])["challenger"]
    challenger = registry.get(db, decide.RULESET, number)
    record = {"facts": facts, "context": context, "decision": decision}

    def run_shadow(connection) -> None:
        shadow = decide.replay(record, challenger)
        experiments.record_shadow(
            connection, decision["decision_id"], experiment["experiment_id"], decision, shadow
        )

    return run_shadow
