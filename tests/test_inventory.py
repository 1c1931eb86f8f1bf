"""ATP, safety stock, in-transit supply and availability across the network."""

from __future__ import annotations

from tests.conftest import snapshot


def stock_up(admin, node_id, items, feed_id=None):
    feed = snapshot(feed_id or f"f-{node_id}", node_id, items)
    assert admin.post("/v1/inventory/feeds", json=feed).status_code == 201


def row(admin, sku, node_id):
    view = admin.get(f"/v1/inventory/{sku}").get_json()
    return next(r for r in view["nodes"] if r["node_id"] == node_id)


def test_atp_subtracts_reservations_and_safety_stock(admin, network, db):
    from app.domain.network import reservations

    stock_up(admin, "DC1", [{"sku": "MUG", "on_hand": 10}])
    reservations.reserve(db, [reservations.Request("DC1", "MUG", 3)], ttl_seconds=60)
    assert admin.put("/v1/safety-stock/defaults/dc", json={"quantity": 2}).status_code == 200
    r = row(admin, "MUG", "DC1")
    assert (r["on_hand"], r["reserved"], r["safety_stock"], r["atp"]) == (10, 3, 2, 5)
    # a node's own safety stock overrides its type's default
    assert admin.put("/v1/nodes/DC1/safety-stock/MUG", json={"quantity": 9}).status_code == 200
    r = row(admin, "MUG", "DC1")
    assert (r["safety_stock"], r["atp"]) == (9, 0)  # never below zero
    assert admin.get("/v1/safety-stock/defaults").get_json() == {"defaults": {"dc": 2}}


def test_safety_stock_for_unknown_things_is_404(admin, network):
    assert admin.put("/v1/nodes/NOPE/safety-stock/MUG", json={"quantity": 1}).status_code == 404
    assert admin.put("/v1/nodes/DC1/safety-stock/NOPE", json={"quantity": 1}).status_code == 404
    assert admin.put("/v1/safety-stock/defaults/shed", json={"quantity": 1}).status_code == 404


def test_a_lapsed_hold_counts_until_it_is_expired(admin, network, db):
    from datetime import UTC, datetime, timedelta

    from app.domain.network import reservations

    stock_up(admin, "DC1", [{"sku": "MUG", "on_hand": 10}])
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    reservations.reserve(db, [reservations.Request("DC1", "MUG", 4)], 60, now=long_ago)
    # Stock comes back only with the transaction that ends the hold, never silently.
    assert row(admin, "MUG", "DC1")["atp"] == 6
    assert reservations.expire(db) == 1
    assert row(admin, "MUG", "DC1")["atp"] == 10


def test_inventory_view_totals_by_node_type(admin, network):
    stock_up(admin, "DC1", [{"sku": "MUG", "on_hand": 10}])
    stock_up(admin, "ST1", [{"sku": "MUG", "on_hand": 3}])
    stock_up(admin, "ST2", [{"sku": "MUG", "on_hand": 4}])
    view = admin.get("/v1/inventory/MUG").get_json()
    assert view["totals_by_node_type"]["store"]["on_hand"] == 7
    assert view["totals_by_node_type"]["dc"]["atp"] == 10
    assert view["network"]["atp"] == 17
    assert all(r["feed_age_seconds"] > 0 for r in view["nodes"])


def test_transfer_in_transit_then_received(admin, network):
    transfer = {
        "transfer_id": "T1",
        "sku": "MUG",
        "qty": 12,
        "origin_node_id": "DC1",
        "destination_node_id": "ST1",
        "eta": "2026-11-27T09:00:00Z",
    }
    assert admin.post("/v1/inventory/transfers", json=transfer).status_code == 201
    assert admin.post("/v1/inventory/transfers", json=transfer).status_code == 200
    conflict = admin.post("/v1/inventory/transfers", json={**transfer, "qty": 13})
    assert conflict.status_code == 409
    view = admin.get("/v1/inventory/MUG").get_json()
    st1 = next(r for r in view["nodes"] if r["node_id"] == "ST1")
    assert st1["in_transit"] == [
        {"transfer_id": "T1", "qty": 12, "eta": "2026-11-27T09:00:00.000000Z"}
    ]
    assert st1["atp"] == 0  # in transit is not on hand
    assert view["network"]["in_transit"] == 12

    response = admin.post("/v1/inventory/transfers/T1/receipt", json={"received_qty": 11})
    assert response.status_code == 201
    assert response.get_json()["status"] == "received"
    assert row(admin, "MUG", "ST1")["on_hand"] == 11
    assert row(admin, "MUG", "ST1")["in_transit"] == []
    # the same receipt again is a replay; a different one is a conflict
    again = admin.post("/v1/inventory/transfers/T1/receipt", json={"received_qty": 11})
    assert again.status_code == 200
    assert row(admin, "MUG", "ST1")["on_hand"] == 11
    assert admin.post("/v1/inventory/transfers/T1/receipt", json={}).status_code == 409


def test_transfer_references_are_checked(admin, network):
    bad = {
        "transfer_id": "T2",
        "sku": "GHOST",
        "qty": 1,
        "origin_node_id": "NOPE",
        "destination_node_id": "ALSO-NOPE",
        "eta": "2026-11-27T09:00:00Z",
    }
    response = admin.post("/v1/inventory/transfers", json=bad)
    assert response.status_code == 422
    assert {e["pointer"] for e in response.get_json()["error"]["errors"]} == {
        "/sku",
        "/origin_node_id",
        "/destination_node_id",
    }


def test_receipt_by_another_nodes_key_is_403(admin, network, client):
    transfer = {
        "transfer_id": "T3",
        "sku": "MUG",
        "qty": 1,
        "destination_node_id": "ST1",
        "eta": "2026-11-27T09:00:00Z",
    }
    admin.post("/v1/inventory/transfers", json=transfer)
    headers = {"Authorization": f"Bearer {network['node_key']}"}  # bound to DC1
    response = client.post("/v1/inventory/transfers/T3/receipt", json={}, headers=headers)
    assert response.status_code == 403


def test_availability_nearest_first_and_within_radius(admin, network):
    stock_up(admin, "DC1", [{"sku": "MUG", "on_hand": 10}, {"sku": "CUP", "on_hand": 1}])
    stock_up(admin, "ST1", [{"sku": "MUG", "on_hand": 3}])
    stock_up(admin, "ST2", [{"sku": "MUG", "on_hand": 4}])
    # Leicester city centre: ST1 is there, DC1 ~22 km away, ST2 (Manchester) ~130 km
    response = admin.get("/v1/availability?sku=MUG&sku=CUP&lat=52.6369&lon=-1.1398")
    result = {s["sku"]: s for s in response.get_json()["skus"]}
    assert [n["node_id"] for n in result["MUG"]["nodes"]] == ["ST1", "DC1", "ST2"]
    assert result["MUG"]["atp"] == 17
    assert result["CUP"]["atp"] == 1
    near = admin.get("/v1/availability?sku=MUG&lat=52.6369&lon=-1.1398&radius_km=50").get_json()
    assert [n["node_id"] for n in near["skus"][0]["nodes"]] == ["ST1", "DC1"]
    assert near["skus"][0]["atp"] == 13


def test_inactive_nodes_promise_nothing(admin, network):
    from tests.conftest import store

    stock_up(admin, "ST1", [{"sku": "MUG", "on_hand": 3}])
    admin.put("/v1/nodes/ST1", json={**store(52.6369, -1.1398), "active": False})
    result = admin.get("/v1/availability?sku=MUG").get_json()
    assert result["skus"][0]["atp"] == 0
    assert row(admin, "MUG", "ST1")["atp"] == 0
