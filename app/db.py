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
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils
from flask import Flask, current_app, g

MIGRATION_SET = "dom"


def connect(path: str, busy_timeout_ms: int = 10000) -> sqlite_utils.Database:
    """Open the database file in WAL mode with foreign keys on."""
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


def parse_time(text: str) -> datetime:
    """Parse an ISO 8601 time with an offset (``Z`` allowed)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone offset")
    return moment


def normalize_time(text: str) -> str:
    return format_time(parse_time(text))


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
