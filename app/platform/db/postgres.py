"""PostgreSQL: what differs from SQLite, and nowhere else.

psycopg 3 with a pool per process (``psycopg_pool``); transactions run at READ
COMMITTED and lock what they touch (``lock_rows``: ``SELECT ... ORDER BY key FOR NO KEY
UPDATE``, always in key order, so two transactions cannot wait on each other in a cycle;
``NO KEY`` lets rows that refer to a locked row be inserted meanwhile). Jobs that one
server at a time should run take a transaction-scoped advisory lock (``job_lock``). A
deadlock, a serialization failure or a unique-key race aborts the transaction; the unit
is run again from the start (``retrying``) and the retry is counted (``STATS``).
Placeholders, ``%`` and the DDL of migrations are translated here."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence

from app.platform.db.failures import STATS, DatabaseUnavailable, Retry
from app.platform.db.sqlite import Database, split_statements

log = logging.getLogger(__name__)


class Row:
    """A PostgreSQL row that reads like ``sqlite3.Row``: by position, by name, as a dict."""

    __slots__ = ("_index", "_values")

    def __init__(self, index: dict[str, int], values: tuple):
        self._index = index
        self._values = values

    def __getitem__(self, key):
        if isinstance(key, str):
            return self._values[self._index[key]]
        return self._values[key]

    def keys(self) -> list[str]:
        return list(self._index)

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other) -> bool:
        return tuple(self) == tuple(other)

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._index, self._values, strict=True))!r})"


def row_factory(cursor):
    names = {column.name: i for i, column in enumerate(cursor.description or ())}
    return functools.partial(Row, names)


@functools.lru_cache(maxsize=4096)
def to_postgres(sql: str) -> str:
    """Rewrite ``?`` placeholders as ``%s`` and escape ``%``, outside quoted text."""
    out = []
    quote = None
    for ch in sql:
        if ch == "%":
            out.append("%%")
        elif quote:
            out.append(ch)
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        else:
            out.append(ch)
    return "".join(out)


POSTGRES_ARRAYS = {"text": "text[]", "integer": "bigint[]"}


def _param(value):
    # Flags are INTEGER 0/1 columns on both databases; PostgreSQL will not cast a boolean.
    return int(value) if isinstance(value, bool) else value


class PostgresDatabase(Database):
    """One pooled PostgreSQL connection behind the same interface."""

    dialect = "postgresql"

    def __init__(self, pool, conn):
        self.pool = pool
        self.conn = conn
        self._savepoints = 0
        self._after_commit = []
        self._before_commit = {}

    def execute(self, sql: str, params: Sequence = ()):
        with _translate_errors(self.conn):
            return self.conn.execute(to_postgres(sql), [_param(p) for p in params])

    def executemany(self, sql: str, rows: Iterable[Sequence]) -> None:
        with _translate_errors(self.conn), self.conn.cursor() as cursor:
            cursor.executemany(to_postgres(sql), [[_param(p) for p in row] for row in rows])

    def rows_source(self, rows: list[Sequence], types: Sequence[str]) -> tuple[str, list]:
        # One array per column, unnested side by side.
        arrays = ", ".join(f"?::{POSTGRES_ARRAYS[kind]}" for kind in types)
        names = ", ".join(f"c{n}" for n in range(len(types)))
        columns = [[_param(row[n]) for row in rows] for n in range(len(types))]
        return f"unnest({arrays}) AS bulk({names})", columns

    def script(self, sql: str) -> None:
        with _translate_errors(self.conn):
            for statement in split_statements(postgres_ddl(sql)):
                self.conn.execute(statement)

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return self.conn.info.transaction_status in (
            TransactionStatus.INTRANS,
            TransactionStatus.INERROR,
        )

    def begin(self) -> None:
        with _translate_errors(self.conn):
            self.conn.execute("BEGIN")

    def commit(self) -> None:
        self._committing()
        with _translate_errors(self.conn):
            self.conn.execute("COMMIT")
        self._committed()

    def rollback(self) -> None:
        self._after_commit.clear()
        self._before_commit.clear()
        if self.conn.closed or self.conn.broken:
            return
        # A connection that died meanwhile cannot roll back; the pool discards it.
        with contextlib.suppress(Exception):
            self.conn.rollback()

    def lock_rows(self, table: str, columns: Sequence[str], keys: Iterable[Sequence]) -> None:
        keys = sorted({tuple(key) for key in keys})
        if not keys:
            return
        key = ", ".join(columns)
        marks = ", ".join(["(" + ", ".join("?" * len(columns)) + ")"] * len(keys))
        started = time.perf_counter()
        self.execute(
            f"SELECT 1 FROM {table} WHERE ({key}) IN ({marks}) ORDER BY {key} FOR NO KEY UPDATE",
            [value for k in keys for value in k],
        )
        STATS["lock_wait_ms"] += round((time.perf_counter() - started) * 1000)
        STATS["row_locks"] += 1

    def lock_matching(self, table: str, where: str, params: Sequence, order_by: str) -> None:
        started = time.perf_counter()
        self.execute(
            f"SELECT 1 FROM {table} WHERE {where} ORDER BY {order_by} FOR NO KEY UPDATE", params
        )
        STATS["lock_wait_ms"] += round((time.perf_counter() - started) * 1000)
        STATS["row_locks"] += 1

    def skip_locked(self, alias: str) -> str:
        return f" FOR UPDATE OF {alias} SKIP LOCKED"

    @contextlib.contextmanager
    def job(self, name: str) -> Iterator[bool]:
        if self.in_transaction:
            # Inside the caller's transaction: the lock ends with it.
            acquired = self.job_lock(name)
            if not acquired:
                STATS["jobs_skipped"] += 1
            yield acquired
            return
        # A session lock: the job runs several transactions. A server that dies drops it,
        # and a connection going back to the pool drops any it still holds.
        row = self.execute("SELECT pg_try_advisory_lock(hashtext(?))", [name]).fetchone()
        if not row[0]:
            STATS["jobs_skipped"] += 1
            yield False
            return
        try:
            yield True
        finally:
            with contextlib.suppress(DatabaseUnavailable):
                if self.in_transaction:  # a step failed half-way
                    self.rollback()
                self.execute("SELECT pg_advisory_unlock(hashtext(?))", [name])

    def job_lock(self, name: str) -> bool:
        row = self.execute("SELECT pg_try_advisory_xact_lock(hashtext(?))", [name]).fetchone()
        return bool(row[0])

    def wait_job_lock(self, name: str) -> None:
        self.execute("SELECT pg_advisory_xact_lock(hashtext(?))", [name])

    def after_migration(self) -> None:
        # A table rebuilt by copying rows keeps their ids; its identity must go on after them.
        columns = self.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND is_identity = 'YES'"
        ).fetchall()
        for table, column in columns:
            self.execute(
                f"SELECT setval(pg_get_serial_sequence(?, ?), COALESCE(MAX({column}), 0) + 1,"
                f" false) FROM {table}",
                [table, column],
            )

    def table_names(self) -> set[str]:
        rows = self.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
        return {row[0] for row in rows}

    def close(self) -> None:
        if self.conn is None:
            return
        conn, self.conn = self.conn, None
        self.pool.putconn(conn)

    @property
    def sqlite(self):
        raise TypeError("this is a PostgreSQL database")


def _classify(exc: BaseException, broken: bool) -> str | None:
    """'retry', 'unavailable' or None for a psycopg error."""
    import psycopg
    from psycopg import errors

    if isinstance(exc, errors.DeadlockDetected):
        return "retry:deadlock"
    if isinstance(exc, errors.SerializationFailure):
        return "retry:serialization"
    if isinstance(exc, errors.UniqueViolation):
        return "retry:unique"
    if isinstance(exc, errors.LockNotAvailable):
        return "retry:lock_timeout"
    if isinstance(exc, errors.QueryCanceled):
        return None  # the statement timeout: a bug or an overload, not a race
    if isinstance(exc, errors.AdminShutdown | errors.CannotConnectNow):
        return "unavailable"
    state = getattr(exc, "sqlstate", None) or ""
    if state.startswith("08") or state.startswith("57P"):
        return "unavailable"  # connection exceptions; the server shutting down or starting
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError) and broken:
        return "unavailable"
    return None


@contextlib.contextmanager
def _translate_errors(conn=None):
    """Turn a lost race into ``Retry`` and a lost server into ``DatabaseUnavailable``."""
    from psycopg_pool import PoolTimeout

    try:
        yield
    except PoolTimeout as exc:
        STATS["unavailable"] += 1
        raise DatabaseUnavailable(f"no database connection could be had: {exc}") from exc
    except Exception as exc:
        if not type(exc).__module__.startswith("psycopg"):
            raise
        kind = _classify(exc, conn is None or conn.closed or conn.broken)
        if kind is None:
            raise
        if kind == "unavailable":
            STATS["unavailable"] += 1
            raise DatabaseUnavailable(f"the database is unavailable: {exc}") from exc
        raise Retry(kind.split(":", 1)[1]) from exc


_POOLS: dict[tuple[int, str], object] = {}
_POOLS_LOCK = threading.Lock()


def _pool(url: str, config) -> object:
    """This process's pool for ``url`` (a forked worker makes its own)."""
    key = (os.getpid(), url)
    pool = _POOLS.get(key)
    if pool is not None:
        return pool
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            pool = _open_pool(url, config)
            _POOLS[key] = pool
    return pool


def _open_pool(url: str, config):
    from psycopg_pool import ConnectionPool

    options = (
        f"-c statement_timeout={int(config.get('STATEMENT_TIMEOUT_MS', 30000))}"
        f" -c lock_timeout={int(config.get('LOCK_TIMEOUT_MS', 10000))}"
        " -c idle_in_transaction_session_timeout=60000"
    )

    def configure(conn) -> None:
        conn.row_factory = row_factory
        _load_numbers_as_python(conn)

    def reset(conn) -> None:
        conn.execute("SELECT pg_advisory_unlock_all()")

    return ConnectionPool(
        url,
        min_size=1,
        max_size=int(config.get("DATABASE_POOL_SIZE", 10)),
        kwargs={"autocommit": True, "options": options, "connect_timeout": 5},
        configure=configure,
        reset=reset,
        # A connection left from before a restart is found dead here, not by a request.
        check=ConnectionPool.check_connection,
        timeout=float(config.get("DATABASE_WAIT_SECONDS", 5)),
        open=True,
        name=f"dom-{os.getpid()}",
    )


def _load_numbers_as_python(conn) -> None:
    """SUM and AVG of integers come back as NUMERIC; give Python ints (or floats)."""
    from psycopg.types.numeric import NumericLoader

    class Numbers(NumericLoader):
        def load(self, data):
            value = super().load(data)
            if value == value.to_integral_value():
                return int(value)
            return float(value)

    conn.adapters.register_loader("numeric", Numbers)


def close_pools(url: str | None = None) -> None:
    """Close this process's PostgreSQL pools (all, or the ones for ``url``)."""
    with _POOLS_LOCK:
        for key in [k for k in _POOLS if url is None or k[1] == url]:
            _POOLS.pop(key).close()


def connect_postgres(url: str, config=None) -> PostgresDatabase:
    pool = _pool(url, config or {})
    with _translate_errors():
        conn = pool.getconn()
    return PostgresDatabase(pool, conn)


_DDL = (
    (
        re.compile(r"\bINTEGER PRIMARY KEY AUTOINCREMENT\b"),
        "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    ),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b"), "BYTEA"),
    # Byte order, as SQLite compares text: ids and times sort the same on both.
    (re.compile(r"\bTEXT\b"), 'TEXT COLLATE "C"'),
)


def postgres_ddl(sql: str) -> str:
    """The PostgreSQL form of a migration written in the DDL both databases share."""
    for pattern, replacement in _DDL:
        sql = pattern.sub(replacement, sql)
    return sql
