"""Migrations, health and transactions."""

from __future__ import annotations

import shutil

import pytest

from app import create_app
from app.platform import db as database
from tests.databases import ON_POSTGRES


def test_migrations_run_once_and_are_recorded(db_path, app):
    connection = database.open_database(db_path)
    assert database.migrate(connection, app.config["MIGRATIONS_DIR"]) == []
    status = database.migration_status(connection, app.config["MIGRATIONS_DIR"])
    assert status["applied"] == [p.stem for p in database.migration_files("migrations")]
    assert status["applied"][0] == "0001_init"
    assert status["pending"] == []
    if connection.dialect == "sqlite":
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_readiness_reports_pending_migrations(tmp_path, client):
    assert client.get("/healthz").get_json()["status"] == "ok"
    folder = tmp_path / "migrations"
    shutil.copytree("migrations", folder)
    path = str(tmp_path / "h.db")
    connection = database.open_database(path)
    database.migrate(connection, "migrations")  # current, then a release brings one more
    connection.close()
    (folder / "9999_later.sql").write_text("CREATE TABLE later (x);")
    app = create_app(
        {
            "DATABASE": path,
            "MIGRATIONS_DIR": str(folder),
            "AUTO_MIGRATE": False,
            "LOAD_RULESETS": False,
        }
    )
    assert app.test_client().get("/healthz").status_code == 200  # alive, and
    response = app.test_client().get("/readyz")  # not ready
    assert response.status_code == 503
    [pending] = [
        e for e in response.get_json()["error"]["errors"] if e["pointer"] == "/checks/migrations"
    ]
    assert "9999_later" in pending["message"]


def test_a_failing_migration_leaves_nothing_behind(tmp_path):
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_ok.sql").write_text("CREATE TABLE a (x);")
    (folder / "0002_bad.sql").write_text("CREATE TABLE b (x); INSERT INTO nowhere VALUES (1);")
    connection = database.open_database(str(tmp_path / "m.db"))
    with pytest.raises(Exception, match="nowhere"):
        database.migrate(connection, folder)
    assert "b" not in connection.table_names()
    assert database.migration_status(connection, folder)["applied"] == []


def test_immediate_rolls_back_on_error(db):
    with pytest.raises(RuntimeError), database.immediate(db):
        db.execute(
            "INSERT INTO safety_stock_defaults (node_type, quantity, updated_at)"
            " VALUES ('dc', 1, '')"
        )
        raise RuntimeError("stop")
    assert db.execute("SELECT COUNT(*) FROM safety_stock_defaults").fetchone()[0] == 0


@pytest.mark.skipif(ON_POSTGRES, reason="about SQLite files made before")
def test_a_file_migrated_by_sqlite_utils_keeps_its_history(tmp_path):
    """Files made before the data layer recorded migrations in sqlite-utils' own table."""
    path = str(tmp_path / "old.db")
    connection = database.open_database(path)
    database.migrate(connection, "migrations")
    connection.execute(
        "CREATE TABLE _sqlite_migrations (id INTEGER PRIMARY KEY, migration_set TEXT,"
        " name TEXT, applied_at TEXT)"
    )
    connection.execute(
        "INSERT INTO _sqlite_migrations (migration_set, name, applied_at)"
        " SELECT migration_set, name, applied_at FROM dom_migrations"
    )
    connection.execute("DROP TABLE dom_migrations")
    assert database.migrate(connection, "migrations") == []
    assert database.migration_status(connection, "migrations")["pending"] == []
    connection.close()


@pytest.mark.skipif(ON_POSTGRES, reason="SQLite's own pool and write lock")
def test_requests_borrow_sqlite_connections_and_nothing_half_done_is_kept(tmp_path):
    path = str(tmp_path / "pool.db")
    config = {"DATABASE": path, "SQLITE_BUSY_TIMEOUT_MS": 1000}
    database.connect(path).close()
    first = database.open_from_config(config, pooled=True)
    raw = first.conn
    first.begin()
    first.execute("CREATE TABLE t (x)")
    first.close()  # given back in the middle of a transaction: it is rolled back
    second = database.open_from_config(config, pooled=True)
    assert second.conn is raw  # the same connection, lent again
    assert not second.in_transaction
    assert second.execute("SELECT name FROM sqlite_master WHERE name = 't'").fetchone() is None
    other = database.open_from_config(config, pooled=True)
    assert other.conn is not raw  # one borrower at a time
    other.close()
    second.close()
    database.close_pools(path)


@pytest.mark.skipif(ON_POSTGRES, reason="SQLite's own pool and write lock")
def test_a_writer_waits_for_the_lock_until_its_busy_timeout(tmp_path):
    path = str(tmp_path / "lock.db")
    holder, waiter = database.connect(path), database.connect(path, busy_timeout_ms=300)
    holder.begin()
    with pytest.raises(database.sqlite3.OperationalError, match="locked"):
        waiter.begin()
    # The connection's own busy timeout is back once begin() gave up.
    assert waiter.execute("PRAGMA busy_timeout").fetchone()[0] == 300
    holder.commit()
    waiter.begin()  # free now: taken at once
    waiter.commit()
    holder.close()
    waiter.close()


def test_nodes_stored_before_revisions_get_one_each(empty_database, tmp_path):
    """A process keeps the nodes it read by revision: nodes from before 0017 must not
    share one (a process reading two such databases would mix their nodes up)."""
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    for path in database.migration_files("migrations"):
        if path.stem < "0017":
            for part in path.parent.glob(f"{path.stem}*.sql"):
                shutil.copy(part, earlier / part.name)
    connection = database.open_from_config({"DATABASE": empty_database})
    database.migrate(connection, earlier)
    with database.atomic(connection):
        for node_id in ("DC1", "DC2"):
            connection.execute(
                "INSERT INTO nodes (node_id, type, name, address, lat, lon, capabilities,"
                " priority, active, timezone, created_at, updated_at)"
                " VALUES (?, 'dc', 'x', '{}', 52.0, -1.0, '[\"ship\"]', 0, 1, 'Europe/London',"
                " '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
                [node_id],
            )
    database.migrate(connection, "migrations")
    revisions = [row[0] for row in connection.execute("SELECT revision FROM nodes")]
    connection.close()
    assert 0 not in revisions and len(set(revisions)) == 2
