"""Customer profiles, addresses and personal data."""

from __future__ import annotations

import pytest

from app import create_app
from app.domain import customers
from app.platform import db as database
from tests.databases import ON_POSTGRES

ADDRESS = {
    "address_id": "home",
    "label": "home",
    "lines": ["10 Downing Street"],
    "city": "London",
    "postcode": "SW1A 2AA",
    "country": "GB",
    "lat": 51.5034,
    "lon": -0.1276,
}
CUSTOMER = {
    "name": "Ada Lovelace",
    "email": "ada@example.com",
    "phone": "+44 7700 900123",
    "tier": "vip",
    "segments": ["loyal"],
    "addresses": [ADDRESS, {**ADDRESS, "address_id": "work", "label": "work"}],
    "default_address_id": "work",
    "lifetime_orders": 12,
    "lifetime_value": 1830.5,
}


def test_put_and_get(admin, network):
    body = {**CUSTOMER, "preferred_pickup_node_id": "ST1"}
    assert admin.put("/v1/customers/C1", json=body).status_code == 201
    customer = admin.get("/v1/customers/C1").get_json()
    assert customer["email"] == "ada@example.com"
    assert customer["default_address_id"] == "work"
    assert [a["address_id"] for a in customer["addresses"]] == ["home", "work"]
    assert customer["preferred_pickup_node_id"] == "ST1"
    assert admin.put("/v1/customers/C1", json={**body, "tier": "gold"}).status_code == 200
    assert admin.get("/v1/customers/C1").get_json()["tier"] == "gold"


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        ({"default_address_id": "moon"}, "/default_address_id"),
        ({"preferred_pickup_node_id": "NOPE"}, "/preferred_pickup_node_id"),
        ({"preferred_pickup_node_id": "DC1"}, "/preferred_pickup_node_id"),  # DC does no pickup
        ({"addresses": [ADDRESS, ADDRESS]}, "/addresses/1/address_id"),
        ({"email": "not-an-email"}, "/email"),
        ({"addresses": [{**ADDRESS, "country": "United Kingdom"}]}, "/addresses/0/country"),
        ({"addresses": [{**ADDRESS, "planet": "Earth"}]}, "/addresses/0/planet"),
    ],
)
def test_invalid_customers(admin, network, change, pointer):
    response = admin.put("/v1/customers/C1", json={**CUSTOMER, **change})
    assert response.status_code == 422
    assert pointer in [e["pointer"] for e in response.get_json()["error"]["errors"]]
    assert admin.get("/v1/customers/C1").status_code == 404


def test_personal_data_not_stored_when_disabled(db_path, keys):
    app = create_app({"DATABASE": db_path, "STORE_PERSONAL_DATA": False})
    client = app.test_client()
    headers = {"Authorization": f"Bearer {keys['admin']}"}
    assert client.put("/v1/customers/C1", json=CUSTOMER, headers=headers).status_code == 201
    customer = client.get("/v1/customers/C1", headers=headers).get_json()
    assert customer["email"] is None
    assert customer["phone"] is None
    if ON_POSTGRES:
        with database.open_database(db_path) as connection:
            rows = connection.execute("SELECT * FROM customers").fetchall()
        assert "ada@example.com" not in repr([tuple(row) for row in rows])
    else:
        with open(db_path, "rb") as raw:
            assert b"ada@example.com" not in raw.read()


def test_decision_profile_has_no_personal_data(admin, network, db):
    admin.put("/v1/customers/C1", json=CUSTOMER)
    profile = customers.profile_for_decisions(customers.get(db, "C1"))
    assert "email" not in profile
    assert "phone" not in profile
    assert "name" not in profile
    assert profile["tier"] == "vip"


def test_analysts_cannot_read_customers(client, keys, admin, network):
    admin.put("/v1/customers/C1", json=CUSTOMER)
    headers = {"Authorization": f"Bearer {keys['analyst']}"}
    assert client.get("/v1/customers/C1", headers=headers).status_code == 403
