"""Replenishment runs, their purchase orders and transfers, and what suppliers and DCs
report on them. Owns ``replenishment_runs``, ``replenishment_orders``,
``replenishment_lines``, ``replenishment_planned`` and ``replenishment_events``.

A run reads the positions in scope, evaluates the replenishment ruleset on them in
batches (progress is visible while it runs), plans (``decide.py``) and records in one
transaction: its decision, its orders and, per position, that the position is planned
for the run's review day. A position planned for a day is not planned again that day,
and an open order counts toward its position, so nothing is ordered twice, whichever
process runs what. Orders worth less than the rules' threshold are approved by rule;
the others wait for an analyst. An approved order goes to its supplier
(``purchase_order.requested``) or DC (``transfer.requested``) by signed webhook; the
supplier or DC answers accepted (the goods become supply in transit, with their ETA),
rejected (the positions are planned again without it) or shipped; the destination
reports the receipt, which raises on hand and resumes waiting customer orders.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from app.domain.network import nodes, receipts, skus, stock, transfers
from app.kinds.replenishment import batching, decide, facts
from app.machinery import decisions, experiments
from app.machinery.rules import registry
from app.platform import db as database
from app.platform import jsontext
from app.platform.db import Database
from app.platform.errors import Conflict, InvalidInput, NotFound, field_error
from app.platform.messaging import outbox

log = logging.getLogger(__name__)
RULESET = "replenishment"
# A run still running after this long was left by a process that died: asked again, it runs.
ABANDONED_MINUTES = 30
# How far from today a run may plan (a review day past or to come).
HORIZON_REACH_DAYS = 366
OPEN = ("proposed", "requested")  # on order: counted toward the position
IN_TRANSIT = ("accepted", "shipped")
NEXT = {
    "accepted": ("requested",),
    "rejected": ("requested",),
    "shipped": ("requested", "accepted"),
    "received": ("accepted", "shipped"),
}
MESSAGE = {"purchase_order": "purchase_order", "transfer": "transfer"}


class RunIdReused(Conflict):
    code = "run_id_reused"


class EventIdReused(Conflict):
    code = "event_id_reused"


class IllegalOrderTransition(Conflict):
    code = "illegal_transition"


# Runs ----------------------------------------------------------------------------------


def start(
    db: Database,
    body: dict,
    requested_by: str,
    progress: Callable[[int, int], None] | None = None,
    refused: dict | None = None,
) -> tuple[dict, bool]:
    """Run replenishment for the scope of ``body``; return ``(run, created)``.

    Idempotent on ``run_id``. ``progress(done, total)`` is called as batches of positions
    are evaluated. ``refused`` maps (position key, source) to why that source may not
    serve it (a rejection being planned again).
    """
    run_id = body.get("run_id") or f"run_{secrets.token_hex(8)}"
    digest = stock.body_hash({**body, "run_id": run_id})
    horizon = body.get("horizon") or datetime.now(UTC).date().isoformat()
    with database.immediate(db):
        row = db.execute(
            "SELECT body_hash FROM replenishment_runs WHERE run_id = ?", [run_id]
        ).fetchone()
        if row is not None:
            if row["body_hash"] != digest:
                raise RunIdReused(f"run {run_id!r} was started with another body")
            if not _retry(db, run_id):
                return get(db, run_id), False
        _check_scope(db, body)
        version, experiment = experiments.choose(
            db, RULESET, {"order_id": run_id, "customer_id": run_id}
        )
        scope = {k: body[k] for k in ("nodes", "skus", "categories") if k in body}
        db.execute("DELETE FROM replenishment_runs WHERE run_id = ?", [run_id])
        db.execute(
            "INSERT INTO replenishment_runs (run_id, status, dry_run, scope, horizon,"
            " ruleset_version, requested_by, body_hash, created_at)"
            " VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?)",
            [
                run_id,
                int(body.get("dry_run", False)),
                jsontext.dumps(scope),
                horizon,
                version["version"],
                requested_by,
                digest,
                database.now(),
            ],
        )
    try:
        _plan(db, run_id, scope, horizon, version, experiment, body, progress, refused or {})
    except Exception as exc:
        with database.immediate(db):
            db.execute(
                "UPDATE replenishment_runs SET status = 'failed', error = ?, finished_at = ?"
                " WHERE run_id = ?",
                [f"{type(exc).__name__}: {exc}", database.now(), run_id],
            )
        raise
    return get(db, run_id), True


def _retry(db: Database, run_id: str) -> bool:
    """Whether a run asked for again is to run again: it failed, or it has been running
    so long that its process must have died (nothing it did was recorded: a run records
    in one transaction, at its end)."""
    row = db.execute(
        "SELECT status, created_at FROM replenishment_runs WHERE run_id = ?", [run_id]
    ).fetchone()
    if row["status"] == "failed":
        return True
    started = datetime.fromisoformat(row["created_at"].replace("Z", "+00:00"))
    abandoned = datetime.now(UTC) - started > timedelta(minutes=ABANDONED_MINUTES)
    return row["status"] == "running" and abandoned


def _check_scope(db: Database, body: dict) -> None:
    problems = []
    if "horizon" in body:
        try:
            day = date.fromisoformat(body["horizon"])
        except ValueError:
            problems.append(field_error(("horizon",), "not a real date"))
        else:
            if abs((day - datetime.now(UTC).date()).days) > HORIZON_REACH_DAYS:
                problems.append(
                    field_error(("horizon",), f"more than {HORIZON_REACH_DAYS} days from today")
                )
    known = nodes.existing(db, body.get("nodes") or [])
    for index, node_id in enumerate(body.get("nodes") or []):
        node = known.get(node_id)
        if node is None:
            problems.append(field_error(("nodes", index), f"node {node_id!r} does not exist"))
        elif node["type"] not in facts.STOCKED_TYPES:
            problems.append(
                field_error(("nodes", index), f"node {node_id!r} is a supplier: it holds no stock")
            )
    known_skus = skus.existing(db, body.get("skus") or [])
    for index, sku in enumerate(body.get("skus") or []):
        if sku not in known_skus:
            problems.append(field_error(("skus", index), f"SKU {sku!r} does not exist"))
    if problems:
        raise InvalidInput(problems)


def _plan(db, run_id, scope, horizon, version, experiment, body, progress, refused) -> None:
    settings = version["document"]["settings"]
    started = time.perf_counter()
    view = facts.gather(
        db,
        {**scope, "demand_window_days": settings.get("demand_window_days", 28)},
        horizon,
        run_id,
        open_supply(db),
    )
    planned = _planned(db, horizon)
    view.positions = [p for p in view.positions if facts.position_key(*p) not in planned]
    view.refused = refused
    found = facts.build(view, settings)
    total = len(view.positions)
    _progress(db, run_id, 0, total)
    gathered = time.perf_counter()

    def advance(done: int) -> None:
        _progress(db, run_id, done, total)
        if progress is not None:
            progress(done, total)

    evaluation = batching.evaluate(version, found, advance)
    evaluated = time.perf_counter()
    decision = decide.run(found, version, evaluation)
    done = time.perf_counter()
    decision.update(
        decision_id=f"dec_{secrets.token_hex(8)}",
        order_id=run_id,
        experiment=experiment,
        timings_ms={
            "facts": round((gathered - started) * 1000, 3),
            "rules": round((evaluated - gathered) * 1000, 3),
            "allocation": round((done - evaluated) * 1000, 3),
            "total": round((done - started) * 1000, 3),
        },
    )
    _record(db, run_id, horizon, decision, found, dry_run=bool(body.get("dry_run")))
    if experiment is not None and experiment["mode"] == "shadow":
        _shadow(db, experiment, decision, found)
    if progress is not None:
        progress(total, total)


def _shadow(db: Database, experiment: dict, decision: dict, found: list[dict]) -> None:
    """The challenger's plan on the champion's facts, recorded beside it for the report;
    the run stands whatever happens here."""
    try:
        number = experiments.get(db, experiment["experiment_id"])["challenger"]
        challenger = registry.get(db, RULESET, number)
        [shadow] = decide.replay_many([{"facts": found}], challenger)
        experiments.record_shadow(
            db, decision["decision_id"], experiment["experiment_id"], decision, shadow
        )
    except Exception:
        log.exception("the shadow plan of run %s failed", decision["run_id"])


def _progress(db: Database, run_id: str, done: int, total: int) -> None:
    with database.immediate(db):
        db.execute(
            "UPDATE replenishment_runs SET positions_done = ?, positions_total = ?"
            " WHERE run_id = ?",
            [done, total, run_id],
        )


def _planned(db: Database, horizon: str) -> set[str]:
    rows = db.execute("SELECT node_id, sku FROM replenishment_planned WHERE horizon = ?", [horizon])
    return {facts.position_key(row[0], row[1]) for row in rows}


def open_supply(db: Database) -> tuple[dict, dict]:
    """Units on order per (destination, SKU) in orders not yet accepted, and units DCs
    have promised to transfers not yet accepted, per (DC, SKU)."""
    on_order: dict[tuple[str, str], int] = {}
    promised: dict[tuple[str, str], int] = {}
    rows = db.execute(
        "SELECT o.type, o.source_node_id, o.destination_node_id, l.sku, l.qty"
        " FROM replenishment_orders o JOIN replenishment_lines l ON l.order_id = o.order_id"
        " WHERE o.status IN ('proposed', 'requested')"
    )
    for kind, source, destination, sku, qty in rows:
        on_order[(destination, sku)] = on_order.get((destination, sku), 0) + qty
        if kind == "transfer":
            promised[(source, sku)] = promised.get((source, sku), 0) + qty
    return on_order, promised


def expected_supply(db: Database, sku_list: list[str]) -> dict[str, str]:
    """The earliest day each of these SKUs is due at any node from a replenishment order
    that is on its way (requested or accepted; an accepted one is also a transfer)."""
    wanted = sorted(set(sku_list))
    if not wanted:
        return {}
    rows = db.execute(
        "SELECT l.sku, MIN(o.delivery_day) FROM replenishment_orders o"
        " JOIN replenishment_lines l ON l.order_id = o.order_id"
        " WHERE o.status IN ('requested', 'accepted', 'shipped')"
        f" AND l.sku IN ({','.join('?' * len(wanted))}) GROUP BY l.sku",
        wanted,
    )
    return {row[0]: row[1] for row in rows}


def _record(db, run_id, horizon, decision, found, dry_run: bool) -> None:
    """The decision, and unless a dry run its orders and planned positions, at once."""
    with database.immediate(db):
        # One run records at a time across processes: a position planned by the other
        # meanwhile is dropped from this run's orders.
        db.wait_job_lock("replenishment-record")
        decisions.record(db, decision, "replenishment", found, {"run_id": run_id})
        made = []
        if not dry_run:
            taken = _planned(db, horizon)
            entries = {entry["position"]: entry for entry in decision["positions"]}
            for order in decision["orders"]:
                lines = [line for line in order["lines"] if line["position"] not in taken]
                if lines:
                    made.append(_insert_order(db, run_id, decision, order, lines))
                    for line in lines:
                        entries[line["position"]]["order_id"] = made[-1][0]
            positions = [
                entry
                for entry in decision["positions"]
                if entry["status"] == "ordered" and entry["position"] not in taken
            ]
            db.executemany(
                "INSERT INTO replenishment_planned (node_id, sku, horizon, run_id, order_id)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (entry["node_id"], entry["sku"], horizon, run_id, entry.get("order_id"))
                    for entry in positions
                ],
            )
            for order_id, approval in made:
                if approval == "rule":
                    _request(db, order_id, "rule")
        summary = {
            **decision["totals"],
            "decision_id": decision["decision_id"],
            "ruleset": decision["ruleset"],
            "orders_recorded": len(made),
            "approved_by_rule": sum(1 for _, approval in made if approval == "rule"),
            "timings_ms": decision["timings_ms"],
        }
        db.execute(
            "UPDATE replenishment_runs SET status = 'proposed', summary = ?, finished_at = ?"
            " WHERE run_id = ?",
            [jsontext.dumps(summary), database.now(), run_id],
        )


def _insert_order(db, run_id, decision, order, lines) -> tuple[str, str]:
    prefix = "po" if order["type"] == "purchase_order" else "tr"
    order_id = f"{prefix}_{secrets.token_hex(8)}"
    now = database.now()
    value = round(sum(line["unit_cost"] * line["qty"] for line in lines), 2)
    db.execute(
        "INSERT INTO replenishment_orders (order_id, run_id, type, source_node_id,"
        " destination_node_id, delivery_day, status, value, delivery_cost, decision_id,"
        " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'proposed', ?, ?, ?, ?, ?)",
        [
            order_id,
            run_id,
            order["type"],
            order["source_node_id"],
            order["destination_node_id"],
            order["delivery_day"],
            value,
            order["delivery_cost"],
            decision["decision_id"],
            now,
            now,
        ],
    )
    db.executemany(
        "INSERT INTO replenishment_lines (order_id, sku, qty, unit_cost, landed_unit_cost)"
        " VALUES (?, ?, ?, ?, ?)",
        [
            (order_id, line["sku"], line["qty"], line["unit_cost"], line["landed_unit_cost"])
            for line in lines
        ],
    )
    approval = order["approval"] if value == order["value"] else _approval(decision, value)
    return order_id, approval


def _approval(decision: dict, value: float) -> str:
    return "rule" if value < decision["explanation"]["approve_under_value"] else "analyst"


def get(db: Database, run_id: str) -> dict:
    row = db.execute("SELECT * FROM replenishment_runs WHERE run_id = ?", [run_id]).fetchone()
    if row is None:
        raise NotFound(f"run {run_id!r} does not exist")
    summary = jsontext.loads(row["summary"]) if row["summary"] else None
    run = {
        "run_id": run_id,
        "status": row["status"],
        "dry_run": bool(row["dry_run"]),
        "scope": jsontext.loads(row["scope"]),
        "horizon": row["horizon"],
        "ruleset_version": row["ruleset_version"],
        "progress": {
            "positions_done": row["positions_done"],
            "positions_total": row["positions_total"],
            "percent": round(100 * row["positions_done"] / row["positions_total"], 1)
            if row["positions_total"]
            else (100.0 if row["status"] != "running" else 0.0),
        },
        "summary": summary,
        "error": row["error"],
        "requested_by": row["requested_by"],
        "created_at": row["created_at"],
        "finished_at": row["finished_at"],
    }
    if row["dry_run"] and summary:
        decision = decisions.get(db, summary["decision_id"])["decision"]
        run["orders"] = [_proposed(run_id, decision, order) for order in decision["orders"]]
    else:
        run["orders"] = orders_of(db, run_id)
    return run


def _proposed(run_id: str, decision: dict, order: dict) -> dict:
    """A dry run's order, in the shape of a recorded one (it has no id: nothing is kept)."""
    return {
        "order_id": None,
        "run_id": run_id,
        "type": order["type"],
        "source_node_id": order["source_node_id"],
        "destination_node_id": order["destination_node_id"],
        "delivery_day": order["delivery_day"],
        "status": "proposed",
        "approved_by": None,
        "approved_at": None,
        "value": order["value"],
        "delivery_cost": order["delivery_cost"],
        "eta": None,
        "decision_id": decision["decision_id"],
        "lines": [
            {
                "sku": line["sku"],
                "qty": line["qty"],
                "unit_cost": line["unit_cost"],
                "landed_unit_cost": line["landed_unit_cost"],
                "transfer_id": None,
                "received_qty": None,
            }
            for line in order["lines"]
        ],
        "created_at": None,
        "updated_at": None,
    }


LINE_FIELDS = "sku, qty, unit_cost, landed_unit_cost, transfer_id, received_qty"


def orders_of(db: Database, run_id: str) -> list[dict]:
    """A run's orders with their lines, in two reads."""
    lines: dict[str, list[dict]] = {}
    for row in db.execute(
        f"SELECT l.order_id, {', '.join('l.' + f for f in LINE_FIELDS.split(', '))}"
        " FROM replenishment_lines l JOIN replenishment_orders o ON o.order_id = l.order_id"
        " WHERE o.run_id = ? ORDER BY l.order_id, l.sku",
        [run_id],
    ):
        lines.setdefault(row["order_id"], []).append(
            {field: row[field] for field in LINE_FIELDS.split(", ")}
        )
    rows = db.execute(
        "SELECT * FROM replenishment_orders WHERE run_id = ? ORDER BY order_id", [run_id]
    )
    return [_public(row, lines.get(row["order_id"], [])) for row in rows]


def get_order(db: Database, order_id: str) -> dict:
    lines = db.execute(
        f"SELECT {LINE_FIELDS} FROM replenishment_lines WHERE order_id = ? ORDER BY sku",
        [order_id],
    )
    return _public(_order_row(db, order_id), [dict(line) for line in lines])


def _public(row, lines: list[dict]) -> dict:
    return {
        "order_id": row["order_id"],
        "run_id": row["run_id"],
        "type": row["type"],
        "source_node_id": row["source_node_id"],
        "destination_node_id": row["destination_node_id"],
        "delivery_day": row["delivery_day"],
        "status": row["status"],
        "approved_by": row["approved_by"],
        "approved_at": row["approved_at"],
        "value": row["value"],
        "delivery_cost": row["delivery_cost"],
        "eta": row["eta"],
        "decision_id": row["decision_id"],
        "lines": lines,
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def _order_row(db: Database, order_id: str):
    row = db.execute("SELECT * FROM replenishment_orders WHERE order_id = ?", [order_id]).fetchone()
    if row is None:
        raise NotFound(f"replenishment order {order_id!r} does not exist")
    return row


def explain(db: Database, order_id: str) -> list[dict]:
    """Each line's explanation, from the run's decision: demand, position, target, the
    sources considered with their landed cost, the rules that excluded or preferred them,
    and why this quantity."""
    row = _order_row(db, order_id)
    decision = decisions.get(db, row["decision_id"])["decision"]
    skus = {line["sku"] for line in get_order(db, order_id)["lines"]}
    return [
        entry
        for entry in decision["positions"]
        if entry["node_id"] == row["destination_node_id"]
        and entry["sku"] in skus
        and entry.get("source_id") == row["source_node_id"]
    ]


# Approval and instruction --------------------------------------------------------------


def approve(db: Database, run_id: str, body: dict, by: str) -> dict:
    """Approve a run's proposed orders (all, or those listed, whole or cut down); each
    approved order is sent to its supplier or DC. Approving again changes nothing."""
    with database.immediate(db):
        run = db.execute(
            "SELECT dry_run FROM replenishment_runs WHERE run_id = ?", [run_id]
        ).fetchone()
        if run is None:
            raise NotFound(f"run {run_id!r} does not exist")
        if run["dry_run"]:
            raise Conflict("a dry run's proposals cannot be approved", code="dry_run")
        ours = {
            row["order_id"]: row
            for row in db.execute(
                "SELECT order_id, status FROM replenishment_orders WHERE run_id = ?", [run_id]
            )
        }
        wanted = body.get("orders") or [
            {"order_id": order_id} for order_id, row in ours.items() if row["status"] == "proposed"
        ]
        problems = []
        for index, item in enumerate(wanted):
            if item["order_id"] not in ours:
                problems.append(
                    field_error(("orders", index, "order_id"), "no such order in this run")
                )
                continue
            lines = {
                line["sku"]: line
                for line in db.execute(
                    "SELECT sku, qty FROM replenishment_lines WHERE order_id = ?",
                    [item["order_id"]],
                )
            }
            for at, line in enumerate(item.get("lines") or []):
                if line["sku"] not in lines:
                    problems.append(
                        field_error(("orders", index, "lines", at, "sku"), "not on this order")
                    )
                elif line["qty"] > lines[line["sku"]]["qty"]:
                    problems.append(
                        field_error(
                            ("orders", index, "lines", at, "qty"),
                            f"more than the {lines[line['sku']]['qty']} proposed",
                        )
                    )
        if problems:
            raise InvalidInput(problems)
        approved, unchanged = [], []
        for item in wanted:
            if ours[item["order_id"]]["status"] != "proposed":
                unchanged.append(item["order_id"])
                continue
            for line in item.get("lines") or []:
                if line["qty"] == 0:
                    db.execute(
                        "DELETE FROM replenishment_lines WHERE order_id = ? AND sku = ?",
                        [item["order_id"], line["sku"]],
                    )
                    _unplan(db, item["order_id"], [line["sku"]])
                else:
                    db.execute(
                        "UPDATE replenishment_lines SET qty = ? WHERE order_id = ? AND sku = ?",
                        [line["qty"], item["order_id"], line["sku"]],
                    )
            left = db.execute(
                "SELECT COALESCE(SUM(qty * unit_cost), 0), COUNT(*) FROM replenishment_lines"
                " WHERE order_id = ?",
                [item["order_id"]],
            ).fetchone()
            if not left[1]:
                _set_status(db, item["order_id"], "cancelled")
                continue
            db.execute(
                "UPDATE replenishment_orders SET value = ? WHERE order_id = ?",
                [round(left[0], 2), item["order_id"]],
            )
            _request(db, item["order_id"], by)
            approved.append(item["order_id"])
    return {
        "run_id": run_id,
        "approved": approved,
        "unchanged": unchanged,
        "orders": [get_order(db, order_id) for order_id in approved],
    }


def _request(db: Database, order_id: str, by: str) -> None:
    now = database.now()
    db.execute(
        "UPDATE replenishment_orders SET status = 'requested', approved_by = ?, approved_at = ?,"
        " updated_at = ? WHERE order_id = ?",
        [by, now, now, order_id],
    )
    order = get_order(db, order_id)
    outbox.enqueue(
        db,
        f"{order['type']}.requested",
        _instruction(order),
        node_id=order["source_node_id"],
    )


def _instruction(order: dict) -> dict:
    return {
        "order_id": order["order_id"],
        "type": order["type"],
        "from": order["source_node_id"],
        "deliver_to": order["destination_node_id"],
        "delivery_day": order["delivery_day"],
        "lines": [
            {"sku": line["sku"], "qty": line["qty"], "unit_cost": line["unit_cost"]}
            for line in order["lines"]
        ],
        "value": order["value"],
    }


def _set_status(db: Database, order_id: str, status: str, eta: str | None = None) -> None:
    db.execute(
        "UPDATE replenishment_orders SET status = ?, eta = COALESCE(?, eta), updated_at = ?"
        " WHERE order_id = ?",
        [status, eta, database.now(), order_id],
    )


def _unplan(db: Database, order_id: str, sku_list: list[str] | None = None) -> None:
    """Let a run plan these positions again today (the order no longer serves them)."""
    row = _order_row(db, order_id)
    lines = sku_list or [
        r[0]
        for r in db.execute("SELECT sku FROM replenishment_lines WHERE order_id = ?", [order_id])
    ]
    db.executemany(
        "DELETE FROM replenishment_planned WHERE node_id = ? AND sku = ? AND run_id = ?",
        [(row["destination_node_id"], sku, row["run_id"]) for sku in lines],
    )


def cancel(db: Database, order_id: str) -> dict:
    """Withdraw an order not yet accepted; a supplier or DC already asked is told."""
    with database.immediate(db):
        db.lock_rows("replenishment_orders", ("order_id",), [(order_id,)])
        order = get_order(db, order_id)
        if order["status"] == "cancelled":
            return order
        if order["status"] not in OPEN:
            raise IllegalOrderTransition(
                f"order {order_id!r} is {order['status']}; only an order not yet accepted"
                " can be cancelled"
            )
        _set_status(db, order_id, "cancelled")
        _unplan(db, order_id)
        if order["status"] == "requested":
            outbox.enqueue(
                db,
                f"{order['type']}.cancelled",
                {"order_id": order_id, "type": order["type"]},
                node_id=order["source_node_id"],
            )
    return get_order(db, order_id)


# What suppliers and DCs report ---------------------------------------------------------


def record_event(db: Database, order_id: str, event: dict, by: str) -> tuple[dict, bool, list[str]]:
    """Apply a supplier's, DC's or destination's event; return ``(result, replayed,
    raised)``, ``raised`` the SKUs whose stock a receipt raised (orders may be waiting).

    Idempotent on the event id; an event out of order is a conflict.
    """
    digest = stock.body_hash(event)
    raised: list[str] = []
    replan = None
    with database.immediate(db):
        db.lock_rows("replenishment_orders", ("order_id",), [(order_id,)])
        seen = db.execute(
            "SELECT body_hash, result FROM replenishment_events WHERE order_id = ?"
            " AND event_id = ?",
            [order_id, event["event_id"]],
        ).fetchone()
        if seen is not None:
            if seen["body_hash"] != digest:
                raise EventIdReused(f"event {event['event_id']!r} was sent with another body")
            return jsontext.loads(seen["result"]), True, []
        order = get_order(db, order_id)
        if order["status"] not in NEXT[event["type"]]:
            raise IllegalOrderTransition(
                f"order {order_id!r} is {order['status']}; it cannot be {event['type']}"
            )
        at = database.normalize_time(event["at"]) if event.get("at") else database.now()
        kind = event["type"]
        if kind == "accepted":
            result = _accepted(db, order, event, at)
        elif kind == "rejected":
            _set_status(db, order_id, "rejected")
            _unplan(db, order_id)
            replan = order
            result = {"status": "rejected", "reason": event.get("reason")}
        elif kind == "shipped":
            if order["status"] == "requested":
                _accepted(db, order, event, at)
            _set_status(db, order_id, "shipped", _eta(event, order))
            result = {"status": "shipped"}
        else:
            result = _received(db, order, event, at, raised)
        result = {"order_id": order_id, "event": kind, **result}
        db.execute(
            "INSERT INTO replenishment_events (order_id, event_id, type, body_hash, result,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?)",
            [order_id, event["event_id"], kind, digest, jsontext.dumps(result), at],
        )
    if replan is not None:
        result["replanned_by"] = _replan(db, replan, event, by)
    return result, False, raised


def _eta(event: dict, order: dict) -> str:
    if event.get("eta"):
        return database.normalize_time(event["eta"])
    return f"{order['delivery_day']}T12:00:00Z"


def _accepted(db: Database, order: dict, event: dict, at: str) -> dict:
    """The goods become supply in transit to the destination (a transfer per line); a
    DC's units leave its stock now, so customer orders no longer count on them."""
    eta = _eta(event, order)
    if order["type"] == "transfer":
        # The DC sends only what no customer order holds: units reserved stay reserved.
        pairs = [(order["source_node_id"], line["sku"]) for line in order["lines"]]
        stock.lock(db, pairs)
        available = stock.atp_at(db, pairs)
        short = [
            line["sku"]
            for line in order["lines"]
            if available.get((order["source_node_id"], line["sku"]), 0) < line["qty"]
        ]
        if short:
            raise Conflict(
                f"{order['source_node_id']} has fewer units to promise than the transfer of"
                f" {', '.join(short)} needs; reject it instead",
                code="insufficient_stock",
            )
    for line in order["lines"]:
        transfer_id = f"{order['order_id']}:{line['sku']}"
        transfers.create(
            db,
            {
                "transfer_id": transfer_id,
                "sku": line["sku"],
                "qty": line["qty"],
                "origin_node_id": order["source_node_id"],
                "destination_node_id": order["destination_node_id"],
                "eta": eta,
            },
        )
        if order["type"] == "transfer":
            stock.move(
                db,
                order["source_node_id"],
                line["sku"],
                -line["qty"],
                # Shipped to a store: the DC's own demand, as its customers' orders are.
                "shipped",
                order["order_id"],
                at,
            )
        db.execute(
            "UPDATE replenishment_lines SET transfer_id = ? WHERE order_id = ? AND sku = ?",
            [transfer_id, order["order_id"], line["sku"]],
        )
    _set_status(db, order["order_id"], "accepted", eta)
    return {"status": "accepted", "eta": eta}


def _received(db: Database, order: dict, event: dict, at: str, raised: list[str]) -> dict:
    counted = {line["sku"]: line["qty"] for line in event.get("lines") or []}
    unknown = [sku for sku in counted if sku not in {line["sku"] for line in order["lines"]}]
    if unknown:
        index = [line["sku"] for line in event["lines"]].index(unknown[0])
        raise InvalidInput([field_error(("lines", index, "sku"), "not on this order")])
    received = {}
    for line in order["lines"]:
        qty = counted.get(line["sku"], line["qty"])
        receipts.receive(
            db,
            line["transfer_id"],
            {"received_qty": qty, "received_at": at} if event.get("at") else {"received_qty": qty},
        )
        db.execute(
            "UPDATE replenishment_lines SET received_qty = ? WHERE order_id = ? AND sku = ?",
            [qty, order["order_id"], line["sku"]],
        )
        received[line["sku"]] = qty
        if qty:
            raised.append(line["sku"])
    _set_status(db, order["order_id"], "received")
    return {"status": "received", "received": received}


def _replan(db: Database, order: dict, event: dict, by: str) -> str | None:
    """Plan the positions of a rejected order again, without the source that rejected it."""
    reason = f"{order['source_node_id']} rejected order {order['order_id']}" + (
        f": {event['reason']}" if event.get("reason") else ""
    )
    refused = {
        (
            facts.position_key(order["destination_node_id"], line["sku"]),
            order["source_node_id"],
        ): reason
        for line in order["lines"]
    }
    horizon = db.execute(
        "SELECT horizon FROM replenishment_runs WHERE run_id = ?", [order["run_id"]]
    ).fetchone()[0]
    try:
        run, _ = start(
            db,
            {
                "run_id": f"replan_{order['order_id']}",
                "nodes": [order["destination_node_id"]],
                "skus": [line["sku"] for line in order["lines"]],
                "horizon": horizon,
            },
            by,
            refused=refused,
        )
        return run["run_id"]
    except Exception:
        log.exception("order %s was rejected; its positions could not be planned again now")
        return None


def run_scheduled(db: Database, at: str, now: datetime | None = None) -> dict | None:
    """The day's scheduled run over the whole network, once ``at`` (HH:MM, UTC) has passed
    and if no server ran it yet (its id is the day's); None when nothing was due."""
    if not at:
        return None
    now = now or datetime.now(UTC)
    if now.strftime("%H:%M") < at:
        return None
    day = now.date().isoformat()
    run_id = f"scheduled-{day}"
    if db.execute("SELECT 1 FROM replenishment_runs WHERE run_id = ?", [run_id]).fetchone():
        return None
    run, _ = start(db, {"run_id": run_id, "horizon": day}, "schedule")
    return run


def list_runs(db: Database, limit: int = 50) -> list[dict]:
    rows = db.execute(
        "SELECT run_id FROM replenishment_runs ORDER BY created_at DESC, run_id DESC LIMIT ?",
        [limit],
    )
    return [get(db, row[0]) for row in rows]
