"""The data layer: the only place that opens connections, applies migrations and starts
transactions, for SQLite and for PostgreSQL alike. Everything else imports it from here.

    sqlite        the connection every dialect shares, SQLite's own, and its pool
    postgres      what PostgreSQL does differently: placeholders, locks, errors, pools, DDL
    transactions  atomic (a transaction or a savepoint) and retrying (a lost race)
    migrations    numbered SQL files applied in order, each with its tracking row
    times         instants as stored: RFC 3339 text in UTC
    failures      the database away or busy, and what this process saw of it

Domain modules write plain SQL with ``?`` placeholders, in the subset both databases
share, and keep it in the module that owns the table. What differs between the two
lives here and nowhere else: placeholders and ``%``, row shapes, how a transaction
begins and what it locks, advisory locks for jobs, the DDL of migrations, and which
errors mean "try again" or "the database is away".

SQLite (a file path, the default) and PostgreSQL (``postgresql://...``) each say in
their module how they lock and what they retry.

Views call ``get_db()``; the connection lives on ``flask.g`` for one request and goes
back at teardown. Everything that writes goes through ``atomic`` (one transaction, or
a savepoint inside one).
"""

from __future__ import annotations

import logging
import re
import sqlite3
from pathlib import Path

from flask import Flask, current_app, g

from app.platform.db import postgres, sqlite
from app.platform.db.failures import STATS, DatabaseBusy, DatabaseUnavailable, Retry
from app.platform.db.migrations import (
    MIGRATION_SET,
    MIGRATIONS_TABLE,
    migrate,
    migration_files,
    migration_sql,
    migration_status,
)
from app.platform.db.postgres import PostgresDatabase, connect_postgres
from app.platform.db.sqlite import Database, connect
from app.platform.db.times import (
    CLOCK_SKEW,
    EARLIEST,
    LATEST,
    format_time,
    normalize_time,
    now,
    observed_time,
    parse_time,
)
from app.platform.db.transactions import atomic, immediate, retrying

__all__ = [
    "CLOCK_SKEW",
    "EARLIEST",
    "LATEST",
    "MIGRATIONS_TABLE",
    "MIGRATION_SET",
    "STATS",
    "Database",
    "DatabaseBusy",
    "DatabaseUnavailable",
    "PostgresDatabase",
    "Retry",
    "atomic",
    "close_db",
    "close_pools",
    "connect",
    "connect_postgres",
    "describe",
    "format_time",
    "get_db",
    "immediate",
    "init_app",
    "is_postgres",
    "migrate",
    "migration_files",
    "migration_sql",
    "migration_status",
    "normalize_time",
    "now",
    "observed_time",
    "open_database",
    "open_from_config",
    "parse_time",
    "probe",
    "retrying",
]

log = logging.getLogger(__name__)


def is_postgres(url: str) -> bool:
    """Whether ``url`` names a PostgreSQL database (anything else is a SQLite path)."""
    return url.startswith(("postgresql://", "postgres://"))


def describe(url: str) -> str:
    """Where a database is, for people: a SQLite file's full path, or a URL without its
    password."""
    if is_postgres(url):
        return re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", url)
    return str(Path(url).resolve())


def open_database(url: str, config=None) -> Database:
    """Open ``url``: a PostgreSQL URL, or the path of a SQLite file."""
    if is_postgres(url):
        return connect_postgres(url, config)
    return connect(url, int((config or {}).get("SQLITE_BUSY_TIMEOUT_MS", 10000)))


def open_from_config(config, pooled: bool = False) -> Database:
    """Open the configured database; ``pooled`` lends a SQLite connection that this
    process keeps open between requests (PostgreSQL connections always come from a
    pool)."""
    url = config["DATABASE"]
    if pooled and not is_postgres(url) and url != ":memory:":
        return sqlite.lending_pool(url, int(config.get("SQLITE_BUSY_TIMEOUT_MS", 10000))).lend()
    return open_database(url, config)


def probe(url: str, timeout: float, migrations_dir: str | Path) -> dict:
    """Connect afresh (no pool, no new file) within ``timeout`` seconds and read the
    migration status; raise ``DatabaseUnavailable`` when the database does not answer."""
    failures: tuple[type[Exception], ...] = (sqlite3.Error,)
    if is_postgres(url):
        import psycopg

        failures = (psycopg.Error,)
        milliseconds = max(1, int(timeout * 1000))
        try:
            conn = psycopg.connect(
                url,
                autocommit=True,
                connect_timeout=max(1, round(timeout)),
                options=f"-c statement_timeout={milliseconds}",
            )
        except psycopg.Error as exc:
            raise DatabaseUnavailable(f"the database does not answer: {exc}".strip()) from exc
        conn.row_factory = postgres.row_factory
        db: Database = PostgresDatabase(None, conn)
    else:
        try:
            conn = sqlite3.connect(
                f"{Path(url).resolve().as_uri()}?mode=rw",
                uri=True,
                timeout=timeout,
                check_same_thread=False,
                isolation_level=None,
            )
        except sqlite3.Error as exc:
            raise DatabaseUnavailable(f"the database cannot be opened: {exc}") from exc
        db = Database(conn)
    try:
        return migration_status(db, migrations_dir)
    except failures as exc:
        raise DatabaseUnavailable(f"the database cannot be read: {exc}") from exc
    finally:
        conn.close()


def close_pools(url: str | None = None) -> None:
    """Close this process's pools of connections (all, or the ones for ``url``)."""
    postgres.close_pools(url)
    sqlite.close_pools(url)


def get_db() -> Database:
    """Return this request's connection, opening it on first use."""
    if "db" not in g:
        g.db = open_from_config(current_app.config, pooled=True)
    return g.db


def close_db(_exc: BaseException | None = None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.rollback()
        db.close()


def init_app(app: Flask) -> None:
    app.teardown_appcontext(close_db)
