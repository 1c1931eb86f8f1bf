"""Console sign-in sessions. Owns ``console_sessions``.

Signing in exchanges an API key for a random session token, kept by the browser in an
HttpOnly, SameSite=Strict cookie; only the token's SHA-256 is stored. Each session has
a CSRF token that the console's pages send back (``X-CSRF-Token`` or a form field) with
every request that changes something. A session acts with its key's role and binding,
so the console is allowed exactly what the key is allowed over the API.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime, timedelta

from app.platform import auth, logs
from app.platform import db as database
from app.platform.db import Database
from app.platform.errors import Forbidden, Unauthorized

COOKIE = "dom_session"
CSRF_HEADER = "X-CSRF-Token"
# Roles the console serves; a node key talks to the API from the node's own systems.
ROLES = ("admin", "analyst", "channel")


def sign_in(db: Database, key: str, hours: float) -> tuple[str, str, auth.Principal]:
    """Start a session for ``key``: ``(session token, CSRF token, principal)``.

    Raises Unauthorized for an unknown or revoked key and Forbidden for a node key.
    """
    principal = auth.authenticate(db, f"Bearer {key}")
    if principal.role not in ROLES:
        raise Forbidden(f"the console is for {', '.join(ROLES)} keys, not {principal.role} keys")
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    started = datetime.now(UTC)
    with database.atomic(db):
        # Sessions that ended or expired are of no further use: each sign-in clears them.
        db.execute(
            "DELETE FROM console_sessions WHERE expires_at < ? OR ended_at IS NOT NULL",
            [database.format_time(started)],
        )
        db.execute(
            "INSERT INTO console_sessions (session_hash, key_id, csrf_token, created_at,"
            " expires_at) VALUES (?, ?, ?, ?, ?)",
            [
                auth.hash_key(token),
                principal.key_id,
                csrf,
                database.format_time(started),
                database.format_time(started + timedelta(hours=hours)),
            ],
        )
    logs.event("console.signed_in", key_id=principal.key_id, role=principal.role)
    return token, csrf, principal


def session_of(db: Database, token: str) -> tuple[auth.Principal, str]:
    """The principal and CSRF token of a live session, or Unauthorized."""
    row = db.execute(
        "SELECT k.key_id, k.role, k.node_id, k.channels, k.name, s.csrf_token"
        " FROM console_sessions s JOIN api_keys k ON k.key_id = s.key_id"
        " WHERE s.session_hash = ? AND s.ended_at IS NULL AND s.expires_at > ?"
        " AND k.revoked_at IS NULL",
        [auth.hash_key(token), database.now()],
    ).fetchone()
    if row is None:
        raise Unauthorized("the console session has ended: sign in again")
    return auth.principal_of(row), row["csrf_token"]


def check_csrf(expected: str, sent: str | None) -> None:
    """Refuse a change whose CSRF token is missing or not the session's."""
    if not sent or not hmac.compare_digest(expected, sent):
        raise Forbidden("the request lacks the session's CSRF token: reload the page")


def sign_out(db: Database, token: str) -> None:
    """End the session of ``token`` (nothing happens for an unknown one)."""
    with database.atomic(db):
        db.execute(
            "UPDATE console_sessions SET ended_at = ? WHERE session_hash = ? AND ended_at IS NULL",
            [database.now(), auth.hash_key(token)],
        )
