"""Calendars: days without work that many nodes and carrier services share. Owns ``calendars``.

The calendar ``network`` closes every node that keeps ``network_holidays``; a carrier
service names the calendar of the days it neither collects nor delivers (``network``
when it names none). A calendar not stored yet has no closed days.
"""

from __future__ import annotations

from app.kinds.promising.dates import closure_problems
from app.platform import db as database
from app.platform import jsontext
from app.platform.db import Database
from app.platform.errors import InvalidInput, NotFound

NETWORK = "network"


def put(db: Database, calendar_id: str, document: dict) -> tuple[dict, bool]:
    """Create or replace a calendar; return ``(calendar, created)``."""
    problems = closure_problems(document["closures"], ("closures",))
    if problems:
        raise InvalidInput(problems)
    now = database.now()
    with database.atomic(db):
        previous = db.execute(
            "SELECT created_at FROM calendars WHERE calendar_id = ?", [calendar_id]
        ).fetchone()
        db.execute(
            "INSERT INTO calendars (calendar_id, document, created_at, updated_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (calendar_id) DO UPDATE SET"
            " document = excluded.document, updated_at = excluded.updated_at",
            [calendar_id, jsontext.dumps(document), now, now],
        )
    return get(db, calendar_id), previous is None


def get(db: Database, calendar_id: str) -> dict:
    row = db.execute(
        "SELECT calendar_id, document, created_at, updated_at FROM calendars WHERE calendar_id = ?",
        [calendar_id],
    ).fetchone()
    if row is None:
        raise NotFound(f"calendar {calendar_id!r} does not exist")
    return _public(row)


def list_calendars(db: Database) -> list[dict]:
    rows = db.execute(
        "SELECT calendar_id, document, created_at, updated_at FROM calendars ORDER BY calendar_id"
    )
    return [_public(row) for row in rows]


def exists(db: Database, calendar_id: str) -> bool:
    row = db.execute("SELECT 1 FROM calendars WHERE calendar_id = ?", [calendar_id]).fetchone()
    return row is not None


def _public(row) -> dict:
    return {
        "calendar_id": row["calendar_id"],
        **jsontext.loads(row["document"]),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }
