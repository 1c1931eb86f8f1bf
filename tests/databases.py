"""The database each test runs on: a SQLite file, or a PostgreSQL database of its own.

``DOM_TEST_BACKEND=postgresql`` runs the suite on PostgreSQL at ``DOM_TEST_POSTGRES``
(default the local server, ``postgresql://postgres@127.0.0.1:5432/postgres``). The
migrations and shipped rulesets are applied once to a template database; each test
gets a copy of it (``CREATE DATABASE ... TEMPLATE``) and drops it after.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ADMIN_URL = os.environ.get("DOM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKEND = os.environ.get("DOM_TEST_BACKEND", "sqlite")
ON_POSTGRES = BACKEND == "postgresql"
ROOT = Path(__file__).resolve().parent.parent

if ON_POSTGRES:
    # Servers that share a database share the key that seals webhook secrets; the test
    # servers started as processes inherit it.
    os.environ.setdefault("DOM_SECRET_KEYS", "dGVzdC1rZXktdGhhdC1pcy0zMi1ieXRlcy1sb25nISE=")


def reachable(url: str = ADMIN_URL) -> bool:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


class Postgres:
    """Databases for tests on one server; names carry the pid, so parallel runs do not meet."""

    def __init__(self):
        self.prefix = f"dom_test_{os.getpid()}"
        self.template = f"{self.prefix}_template"
        self.counter = itertools.count(1)
        self.ready = False

    def _build_template(self) -> None:
        from app.machinery.rules.runtime import load_shipped
        from app.platform import db as database
        from app.platform.schemas import catalogue

        admin(f"DROP DATABASE IF EXISTS {self.template} WITH (FORCE)")
        admin(f"CREATE DATABASE {self.template}")
        url = with_database(ADMIN_URL, self.template)
        connection = database.open_database(url)
        try:
            database.migrate(connection, ROOT / "migrations")
            load_shipped(connection, ROOT / "rulesets", catalogue(ROOT / "schemas"))
        finally:
            connection.close()
            database.close_pools(url)
        self.ready = True

    def create(self) -> str:
        """A new database with the schema and shipped rulesets; its URL."""
        if not self.ready:
            self._build_template()
        name = f"{self.prefix}_{next(self.counter)}"
        admin(f"CREATE DATABASE {name} TEMPLATE {self.template}")
        return with_database(ADMIN_URL, name)

    def empty(self) -> str:
        """A new database with nothing in it (for migration tests); its URL."""
        name = f"{self.prefix}_{next(self.counter)}"
        admin(f"CREATE DATABASE {name}")
        return with_database(ADMIN_URL, name)

    def drop(self, url: str) -> None:
        from app.platform import db as database

        database.close_pools(url)
        admin(f"DROP DATABASE IF EXISTS {urlsplit(url).path.lstrip('/')} WITH (FORCE)")

    def finish(self) -> None:
        if self.ready:
            admin(f"DROP DATABASE IF EXISTS {self.template} WITH (FORCE)")


POSTGRES = Postgres()


if __name__ == "__main__":
    # `python -m tests.databases`: exit 0 when the PostgreSQL server for tests answers.
    import sys

    sys.exit(0 if reachable() else 1)
