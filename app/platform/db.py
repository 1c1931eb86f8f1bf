"""The data layer: the only place that opens connections, applies migrations and starts
transactions, for SQLite and for PostgreSQL alike.

Domain modules write plain SQL with ``?`` placeholders, in the subset both databases
share, and keep it in the module that owns the table. What differs between the two
lives here and nowhere else: placeholders and ``%``, row shapes, how a transaction
begins and what it locks, advisory locks for jobs, the DDL of migrations, and which
errors mean "try again" or "the database is away".

- SQLite (the default, a file path): every transaction takes SQLite's write lock
  before its first statement (``BEGIN IMMEDIATE``), so a transaction that reads and
  then writes queues behind another writer instead of failing. ``lock_rows`` and
  ``job_lock`` are no-ops: the write lock already covers them.
- PostgreSQL (``postgresql://...``): psycopg 3 with a pool per process
  (``psycopg_pool``); transactions run at READ COMMITTED and lock what they touch
  (``lock_rows``: ``SELECT ... ORDER BY key FOR NO KEY UPDATE``, always in key order, so
  two transactions cannot wait on each other in a cycle; ``NO KEY`` lets rows that refer to
  a locked row be inserted meanwhile). Jobs that one server at a time
  should run take a transaction-scoped advisory lock (``job_lock``). A deadlock, a
  serialization failure or a unique-key race aborts the transaction; the request is
  run again from the start (``retrying``) and the retry is counted (``STATS``).

Views call ``get_db()``; the connection lives on ``flask.g`` for one request and goes
back at teardown. Everything that writes goes through ``atomic`` (one transaction, or
a savepoint inside one).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import random
import re
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import sqlite_utils
from flask import Flask, current_app, g

from app.platform.errors import Unavailable

log = logging.getLogger(__name__)

MIGRATION_SET = "dom"
MIGRATIONS_TABLE = "dom_migrations"

# What the data layer saw in this process: retries by cause, lock waits, outages.
STATS: Counter = Counter()

WAL_CHECKPOINT_PAGES = 10_000


class DatabaseUnavailable(Unavailable):
    """The database cannot be reached (restart, failover, pool exhausted): 503, retry soon."""

    code = "database_unavailable"
    retry_after = 2


class Retry(Exception):
    """The transaction lost a race the database detected; run the whole unit again."""

    def __init__(self, cause: str):
        super().__init__(cause)
        self.cause = cause


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def describe(url: str) -> str:
    """Where a database is, for people: a SQLite file's full path, or a URL without its
    password."""
    if is_postgres(url):
        return re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", url)
    return str(Path(url).resolve())


# SQLite --------------------------------------------------------------------------------


class Database:
    """One connection to SQLite; the interface every domain module uses.

    ``execute`` returns a cursor (``fetchone``, ``fetchall``, iteration, ``rowcount``)
    whose rows can be read by position or by column name, and turned into dicts.
    """

    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self._savepoints = 0
        self._after_commit: list[Callable[[], None]] = []

    def execute(self, sql: str, params: Sequence = ()):
        return self.conn.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence]) -> None:
        self.conn.executemany(sql, rows)

    def rows_source(self, rows: list[Sequence], types: Sequence[str]) -> tuple[str, list]:
        """``rows`` as a table in one statement, ``(source, params)``: a FROM item whose
        columns are ``c0``, ``c1``, ... (``types``: "text" or "integer") and the parameters
        it takes. One statement over a hundred thousand rows costs a third less than as
        many executions of one (measured on a node's count)."""
        columns = ", ".join(f"value ->> {n} AS c{n}" for n in range(len(types)))
        # JSON text: SQLite takes a whole array as one parameter only so.
        return f"(SELECT {columns} FROM json_each(?))", [orjson.dumps(rows).decode()]

    def script(self, sql: str) -> None:
        """Run several statements (a migration) inside the open transaction."""
        for statement in split_statements(sql):
            self.conn.execute(statement)

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction

    # Waiting for the write lock: SQLite's own busy handler sleeps up to 100 ms between
    # tries, so a writer could wait that long for a lock freed within a millisecond (the
    # long tail of decisions under load). Writers poll here instead, from 0.2 ms up to
    # 5 ms apart, until the connection's busy timeout.
    busy_timeout_ms = 10_000

    def begin(self) -> None:
        self.conn.execute("PRAGMA busy_timeout=0")
        try:
            deadline = time.monotonic() + self.busy_timeout_ms / 1000
            pause = 0.0002
            while True:
                try:
                    self.conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    busy = getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY
                    if not busy or time.monotonic() >= deadline:
                        raise
                time.sleep(pause * random.uniform(0.5, 1.5))
                pause = min(pause * 1.5, 0.005)
        finally:
            self.conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")

    def commit(self) -> None:
        self.conn.execute("COMMIT")
        self._committed()

    def rollback(self) -> None:
        self._after_commit.clear()
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the open transaction commits (at once outside one); a
        rollback drops it. For what must only follow a change that happened: metrics, logs."""
        if self.in_transaction:
            self._after_commit.append(callback)
        else:
            callback()

    def _committed(self) -> None:
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # the change is committed: reporting it must not undo the answer
                log.exception("after-commit callback failed")

    def lock_rows(self, table: str, columns: Sequence[str], keys: Iterable[Sequence]) -> None:
        """Lock rows of ``table`` by key until the transaction ends (SQLite: already held)."""

    def lock_matching(self, table: str, where: str, params: Sequence, order_by: str) -> None:
        """Lock the rows of ``table`` that ``where`` selects, in ``order_by`` order."""

    def skip_locked(self, alias: str) -> str:
        """The clause that makes a SELECT claim rows other transactions have not claimed."""
        return ""

    @contextlib.contextmanager
    def job(self, name: str) -> Iterator[bool]:
        """Run job ``name`` on one connection of all servers at a time: yields False when
        another has it (skip this round). SQLite: the write lock serialises the steps."""
        yield True

    def job_lock(self, name: str) -> bool:
        """Take the lock of job ``name`` for this transaction; False if another has it."""
        return True

    def wait_job_lock(self, name: str) -> None:
        """Wait for the lock of job ``name``, held until the transaction ends."""

    def after_migration(self) -> None:
        """Bring the database's own bookkeeping up to date after a migration ran."""

    def table_names(self) -> set[str]:
        rows = self.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {row[0] for row in rows}

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    @property
    def sqlite(self) -> sqlite_utils.Database:
        """The file through sqlite-utils, for the few SQLite-only tools (backups, dumps)."""
        return sqlite_utils.Database(self.conn)


def connect(path: str, busy_timeout_ms: int = 10000) -> Database:
    """Open a SQLite file in WAL mode with foreign keys on.

    A new file is readable by its owner only (0600): it holds customers' personal
    data and webhook secrets. SQLite gives its -wal and -shm files the same mode.
    """
    if path != ":memory:" and not os.path.exists(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    # isolation_level=None: transactions begin only where ``atomic`` begins them.
    conn = sqlite3.connect(
        path, timeout=busy_timeout_ms / 1000, check_same_thread=False, isolation_level=None
    )
    conn.row_factory = sqlite3.Row
    # WAL lets readers run while one writer commits; NORMAL sync is durable in WAL mode
    # across application crashes (only an OS crash can lose the last transactions).
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    # The write that crosses the checkpoint copies the log into the database and syncs
    # it; every 10,000 pages (about 40 MB of log) instead of SQLite's 1,000 halves what
    # commits cost on average (measured on decisions: 0.63 ms to 0.33 ms per commit).
    conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    db = Database(conn)
    db.busy_timeout_ms = busy_timeout_ms
    return db


# PostgreSQL ----------------------------------------------------------------------------


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


def _row_factory(cursor):
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
        with _translate_errors(self.conn):
            self.conn.execute("COMMIT")
        self._committed()

    def rollback(self) -> None:
        self._after_commit.clear()
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
        conn.row_factory = _row_factory
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
    """Close this process's pools (all, or the ones for ``url``)."""
    with _POOLS_LOCK:
        for key in [k for k in _POOLS if url is None or k[1] == url]:
            _POOLS.pop(key).close()
        for key in [k for k in _SQLITE_POOLS if url is None or k[1] == url]:
            _SQLITE_POOLS.pop(key).close()


def connect_postgres(url: str, config=None) -> PostgresDatabase:
    pool = _pool(url, config or {})
    with _translate_errors():
        conn = pool.getconn()
    return PostgresDatabase(pool, conn)


# Either ----------------------------------------------------------------------------------


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
        return _sqlite_pool(url, int(config.get("SQLITE_BUSY_TIMEOUT_MS", 10000))).lend()
    return open_database(url, config)


# Opening a SQLite connection (the file, WAL mode, pragmas) costs more than a small
# query: requests borrow one this process keeps, as PostgreSQL's pool does.
SQLITE_IDLE_CONNECTIONS = 8
_SQLITE_POOLS: dict[tuple, SqlitePool] = {}


class SqlitePool:
    """Open SQLite connections of one process to one file, lent one request at a time."""

    def __init__(self, path: str, busy_timeout_ms: int):
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def lend(self) -> PooledSqlite:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = connect(self.path, self.busy_timeout_ms).conn
        lent = PooledSqlite(conn, self)
        lent.busy_timeout_ms = self.busy_timeout_ms
        return lent

    def give_back(self, conn: sqlite3.Connection) -> None:
        if conn.in_transaction:  # the borrower did not finish: nothing half-done is kept
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                conn.close()
                return
        with self._lock:
            if len(self._idle) < SQLITE_IDLE_CONNECTIONS:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class PooledSqlite(Database):
    """A connection lent by a ``SqlitePool``; closing it gives it back."""

    def __init__(self, conn: sqlite3.Connection, pool: SqlitePool):
        super().__init__(conn)
        self.pool = pool

    def close(self) -> None:
        if self.conn is None:
            return
        conn, self.conn = self.conn, None
        self.pool.give_back(conn)


def _sqlite_pool(path: str, busy_timeout_ms: int) -> SqlitePool:
    # A forked process opens its own: a connection must not cross a fork.
    key = (os.getpid(), path, busy_timeout_ms)
    with _POOLS_LOCK:
        pool = _SQLITE_POOLS.get(key)
        if pool is None:
            pool = _SQLITE_POOLS[key] = SqlitePool(path, busy_timeout_ms)
        return pool


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
        conn.row_factory = _row_factory
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


@contextlib.contextmanager
def atomic(db: Database) -> Iterator[Database]:
    """Run the block in one transaction (SQLite: holding the write lock from its start).

    Inside an open transaction it nests as a savepoint of the outer one.
    """
    if db.in_transaction:
        db._savepoints += 1
        name = f"dom_{db._savepoints}"
        db.execute(f"SAVEPOINT {name}")
        pending = len(db._after_commit)
        try:
            yield db
        except BaseException:
            del db._after_commit[pending:]
            with contextlib.suppress(Exception):
                db.execute(f"ROLLBACK TO SAVEPOINT {name}")
                db.execute(f"RELEASE SAVEPOINT {name}")
            raise
        else:
            db.execute(f"RELEASE SAVEPOINT {name}")
        finally:
            db._savepoints -= 1
        return
    db.begin()
    try:
        yield db
    except BaseException:
        db.rollback()
        raise
    else:
        try:
            db.commit()
        except BaseException:
            db.rollback()
            raise


# Reservations, feeds and decisions read and then write: the name says why they need it.
immediate = atomic


class DatabaseBusy(Unavailable):
    """A request kept losing races for the same rows: 503, retry soon."""

    code = "database_busy"
    retry_after = 1


def retrying(work: Callable[[], object], attempts: int = 8, before_retry=None):
    """Run ``work`` (a whole unit of work) again when it lost a race; count each retry.

    After ``attempts`` it gives up with ``DatabaseBusy``.
    """
    for attempt in range(attempts):
        try:
            return work()
        except Retry as exc:
            STATS[f"retry_{exc.cause}"] += 1
            STATS["retries"] += 1
            if before_retry is not None:
                before_retry()
            if attempt == attempts - 1:
                raise DatabaseBusy(
                    f"the request lost {attempts} races for the same rows ({exc.cause})"
                ) from exc
            time.sleep(random.uniform(0, 0.005 * 2**attempt))
    raise AssertionError("unreachable")


# Time --------------------------------------------------------------------------------


def now() -> str:
    """Return the current UTC time in the one text format stored everywhere."""
    return format_time(datetime.now(UTC))


def format_time(moment: datetime) -> str:
    """Format an aware datetime as UTC ISO 8601 with microseconds, which sorts as text."""
    # isoformat is C, and a third quicker than strftime; a decision writes a dozen times.
    return moment.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


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
    from app.platform.errors import InvalidInput, field_error

    moment = parse_time(text)
    if moment > datetime.now(UTC) + CLOCK_SKEW:
        raise InvalidInput([field_error(path, f"is in the future (later than now + {CLOCK_SKEW})")])
    return format_time(moment)


# Migrations ---------------------------------------------------------------------------


def split_statements(sql: str) -> list[str]:
    """Split a script on the semicolons that end statements (not in quotes or comments)."""
    statements, current, quote, i = [], [], None, 0
    while i < len(sql):
        ch = sql[i]
        if quote:
            current.append(ch)
            if ch == quote:
                quote = None
        elif ch == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            i = len(sql) if end == -1 else end
            continue
        elif ch in "'\"":
            quote = ch
            current.append(ch)
        elif ch == ";":
            statements.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
        i += 1
    statements.append("".join(current).strip())
    return [s for s in statements if s]


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


def init_app(app: Flask) -> None:
    app.teardown_appcontext(close_db)
