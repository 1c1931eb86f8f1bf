"""Backups of a live database, and restoring one.

SQLite: the online backup API copies a consistent snapshot while the service runs
(writers wait for each step, readers do not); the copy is written beside its target
and renamed into place, so a failed backup leaves no half file. The key file that
encrypts webhook secrets (``<database>.key``, when DOM_SECRET_KEYS is not set) is
copied with it: a backup without it could not sign webhooks.

PostgreSQL: ``pg_dump --format=custom`` (a consistent snapshot by MVCC) and
``pg_restore --clean``; the client tools must be installed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from app.platform import db as database


class BackupError(Exception):
    """A backup or restore could not be made; the message says why."""


def backup(url: str, target: str | Path, force: bool = False) -> dict:
    """Copy the database at ``url`` to the file ``target``; return what was copied."""
    target = Path(target)
    if target.exists() and not force:
        raise BackupError(f"{target} exists; choose another file or pass --force")
    if database.is_postgres(url):
        _run(["pg_dump", "--format=custom", "--no-owner", f"--file={target}", url])
        return {"database": database.describe(url), "file": str(target), "format": "pg_dump"}
    source = Path(url)
    if not source.exists():
        raise BackupError(f"no database at {source.resolve()}")
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    os.close(os.open(partial, os.O_CREAT | os.O_WRONLY, 0o600))
    try:
        with _sqlite(source) as live, _sqlite(partial) as copy:
            live.backup(copy)
            copy.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
            problems = _problems(copy)
        if problems:
            raise BackupError(f"the copy failed its integrity check: {problems}")
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    key = Path(str(source) + ".key")
    if key.exists():
        shutil.copyfile(key, str(target) + ".key")
        os.chmod(str(target) + ".key", 0o600)
    return {
        "database": database.describe(url),
        "file": str(target),
        "format": "sqlite",
        "bytes": target.stat().st_size,
        "key_file": str(target) + ".key" if key.exists() else None,
    }


def restore(url: str, source: str | Path) -> dict:
    """Replace the database at ``url`` with the backup ``source``."""
    source = Path(source)
    if not source.exists():
        raise BackupError(f"no backup at {source}")
    if database.is_postgres(url):
        _run(["pg_restore", "--clean", "--if-exists", "--no-owner", f"--dbname={url}", str(source)])
        return {"database": database.describe(url), "file": str(source), "format": "pg_dump"}
    with _sqlite(source) as backup_copy:
        problems = _problems(backup_copy)
        tables = {row[0] for row in backup_copy.execute("SELECT name FROM sqlite_master")}
    if problems:
        raise BackupError(f"{source} fails its integrity check: {problems}")
    if database.MIGRATIONS_TABLE not in tables:
        raise BackupError(f"{source} is not a DOM database (it has no migration history)")
    target = Path(url)
    if not target.exists():
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o600))
    # Copied page by page into the database in place: its WAL and other connections
    # stay consistent, where replacing the file under them would not.
    with _sqlite(source) as backup_copy, _sqlite(target) as live:
        backup_copy.backup(live)
    key = Path(str(source) + ".key")
    if key.exists():
        shutil.copyfile(key, str(target) + ".key")
        os.chmod(str(target) + ".key", 0o600)
    return {"database": database.describe(url), "file": str(source), "format": "sqlite"}


def _sqlite(path: Path) -> contextlib.closing[sqlite3.Connection]:
    return contextlib.closing(sqlite3.connect(path, timeout=30))


def _problems(conn: sqlite3.Connection) -> str | None:
    answer = [row[0] for row in conn.execute("PRAGMA integrity_check")]
    return None if answer == ["ok"] else "; ".join(answer[:5])


def _run(command: list[str]) -> None:
    if shutil.which(command[0]) is None:
        raise BackupError(
            f"{command[0]} is not installed (Debian: apt-get install postgresql-client)"
        )
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise BackupError(f"{command[0]} failed: {done.stderr.strip()[:500]}")
