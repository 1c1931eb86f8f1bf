"""Decision records: what was decided, from which facts, under which ruleset version.
Owns ``decisions``.

A record keeps the facts the rules saw and the allocation context, which is all
a replay needs to recompute the decision later, under any version.
"""

from __future__ import annotations

import time

from app.platform import db as database
from app.platform import jsontext, logs, monitoring
from app.platform.db import Database
from app.platform.errors import NotFound


def record(db: Database, decision: dict, kind: str, facts: list, context: dict):
    """Store a decision; call inside the decision's transaction (or alone, for simulations).

    Once the transaction commits, the decision is counted and logged.
    """
    experiment = decision.get("experiment") or {}
    request_id = logs.current_request_id()
    db.execute(
        "INSERT INTO decisions (decision_id, order_id, kind, status, ruleset, ruleset_version,"
        " ruleset_sha256, facts, context, result, created_at, experiment_id, variant,"
        " request_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [
            decision["decision_id"],
            decision["order_id"],
            kind,
            decision["status"],
            decision["ruleset"]["name"],
            decision["ruleset"]["version"],
            decision["ruleset"]["sha256"],
            jsontext.dumps(facts),
            jsontext.dumps(context),
            jsontext.dumps(decision),
            database.now(),
            experiment.get("experiment_id"),
            experiment.get("variant"),
            request_id,
        ],
    )
    fired = sorted(set((decision.get("explanation") or {}).get("rules_fired") or []))
    db.executemany(
        "INSERT INTO decision_rules (decision_id, rule_id) VALUES (?, ?)",
        [(decision["decision_id"], rule_id) for rule_id in fired],
    )
    ruleset = decision["ruleset"]
    logs.touch(
        order_id=decision["order_id"],
        decision_id=decision["decision_id"],
        ruleset_version=f"{ruleset['name']}@{ruleset['version']}",
        experiment_id=experiment.get("experiment_id"),
    )
    recorded = time.perf_counter()

    def committed() -> None:
        commit_seconds = time.perf_counter() - recorded
        monitoring.decision_committed(decision, kind, commit_seconds)
        logs.event(
            "decision.made",
            decision_id=decision["decision_id"],
            order_id=decision["order_id"],
            kind=kind,
            outcome=decision["status"],
            ruleset=ruleset["name"],
            version=ruleset["version"],
            experiment_id=experiment.get("experiment_id"),
            variant=experiment.get("variant"),
            shipments=len(decision.get("shipments") or []),
            unfulfilled=len(decision.get("unfulfilled") or []),
            timings_ms={**(decision.get("timings_ms") or {}), "commit": commit_seconds * 1000},
        )

    db.after_commit(committed)


def get(db: Database, decision_id: str) -> dict:
    """The stored record: ``{"decision", "facts", "context", "kind", ...}``."""
    row = db.execute("SELECT * FROM decisions WHERE decision_id = ?", [decision_id]).fetchone()
    if row is None:
        raise NotFound(f"decision {decision_id!r} does not exist")
    return {
        "decision": jsontext.loads(row["result"]),
        "facts": jsontext.loads(row["facts"]),
        "context": jsontext.loads(row["context"]),
        "kind": row["kind"],
        "created_at": row["created_at"],
    }


def for_replay(db: Database, decision_ids: list[str]) -> list[dict]:
    """The stored records of these decisions, in the order given, with what a replay reads
    of each: its facts, its context, and of the decision only its order and ruleset (the
    decision as returned, explanation and all, is left unread)."""
    found = {}
    for start in range(0, len(decision_ids), 500):
        chunk = decision_ids[start : start + 500]
        rows = db.execute(
            "SELECT decision_id, order_id, ruleset, ruleset_version, ruleset_sha256, facts,"
            f" context FROM decisions WHERE decision_id IN ({','.join('?' * len(chunk))})",
            chunk,
        )
        for row in rows:
            found[row["decision_id"]] = {
                "decision": {
                    "decision_id": row["decision_id"],
                    "order_id": row["order_id"],
                    "ruleset": {
                        "name": row["ruleset"],
                        "version": row["ruleset_version"],
                        "sha256": row["ruleset_sha256"],
                    },
                },
                "facts": jsontext.loads(row["facts"]),
                "context": jsontext.loads(row["context"]),
            }
    missing = [d for d in decision_ids if d not in found]
    if missing:
        raise NotFound(f"decision {missing[0]!r} does not exist")
    return [found[d] for d in decision_ids]


def for_order(db: Database, order_id: str) -> list[dict]:
    rows = db.execute(
        "SELECT decision_id, kind, status, ruleset, ruleset_version, created_at FROM decisions"
        " WHERE order_id = ? AND kind != 'simulation' ORDER BY created_at, decision_id",
        [order_id],
    )
    return [dict(row) for row in rows]


def first_result(db: Database, order_id: str) -> dict | None:
    """The decision made when the order arrived: what a replayed POST returns."""
    row = db.execute(
        "SELECT result FROM decisions WHERE order_id = ? AND kind = 'order'"
        " ORDER BY created_at, decision_id LIMIT 1",
        [order_id],
    ).fetchone()
    return jsontext.loads(row[0]) if row else None


def count(db: Database, order_id: str, kind: str, since: str | None = None) -> int:
    """How many decisions of this kind the order had (made at or after ``since``)."""
    return db.execute(
        "SELECT COUNT(*) FROM decisions WHERE order_id = ? AND kind = ? AND created_at >= ?",
        [order_id, kind, since or ""],
    ).fetchone()[0]


def for_experiment(db: Database, experiment_id: str) -> list[dict]:
    """The real decisions made under an experiment, with their variant."""
    rows = db.execute(
        "SELECT decision_id, variant, result FROM decisions WHERE experiment_id = ?"
        " AND kind != 'simulation' ORDER BY created_at",
        [experiment_id],
    )
    return [
        {"decision_id": row[0], "variant": row[1], "result": jsontext.loads(row[2])} for row in rows
    ]


def select(db: Database, ruleset: str, since=None, until=None, ids=None, limit=None) -> list[str]:
    """Decision ids for a replay: by time range or a list, newest first."""
    sql = "SELECT decision_id FROM decisions WHERE ruleset = ? AND kind != 'simulation'"
    params: list = [ruleset]
    if since:
        sql += " AND created_at >= ?"
        params.append(since)
    if until:
        sql += " AND created_at < ?"
        params.append(until)
    if ids is not None:
        found = []
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            rows = db.execute(
                sql + f" AND decision_id IN ({','.join('?' * len(chunk))})", [*params, *chunk]
            )
            found.extend(row[0] for row in rows)
    else:
        found = [row[0] for row in db.execute(sql + " ORDER BY created_at DESC", params)]
    return found[:limit] if limit else found


def search(db: Database, filters: dict, after: tuple | None, limit: int) -> list[dict]:
    """Decisions newest first, after the cursor ``(created_at, decision_id)``; ``filters``
    by order, kind, ruleset version, a rule that fired, a node shipped from, experiment."""
    where, params = [], []
    for name, column in (
        ("order_id", "d.order_id"),
        ("kind", "d.kind"),
        ("ruleset", "d.ruleset"),
        ("ruleset_version", "d.ruleset_version"),
        ("experiment", "d.experiment_id"),
    ):
        if filters.get(name) is not None:
            where.append(f"{column} = ?")
            params.append(filters[name])
    if filters.get("rule"):
        where.append(
            "EXISTS (SELECT 1 FROM decision_rules r WHERE r.decision_id = d.decision_id"
            " AND r.rule_id = ?)"
        )
        params.append(filters["rule"])
    if filters.get("node_id"):
        where.append(
            "EXISTS (SELECT 1 FROM shipments s WHERE s.decision_id = d.decision_id"
            " AND s.node_id = ?)"
        )
        params.append(filters["node_id"])
    if after is not None:
        where.append("(d.created_at < ? OR (d.created_at = ? AND d.decision_id < ?))")
        params.extend([after[0], after[0], after[1]])
    rows = db.execute(
        "SELECT d.decision_id, d.order_id, d.kind, d.status, d.ruleset, d.ruleset_version,"
        " d.experiment_id, d.variant, d.created_at FROM decisions d"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY d.created_at DESC, d.decision_id DESC LIMIT ?",
        [*params, limit],
    )
    return [dict(row) for row in rows]
