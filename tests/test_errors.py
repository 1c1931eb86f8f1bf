"""Every error path answers with the one error shape."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from app.platform.schemas import Catalogue
from tests.conftest import NODE_DC, snapshot

ERROR_SCHEMA = Draft202012Validator(Catalogue("schemas").documents["error"])


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    ERROR_SCHEMA.validate(body)
    assert body["error"]["code"] == code
    return body["error"]


def test_malformed_json_is_400(admin):
    response = admin.client.put(
        "/v1/nodes/DC1",
        data="{not json",
        content_type="application/json",
        headers=admin.headers,
    )
    assert_error(response, 400, "malformed_json")


def test_wrong_content_type_is_415(admin):
    response = admin.client.put(
        "/v1/nodes/DC1", data=json.dumps(NODE_DC), content_type="text/plain", headers=admin.headers
    )
    assert_error(response, 415, "unsupported_media_type")


def test_schema_violations_list_every_bad_field(admin):
    body = {**NODE_DC, "type": "warehouse", "daily_capacity": -1, "colour": "red"}
    del body["name"]
    error = assert_error(admin.put("/v1/nodes/DC1", json=body), 422, "invalid_input")
    assert {e["pointer"] for e in error["errors"]} == {
        "/type",
        "/daily_capacity",
        "/colour",
        "/name",
    }


def test_pointers_reach_into_arrays(admin, network):
    feed = snapshot("f1", "DC1", [{"sku": "MUG", "on_hand": 1}, {"sku": "CUP", "on_hand": -4}])
    error = assert_error(admin.post("/v1/inventory/feeds", json=feed), 422, "invalid_input")
    assert error["errors"] == [{"pointer": "/items/1/on_hand", "message": "must be at least 0"}]


def test_pointer_escapes_slash_and_tilde():
    from app.platform.errors import pointer

    assert pointer("a/b", "c~d", 0) == "/a~1b/c~0d/0"


def test_unknown_id_is_404(admin):
    assert_error(admin.get("/v1/nodes/NOPE"), 404, "not_found")
    assert_error(admin.get("/v1/skus/NOPE"), 404, "not_found")
    assert_error(admin.get("/v1/customers/NOPE"), 404, "not_found")
    assert_error(admin.get("/v1/inventory/transfers/NOPE"), 404, "not_found")


def test_unknown_route_and_method(admin):
    assert_error(admin.get("/v1/nothing-here"), 404, "not_found")
    response = admin.client.delete("/v1/nodes/DC1", headers=admin.headers)
    error = assert_error(response, 405, "method_not_allowed")
    assert error["message"]


def test_conflict_is_409(admin, network):
    feed = snapshot("f1", "DC1", [{"sku": "MUG", "on_hand": 1}])
    assert admin.post("/v1/inventory/feeds", json=feed).status_code == 201
    feed["items"][0]["on_hand"] = 2
    assert_error(admin.post("/v1/inventory/feeds", json=feed), 409, "feed_id_reused")


def test_oversized_body_is_413(tmp_path):
    from app import create_app
    from app.platform import auth
    from app.platform import db as database

    app = create_app({"DATABASE": str(tmp_path / "small.db"), "MAX_BODY_BYTES": 1000})
    connection = database.open_from_config(app.config)
    key = auth.create_key(connection, "admin")[1]
    connection.close()
    response = app.test_client().put(
        "/v1/nodes/DC1",
        json={**NODE_DC, "name": "x" * 2000},
        headers={"Authorization": f"Bearer {key}"},
    )
    error = assert_error(response, 413, "payload_too_large")
    assert "1000" in error["message"]


def test_unexpected_failure_is_500_in_the_same_shape(app, admin, monkeypatch):
    from app.domain.network import nodes

    def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(nodes, "get", explode)
    error = assert_error(admin.get("/v1/nodes/DC1"), 500, "internal_error")
    assert "disk" not in error["message"]


@pytest.mark.parametrize(
    ("query", "pointers"),
    [
        ("", {"/sku"}),
        ("sku=MUG&lat=north&lon=east", {"/lat", "/lon"}),
        ("sku=MUG&lat=52", {"/lon"}),
        ("sku=MUG&lat=91&lon=0", {"/lat"}),
        ("sku=MUG&radius_km=5", {"/radius_km"}),
        ("sku=MUG&colour=red", {"/colour"}),
    ],
)
def test_query_errors_point_at_parameters(admin, query, pointers):
    error = assert_error(admin.get(f"/v1/availability?{query}"), 422, "invalid_input")
    assert {e["pointer"] for e in error["errors"]} == pointers


def test_failed_request_changes_nothing(admin, network):
    before = admin.get("/v1/nodes/DC1").get_json()
    assert (
        admin.put("/v1/nodes/DC1", json={**NODE_DC, "timezone": "Mars/Olympus"}).status_code == 422
    )
    assert admin.get("/v1/nodes/DC1").get_json() == before


FEED_OK = snapshot("f", "DC1", [{"sku": "MUG", "on_hand": 1}])
AGREEMENT_CASES = [
    ("inventory-feed", FEED_OK),
    ("inventory-feed", {**FEED_OK, "as_of": "2026-11-25T10:00:00"}),
    ("inventory-feed", {**FEED_OK, "as_of": "yesterday"}),
    ("inventory-feed", {**FEED_OK, "items": [{"sku": "MUG", "delta": 1}]}),
    ("inventory-feed", {**FEED_OK, "mode": "delta", "items": [{"sku": "MUG", "delta": -1}]}),
    ("inventory-feed", {**FEED_OK, "node_id": "has space"}),
    ("node", NODE_DC),
    ("node", {**NODE_DC, "address": {**NODE_DC["address"], "planet": "Earth"}}),
    ("node", {**NODE_DC, "webhook": {"url": "https://h.example.com", "secret": "whsec_x"}}),
    ("customer", {"name": "A", "tier": "vip", "email": "a@example.com"}),
    ("customer", {"name": "A", "tier": "vip", "email": "nobody"}),
    ("customer", {"name": "A", "tier": "vip", "addresses": [{"address_id": "h"}]}),
    ("transfer", {"transfer_id": "T", "sku": "S", "qty": 0, "destination_node_id": "D"}),
]


@pytest.mark.parametrize(("schema", "document"), AGREEMENT_CASES)
def test_fast_and_detailed_validators_agree(schema, document):
    catalogue = Catalogue("schemas")
    detailed = list(catalogue.validator(schema).iter_errors(document))
    assert catalogue.fast_validator(schema).is_valid(document) == (not detailed)


def test_every_error_code_is_in_the_readmes_table():
    """A code the service can answer with is one a client can look up."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text()
    start = readme.index("### Errors")
    table = readme[start : readme.index("\n## ", start)]
    listed = set(re.findall(r"`([a-z_]+)`", table))
    used = {
        code
        for path in (root / "app").rglob("*.py")
        for code in re.findall(r'\bcode ?= ?"([a-z_]+)"', path.read_text())
    }
    assert used, "no error code found in app/"
    assert used <= listed, f"missing from the README's error table: {sorted(used - listed)}"
