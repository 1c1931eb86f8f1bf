"""Inventory feeds: snapshots, deltas, ordering, idempotency, all-or-nothing."""

from __future__ import annotations

import pytest

from tests.conftest import delta, snapshot


def on_hand(admin, sku="MUG", node_id="DC1"):
    rows = admin.get(f"/v1/inventory/{sku}").get_json()["nodes"]
    return next((r["on_hand"] for r in rows if r["node_id"] == node_id), None)


def post(admin, feed):
    return admin.post("/v1/inventory/feeds", json=feed)


# Each case: feeds applied in order, then the expected on-hand of MUG at DC1.
CASES = [
    ("snapshot sets", [snapshot("a", "DC1", [{"sku": "MUG", "on_hand": 7}])], 7),
    (
        "delta adds to the snapshot",
        [
            snapshot("a", "DC1", [{"sku": "MUG", "on_hand": 7}]),
            delta("b", "DC1", [{"sku": "MUG", "delta": -3}]),
            delta("c", "DC1", [{"sku": "MUG", "delta": 5}]),
        ],
        9,
    ),
    (
        "older snapshot after newer is skipped",
        [
            snapshot("new", "DC1", [{"sku": "MUG", "on_hand": 4}], as_of="2026-11-25T12:00:00Z"),
            snapshot("old", "DC1", [{"sku": "MUG", "on_hand": 40}], as_of="2026-11-25T08:00:00Z"),
        ],
        4,
    ),
    (
        "delta older than the snapshot is already counted",
        [
            snapshot("s", "DC1", [{"sku": "MUG", "on_hand": 10}], as_of="2026-11-25T12:00:00Z"),
            delta("d", "DC1", [{"sku": "MUG", "delta": -2}], as_of="2026-11-25T11:00:00Z"),
        ],
        10,
    ),
    (
        "deltas out of order both count",
        [
            snapshot("s", "DC1", [{"sku": "MUG", "on_hand": 10}], as_of="2026-11-25T09:00:00Z"),
            delta("d2", "DC1", [{"sku": "MUG", "delta": -2}], as_of="2026-11-25T11:00:00Z"),
            delta("d1", "DC1", [{"sku": "MUG", "delta": -1}], as_of="2026-11-25T10:00:00Z"),
        ],
        7,
    ),
    (
        "snapshot older than an applied delta is skipped",
        [
            delta("d", "DC1", [{"sku": "MUG", "delta": 3}], as_of="2026-11-25T11:00:00Z"),
            snapshot("s", "DC1", [{"sku": "MUG", "on_hand": 50}], as_of="2026-11-25T10:00:00Z"),
        ],
        3,
    ),
    (
        "time zones compare as instants",
        [
            snapshot("a", "DC1", [{"sku": "MUG", "on_hand": 1}], as_of="2026-11-25T12:00:00+01:00"),
            snapshot("b", "DC1", [{"sku": "MUG", "on_hand": 2}], as_of="2026-11-25T11:30:00Z"),
        ],
        2,
    ),
]


@pytest.mark.parametrize(("name", "feeds", "expected"), CASES, ids=[c[0] for c in CASES])
def test_feed_sequences(admin, network, name, feeds, expected):
    for feed in feeds:
        assert post(admin, feed).status_code == 201
    assert on_hand(admin) == expected


def test_stale_items_are_reported(admin, network):
    post(
        admin, snapshot("new", "DC1", [{"sku": "MUG", "on_hand": 4}], as_of="2026-11-25T12:00:00Z")
    )
    old = snapshot(
        "old",
        "DC1",
        [{"sku": "CUP", "on_hand": 2}, {"sku": "MUG", "on_hand": 40}],
        as_of="2026-11-25T08:00:00Z",
    )
    result = post(admin, old).get_json()
    assert result["applied"] == 1
    assert result["skipped_count"] == 1
    assert result["skipped"][0]["pointer"] == "/items/1"
    assert result["skipped"][0]["reason"] == "stale"
    assert on_hand(admin, "CUP") == 2


def test_complete_snapshot_zeroes_omitted_skus(admin, network):
    post(admin, snapshot("a", "DC1", [{"sku": "MUG", "on_hand": 5}, {"sku": "CUP", "on_hand": 6}]))
    result = post(
        admin,
        snapshot(
            "b", "DC1", [{"sku": "MUG", "on_hand": 5}], as_of="2026-11-25T13:00:00Z", complete=True
        ),
    ).get_json()
    assert result["zeroed"] == 1
    assert on_hand(admin, "CUP") == 0
    assert on_hand(admin, "MUG") == 5


def test_incomplete_snapshot_leaves_omitted_skus(admin, network):
    post(admin, snapshot("a", "DC1", [{"sku": "MUG", "on_hand": 5}, {"sku": "CUP", "on_hand": 6}]))
    post(admin, snapshot("b", "DC1", [{"sku": "MUG", "on_hand": 1}], as_of="2026-11-25T13:00:00Z"))
    assert on_hand(admin, "CUP") == 6


def test_replay_returns_first_result_and_changes_nothing(admin, network):
    feed = delta("d", "DC1", [{"sku": "MUG", "delta": 5}])
    first = post(admin, feed)
    assert first.status_code == 201
    again = post(admin, feed)
    assert again.status_code == 200
    body = again.get_json()
    assert body.pop("replayed") is True
    expected = first.get_json()
    expected.pop("replayed")
    assert body == expected
    assert on_hand(admin) == 5


@pytest.mark.parametrize(
    ("items", "pointers"),
    [
        ([{"sku": "MUG", "delta": 2}, {"sku": "CUP", "delta": -1}], ["/items/1/delta"]),
        ([{"sku": "GHOST", "delta": 1}, {"sku": "MUG", "delta": 1}], ["/items/0/sku"]),
        ([{"sku": "MUG", "delta": 1}, {"sku": "MUG", "delta": 1}], ["/items/1/sku"]),
    ],
)
def test_one_bad_item_rejects_the_whole_feed(admin, network, items, pointers):
    response = post(admin, delta("bad", "DC1", items))
    assert response.status_code == 422
    assert [e["pointer"] for e in response.get_json()["error"]["errors"]] == pointers
    assert on_hand(admin) is None
    # nothing recorded either: the corrected feed can reuse the id
    fixed = delta("bad", "DC1", [{"sku": "MUG", "delta": 1}])
    assert post(admin, fixed).status_code == 201


def test_unknown_node_is_422(admin, network):
    response = post(admin, snapshot("x", "NOWHERE", [{"sku": "MUG", "on_hand": 1}]))
    assert response.status_code == 422
    assert response.get_json()["error"]["errors"][0]["pointer"] == "/node_id"


def test_modes_take_their_own_fields(admin, network):
    mixed = snapshot("x", "DC1", [{"sku": "MUG", "delta": 1}])
    response = post(admin, mixed)
    assert {e["pointer"] for e in response.get_json()["error"]["errors"]} == {
        "/items/0/delta",
        "/items/0/on_hand",
    }
    complete_delta = {**delta("y", "DC1", [{"sku": "MUG", "delta": 1}]), "complete": True}
    assert post(admin, complete_delta).status_code == 422


@pytest.mark.slow
def test_large_snapshot_applies_in_one_transaction(admin, network, db):
    from app.platform import db as database

    with database.atomic(db):
        db.executemany(
            "INSERT INTO skus (sku, name, weight_kg, category, created_at, updated_at)"
            " VALUES (?, 'bulk', 1, 'bulk', '', '')",
            [(f"B{i:06d}",) for i in range(100_000)],
        )
    items = [{"sku": f"B{i:06d}", "on_hand": i % 50} for i in range(100_000)]
    response = post(admin, snapshot("big", "DC1", items))
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["applied"] == 100_000
    count = db.execute("SELECT COUNT(*) FROM stock WHERE node_id = 'DC1'").fetchone()[0]
    assert count == 100_000
    # one bad item at the very end rejects all 100,000
    items[-1] = {"sku": "GHOST", "on_hand": 1}
    response = post(admin, snapshot("big2", "DC1", items, as_of="2026-11-25T15:00:00Z"))
    assert response.status_code == 422
    assert response.get_json()["error"]["errors"][0]["pointer"] == "/items/99999/sku"
    assert (
        db.execute("SELECT MAX(snapshot_as_of) FROM stock")
        .fetchone()[0]
        .startswith("2026-11-25T10")
    )


def test_deltas_racing_on_one_node_lose_no_unit(admin, network, db_path):
    """Each delta reads the node's stock and writes it back: racing ones must take turns."""
    import threading

    from app.domain.network import stock
    from app.platform import db as database

    assert post(admin, snapshot("base", "DC1", [{"sku": "MUG", "on_hand": 0}])).status_code == 201
    failures = []

    def send(number: int) -> None:
        feed = delta(f"d{number}", "DC1", [{"sku": "MUG", "delta": 1}, {"sku": "CUP", "delta": 2}])
        try:
            with database.open_database(db_path) as connection:
                database.retrying(lambda: stock.apply_feed(connection, feed))
        except Exception as exc:  # reported below, with the thread's number
            failures.append((number, exc))

    threads = [threading.Thread(target=send, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert on_hand(admin) == 20
    assert on_hand(admin, "CUP") == 40


def test_a_count_of_many_skus_is_one_raise_and_still_serves_the_orders_waiting(admin, db):
    from app.domain.network import skus, stock
    from tests.sourcing_helpers import build_network, order, set_stock

    build_network(admin)
    set_stock(admin, "DC1", {"MUG": 0})
    waiting = admin.post("/v1/orders", json=order("w", [("MUG", 1, 5.0)])).get_json()
    assert waiting["status"] == "backordered"
    many = [f"S{n:04d}" for n in range(stock.RAISE_EVERY_OVER + 100)]
    for sku in many:
        skus.put(db, sku, {"name": sku, "weight_kg": 1.0, "category": "home"})
    # The raises of a count this big are one row, which any SKU's check sees.
    with _transaction(db):
        stock.note_raised(db, [*many, "MUG"])
    assert [e["sku"] for e in stock.raised(db, ["MUG"])] == [stock.EVERY_SKU]
    assert [e["sku"] for e in stock.raised(db, ["ANY"])] == [stock.EVERY_SKU]
    from app.lifecycle import backorders

    assert backorders.resume_raised(db, ["CUP"]) == []  # nobody waits for stock yet
    assert stock.raised(db) == []
    # A count of every SKU at the node, MUG among them: the waiting order is served.
    items = [{"sku": sku, "on_hand": 3} for sku in [*many, "MUG"]]
    applied = post(admin, snapshot("big", "DC1", items, as_of=_now()))
    assert applied.status_code == 201, applied.get_json()
    assert applied.get_json()["backorders_resumed"] == ["w"]
    assert stock.raised(db) == []


def _now():
    from app.platform.db import now

    return now()


def _transaction(db):
    from app.platform import db as database

    return database.atomic(db)
