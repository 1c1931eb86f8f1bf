"""Nodes and SKUs."""

from __future__ import annotations

import logging

import pytest

from tests.conftest import NODE_DC, SKU, store

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_put_creates_then_replaces(admin):
    assert admin.put("/v1/nodes/DC1", json=NODE_DC).status_code == 201
    response = admin.put("/v1/nodes/DC1", json={**NODE_DC, "name": "Renamed"})
    assert response.status_code == 200
    node = admin.get("/v1/nodes/DC1").get_json()
    assert node["name"] == "Renamed"
    assert node["address"]["lat"] == 52.456
    assert node["active"] is True


def test_webhook_secret_is_write_only(admin, caplog):
    caplog.set_level(logging.DEBUG)
    body = {**NODE_DC, "webhook": {"url": "https://wms.example.com/hooks", "secret": SECRET}}
    responses = [
        admin.put("/v1/nodes/DC1", json=body),
        admin.get("/v1/nodes/DC1"),
        admin.get("/v1/nodes"),
    ]
    for response in responses:
        assert SECRET not in response.get_data(as_text=True)
        assert SECRET[6:] not in response.get_data(as_text=True)
    assert responses[1].get_json()["webhook"] == {
        "url": "https://wms.example.com/hooks",
        "secret_set": True,
        "failures": 0,
        "disabled_at": None,
        "disabled_reason": None,
    }
    assert SECRET not in caplog.text


def test_webhook_url_change_keeps_the_secret_encrypted_at_rest(app, admin, db):
    body = {**NODE_DC, "webhook": {"url": "https://a.example.com/h", "secret": SECRET}}
    admin.put("/v1/nodes/DC1", json=body)
    admin.put("/v1/nodes/DC1", json={**NODE_DC, "webhook": {"url": "https://b.example.com/h"}})
    url, stored = db.execute("SELECT webhook_url, webhook_secret FROM nodes").fetchone()
    assert url == "https://b.example.com/h"
    assert stored.startswith("fernet:") and SECRET not in stored
    assert app.extensions["dom.vault"].unseal(stored) == SECRET


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        ({"timezone": "Mars/Olympus"}, "/timezone"),
        ({"capabilities": ["ship", "teleport"]}, "/capabilities/1"),
        ({"webhook": {"url": "ftp://x.example.com"}}, "/webhook/url"),
        ({"webhook": {"url": "https://x.example.com", "secret": "hunter2"}}, "/webhook/secret"),
        ({"address": {**NODE_DC["address"], "lat": 123}}, "/address/lat"),
        ({"daily_capacity": 1.5}, "/daily_capacity"),
    ],
)
def test_invalid_nodes(admin, change, pointer):
    response = admin.put("/v1/nodes/DC1", json={**NODE_DC, **change})
    assert response.status_code == 422
    assert [e["pointer"] for e in response.get_json()["error"]["errors"]] == [pointer]
    assert admin.get("/v1/nodes/DC1").status_code == 404


def test_list_filters_by_type_and_active(admin):
    admin.put("/v1/nodes/DC1", json=NODE_DC)
    admin.put("/v1/nodes/ST1", json=store(52.6, -1.1))
    admin.put("/v1/nodes/ST2", json={**store(53.4, -2.2), "active": False})

    def ids(query):
        response = admin.get(f"/v1/nodes{query}")
        assert response.status_code == 200
        return [n["node_id"] for n in response.get_json()["nodes"]]

    assert ids("") == ["DC1", "ST1", "ST2"]
    assert ids("?type=store") == ["ST1", "ST2"]
    assert ids("?type=store&active=true") == ["ST1"]
    assert ids("?active=false") == ["ST2"]
    assert admin.get("/v1/nodes?type=shed").status_code == 422
    assert admin.get("/v1/nodes?active=maybe").status_code == 422


def test_sku_with_dropship_suppliers(admin):
    supplier = {**NODE_DC, "type": "supplier", "capabilities": ["ship", "dropship"]}
    admin.put("/v1/nodes/SUP1", json=supplier)
    admin.put("/v1/nodes/DC1", json=NODE_DC)
    body = {**SKU, "suppliers": [{"node_id": "SUP1", "cost": 12.5, "lead_time_days": 3}]}
    assert admin.put("/v1/skus/SOFA", json=body).status_code == 201
    sku = admin.get("/v1/skus/SOFA").get_json()
    assert sku["dropship"] is True
    assert sku["suppliers"] == [{"node_id": "SUP1", "cost": 12.5, "lead_time_days": 3}]

    bad = {**SKU, "suppliers": [{"node_id": "DC1", "cost": 1}, {"node_id": "GHOST", "cost": 1}]}
    response = admin.put("/v1/skus/SOFA", json=bad)
    assert response.status_code == 422
    assert [e["pointer"] for e in response.get_json()["error"]["errors"]] == [
        "/suppliers/0/node_id",
        "/suppliers/1/node_id",
    ]
    # the failed replace left the SKU as it was
    assert admin.get("/v1/skus/SOFA").get_json()["suppliers"][0]["node_id"] == "SUP1"
