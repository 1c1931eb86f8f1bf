"""Least privilege: each role sees and does what the README's role table says, no more."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet

from app import create_app
from app.edges.api.openapi import routes
from app.edges.cli import main
from app.platform import auth
from app.platform import db as database
from tests.conftest import NODE_DC, Api, snapshot, sqlite_only, store
from tests.sourcing_helpers import build_network, order, set_stock

MARKERS = ("Zebedee Marker", "zeb@marker.example", "7700900123", "77 Marker Street", "MK1 1MK")
MARKED_ADDRESS = {
    "lines": ["77 Marker Street"],
    "city": "Leicester",
    "postcode": "MK1 1MK",
    "country": "GB",
    "lat": 52.61234,
    "lon": -1.14321,
}


@pytest.fixture
def shop(admin, network):
    build_network(admin)
    set_stock(admin, "DC1", {"MUG": 20})
    marked = {
        "name": "Zebedee Marker",
        "email": "zeb@marker.example",
        "phone": "+447700900123",
        "tier": "standard",
        "addresses": [{"address_id": "home", **MARKED_ADDRESS}],
    }
    response = admin.put("/v1/customers/CZ", json=marked)
    assert response.status_code == 201, response.get_json()
    return admin


def place(api, order_id, channel="web", customer="C1", address=None):
    body = order(order_id, [("MUG", 1, 10.0)], customer=customer)
    body["channel"] = channel
    if address:
        body["delivery"]["address"] = address
    return api.post("/v1/orders", json=body)


def test_analysts_see_no_personal_data_on_any_endpoint_they_may_call(app, shop, client, db):
    decision = place(shop, "marked", customer="CZ", address=MARKED_ADDRESS).get_json()
    analyst = Api(client, auth.create_key(db, "analyst")[1])
    values = {
        "order_id": "marked",
        "decision_id": decision["decision_id"],
        "node_id": "DC1",
        "sku": "MUG",
        "name": "sourcing",
        "version": "1",
    }
    checked = []
    for path, method, spec, arguments in routes(app):
        if spec.roles is None or "analyst" not in spec.roles or method != "GET":
            continue
        concrete = path
        for argument in arguments:
            concrete = concrete.replace("{" + argument + "}", values.get(argument, "x"))
        query = "?sku=MUG" if path.endswith("/availability") else ""
        response = analyst.get(concrete + query)
        text = response.get_data(as_text=True)
        leaked = [marker for marker in MARKERS if marker in text]
        assert not leaked, (path, leaked)
        assert "52.61234" not in text and "-1.14321" not in text, path
        checked.append((path, response.status_code))
    assert ("/v1/orders/{order_id}", 200) in checked
    assert ("/v1/decisions/{decision_id}", 200) in checked
    replay = analyst.post(f"/v1/decisions/{decision['decision_id']}/replay", json={})
    assert replay.status_code == 200
    assert not [m for m in MARKERS if m in replay.get_data(as_text=True)]
    seen = analyst.get("/v1/orders/marked").get_json()
    assert seen["delivery"] == {"method": "ship", "country": "GB"}
    # Those who fulfil the order still see where it goes.
    assert shop.get("/v1/orders/marked").get_json()["delivery"]["address"] == MARKED_ADDRESS


def test_a_channel_key_acts_only_for_its_channels(shop, client, db):
    web = Api(client, auth.create_key(db, "channel", channels=["web"])[1])
    app_key = Api(client, auth.create_key(db, "channel", channels=["app"])[1])
    assert place(web, "w1").status_code == 201
    assert place(app_key, "a1", channel="app").status_code == 201
    refused = place(web, "w2", channel="app")
    assert refused.status_code == 403
    # The other channel's orders are as if absent: no reading, no cancelling, no decisions.
    assert web.get("/v1/orders/a1").status_code == 404
    assert web.post("/v1/orders/a1/cancel").status_code == 404
    assert app_key.get("/v1/orders/a1").get_json()["status"] == "sourced"
    decision_id = app_key.get("/v1/orders/a1").get_json()["decisions"][0]["decision_id"]
    assert web.get(f"/v1/decisions/{decision_id}").status_code == 404
    assert web.get(f"/v1/decisions/{decision_id}/why-not/DC1").status_code == 404
    what_if = order("what-if", [("MUG", 1, 5.0)])
    assert web.post("/v1/decisions/simulate", json={**what_if, "channel": "app"}).status_code == 403
    hook = {"url": "https://hooks.example.com/x", "event_types": ["order.status_changed"]}
    assert web.post("/v1/subscriptions", json={**hook, "channel": "app"}).status_code == 403
    mine = web.post("/v1/subscriptions", json=hook)
    assert mine.status_code == 201 and mine.get_json()["channel"] == "web"


def test_node_keys_read_only_their_transfers_and_feed_ids_are_their_own(admin, network, client, db):
    admin.put("/v1/nodes/DC2", json={**NODE_DC, "name": "North DC"})
    admin.put("/v1/nodes/ST9", json=store(52.6, -1.1))
    dc1 = Api(client, network["node_key"])
    dc2 = Api(client, auth.create_key(db, "node", "DC2")[1])
    transfer = {
        "transfer_id": "T1",
        "sku": "MUG",
        "qty": 5,
        "origin_node_id": "DC2",
        "destination_node_id": "ST9",
        "eta": "2030-01-01T00:00:00Z",
    }
    assert dc2.post("/v1/inventory/transfers", json=transfer).status_code == 201
    assert dc2.get("/v1/inventory/transfers/T1").status_code == 200
    assert dc1.get("/v1/inventory/transfers/T1").status_code == 404
    # The same feed id at two nodes is two feeds; neither learns of the other.
    one = dc1.post(
        "/v1/inventory/feeds", json=snapshot("daily", "DC1", [{"sku": "MUG", "on_hand": 3}])
    )
    two = dc2.post(
        "/v1/inventory/feeds", json=snapshot("daily", "DC2", [{"sku": "MUG", "on_hand": 4}])
    )
    assert (one.status_code, two.status_code) == (201, 201)


def test_only_admins_see_webhook_endpoints(admin, network, client, db):
    hook = {"url": "https://wms.example.com/hooks", "secret": "whsec_" + "A" * 32}
    admin.put("/v1/nodes/DC1", json={**NODE_DC, "webhook": hook})
    assert admin.get("/v1/nodes/DC1").get_json()["webhook"]["url"] == hook["url"]
    for role, key in (
        ("analyst", auth.create_key(db, "analyst")[1]),
        ("channel", auth.create_key(db, "channel")[1]),
        ("node", network["node_key"]),
    ):
        reader = Api(client, key)
        for document in (
            reader.get("/v1/nodes/DC1").get_json(),
            *reader.get("/v1/nodes").get_json()["nodes"],
        ):
            assert "webhook" not in document, role
            assert "wms.example.com" not in json.dumps(document), role


@sqlite_only
def test_the_database_file_is_readable_by_its_owner_only(app, db_path, admin):
    for path in (db_path, db_path + ".key"):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path


def test_secrets_are_encrypted_at_rest_and_rotate_to_a_new_key(tmp_path, monkeypatch):
    path = str(tmp_path / "rotate.db")
    old_key = Fernet.generate_key().decode()
    app = create_app({"DATABASE": path, "SECRET_KEYS": old_key})
    connection = database.open_from_config(app.config)
    admin = Api(app.test_client(), auth.create_key(connection, "admin")[1])
    secret = "whsec_" + "B" * 32
    hook = {"url": "https://wms.example.com/hooks", "secret": secret}
    assert admin.put("/v1/nodes/DC1", json={**NODE_DC, "webhook": hook}).status_code == 201
    before = connection.execute("SELECT webhook_secret FROM nodes").fetchone()[0]
    on_disk = b"".join(
        Path(name).read_bytes() for name in (path, path + "-wal") if os.path.exists(name)
    )
    assert secret.encode() not in on_disk
    new_key = Fernet.generate_key().decode()
    monkeypatch.setenv("DOM_DATABASE", path)
    monkeypatch.setenv("DOM_SECRET_KEYS", f"{new_key},{old_key}")
    result = CliRunner().invoke(main, ["secrets", "rotate"])
    assert result.exit_code == 0, result.output
    after = connection.execute("SELECT webhook_secret FROM nodes").fetchone()[0]
    assert after != before
    rotated = create_app({"DATABASE": path, "SECRET_KEYS": new_key})
    assert rotated.extensions["dom.vault"].unseal(after) == secret
    connection.close()
