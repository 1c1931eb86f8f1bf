"""Console sign-in: an API key becomes a session cookie; every change needs the session's
CSRF token; the session acts with its key's role and ends with sign-out, expiry or the
key's revocation. The browser journeys are in test_console.py."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from app import create_app
from app.edges.console import sessions
from app.platform import auth
from app.platform import db as database


def form_token(client, path="/console/sign-in") -> str:
    page = client.get(path)
    assert page.status_code == 200
    return re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)


def sign_in(client, key: str, next_path: str = ""):
    token = form_token(client)
    return client.post(
        "/console/sign-in", data={"csrf_token": token, "api_key": key, "next": next_path}
    )


def page_csrf(client, path="/console/") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.status_code
    return re.search(r'data-csrf="([^"]+)"', page.get_data(as_text=True)).group(1)


@pytest.fixture
def people(db):
    return {role: auth.create_key(db, role)[1] for role in ("admin", "analyst", "channel")}


def test_signing_in_sets_an_httponly_strict_cookie_and_lands_where_asked(client, people, db):
    answer = sign_in(client, people["analyst"], "/console/rulesets/sourcing")
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/console/rulesets/sourcing"
    cookie = next(
        v for v in answer.headers.getlist("Set-Cookie") if v.startswith(sessions.COOKIE + "=")
    )
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    # The token in the cookie is not what is stored: only its hash is.
    token = cookie.split(";")[0].split("=", 1)[1]
    [stored] = db.execute("SELECT session_hash FROM console_sessions").fetchall()
    assert stored[0] == auth.hash_key(token) != token
    page = client.get("/console/rulesets/sourcing")
    assert page.status_code == 200
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert page.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    "target", ["https://elsewhere.example/console", "//elsewhere.example/x", "/v1/rulesets"]
)
def test_after_signing_in_it_never_goes_off_the_console(client, people, target):
    answer = sign_in(client, people["analyst"], target)
    assert answer.headers["Location"] == "/console/"


def test_a_page_without_a_session_asks_to_sign_in(client):
    answer = client.get("/console/rulesets?x=1")
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/console/sign-in?next=")
    assert client.get("/").headers["Location"] == "/console/"


@pytest.mark.parametrize(
    ("key", "status", "text"),
    [
        ("dom_not-a-key", 401, "Unknown or revoked API key"),
        ("", 422, "Enter your API key"),
    ],
)
def test_a_bad_key_is_refused_at_the_form(client, key, status, text):
    answer = sign_in(client, key)
    assert answer.status_code == status
    assert text in answer.get_data(as_text=True)
    assert sessions.COOKIE not in str(answer.headers.getlist("Set-Cookie"))


def test_node_keys_do_not_sign_in(client, db, network):
    node_key = auth.create_key(db, "node", node_id="DC1")[1]
    answer = sign_in(client, node_key)
    assert answer.status_code == 403
    assert "not node keys" in answer.get_data(as_text=True)


def test_the_sign_in_form_needs_its_own_token(client, people):
    client.get("/console/sign-in")
    answer = client.post("/console/sign-in", data={"csrf_token": "forged", "api_key": "x"})
    assert answer.status_code == 400
    assert client.get("/console/rulesets").status_code == 302  # still signed out


def test_the_api_takes_the_session_and_refuses_changes_without_its_csrf_token(client, people, db):
    sign_in(client, people["analyst"])
    assert client.get("/v1/rulesets").status_code == 200
    before = db.execute("SELECT COUNT(*) FROM ruleset_versions").fetchone()[0]
    active = client.get("/v1/rulesets/sourcing/active").get_json()["document"]
    draft = {**active, "version": 2}
    refused = client.post("/v1/rulesets/sourcing/versions", json=draft)
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "forbidden"
    forged = client.post(
        "/v1/rulesets/sourcing/versions", json=draft, headers={"X-CSRF-Token": "forged"}
    )
    assert forged.status_code == 403
    assert db.execute("SELECT COUNT(*) FROM ruleset_versions").fetchone()[0] == before
    csrf = page_csrf(client)
    stored = client.post(
        "/v1/rulesets/sourcing/versions", json=draft, headers={sessions.CSRF_HEADER: csrf}
    )
    assert stored.status_code == 201
    assert stored.get_json()["created_by"]  # recorded as the key's author


def test_a_session_is_allowed_what_its_key_is(client, people):
    sign_in(client, people["channel"])
    assert client.get("/v1/rulesets").status_code == 403
    assert client.get("/v1/decisions").status_code == 403
    assert client.get("/v1/orders").status_code == 200
    refused = client.get("/console/rulesets")
    assert refused.status_code == 403
    assert "for admin and analyst keys" in refused.get_data(as_text=True)
    assert client.get("/console/decisions").status_code == 200


def test_a_bearer_key_is_used_even_beside_a_session(client, people):
    sign_in(client, people["analyst"])
    answer = client.get("/v1/rulesets", headers={"Authorization": f"Bearer {people['channel']}"})
    assert answer.status_code == 403


def test_signing_out_ends_the_session(client, people):
    sign_in(client, people["analyst"])
    csrf = page_csrf(client)
    assert client.post("/console/sign-out", data={"csrf_token": "forged"}).status_code == 403
    assert client.get("/v1/rulesets").status_code == 200
    answer = client.post("/console/sign-out", data={"csrf_token": csrf})
    assert answer.status_code == 302
    # The cookie is gone, and the token it held is of no use any more.
    assert client.get("/v1/rulesets").status_code == 401


def test_a_stolen_cookie_dies_with_sign_out(app, people):
    first, thief = app.test_client(), app.test_client()
    sign_in(first, people["analyst"])
    token = first.get_cookie(sessions.COOKIE).value
    thief.set_cookie(sessions.COOKIE, token)
    assert thief.get("/v1/rulesets").status_code == 200
    first.post("/console/sign-out", data={"csrf_token": page_csrf(first)})
    assert thief.get("/v1/rulesets").status_code == 401
    assert thief.get("/console/rulesets").status_code == 302


def test_revoking_the_key_ends_its_sessions(client, people, db):
    sign_in(client, people["analyst"])
    assert client.get("/v1/rulesets").status_code == 200
    auth.revoke_key(db, auth.authenticate(db, f"Bearer {people['analyst']}").key_id)
    assert client.get("/v1/rulesets").status_code == 401


def test_sessions_expire(db_path, db):
    app = create_app({"DATABASE": db_path, "CONSOLE_SESSION_HOURS": 1})
    client = app.test_client()
    key = auth.create_key(db, "analyst")[1]
    sign_in(client, key)
    assert client.get("/v1/rulesets").status_code == 200
    with database.atomic(db):
        db.execute(
            "UPDATE console_sessions SET expires_at = ?",
            [database.format_time(datetime.now(UTC) - timedelta(seconds=1))],
        )
    assert client.get("/v1/rulesets").status_code == 401
    # A later sign-in clears the dead session away.
    sign_in(client, key)
    assert db.execute("SELECT COUNT(*) FROM console_sessions").fetchone()[0] == 1


def test_skus_are_found_by_code_or_name(client, admin):
    for code, name in [("MUG-1", "Blue mug"), ("MUG-2", "Red mug"), ("PLATE", "Plate 100%")]:
        admin.put(f"/v1/skus/{code}", json={"name": name, "weight_kg": 0.4, "category": "home"})
    found = admin.get("/v1/skus?q=MUG").get_json()
    assert [s["sku"] for s in found["skus"]] == ["MUG-1", "MUG-2"]
    assert [s["sku"] for s in admin.get("/v1/skus?q=red").get_json()["skus"]] == ["MUG-2"]
    # The text is text: % and _ match themselves, not any characters.
    assert [s["sku"] for s in admin.get("/v1/skus?q=0%25").get_json()["skus"]] == ["PLATE"]
    assert admin.get("/v1/skus?q=_").get_json()["skus"] == []
    assert len(admin.get("/v1/skus?limit=2").get_json()["skus"]) == 2
