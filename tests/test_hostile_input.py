"""Inputs that once gave 500 or were quietly stored wrong: each now gets 422 (or 413) with
the pointer of what is wrong, and nothing changes."""

from __future__ import annotations

import json
import socket

import pytest

from app.edges.api.openapi import routes
from app.platform import auth
from tests.conftest import NODE_DC, SKU, Api
from tests.servers import serving
from tests.sourcing_helpers import build_network, order, set_stock

TOO_BIG = 2**70
DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.fixture
def shop(admin, network):
    build_network(admin)
    set_stock(admin, "DC1", {"MUG": 10})
    return admin


def keys_for(db) -> dict:
    made = {role: auth.create_key(db, role)[1] for role in ("admin", "analyst", "channel")}
    made["node"] = auth.create_key(db, "node", "DC1")[1]
    return made


def body_routes(app):
    return [
        (path, method, spec)
        for path, method, spec, _ in routes(app)
        if spec.body is not None and spec.roles is not None
    ]


def concrete(path: str) -> str:
    return (
        path.replace("{version}", "1")
        .replace("{name}", "sourcing")
        .replace("{", "")
        .replace("}", "")
    )


def errors_of(response) -> list[str]:
    body = response.get_json()
    assert body is not None, response.data[:200]
    return [e["pointer"] for e in body["error"].get("errors", [])]


def test_json_nested_100000_deep_is_refused_on_every_body_endpoint(app, client, db, shop):
    keys = keys_for(db)
    checked = 0
    for path, method, spec in body_routes(app):
        role = next(r for r in ("admin", "analyst", "channel", "node") if r in spec.roles)
        response = client.open(
            concrete(path),
            method=method,
            data=DEEP,
            content_type="application/json",
            headers={"Authorization": f"Bearer {keys[role]}"},
        )
        assert response.status_code == 422, (path, method, response.status_code)
        assert response.get_json()["error"]["code"] == "invalid_input"
        checked += 1
    assert checked >= 20


@pytest.mark.parametrize(
    ("path", "body", "pointer"),
    [
        (
            "/v1/customers/C9",
            b'{"name": "A", "tier": "standard", "lifetime_value": NaN}',
            "/lifetime_value",
        ),
        (
            "/v1/customers/C9",
            b'{"name": "A", "tier": "standard", "lifetime_value": Infinity}',
            "/lifetime_value",
        ),
        (
            "/v1/customers/C9",
            b'{"name": "A", "tier": "standard", "lifetime_value": 1e400}',
            "/lifetime_value",
        ),
        (
            "/v1/customers/C9",
            b'{"name": "A", "tier": "standard", "lifetime_value": -Infinity}',
            "/lifetime_value",
        ),
        (
            "/v1/customers/C9",
            b'{"name": "A", "tier": "standard", "lifetime_orders": ' + str(TOO_BIG).encode() + b"}",
            "/lifetime_orders",
        ),
    ],
)
def test_numbers_json_does_not_have_are_refused_with_their_pointer(
    admin, network, path, body, pointer
):
    response = admin.client.put(
        path, data=body, content_type="application/json", headers=admin.headers
    )
    assert response.status_code == 422
    assert errors_of(response) == [pointer]
    assert admin.get(path).status_code == 404  # nothing stored


def feed(as_of, **item):
    return {
        "feed_id": "f1",
        "node_id": "DC1",
        "mode": "snapshot" if "on_hand" in item else "delta",
        "as_of": as_of,
        "items": [{"sku": "MUG", **item}],
    }


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        (feed("2026-11-25T06:00:00Z", on_hand=TOO_BIG), "/items/0/on_hand"),
        (feed("2026-11-25T06:00:00Z", on_hand=2**63 - 1), "/items/0/on_hand"),
        (feed("2026-11-25T06:00:00Z", delta=TOO_BIG), "/items/0/delta"),
        (feed("0999-01-01T00:00:00Z", on_hand=1), "/as_of"),
        (feed("9999-12-31T23:59:59-01:00", on_hand=1), "/as_of"),
        (feed("0001-01-01T00:00:00+01:00", on_hand=1), "/as_of"),
        (feed("20261126T010000Z", on_hand=1), "/as_of"),
        (feed("2026-11-26 01:00Z", on_hand=1), "/as_of"),
        (feed("2026-W48-4T01:00:00Z", on_hand=1), "/as_of"),
        (feed("2099-12-31T00:00:00Z", on_hand=1), "/as_of"),  # a count from the future
    ],
)
def test_feeds_with_impossible_numbers_or_times_change_nothing(admin, network, db, body, pointer):
    response = admin.post("/v1/inventory/feeds", json=body)
    assert response.status_code == 422, response.get_json()
    assert errors_of(response) == [pointer]
    assert db.execute("SELECT COUNT(*) FROM feeds").fetchone()[0] == 0


@pytest.mark.parametrize(
    ("path", "body", "pointer"),
    [
        (
            "/v1/inventory/transfers",
            {
                "transfer_id": "T1",
                "sku": "MUG",
                "qty": TOO_BIG,
                "destination_node_id": "DC1",
                "eta": "2026-12-01T00:00:00Z",
            },
            "/qty",
        ),
        (
            "/v1/experiments",
            {"ruleset": "sourcing", "champion": TOO_BIG, "challenger": 1},
            "/champion",
        ),
        ("/v1/replays", {"ruleset": "sourcing", "champion": TOO_BIG, "challenger": 1}, "/champion"),
        (
            "/v1/rulesets/sourcing/evaluate",
            {"version": TOO_BIG, "facts": [{"fact": "order"}]},
            "/version",
        ),
    ],
)
def test_integers_beyond_their_maximum_are_refused(admin, network, path, body, pointer):
    response = admin.post(path, json=body)
    assert response.status_code == 422, response.get_json()
    assert pointer in errors_of(response)


def test_order_numbers_are_bounded_and_answers_never_carry_nan(shop):
    body = order("o1", [("MUG", 1, 10.0)])
    body["lines"][0]["unit_price"] = TOO_BIG
    response = shop.post("/v1/orders", json=body)
    assert response.status_code == 422
    assert errors_of(response) == ["/lines/0/unit_price"]
    nan = json.dumps(order("o2", [("MUG", 1, 10.0)])).replace("10.0", "NaN").encode()
    response = shop.client.post(
        "/v1/orders", data=nan, content_type="application/json", headers=shop.headers
    )
    assert response.status_code == 422
    assert errors_of(response) == ["/lines/0/unit_price"]


@pytest.mark.parametrize(
    "path",
    [
        f"/v1/rulesets/sourcing/versions/{TOO_BIG}",
        f"/v1/rulesets/sourcing/diff?from=1&to={TOO_BIG}",
        f"/v1/deliveries?limit={TOO_BIG}",
    ],
)
def test_path_and_query_integers_out_of_range(admin, network, path):
    response = admin.get(path)
    assert response.status_code == 422, response.get_json()


@pytest.mark.parametrize(
    "node_id",
    ["bad%00id", "bad%0D%0Aid", "bad%EF%BF%BDid", "..", "x" * 3000, "-leading-dash"],
    ids=["NUL", "CRLF", "U+FFFD", "dots", "3000 characters", "leading dash"],
)
def test_ids_that_break_the_id_pattern_are_never_stored(admin, node_id, db):
    for path, body in (
        (f"/v1/nodes/{node_id}", NODE_DC),
        (f"/v1/skus/{node_id}", SKU),
        (f"/v1/customers/{node_id}", {"name": "A", "tier": "standard"}),
        (f"/v1/rulesets/sourcing/scenarios/{node_id}", {"description": "x", "facts": []}),
    ):
        response = admin.put(path, json=body)
        assert response.status_code in (404, 422), (path, response.status_code)
        if response.status_code == 422:
            assert response.get_json()["error"]["code"] == "invalid_input"
    assert db.execute("SELECT COUNT(*) FROM nodes").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM skus").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM customers").fetchone()[0] == 0


def test_an_activation_in_the_past_is_refused(admin, client, db):
    analyst = Api(client, auth.create_key(db, "analyst")[1])
    response = analyst.post(
        "/v1/rulesets/sourcing/versions/1/activate", json={"at": "2020-01-01T00:00:00Z"}
    )
    assert response.status_code == 422
    assert errors_of(response) == ["/at"]


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com:99999/hook",
        "http://example.com:abc/hook",
        "http://[::1/hook",
        "http://example.com/\u00fc",
        "http://100.100.100.200/latest/meta-data",
        "http://[2002:7f00:1::]/hook",
        "http://[64:ff9b::7f00:1]/hook",
        "http://[::ffff:10.0.0.1]/hook",
        "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hook",
        "http://198.18.0.1/hook",
        "http://192.0.2.10/hook",
    ],
)
def test_unsafe_or_malformed_webhook_urls_are_refused(admin, client, db, url):
    response = admin.put("/v1/nodes/DC9", json={**NODE_DC, "webhook": {"url": url}})
    assert response.status_code == 422, (url, response.get_json())
    assert errors_of(response) == ["/webhook/url"]
    channel = Api(client, auth.create_key(db, "channel")[1])
    response = channel.post(
        "/v1/subscriptions", json={"url": url, "event_types": ["order.status_changed"]}
    )
    assert response.status_code == 422, (url, response.get_json())


def test_an_uppercase_scheme_is_a_valid_url(admin):
    hook = {"url": "HTTPS://hooks.example.com/dom", "secret": "whsec_" + "A" * 32}
    assert admin.put("/v1/nodes/DC9", json={**NODE_DC, "webhook": hook}).status_code == 201


def test_a_delete_answers_no_content_without_a_content_type(client, db):
    channel = Api(client, auth.create_key(db, "channel")[1])
    made = channel.post(
        "/v1/subscriptions",
        json={"url": "https://hooks.example.com/x", "event_types": ["order.status_changed"]},
    ).get_json()
    response = client.delete(
        f"/v1/subscriptions/{made['subscription_id']}", headers=channel.headers
    )
    assert response.status_code == 204
    assert "Content-Type" not in response.headers


def raw_request(port: int, data: bytes) -> tuple[int, dict, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        answer = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


@pytest.mark.slow
def test_what_the_server_answers_before_the_app_is_json_and_chunked_bodies_are_limited(
    tmp_path,
):
    from app import create_app
    from app.platform import db as database

    path = str(tmp_path / "raw.db")
    app = create_app({"DATABASE": path})
    connection = database.open_from_config(app.config)
    key = auth.create_key(connection, "admin")[1]
    connection.close()
    with serving(path, workers=1, MAX_BODY_BYTES="1000", DISPATCH_EMBEDDED="false") as port:
        status, headers, body = raw_request(
            port, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        assert (status, headers["content-type"]) == (414, "application/json")
        assert json.loads(body)["error"]["code"] == "uri_too_long"
        status, headers, body = raw_request(
            port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n"
        )
        assert (status, headers["content-type"]) == (431, "application/json")
        assert json.loads(body)["error"]["code"] == "headers_too_large"
        chunk = b'{"feed_id": "' + b"a" * 2000 + b'"}'
        status, headers, body = raw_request(
            port,
            b"POST /v1/inventory/feeds HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            + f"Authorization: Bearer {key}\r\n".encode()
            + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            + f"{len(chunk):x}\r\n".encode()
            + chunk
            + b"\r\n0\r\n\r\n",
        )
        assert status == 413, body
        assert json.loads(body)["error"]["code"] == "payload_too_large"


def test_every_number_in_the_schemas_has_a_documented_maximum():
    from app.platform.schemas import Catalogue

    missing = []

    def walk(node, path):
        if isinstance(node, dict):
            kinds = node.get("type")
            kinds = kinds if isinstance(kinds, list) else [kinds]
            if {"integer", "number"} & {k for k in kinds if isinstance(k, str)} and not {
                "maximum",
                "const",
                "enum",
            } & set(node):
                missing.append(path)
            for key, child in node.items():
                walk(child, f"{path}/{key}")
        elif isinstance(node, list):
            for index, child in enumerate(node):
                walk(child, f"{path}/{index}")

    for name, document in Catalogue("schemas").documents.items():
        # What the service answers or sends, not what it takes.
        if name not in ("responses", "customer-events"):
            walk(document, name)
    assert missing == []
