"""Dispatcher heartbeats: which dispatchers run, and when each last reported. Owns
``dispatchers``.

A dispatcher beats as it sweeps (every few seconds) and removes its row when it stops
cleanly; a killed one leaves a row whose beat grows old. Readiness and the metrics
read them.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta

from app.platform import db as database
from app.platform.db import Database


def beat(db: Database, worker: str) -> None:
    """Record that ``worker`` is alive now."""
    now = database.now()
    with database.atomic(db):
        updated = db.execute(
            "UPDATE dispatchers SET beat_at = ? WHERE worker = ?", [now, worker]
        ).rowcount
        if not updated:
            db.execute(
                "INSERT INTO dispatchers (worker, host, pid, started_at, beat_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [worker, socket.gethostname(), os.getpid(), now, now],
            )


def forget(db: Database, worker: str) -> None:
    """A dispatcher that stops cleanly is no longer expected to beat."""
    with database.atomic(db):
        db.execute("DELETE FROM dispatchers WHERE worker = ?", [worker])


def fresh(db: Database, within_seconds: float, now: datetime | None = None) -> list[str]:
    """The dispatchers that reported within ``within_seconds``."""
    since = database.format_time((now or datetime.now(UTC)) - timedelta(seconds=within_seconds))
    rows = db.execute("SELECT worker FROM dispatchers WHERE beat_at >= ? ORDER BY worker", [since])
    return [row[0] for row in rows]


def prune(db: Database, older_than_seconds: float) -> int:
    """Remove the rows of dispatchers silent for long (killed, never to come back)."""
    since = database.format_time(datetime.now(UTC) - timedelta(seconds=older_than_seconds))
    with database.atomic(db):
        return db.execute("DELETE FROM dispatchers WHERE beat_at < ?", [since]).rowcount
