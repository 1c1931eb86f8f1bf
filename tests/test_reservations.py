"""Reservations: atomic, all-or-nothing, and never more than ATP under concurrency."""

from __future__ import annotations

import multiprocessing
import threading

import pytest

from app.domain.network import reservations, stock
from app.domain.network.reservations import InsufficientStock, Request
from app.platform import db as database
from tests.conftest import snapshot


@pytest.fixture
def mugs(admin, network):
    feed = snapshot("f", "DC1", [{"sku": "MUG", "on_hand": 20}, {"sku": "CUP", "on_hand": 2}])
    assert admin.post("/v1/inventory/feeds", json=feed).status_code == 201


def test_reserve_release_consume(db, mugs):
    [held] = reservations.reserve(db, [Request("DC1", "MUG", 5, "order-1/line-1")], 60)
    assert stock.atp(db, "DC1", "MUG") == 15
    assert reservations.release(db, held["reservation_id"])["status"] == "released"
    assert reservations.release(db, held["reservation_id"])["status"] == "released"  # no-op
    assert stock.atp(db, "DC1", "MUG") == 20

    [shipped] = reservations.reserve(db, [Request("DC1", "MUG", 4)], 60)
    assert reservations.consume(db, shipped["reservation_id"])["status"] == "consumed"
    on_hand = stock.positions(db, ["MUG"])[0]["on_hand"]
    assert on_hand == 16
    assert stock.atp(db, "DC1", "MUG") == 16
    with pytest.raises(reservations.ReservationClosed):
        reservations.release(db, shipped["reservation_id"])
    assert [r["reference"] for r in reservations.for_reference(db, "order-1/line-1")] == [
        "order-1/line-1"
    ]


def test_all_or_nothing(db, mugs):
    with pytest.raises(InsufficientStock) as caught:
        reservations.reserve(db, [Request("DC1", "MUG", 5), Request("DC1", "CUP", 3)], 60)
    assert (caught.value.sku, caught.value.available) == ("CUP", 2)
    assert stock.atp(db, "DC1", "MUG") == 20


def test_requests_for_the_same_stock_add_up(db, mugs):
    with pytest.raises(InsufficientStock):
        reservations.reserve(db, [Request("DC1", "CUP", 1), Request("DC1", "CUP", 2)], 60)


def test_failed_reserve_in_an_outer_transaction_keeps_the_outer_work(db, mugs):
    with database.immediate(db):
        reservations.reserve(db, [Request("DC1", "MUG", 1)], 60)
        with pytest.raises(InsufficientStock):
            reservations.reserve(db, [Request("DC1", "CUP", 9)], 60)
    assert stock.atp(db, "DC1", "MUG") == 19


def _reserve_until_refused(path: str, count: int, results) -> None:
    connection = database.open_database(path)
    try:
        for _ in range(count):
            try:
                reservations.reserve(connection, [Request("DC1", "MUG", 1)], 60)
                results.append(1)
            except InsufficientStock:
                results.append(0)
    finally:
        connection.close()


def test_many_threads_never_reserve_more_than_atp(db_path, db, mugs):
    results: list[int] = []
    threads = [
        threading.Thread(target=_reserve_until_refused, args=(db_path, 5, results))
        for _ in range(12)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 60
    assert sum(results) == 20
    assert stock.atp(db, "DC1", "MUG") == 0
    total = db.execute(
        "SELECT SUM(qty) FROM reservations WHERE status = 'active' AND sku = 'MUG'"
    ).fetchone()[0]
    assert total == 20


@pytest.mark.slow
def test_many_processes_never_reserve_more_than_atp(db_path, db, mugs):
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        results = manager.list()
        processes = [
            context.Process(target=_reserve_until_refused, args=(db_path, 8, results))
            for _ in range(4)
        ]
        for process in processes:
            process.start()
        for process in processes:
            process.join(60)
            assert process.exitcode == 0
        outcomes = list(results)
    assert len(outcomes) == 32
    assert sum(outcomes) == 20
    assert stock.atp(db, "DC1", "MUG") == 0


def test_ttl_must_be_positive(db, mugs):
    with pytest.raises(ValueError):
        reservations.reserve(db, [Request("DC1", "MUG", 1)], 0)
