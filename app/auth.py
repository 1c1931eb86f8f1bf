"""API keys: creation, hashed storage and bearer authentication. Owns ``api_keys``.

A key is ``dom_`` followed by 32 random bytes in URL-safe base64. Only its SHA-256
is stored: the key has 256 bits of entropy, so a slow password hash adds nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

import sqlite_utils

from app import db as database
from app.errors import Forbidden, NotFound, Unauthorized

ROLES = ("admin", "analyst", "channel", "node")
PREFIX = "dom_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id, role and, for node keys, the node it is bound to."""

    key_id: str
    role: str
    node_id: str | None = None

    def require_node(self, node_id: str) -> None:
        """Refuse a node key acting for another node; other roles pass."""
        if self.role == "node" and self.node_id != node_id:
            raise Forbidden(f"this key belongs to node {self.node_id!r}, not {node_id!r}")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(
    db: sqlite_utils.Database,
    role: str,
    node_id: str | None = None,
    label: str | None = None,
    key: str | None = None,
) -> tuple[str, str]:
    """Store a new key and return ``(key_id, key)``; the key is not retrievable later."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if (role == "node") != (node_id is not None):
        raise ValueError("a node key needs --node, and only node keys take one")
    if (
        node_id is not None
        and not db.execute("SELECT 1 FROM nodes WHERE node_id = ?", [node_id]).fetchone()
    ):
        raise NotFound(f"node {node_id!r} does not exist")
    key = key or PREFIX + secrets.token_urlsafe(32)
    key_id = "key_" + secrets.token_hex(6)
    with database.atomic(db):
        db.execute(
            "INSERT INTO api_keys (key_id, key_hash, role, node_id, label, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [key_id, hash_key(key), role, node_id, label, database.now()],
        )
    return key_id, key


def key_exists(db: sqlite_utils.Database, key: str) -> bool:
    return bool(db.execute("SELECT 1 FROM api_keys WHERE key_hash = ?", [hash_key(key)]).fetchone())


def revoke_key(db: sqlite_utils.Database, key_id: str) -> None:
    with database.atomic(db):
        cursor = db.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
            [database.now(), key_id],
        )
    if cursor.rowcount == 0:
        raise NotFound(f"no active key {key_id!r}")


def authenticate(db: sqlite_utils.Database, header: str | None) -> Principal:
    """Return the principal of an ``Authorization: Bearer`` header, or raise 401."""
    if not header:
        raise Unauthorized("send an API key: Authorization: Bearer <key>")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("the Authorization header must be: Bearer <key>")
    digest = hash_key(key.strip())
    row = db.execute(
        "SELECT key_id, key_hash, role, node_id FROM api_keys"
        " WHERE key_hash = ? AND revoked_at IS NULL",
        [digest],
    ).fetchone()
    # The lookup is by hash, so timing reveals nothing of the key; compare anyway for form.
    if row is None or not hmac.compare_digest(row["key_hash"], digest):
        raise Unauthorized("unknown or revoked API key")
    return Principal(row["key_id"], row["role"], row["node_id"])


def authorize(principal: Principal, roles: tuple[str, ...]) -> None:
    """Raise 403 unless the principal's role is one of ``roles``."""
    if principal.role not in roles:
        raise Forbidden(f"the {principal.role} role may not do this; needs {' or '.join(roles)}")
