"""Authentication and roles on every route, found by walking the URL map."""

from __future__ import annotations

import re

import pytest

from app.edges.api.openapi import routes
from app.platform import auth
from tests.conftest import snapshot


def concrete(path: str) -> str:
    return re.sub(r"{[^}]+}", "1", path)


def all_routes(app):
    return [(path, method, spec) for path, method, spec, _ in routes(app)]


def call(client, method, path, key=None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.open(concrete(path), method=method, headers=headers, json={})


def test_every_v1_route_needs_a_key(app, client):
    checked = 0
    for path, method, spec in all_routes(app):
        if not path.startswith("/v1"):
            continue
        assert spec.roles, f"{method} {path} is open"
        for key in (None, "not-a-key"):
            response = call(client, method, path, key)
            assert response.status_code == 401, (method, path, key)
            assert response.get_json()["error"]["code"] == "unauthorized"
        checked += 1
    assert checked >= 15


def test_every_route_refuses_the_roles_it_does_not_list(app, client, db, keys):
    node_key = None
    refused = 0
    for path, method, spec in all_routes(app):
        for role in auth.ROLES:
            if spec.roles is None or role in spec.roles:
                continue
            if role == "node":
                if node_key is None:
                    db.execute(
                        "INSERT INTO nodes (node_id, type, name, address, lat, lon, capabilities,"
                        " timezone, created_at, updated_at) VALUES ('N1', 'dc', 'n', '{}', 0, 0,"
                        " '[]', 'UTC', '', '')"
                    )
                    node_key = auth.create_key(db, "node", "N1")[1]
                key = node_key
            else:
                key = keys[role]
            response = call(client, method, path, key)
            assert response.status_code == 403, (method, path, role)
            assert response.get_json()["error"]["code"] == "forbidden"
            refused += 1
    assert refused > 10


def test_healthz_needs_no_key(client):
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Bearer    ", "token"])
def test_malformed_authorization_is_401(client, header):
    response = client.get("/v1/nodes", headers={"Authorization": header})
    assert response.status_code == 401


def test_keys_are_stored_hashed(db, keys):
    stored = [row[0] for row in db.execute("SELECT key_hash FROM api_keys")]
    for key in keys.values():
        assert key not in stored
        assert auth.hash_key(key) in stored


def test_revoked_key_is_refused(client, db):
    key_id, key = auth.create_key(db, "analyst")
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/v1/nodes", headers=headers).status_code == 200
    auth.revoke_key(db, key_id)
    assert client.get("/v1/nodes", headers=headers).status_code == 401


def test_node_key_feeds_only_its_own_node(client, network):
    headers = {"Authorization": f"Bearer {network['node_key']}"}
    own = snapshot("own", "DC1", [{"sku": "MUG", "on_hand": 3}])
    other = snapshot("other", "ST1", [{"sku": "MUG", "on_hand": 3}])
    assert client.post("/v1/inventory/feeds", json=own, headers=headers).status_code == 201
    response = client.post("/v1/inventory/feeds", json=other, headers=headers)
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize(
    ("role", "node_id", "problem"),
    [("root", None, "role"), ("node", None, "node"), ("admin", "DC1", "node")],
)
def test_create_key_rejects_bad_combinations(db, role, node_id, problem):
    with pytest.raises(ValueError, match=problem):
        auth.create_key(db, role, node_id)
