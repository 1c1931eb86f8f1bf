"""Returns as they happen: requested, decided, told to the point, received, inspected,
disposed of. Owns ``returns``, ``return_lines`` and ``return_events``.

A return is idempotent on its id (the same body again gives the first answer; another
body is a conflict). It is checked and decided under the order's lock, so racing
requests from any number of processes never return more of a line than was delivered.
The chosen point is told by signed webhook (``return.expected``, ``return.cancelled``);
its callbacks move the return on: a restocked line raises on hand at the point and
resumes waiting back-orders, a line sent on becomes a transfer in transit to the nearest
DC, a line returned to vendor instructs the supplier. The refund is the channel's to pay:
``return.refund_due`` goes to its subscriptions when the ruleset says it is due.
"""

from __future__ import annotations

import logging
import secrets
import time
from datetime import timedelta

from app.domain import orders, subscriptions
from app.domain.network import nodes, skus, stock, transfers
from app.kinds.returns import decide, facts
from app.machinery import decisions, experiments
from app.machinery.rules import registry, runtime
from app.platform import db as database
from app.platform import geo, jsontext
from app.platform.db import Database, parse_time
from app.platform.errors import Conflict, InvalidInput, NotFound, field_error
from app.platform.messaging import outbox

log = logging.getLogger(__name__)
RULESET = "returns"
NEXT = {"received": ("expected",), "inspected": ("received",), "disposed": ("inspected",)}
SEND_ON_DAYS = 2


class ReturnIdReused(Conflict):
    code = "return_id_reused"


class EventIdReused(Conflict):
    code = "event_id_reused"


class IllegalReturnTransition(Conflict):
    code = "illegal_transition"


def create(db: Database, body: dict) -> tuple[dict, bool]:
    """Check, decide and record a return; return ``(return, created)``.

    The returns ruleset's active version decides, or a running experiment's variant; in
    a shadow experiment the challenger decides the same facts afterwards, for the report.
    """
    digest = stock.body_hash(body)
    with database.immediate(db):
        orders.lock(db, body["order_id"])
        row = db.execute(
            "SELECT body_hash FROM returns WHERE return_id = ?", [body["return_id"]]
        ).fetchone()
        if row is not None:
            if row["body_hash"] != digest:
                raise ReturnIdReused(
                    f"return {body['return_id']!r} was requested with another body"
                )
            return get(db, body["return_id"]), False
        order = _order(db, body["order_id"])
        keys = {"order_id": body["order_id"], "customer_id": order["customer_id"]}
        version, experiment = experiments.choose(db, RULESET, keys)
        now = database.now()
        found, outcome = _decide(db, body, order, version, now)
        decision = {
            "decision_id": f"dec_{secrets.token_hex(8)}",
            "order_id": body["order_id"],
            "return_id": body["return_id"],
            **outcome,
            "experiment": experiment,
        }
        decisions.record(db, decision, "return", found, {})
        _insert(db, body, digest, order, decision, now)
        _after_decision(db, body, order, decision)
    if experiment is not None and experiment["mode"] == "shadow":
        _shadow(db, experiment, decision, found)
    return get(db, body["return_id"]), True


def _gather(db: Database, body: dict, order: dict, settings: dict, now: str) -> facts.View:
    """The view of a return's facts, with what the returns already made say: the
    customer's returns so far, and each point's open returns and those given it today."""
    view = facts.gather(db, body, order, settings, now)
    view.returns_before = db.execute(
        "SELECT COUNT(*) FROM returns r JOIN orders o ON o.order_id = r.order_id"
        " WHERE o.customer_id = ? AND r.status <> 'cancelled'",
        [order["customer_id"]],
    ).fetchone()[0]
    ids = [point["node_id"] for point in view.points]
    if not ids:
        return view
    day = now[:10]
    for row in db.execute(
        f"SELECT point_node_id, status, created_at FROM returns WHERE point_node_id IN"
        f" ({','.join('?' * len(ids))}) AND (status = 'expected' OR created_at >= ?)",
        [*ids, day],
    ):
        node_id = row["point_node_id"]
        if row["status"] == "expected":
            view.open_returns[node_id] = view.open_returns.get(node_id, 0) + 1
        if row["created_at"][:10] == day:
            view.taken_today[node_id] = view.taken_today.get(node_id, 0) + 1
    return view


def simulate(db: Database, body: dict, version: dict) -> dict:
    """What a version (stored or draft) would decide for this return, checked as a real one
    is; nothing is recorded, reserved or sent."""
    _, decision = _decide(db, body, _order(db, body["order_id"]), version, database.now())
    ruleset = {**decision["ruleset"], "draft": bool(version.get("draft"))}
    return {**decision, "ruleset": ruleset, "simulated": True}


def _order(db: Database, order_id: str) -> dict:
    order = orders.find(db, order_id)
    if order is None:
        raise InvalidInput([field_error(("order_id",), "no such order")])
    return order


def _decide(db: Database, body: dict, order: dict, version: dict, now: str):
    """Check a return's lines and decide it under ``version``; return ``(facts, decision)``,
    the decision with the time each phase took (the choice of point is its allocation).

    A drop-off no point within reach takes falls back to the method the ruleset names
    (``methods.drop_off.fallback``: ship_back or collect), decided as if asked for it and
    saying so (``fallback``); without one, or when that finds no point either, the return
    is refused, with no refund."""
    found, decision = _decide_method(db, body, order, version, now)
    drop_off = version["document"]["settings"]["methods"].get("drop_off") or {}
    fallback = drop_off.get("fallback", "refuse")
    if (
        decision["status"] == "refused"
        and body["method"] == "drop_off"
        and fallback != "refuse"
        and fallback in version["document"]["settings"]["methods"]
    ):
        found, decision = _decide_method(db, {**body, "method": fallback}, order, version, now)
        decision["fallback"] = {
            "from": "drop_off",
            "to": fallback,
            "reason": f"no return point takes a drop-off within {drop_off.get('max_km')} km",
        }
    return found, decision


def _decide_method(db: Database, body: dict, order: dict, version: dict, now: str):
    settings = version["document"]["settings"]
    started = time.perf_counter()
    view = _gather(db, body, order, settings, now)
    _check_lines(db, body, view, settings, now)
    found = facts.build(view, settings)
    gathered = time.perf_counter()
    evaluation = runtime.evaluate(version, found)
    evaluated = time.perf_counter()
    decision = decide.run(found, version, evaluation)
    done = time.perf_counter()
    decision["timings_ms"] = {
        "facts": round((gathered - started) * 1000, 3),
        "rules": round((evaluated - gathered) * 1000, 3),
        "allocation": round((done - evaluated) * 1000, 3),
        "total": round((done - started) * 1000, 3),
    }
    return found, decision


def _shadow(db: Database, experiment: dict, decision: dict, found: list[dict]) -> None:
    """The challenger's decision on the champion's facts, recorded beside it; the return
    stands whatever happens here."""
    try:
        number = experiments.get(db, experiment["experiment_id"])["challenger"]
        challenger = registry.get(db, RULESET, number)
        [shadow] = decide.replay_many([{"facts": found}], challenger)
        experiments.record_shadow(
            db, decision["decision_id"], experiment["experiment_id"], decision, shadow
        )
    except Exception:
        log.exception("the shadow decision of return %s failed", decision["return_id"])


def _check_lines(db: Database, body: dict, view: facts.View, settings: dict, now: str) -> None:
    """422 with a pointer for every line that cannot be returned: not in the order, named
    twice, not delivered, more than delivered less returned, or past its window."""
    returned = returned_quantities(db, body["order_id"])
    window = settings.get("window_days", {})
    problems, seen = [], set()
    for index, line in enumerate(body["lines"]):
        line_id = line["line_id"]
        at = ("lines", index)
        if line_id in seen:
            problems.append(field_error((*at, "line_id"), f"line {line_id!r} is named twice"))
            continue
        seen.add(line_id)
        if line_id not in view.lines:
            problems.append(field_error((*at, "line_id"), f"the order has no line {line_id!r}"))
            continue
        delivered = view.delivered.get(line_id)
        if delivered is None:
            problems.append(
                field_error((*at, "line_id"), f"line {line_id!r} has not been delivered")
            )
            continue
        left = delivered["qty"] - returned.get(line_id, 0)
        if line["qty"] > left:
            problems.append(
                field_error(
                    (*at, "qty"),
                    f"{line['qty']} units asked back; {delivered['qty']} delivered and"
                    f" {returned.get(line_id, 0)} already returned leave {left}",
                )
            )
        category = view.skus.get(view.lines[line_id]["sku"], {}).get("category")
        days = (window.get("by_category") or {}).get(category, window.get("default", 30))
        ends = parse_time(delivered["delivered_at"]) + timedelta(days=days)
        if parse_time(now) > ends:
            problems.append(
                field_error(
                    (*at, "line_id"),
                    f"the return window of {days} days for {category} ended on"
                    f" {ends.date().isoformat()}",
                )
            )
    if problems:
        raise InvalidInput(problems, "some lines cannot be returned")


def returned_quantities(db: Database, order_id: str) -> dict[str, int]:
    """Units of each line already returned (returns not withdrawn)."""
    rows = db.execute(
        "SELECT l.line_id, SUM(l.qty) FROM return_lines l JOIN returns r"
        " ON r.return_id = l.return_id WHERE l.order_id = ? AND r.status <> 'cancelled'"
        " GROUP BY l.line_id",
        [order_id],
    )
    return {row[0]: row[1] for row in rows}


def _insert(db, body, digest, order, outcome, now) -> None:
    status = {"keep": "kept", "return": "expected", "refused": "cancelled"}[outcome["status"]]
    db.execute(
        "INSERT INTO returns (return_id, order_id, channel, method, status, point_node_id,"
        " ruleset_version, refund_due, refund_total, body, body_hash, decision_id, created_at,"
        " updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [
            body["return_id"],
            body["order_id"],
            order["channel"],
            outcome["method"],  # a drop-off nobody could take may be collected instead
            status,
            outcome["point"],
            outcome["ruleset"]["version"],
            outcome["refund_due"],
            outcome["refund_total"],
            jsontext.dumps(body),
            digest,
            outcome["decision_id"],
            now,
            now,
        ],
    )
    asked = {line["line_id"]: line for line in body["lines"]}
    db.executemany(
        "INSERT INTO return_lines (return_id, line_id, order_id, sku, qty, reason, condition,"
        " disposition, refund, position) VALUES (?,?,?,?,?,?,?,?,?,?)",
        [
            (
                body["return_id"],
                line["line_id"],
                body["order_id"],
                line["sku"],
                line["qty"],
                asked[line["line_id"]]["reason"],
                asked[line["line_id"]]["condition"],
                line["disposition"],
                line["refund"],
                position,
            )
            for position, line in enumerate(outcome["lines"])
        ],
    )


def _after_decision(db: Database, body: dict, order: dict, outcome: dict) -> None:
    return_id, order_id = body["return_id"], body["order_id"]
    orders.add_event(
        db,
        order_id,
        "return_requested",
        {
            "return_id": return_id,
            "outcome": outcome["status"],
            "point": outcome["point"],
            "refund_total": outcome["refund_total"],
        },
    )
    if outcome["status"] == "refused":
        return
    settle_order_status(db, order_id, return_id)
    if outcome["status"] == "return":
        outbox.enqueue(
            db,
            "return.expected",
            _instruction(body, outcome),
            node_id=outcome["point"],
            order_id=order_id,
        )
    if outcome["refund_due"] == "at_decision":
        _refund(db, return_id, order_id, order["channel"], outcome["refund_total"], outcome)


def _instruction(body: dict, outcome: dict) -> dict:
    return {
        "return_id": body["return_id"],
        "order_id": body["order_id"],
        "method": outcome["method"],
        "carrier_service": outcome["carrier_service"],
        "refund_due": outcome["refund_due"],
        "lines": [
            {k: line[k] for k in ("line_id", "sku", "qty", "condition", "disposition")}
            for line in outcome["lines"]
        ],
    }


def settle_order_status(db: Database, order_id: str, return_id: str | None) -> None:
    """The order's status from what came back: returned when every unit did."""
    status = db.execute("SELECT status FROM orders WHERE order_id = ?", [order_id]).fetchone()[0]
    if status not in ("completed", "partially_returned", "returned"):
        return  # goods of an order still being fulfilled: the timeline says it
    ordered = sum(line["qty"] for line in orders.lines(db, order_id))
    back = sum(returned_quantities(db, order_id).values())
    target = "completed" if back == 0 else "returned" if back >= ordered else "partially_returned"
    if target != status:
        orders.set_status(db, order_id, target, {"return_id": return_id})


def _refund(db, return_id, order_id, channel, amount, outcome, adjustment=False) -> None:
    payload = {
        "return_id": return_id,
        "order_id": order_id,
        "amount": round(amount, 2),
        "adjustment": adjustment,
        "due": outcome["refund_due"],
        "lines": [
            {"line_id": line["line_id"], "refund": line["refund"]} for line in outcome["lines"]
        ],
        "shipping_deducted": outcome.get("shipping_deducted", 0.0),
    }
    for subscription_id in subscriptions.matching(db, "return.refund_due", channel):
        outbox.enqueue(
            db, "return.refund_due", payload, order_id=order_id, subscription_id=subscription_id
        )
    db.execute(
        "UPDATE returns SET refund_sent_at = ? WHERE return_id = ?", [database.now(), return_id]
    )
    orders.add_event(db, order_id, "refund_due", payload)


# Reading --------------------------------------------------------------------------------


def _row(db: Database, return_id: str):
    row = db.execute("SELECT * FROM returns WHERE return_id = ?", [return_id]).fetchone()
    if row is None:
        raise NotFound(f"return {return_id!r} does not exist")
    return row


def get(db: Database, return_id: str) -> dict:
    """A return with its lines, its decision explained and the point's events."""
    row = _row(db, return_id)
    outcome = decisions.get(db, row["decision_id"])["decision"]
    lines = [
        dict(line)
        for line in db.execute(
            "SELECT line_id, sku, qty, reason, condition, disposition, refund,"
            " inspected_condition, final_disposition FROM return_lines WHERE return_id = ?"
            " ORDER BY position",
            [return_id],
        )
    ]
    events = [
        {"event_id": e["event_id"], "type": e["type"], "at": e["created_at"]}
        for e in db.execute(
            "SELECT event_id, type, created_at FROM return_events WHERE return_id = ?"
            " ORDER BY created_at, event_id",
            [return_id],
        )
    ]
    return {
        "return_id": row["return_id"],
        "order_id": row["order_id"],
        "channel": row["channel"],
        "method": row["method"],
        "status": row["status"],
        "decision": outcome["status"],
        "decision_id": row["decision_id"],
        "point": row["point_node_id"],
        "ruleset": {"name": outcome["ruleset"]["name"], "version": row["ruleset_version"]},
        "experiment": outcome.get("experiment"),
        "refund": {
            "total": row["refund_total"],
            "due": row["refund_due"],
            "sent_at": row["refund_sent_at"],
            "shipping_deducted": outcome.get("shipping_deducted", 0.0),
        },
        "lines": lines,
        "events": events,
        "explanation": outcome["explanation"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def for_order(db: Database, order_id: str) -> list[dict]:
    rows = db.execute(
        "SELECT return_id, status, point_node_id, refund_total, created_at FROM returns"
        " WHERE order_id = ? ORDER BY created_at, return_id",
        [order_id],
    )
    return [
        {
            "return_id": r["return_id"],
            "status": r["status"],
            "point": r["point_node_id"],
            "refund_total": r["refund_total"],
            "created_at": r["created_at"],
        }
        for r in rows
    ]


RESOLD_DAYS = 30


def observed(db: Database, decision_ids: list[str]) -> dict[str, dict]:
    """What happened after these return decisions: the share of returned units their point
    shipped again within 30 days of restocking them (None until inspected), and the hours
    until the refund was due to the channel (None until it was)."""
    found: dict[str, dict] = {}
    for start in range(0, len(decision_ids), 500):
        chunk = decision_ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = db.execute(
            "SELECT r.return_id, r.decision_id, r.point_node_id, r.created_at, r.refund_sent_at,"
            " (SELECT MIN(e.created_at) FROM return_events e WHERE e.return_id = r.return_id"
            " AND e.type = 'inspected') AS inspected_at"
            f" FROM returns r WHERE r.decision_id IN ({marks})",
            chunk,
        ).fetchall()
        for row in rows:
            sent = row["refund_sent_at"]
            hours = (
                (parse_time(sent) - parse_time(row["created_at"])).total_seconds() / 3600
                if sent
                else None
            )
            found[row["decision_id"]] = {
                "refund_hours": hours,
                "resold_within_30_days": _resold(db, row) if row["inspected_at"] else None,
            }
    return found


def _resold(db: Database, row) -> float | None:
    lines = db.execute(
        "SELECT sku, qty, final_disposition FROM return_lines WHERE return_id = ?",
        [row["return_id"]],
    ).fetchall()
    units = sum(line["qty"] for line in lines)
    since = row["inspected_at"]
    until = (parse_time(since) + timedelta(days=RESOLD_DAYS)).isoformat().replace("+00:00", "Z")
    resold = 0
    for line in lines:
        if line["final_disposition"] != "restock":
            continue
        point = row["point_node_id"]
        shipped = stock.shipped(db, [point], [line["sku"]], since, until).get(point, 0)
        resold += min(line["qty"], shipped)
    return resold / units if units else None


def why_not(db: Database, return_id: str, node_id: str) -> dict:
    """Why a node did not take a return: not a point, excluded, or dearer."""
    row = _row(db, return_id)
    nodes.get(db, node_id)  # 404 for a node that does not exist
    decision = decisions.get(db, row["decision_id"])["decision"]
    return {"return_id": return_id, **decide.why_not(decision, node_id)}


# Withdrawing ------------------------------------------------------------------------


def cancel(db: Database, return_id: str) -> dict:
    """Withdraw a return the point has not received; the point is told."""
    with database.immediate(db):
        order_id = _row(db, return_id)["order_id"]
        orders.lock(db, order_id)
        row = _row(db, return_id)
        if row["status"] == "cancelled":
            return get(db, return_id)
        if row["status"] != "expected":
            raise IllegalReturnTransition(
                f"return {return_id!r} is {row['status']}; only an expected return can be withdrawn"
            )
        _set_status(db, return_id, "cancelled")
        outbox.enqueue(
            db,
            "return.cancelled",
            {"return_id": return_id, "order_id": order_id},
            node_id=row["point_node_id"],
            order_id=order_id,
        )
        orders.add_event(db, order_id, "return_cancelled", {"return_id": return_id})
        settle_order_status(db, order_id, return_id)
    return get(db, return_id)


def _set_status(db: Database, return_id: str, status: str) -> None:
    db.execute(
        "UPDATE returns SET status = ?, updated_at = ? WHERE return_id = ?",
        [status, database.now(), return_id],
    )


# What the point reports -------------------------------------------------------------


def record_event(db: Database, return_id: str, event: dict) -> tuple[dict, bool, list[str]]:
    """Apply a point's event; return ``(result, replayed, raised)``, ``raised`` the SKUs
    whose stock the event put back on a shelf (orders may be waiting for them).
    Idempotent on event id."""
    digest = stock.body_hash(event)
    raised: list[str] = []
    with database.immediate(db):
        orders.lock(db, _row(db, return_id)["order_id"])
        seen = db.execute(
            "SELECT body_hash, result FROM return_events WHERE return_id = ? AND event_id = ?",
            [return_id, event["event_id"]],
        ).fetchone()
        if seen is not None:
            if seen["body_hash"] != digest:
                raise EventIdReused(f"event {event['event_id']!r} was sent with another body")
            return jsontext.loads(seen["result"]), True, []
        row = _row(db, return_id)
        if row["status"] not in NEXT[event["type"]]:
            raise IllegalReturnTransition(
                f"return {return_id!r} is {row['status']}; it cannot be {event['type']}"
            )
        at = database.normalize_time(event["at"]) if event.get("at") else database.now()
        if event["type"] == "received":
            result = _received(db, row, at)
        elif event["type"] == "inspected":
            result = _inspected(db, row, event, at, raised)
        else:
            _set_status(db, return_id, "closed")
            result = {"status": "closed"}
        result = {"return_id": return_id, "event": event["type"], **result}
        orders.add_event(db, row["order_id"], f"return_{event['type']}", result)
        db.execute(
            "INSERT INTO return_events (return_id, event_id, type, body_hash, result,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?)",
            [return_id, event["event_id"], event["type"], digest, jsontext.dumps(result), at],
        )
    return result, False, raised


def _received(db: Database, row, at: str) -> dict:
    _set_status(db, row["return_id"], "received")
    if row["refund_due"] in ("at_drop_off", "on_receipt") and row["refund_sent_at"] is None:
        outcome = decisions.get(db, row["decision_id"])["decision"]
        _refund(db, row["return_id"], row["order_id"], row["channel"], row["refund_total"], outcome)
    return {"status": "received", "received_at": at}


def _inspected(db: Database, row, event: dict, at: str, raised: list[str]) -> dict:
    """Decide the lines again with the condition found; apply each final disposition."""
    return_id = row["return_id"]
    stored = _lines_of(db, return_id)
    found_lines = {line["line_id"]: line for line in event["lines"]}
    problems = [
        field_error(
            ("lines", i, "line_id"), f"return {return_id!r} has no line {line['line_id']!r}"
        )
        for i, line in enumerate(event["lines"])
        if line["line_id"] not in stored
    ]
    problems += [
        field_error(("lines",), f"line {line_id!r} is not reported")
        for line_id in stored
        if line_id not in found_lines
    ]
    if problems:
        raise InvalidInput(problems, "the inspection must report every returned line once")
    record = decisions.get(db, row["decision_id"])
    version = registry.get(db, RULESET, row["ruleset_version"])
    # The return's own facts, with the condition found: the version that decided the
    # return decides again.
    again = []
    for fact in record["facts"]:
        if fact["fact"] == "item":
            fact = {
                **fact,
                "condition": found_lines[fact["line_id"]]["condition"],
                "declared_condition": fact.get("declared_condition", fact["condition"]),
                "inspected": True,
            }
        if fact["fact"] == "point" and fact["node_id"] != row["point_node_id"]:
            continue
        again.append(fact)
    outcome = decide.run(again, version, runtime.evaluate(version, again))
    point = row["point_node_id"]
    applied = []
    for line in outcome["lines"]:
        reported = found_lines[line["line_id"]]
        final = reported.get("disposition") or line["disposition"]
        effect = _dispose(db, row, point, stored[line["line_id"]], final, at, raised)
        db.execute(
            "UPDATE return_lines SET inspected_condition = ?, final_disposition = ?, refund = ?"
            " WHERE return_id = ? AND line_id = ?",
            [reported["condition"], final, line["refund"], return_id, line["line_id"]],
        )
        applied.append(
            {
                "line_id": line["line_id"],
                "qty": line["qty"],
                "condition": reported["condition"],
                "disposition": final,
                "refund": line["refund"],
                **effect,
            }
        )
    total = outcome["refund_total"]
    db.execute(
        "UPDATE returns SET refund_total = ?, status = 'inspected', updated_at = ?"
        " WHERE return_id = ?",
        [total, database.now(), return_id],
    )
    outcome = {**outcome, "refund_due": row["refund_due"]}
    if row["refund_sent_at"] is None:
        _refund(db, return_id, row["order_id"], row["channel"], total, outcome)
    elif abs(total - row["refund_total"]) > 0.005:
        # Paid on receipt, and the inspection found otherwise: the difference.
        _refund(
            db,
            return_id,
            row["order_id"],
            row["channel"],
            total - row["refund_total"],
            outcome,
            adjustment=True,
        )
    return {"status": "inspected", "lines": applied, "refund_total": total}


def _lines_of(db: Database, return_id: str) -> dict[str, dict]:
    rows = db.execute(
        "SELECT line_id, sku, qty FROM return_lines WHERE return_id = ? ORDER BY position",
        [return_id],
    )
    return {row["line_id"]: dict(row) for row in rows}


def _dispose(db, row, point: str, line: dict, disposition: str, at: str, raised) -> dict:
    """What a line's final disposition does to stock and to whom it is told."""
    return_id, sku, qty = row["return_id"], line["sku"], line["qty"]
    reference = f"return:{return_id}"
    if disposition == "send_to_dc":
        dc = _nearest_dc(db, point)
        if dc is None or dc == point:
            disposition = "restock"  # the point is the DC, or there is none to send to
        else:
            eta = (parse_time(at) + timedelta(days=SEND_ON_DAYS)).isoformat()
            transfer_id = f"return-{return_id}-{line['line_id']}"[:64]
            transfers.create(
                db,
                {
                    "transfer_id": transfer_id,
                    "sku": sku,
                    "qty": qty,
                    "origin_node_id": point,
                    "destination_node_id": dc,
                    "eta": eta.replace("+00:00", "Z"),
                },
            )
            return {"transfer_id": transfer_id, "to": dc}
    if disposition == "restock":
        stock.move(db, point, sku, qty, "received", reference, at)
        raised.append(sku)
        return {"restocked_at": point}
    if disposition == "return_to_vendor":
        supplier = _supplier(db, row, line)
        if supplier is None:
            return {"vendor": None}
        outbox.enqueue(
            db,
            "return.vendor_instruction",
            {"return_id": return_id, "from_node_id": point, "sku": sku, "qty": qty},
            node_id=supplier,
            order_id=row["order_id"],
        )
        return {"vendor": supplier}
    return {}


def _nearest_dc(db: Database, point: str) -> str | None:
    active = nodes.active_nodes(db)
    here = (
        next((n for n in active if n["node_id"] == point), None)
        or nodes.existing(db, [point])[point]
    )
    dcs = [n for n in active if n["type"] == "dc"]
    if not dcs:
        return None
    nearest = min(
        dcs,
        key=lambda n: (geo.distance_km(here["lat"], here["lon"], n["lat"], n["lon"]), n["node_id"]),
    )
    return nearest["node_id"]


def _supplier(db: Database, row, line: dict) -> str | None:
    for fact in decisions.get(db, row["decision_id"])["facts"]:
        if (
            fact["fact"] == "item"
            and fact["line_id"] == line["line_id"]
            and fact.get("supplier_id")
        ):
            return fact["supplier_id"]
    offered = skus.details(db, [line["sku"]]).get(line["sku"], {}).get("suppliers", {})
    return min(offered, key=lambda node_id: (offered[node_id], node_id)) if offered else None
