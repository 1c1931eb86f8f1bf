"""Replays: A/B on history. Owns ``replays``.

Stored decisions are decided again, from the facts each one saw, under two
versions of a ruleset (or a version and an inline draft). Nothing is reserved or
sent. A replay runs as a background job whose progress is stored, so any server
process can report it; the report has the same measures as an experiment, plus
every order whose decision changed.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections import deque
from collections.abc import Iterator

from app.machinery import decisions, metrics
from app.machinery.experiments import compare
from app.machinery.rules import kinds, registry, runtime
from app.platform import db as database
from app.platform import jsontext, logs
from app.platform.db import Database
from app.platform.errors import NotFound

log = logging.getLogger(__name__)
PROGRESS_EVERY = 25
# Decisions replayed per exchange with the rules engine (one round trip per version).
BATCH = 25
# Threads deciding a replay's chunks, each with an engine: two keep the engine and the
# allocation busy at once.
THREADS = 2


def versions_for(db: Database, request: dict) -> tuple[dict, dict]:
    a = registry.get(db, request["ruleset"], request["champion"])
    if "draft" in request:
        b = runtime.draft_version(request["draft"])
    else:
        b = registry.get(db, request["ruleset"], request["challenger"])
    return a, b


def create(db: Database, request: dict, by: str) -> dict:
    replay_id = "rpl_" + secrets.token_hex(8)
    selected = select(db, request)
    with database.atomic(db):
        db.execute(
            "INSERT INTO replays (replay_id, ruleset, request, status, total, created_by,"
            " created_at) VALUES (?, ?, ?, 'queued', ?, ?, ?)",
            [replay_id, request["ruleset"], json.dumps(request), len(selected), by, database.now()],
        )
    logs.touch(replay_id=replay_id)
    logs.event(
        "replay.created", replay_id=replay_id, ruleset=request["ruleset"], decisions=len(selected)
    )
    return get(db, replay_id)


def select(db: Database, request: dict) -> list[str]:
    ids = decisions.select(
        db,
        request["ruleset"],
        database.normalize_time(request["from"]) if request.get("from") else None,
        database.normalize_time(request["to"]) if request.get("to") else None,
        request.get("decision_ids"),
        None if request.get("channel") else request.get("limit"),
    )
    if request.get("channel"):
        ids = [i for i in ids if _channel(db, i) == request["channel"]][: request.get("limit")]
    return ids


def _channel(db, decision_id: str) -> str | None:
    facts = decisions.get(db, decision_id)["facts"]
    # The order's channel: on the order fact (sourcing) or the return fact (returns).
    return next((f["channel"] for f in facts if f["fact"] in ("order", "return")), None)


def get(db: Database, replay_id: str) -> dict:
    row = db.execute("SELECT * FROM replays WHERE replay_id = ?", [replay_id]).fetchone()
    if row is None:
        raise NotFound(f"replay {replay_id!r} does not exist")
    replay = dict(row)
    replay["request"] = jsontext.loads(replay["request"])
    replay.pop("created_by", None)
    for name in ("report", "changes"):
        replay[name] = jsontext.loads(replay[name]) if replay[name] else None
    replay["progress"] = replay["done"] / replay["total"] if replay["total"] else 1.0
    return replay


def run(db: Database, replay_id: str, progress=None) -> dict:
    """Do the replay now, storing progress as it goes; return the finished replay."""
    replay = get(db, replay_id)
    request = replay["request"]
    _set(db, replay_id, status="running")
    try:
        a, b = versions_for(db, request)
        kind = kinds.of(a["document"])
        ids = select(db, request)
        rows_a, rows_b, changes = [], [], []
        count = 0
        chunks = [ids[start : start + BATCH] for start in range(0, len(ids), BATCH)]
        for chunk, records, firsts, seconds in _replayed(db, kind, a, b, chunks):
            for decision_id, record, first, second in zip(
                chunk, records, firsts, seconds, strict=True
            ):
                count += 1
                _compare(kind, decision_id, record, first, second, rows_a, rows_b, changes)
                if progress:
                    progress(count, len(ids))
                if count % PROGRESS_EVERY == 0:
                    _set(db, replay_id, done=count)
        report = {
            "kind": kind.name,
            "champion": {"version": a["version"], **metrics.summary(rows_a, kind=kind.name)},
            "challenger": {
                "version": b["version"],
                "draft": bool(b.get("draft")),
                **metrics.summary(rows_b, kind=kind.name),
            },
            "challenger_minus_champion": metrics.paired_differences(rows_a, rows_b, kind=kind.name),
            "changed": len(changes),
            "change_rate": len(changes) / len(ids) if ids else 0.0,
        }
        _set(
            db,
            replay_id,
            status="done",
            done=len(ids),
            total=len(ids),
            report=jsontext.dumps(report),
            changes=jsontext.dumps(changes),
            finished_at=database.now(),
        )
        logs.event(
            "replay.finished",
            replay_id=replay_id,
            ruleset=request["ruleset"],
            champion=a["version"],
            challenger="draft" if b.get("draft") else b["version"],
            decisions=len(ids),
            changed=len(changes),
        )
    except Exception as exc:
        log.exception("replay %s failed", replay_id)
        _set(db, replay_id, status="failed", error=str(exc)[:500], finished_at=database.now())
    return get(db, replay_id)


def _replayed(db, kind, a: dict, b: dict, chunks: list[list[str]]) -> Iterator[tuple]:
    """``(chunk, records, decisions under a, decisions under b)`` for each chunk, in order.

    Chunks are decided by ``THREADS`` threads, each with an engine of its own: while one
    waits for its rules, another allocates, so a replay keeps two cores busy. Records
    are read here, a few chunks ahead of what has been returned."""
    with runtime.engines(THREADS) as pool:
        pending: deque = deque()

        def oldest() -> tuple:
            chunk, records, future = pending.popleft()
            return chunk, records, *future.result()

        for chunk in chunks:
            records = decisions.for_replay(db, chunk)
            pending.append((chunk, records, pool.submit(_both, kind, records, a, b)))
            if len(pending) > THREADS:
                yield oldest()
        while pending:
            yield oldest()


def _both(kind, records: list[dict], a: dict, b: dict) -> tuple[list, list]:
    # Each version sees the chunk in one exchange with the rules engine; a replay
    # compares outcomes and rules fired, not each candidate's weighing.
    return (
        kind.replay_many(records, a, explained=False),
        kind.replay_many(records, b, explained=False),
    )


def _compare(kind, decision_id, record, first, second, rows_a, rows_b, changes) -> None:
    rows_a.append(metrics.measures(first))
    rows_b.append(metrics.measures(second))
    agrees, difference = compare(first, second)
    if not agrees:
        changes.append(
            {
                "decision_id": decision_id,
                "order_id": record["decision"]["order_id"],
                "champion": kind.reproduce(first),
                "challenger": kind.reproduce(second),
                "difference": difference,
            }
        )


def _set(db, replay_id: str, **fields) -> None:
    assignments = ", ".join(f"{name} = ?" for name in fields)
    with database.atomic(db):
        db.execute(
            f"UPDATE replays SET {assignments} WHERE replay_id = ?", [*fields.values(), replay_id]
        )


def start(config, replay_id: str) -> threading.Thread:
    """Run a replay in the background with its own connection."""

    request_id = logs.current_request_id()

    def work():
        connection = database.open_from_config(config)
        try:
            with logs.handling(request_id):
                run(connection, replay_id)
        finally:
            connection.close()

    thread = threading.Thread(target=work, name=f"replay-{replay_id}", daemon=True)
    thread.start()
    return thread


def search(db: Database, after: tuple | None, limit: int) -> list[dict]:
    """Replays newest first (without their reports), after ``(created_at, replay_id)``."""
    where, params = "", []
    if after is not None:
        where = " WHERE (created_at < ? OR (created_at = ? AND replay_id < ?))"
        params = [after[0], after[0], after[1]]
    rows = db.execute(
        "SELECT replay_id, ruleset, request, status, total, done, error, created_by,"
        f" created_at, finished_at FROM replays{where}"
        " ORDER BY created_at DESC, replay_id DESC LIMIT ?",
        [*params, limit],
    )
    return [{**dict(row), "request": jsontext.loads(row["request"])} for row in rows]
