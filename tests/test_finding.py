"""Finding things: orders, decisions and replays listed newest first, filtered, a page at a
time with cursors, or exported whole as CSV or JSON lines."""

from __future__ import annotations

import csv
import io
import json

import pytest

from app.platform import auth
from tests.conftest import Api
from tests.sourcing_helpers import build_network, order, set_stock


@pytest.fixture
def shop(admin, db):
    """Twelve orders: MUG from DC1, CUP from ST1 (and some of both), web and app."""
    build_network(admin)
    set_stock(admin, "DC1", {"MUG": 100})
    set_stock(admin, "ST1", {"CUP": 100})
    placed = []
    for n in range(12):
        lines = (
            [("MUG", 1, 5.0)]
            if n % 3 == 0
            else [("CUP", 1, 2.0)]
            if n % 3 == 1
            else [
                ("MUG", 1, 5.0),
                ("CUP", 1, 2.0),
            ]
        )
        body = order(f"o{n:02d}", lines, channel="app" if n % 2 else "web")
        answer = admin.post("/v1/orders", json=body)
        assert answer.status_code == 201, answer.get_json()
        placed.append(answer.get_json())
    return placed


def every_page(api, path: str, name: str, limit: int = 5) -> list[dict]:
    items, cursor = [], None
    while True:
        joiner = "&" if "?" in path else "?"
        query = f"{path}{joiner}limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        page = api.get(query).get_json()
        items.extend(page[name])
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def test_orders_page_newest_first_without_gaps_or_repeats(admin, shop):
    orders = every_page(admin, "/v1/orders", "orders", 5)
    assert [o["order_id"] for o in orders] == [f"o{n:02d}" for n in reversed(range(12))]
    first = admin.get("/v1/orders?limit=5").get_json()
    assert len(first["orders"]) == 5 and first["next_cursor"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("sku=CUP", {n for n in range(12) if n % 3 != 0}),
        ("node_id=DC1", {n for n in range(12) if n % 3 != 1}),
        ("channel=app", {n for n in range(12) if n % 2}),
        ("status=sourced&sku=MUG&channel=web", {n for n in range(12) if n % 3 != 1 and not n % 2}),
        ("created_after=2000-01-01T00:00:00Z&created_before=2000-01-02T00:00:00Z", set()),
    ],
)
def test_orders_are_filtered(admin, shop, query, expected):
    found = every_page(admin, f"/v1/orders?{query}", "orders", 4)
    assert {int(o["order_id"][1:]) for o in found} == expected


def test_a_channel_key_finds_only_its_channels_orders(client, db, shop):
    web = Api(client, auth.create_key(db, "channel", channels=["web"])[1])
    found = every_page(web, "/v1/orders", "orders")
    assert {o["channel"] for o in found} == {"web"} and len(found) == 6


def test_decisions_are_found_by_rule_node_order_and_version(admin, shop):
    everything = every_page(admin, "/v1/decisions", "decisions", 5)
    assert len(everything) == 12
    by_order = admin.get("/v1/decisions?order_id=o03").get_json()["decisions"]
    assert [d["decision_id"] for d in by_order] == [shop[3]["decision_id"]]
    from_dc = every_page(admin, "/v1/decisions?node_id=DC1", "decisions")
    assert len(from_dc) == 8
    fired = shop[0]["explanation"]["rules_fired"]
    assert fired, "the shipped rules fire on every order"
    with_rule = every_page(admin, f"/v1/decisions?rule={fired[0]}", "decisions")
    assert shop[0]["decision_id"] in {d["decision_id"] for d in with_rule}
    assert every_page(admin, "/v1/decisions?rule=no-such-rule", "decisions") == []
    assert len(every_page(admin, "/v1/decisions?ruleset_version=1", "decisions")) == 12
    assert every_page(admin, "/v1/decisions?ruleset_version=2", "decisions") == []


def test_lists_export_whole_as_csv_and_json_lines(admin, shop):
    answer = admin.client.get("/v1/orders?limit=2", headers={**admin.headers, "Accept": "text/csv"})
    assert answer.status_code == 200
    assert answer.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    assert len(rows) == 12  # an export is the whole list, not a page
    assert rows[0]["order_id"] == "o11"
    lines = admin.client.get(
        "/v1/decisions?node_id=DC1", headers={**admin.headers, "Accept": "application/x-ndjson"}
    )
    decoded = [json.loads(line) for line in lines.get_data(as_text=True).splitlines()]
    assert len(decoded) == 8 and all("decision_id" in d for d in decoded)


def test_a_cursor_that_was_not_given_is_refused(admin, shop):
    answer = admin.get("/v1/orders?cursor=not-a-cursor")
    assert answer.status_code == 422
    assert answer.get_json()["error"]["errors"][0]["pointer"] == "/cursor"
    assert admin.get("/v1/orders?limit=0").status_code == 422
