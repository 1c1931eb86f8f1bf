"""The only place that opens database connections, applies migrations and starts transactions.

Views call ``get_db()``; the connection lives on ``flask.g`` for one request and
is closed at teardown. Everything that writes goes through ``atomic`` (one
transaction, or a savepoint inside one). Every transaction takes SQLite's write
lock before its first statement (``BEGIN IMMEDIATE``): a deferred transaction that
reads and then writes cannot wait for a lock another writer holds, and fails with
"database is locked" under load instead of queueing behind it.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlite_utils
from flask import Flask, current_app, g

MIGRATION_SET = "dom"


def connect(path: str, busy_timeout_ms: int = 10000) -> sqlite_utils.Database:
    """Open the database file in WAL mode with foreign keys on.

    A new file is readable by its owner only (0600): it holds customers' personal
    data and webhook secrets. SQLite gives its -wal and -shm files the same mode.
    """
    if path != ":memory:" and not os.path.exists(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    # IMMEDIATE: the transactions Python opens by itself before a write take the lock too.
    conn = sqlite3.connect(
        path,
        timeout=busy_timeout_ms / 1000,
        check_same_thread=False,
        isolation_level="IMMEDIATE",
    )
    conn.row_factory = sqlite3.Row
    db = sqlite_utils.Database(conn)
    with db.ensure_autocommit_on():
        # WAL lets readers run while one writer commits; NORMAL sync is durable in WAL mode
        # across application crashes (only an OS crash can lose the last transactions).
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    return db


def open_from_config(config) -> sqlite_utils.Database:
    return connect(config["DATABASE"], config["SQLITE_BUSY_TIMEOUT_MS"])


def get_db() -> sqlite_utils.Database:
    """Return this request's connection, opening it on first use."""
    if "db" not in g:
        g.db = open_from_config(current_app.config)
    return g.db


def close_db(_exc: BaseException | None = None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()


@contextlib.contextmanager
def atomic(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """Run the block in one transaction that holds the write lock from its first statement.

    A deferred transaction that reads and then writes can be overtaken by another
    writer between the read and the write, and cannot wait for the lock it then
    needs; ``BEGIN IMMEDIATE`` closes that gap and waits up to the busy timeout.
    Inside an open transaction it nests as a savepoint of the outer one.
    """
    if db.conn.in_transaction:
        with db.atomic():
            yield db
        return
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.rollback()
        raise
    else:
        try:
            db.conn.execute("COMMIT")
        except BaseException:
            db.rollback()
            raise


# Reservations, feeds and decisions read and then write: the name says why they need it.
immediate = atomic


def now() -> str:
    """Return the current UTC time in the one text format stored everywhere."""
    return format_time(datetime.now(UTC))


def format_time(moment: datetime) -> str:
    """Format an aware datetime as UTC ISO 8601 with microseconds, which sorts as text."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# RFC 3339's date-time: the T, the seconds and the offset are not optional.
RFC_3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})"
)
# Every instant the service takes lies in this window; one outside it is a mistake, and
# stored as text it would sort wrongly (and a year 9999 count would freeze later ones).
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 date-time with an offset (``Z`` allowed), within 2000-2099 UTC.

    Raises ``ValueError`` for anything else (ISO 8601's other forms included).
    """
    if not isinstance(text, str) or not RFC_3339.fullmatch(text):
        raise ValueError(f"{text!r} is not an RFC 3339 date-time such as 2026-11-25T18:00:00Z")
    normal = text.upper()
    if "." in normal:  # Python takes at most six digits of a fraction
        head, tail = normal.split(".", 1)
        digits = re.match(r"\d+", tail).group(0)
        normal = f"{head}.{digits[:6]}{tail[len(digits) :]}"
    try:
        moment = datetime.fromisoformat(normal.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid date and time: {exc}") from None
    if not EARLIEST <= moment < LATEST:
        raise ValueError(f"{text!r} is outside 2000-01-01 to 2099-12-31 (UTC)")
    return moment


def normalize_time(text: str) -> str:
    """The one stored form of a time: UTC, microseconds, ``Z``; it sorts as text."""
    return format_time(parse_time(text))


# How far ahead of this clock a node's clock may run.
CLOCK_SKEW = timedelta(minutes=5)


def observed_time(text: str, path: tuple) -> str:
    """Normalise when something happened at a node (a count, a shipment, a receipt).

    It cannot lie in the future beyond the clock skew: 422 with the pointer ``path``.
    """
    from app.errors import InvalidInput, field_error

    moment = parse_time(text)
    if moment > datetime.now(UTC) + CLOCK_SKEW:
        raise InvalidInput([field_error(path, f"is in the future (later than now + {CLOCK_SKEW})")])
    return format_time(moment)


# Migrations ---------------------------------------------------------------------------


def migration_files(directory: str | Path) -> list[Path]:
    """Return the numbered ``NNNN_name.sql`` files in order."""
    files = sorted(Path(directory).glob("[0-9][0-9][0-9][0-9]_*.sql"))
    return files


def migrations(directory: str | Path) -> sqlite_utils.Migrations:
    """Build the migration set: one transactional migration per SQL file."""
    migration_set = sqlite_utils.Migrations(MIGRATION_SET)
    for path in migration_files(directory):
        sql = path.read_text()

        def apply(db, sql=sql):
            db.executescript(sql)

        migration_set(name=path.stem)(apply)
    return migration_set


def migrate(db: sqlite_utils.Database, directory: str | Path) -> list[str]:
    """Apply pending migrations in order; return the names applied now."""
    migration_set = migrations(directory)
    # One process at a time: several servers may start together on one file.
    with immediate(db):
        pending = [m.name for m in migration_set.pending(db)]
        migration_set.apply(db)
    return pending


def migration_status(db: sqlite_utils.Database, directory: str | Path) -> dict:
    migration_set = migrations(directory)
    return {
        "applied": [m.name for m in migration_set.applied(db)],
        "pending": [m.name for m in migration_set.pending(db)],
    }


def init_app(app: Flask) -> None:
    app.teardown_appcontext(close_db)
