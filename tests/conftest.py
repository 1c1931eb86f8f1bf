"""Shared fixtures: a service on a fresh database, a client, keys for every role.

The database is a SQLite file, or with ``DOM_TEST_BACKEND=postgresql`` a PostgreSQL
database of the test's own (``tests/databases.py``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app import create_app
from app.platform import auth
from app.platform import db as database
from tests import logscan
from tests.databases import ON_POSTGRES, POSTGRES, reachable

NODE_DC = {
    "type": "dc",
    "name": "Midlands DC",
    "address": {
        "lines": ["1 Magna Park"],
        "city": "Lutterworth",
        "postcode": "LE17 4XT",
        "country": "GB",
        "lat": 52.456,
        "lon": -1.203,
    },
    "capabilities": ["ship", "ship_to_store"],
    "daily_capacity": 5000,
    "priority": 10,
    "timezone": "Europe/London",
}


def store(lat: float, lon: float, city: str = "Leicester") -> dict:
    return {
        "type": "store",
        "name": f"{city} store",
        "address": {
            "lines": ["1 High Street"],
            "city": city,
            "postcode": "LE1 5WW",
            "country": "GB",
            "lat": lat,
            "lon": lon,
        },
        "capabilities": ["ship", "pickup"],
        "daily_capacity": 60,
        "timezone": "Europe/London",
    }


SKU = {"name": "Blue mug", "weight_kg": 0.4, "category": "home"}


def pytest_sessionstart(session):
    if ON_POSTGRES and not reachable():
        raise pytest.UsageError(
            "DOM_TEST_BACKEND=postgresql, but DOM_TEST_POSTGRES does not answer"
        )
    logscan.install()


def pytest_sessionfinish(session):
    if ON_POSTGRES:
        database.close_pools()
        POSTGRES.finish()
    # No log line of the whole run may carry personal data or a secret.
    hits = logscan.scan()
    if hits:
        print(f"\n{len(hits)} log lines carry personal data or secrets:")
        print("\n".join(hits[:50]))
        session.exitstatus = 1
    else:
        print("\nlogs of the run scanned for personal data and secrets: none found")
        logscan.clear()


# The API fuzz run has a SQLite file of its own: on PostgreSQL it is not even collected
# (collecting it builds the boundary cases of every operation, most of a minute).
collect_ignore = ["test_fuzz_api.py"] if ON_POSTGRES else []


def pytest_collection_modifyitems(config, items):
    # Tests marked one_database are the same whatever the database (a page in the browser,
    # a fuzz run on a SQLite file of its own, the rules engine alone): on PostgreSQL they
    # would only repeat the SQLite run, so they are left out of it.
    if not ON_POSTGRES:
        return
    repeated = [item for item in items if item.get_closest_marker("one_database")]
    if repeated:
        config.hook.pytest_deselected(items=repeated)
        items[:] = [item for item in items if not item.get_closest_marker("one_database")]


def pytest_report_header(config):
    return f"database: {'PostgreSQL' if ON_POSTGRES else 'SQLite'}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A SQLite file migrated, with the shipped rulesets loaded: each test starts from a
    copy (as each PostgreSQL test starts from a copy of a template database), which
    costs a fraction of migrating and loading every time."""
    path = tmp_path_factory.mktemp("template") / "dom.db"
    create_app({"DATABASE": str(path)})
    database.close_pools(str(path))
    return path


@pytest.fixture
def db_path(tmp_path, request):
    """Where the test's data lives: a SQLite path, or a PostgreSQL URL."""
    if not ON_POSTGRES:
        sqlite_template = request.getfixturevalue("sqlite_template")
        path = tmp_path / "dom.db"
        for suffix in ("", "-wal"):
            if Path(f"{sqlite_template}{suffix}").exists():
                # With its mode: the service makes its database readable by its owner only.
                shutil.copy(f"{sqlite_template}{suffix}", f"{path}{suffix}")
        yield str(path)
        return
    url = POSTGRES.create()
    yield url
    POSTGRES.drop(url)


@pytest.fixture
def empty_database(tmp_path):
    """A database with nothing in it, not even the schema: a path or a URL."""
    if not ON_POSTGRES:
        yield str(tmp_path / "empty.db")
        return
    url = POSTGRES.empty()
    yield url
    POSTGRES.drop(url)


sqlite_only = pytest.mark.skipif(ON_POSTGRES, reason="about the SQLite file itself")


@pytest.fixture
def app(db_path):
    return create_app({"DATABASE": db_path})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def db(app):
    connection = database.open_from_config(app.config)
    yield connection
    connection.close()


class Api:
    """A test client that sends a role's key with every request."""

    def __init__(self, client, key: str):
        self.client = client
        self.headers = {"Authorization": f"Bearer {key}"}

    def _headers(self, kwargs) -> dict:
        return {**self.headers, **kwargs.pop("headers", {})}

    def get(self, path, **kwargs):
        return self.client.get(path, headers=self._headers(kwargs), **kwargs)

    def put(self, path, json=None, **kwargs):
        return self.client.put(path, json=json, headers=self._headers(kwargs), **kwargs)

    def post(self, path, json=None, **kwargs):
        return self.client.post(path, json=json, headers=self._headers(kwargs), **kwargs)

    def delete(self, path, **kwargs):
        return self.client.delete(path, headers=self._headers(kwargs), **kwargs)


@pytest.fixture
def keys(db):
    """One key per role; the node key is bound to node DC1 (created here)."""
    made = {}
    for role in ("admin", "analyst", "channel"):
        made[role] = auth.create_key(db, role)[1]
    return made


@pytest.fixture
def admin(client, keys):
    return Api(client, keys["admin"])


@pytest.fixture
def network(admin, db):
    """A DC, two stores and two SKUs; a node key for DC1 in ``network['node_key']``."""
    assert admin.put("/v1/nodes/DC1", json=NODE_DC).status_code == 201
    assert admin.put("/v1/nodes/ST1", json=store(52.6369, -1.1398)).status_code == 201
    assert admin.put("/v1/nodes/ST2", json=store(53.4808, -2.2426, "Manchester")).status_code == 201
    assert admin.put("/v1/skus/MUG", json=SKU).status_code == 201
    assert admin.put("/v1/skus/CUP", json={**SKU, "name": "Cup"}).status_code == 201
    return {"node_key": auth.create_key(db, "node", "DC1")[1]}


def snapshot(feed_id, node_id, items, as_of="2026-11-25T10:00:00Z", **extra):
    return {
        "feed_id": feed_id,
        "node_id": node_id,
        "mode": "snapshot",
        "as_of": as_of,
        "items": items,
        **extra,
    }


def delta(feed_id, node_id, items, as_of="2026-11-25T11:00:00Z"):
    return {"feed_id": feed_id, "node_id": node_id, "mode": "delta", "as_of": as_of, "items": items}
