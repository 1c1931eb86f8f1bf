"""Numbered SQL migrations from ``migrations/``, each applied in a transaction with its
tracking row; PostgreSQL gets the same files with its DDL."""

from __future__ import annotations

import logging
from pathlib import Path

from app.platform.db.sqlite import Database
from app.platform.db.times import now
from app.platform.db.transactions import immediate

log = logging.getLogger(__name__)


MIGRATION_SET = "dom"


MIGRATIONS_TABLE = "dom_migrations"


def migration_files(directory: str | Path) -> list[Path]:
    """Return the numbered ``NNNN_name.sql`` files in order (not the per-database variants)."""
    files = sorted(Path(directory).glob("[0-9][0-9][0-9][0-9]_*.sql"))
    return [path for path in files if "." not in path.stem]


def migration_sql(path: Path, dialect: str) -> str:
    """A migration's SQL for ``dialect``: the shared file, then ``NNNN_name.<dialect>.sql``
    when one exists (what only that database needs, such as a back-fill in its own SQL)."""
    extra = path.with_name(f"{path.stem}.{dialect}.sql")
    return path.read_text() + ("\n" + extra.read_text() if extra.exists() else "")


def _ensure_migrations_table(db: Database) -> None:
    tables = db.table_names()
    if MIGRATIONS_TABLE in tables:
        return
    db.execute(
        f"CREATE TABLE {MIGRATIONS_TABLE} (migration_set TEXT NOT NULL, name TEXT NOT NULL,"
        " applied_at TEXT NOT NULL, PRIMARY KEY (migration_set, name))"
    )
    if "_sqlite_migrations" in tables:  # files made before this table: keep their history
        db.execute(
            f"INSERT INTO {MIGRATIONS_TABLE} (migration_set, name, applied_at)"
            " SELECT migration_set, name, applied_at FROM _sqlite_migrations"
        )


def _applied(db: Database) -> list[str]:
    if MIGRATIONS_TABLE not in db.table_names():
        return []
    rows = db.execute(
        f"SELECT name FROM {MIGRATIONS_TABLE} WHERE migration_set = ? ORDER BY name",
        [MIGRATION_SET],
    )
    return [row[0] for row in rows]


def migrate(db: Database, directory: str | Path) -> list[str]:
    """Apply pending migrations in order, all in one transaction; return the names applied.

    Several servers may start together: one migrates, the others wait and find nothing
    left to do.
    """
    with immediate(db):
        db.wait_job_lock("dom migrations")
        _ensure_migrations_table(db)
        done = set(_applied(db))
        pending = [path for path in migration_files(directory) if path.stem not in done]
        for path in pending:
            db.script(migration_sql(path, db.dialect))
            db.after_migration()
            db.execute(
                f"INSERT INTO {MIGRATIONS_TABLE} (migration_set, name, applied_at)"
                " VALUES (?, ?, ?)",
                [MIGRATION_SET, path.stem, now()],
            )
    return [path.stem for path in pending]


def migration_status(db: Database, directory: str | Path) -> dict:
    applied = _applied(db)
    return {
        "applied": applied,
        "pending": [p.stem for p in migration_files(directory) if p.stem not in set(applied)],
    }
