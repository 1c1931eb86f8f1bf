"""API keys: creation, hashed storage and bearer authentication. Owns ``api_keys``.

A key is ``dom_`` followed by 32 random bytes in URL-safe base64. Only its SHA-256
is stored: the key has 256 bits of entropy, so a slow password hash adds nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from app.platform import db as database
from app.platform import logs
from app.platform.db import Database
from app.platform.errors import Conflict, Forbidden, NotFound, Unauthorized

ROLES = ("admin", "analyst", "channel", "node")
PREFIX = "dom_"
# How much of a key is stored in clear to find it by (``dom keys list``, revoke by prefix):
# "dom_" and 8 characters, 48 of its 256 bits.
PREFIX_SHOWN = 12


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id, role and what it is bound to (a node key to its node,
    a channel key to its channels; a channel key made without channels serves all)."""

    key_id: str
    role: str
    node_id: str | None = None
    channels: tuple[str, ...] | None = None
    name: str | None = None

    @property
    def author(self) -> str:
        """Who to record as having done something: the person's name, else the key's id."""
        return self.name or self.key_id

    def require_node(self, node_id: str) -> None:
        """Refuse a node key acting for another node; other roles pass."""
        if self.role == "node" and self.node_id != node_id:
            raise Forbidden(f"this key belongs to node {self.node_id!r}, not {node_id!r}")

    def sees_channel(self, channel: str | None) -> bool:
        """Whether this key may see or act on what belongs to ``channel``."""
        return self.role != "channel" or self.channels is None or channel in self.channels

    def require_channel(self, channel: str | None) -> None:
        """Refuse a channel key acting for a channel it is not bound to; other roles pass."""
        if not self.sees_channel(channel):
            raise Forbidden(
                f"this key serves the channel(s) {', '.join(self.channels)}, not {channel!r}"
            )


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(
    db: Database,
    role: str,
    node_id: str | None = None,
    label: str | None = None,
    key: str | None = None,
    channels: list[str] | None = None,
    name: str | None = None,
) -> tuple[str, str]:
    """Store a new key and return ``(key_id, key)``; the key is not retrievable later.

    A channel key is bound to ``channels`` (None: every channel); a node key to its node.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if (role == "node") != (node_id is not None):
        raise ValueError("a node key needs --node, and only node keys take one")
    if channels is not None and (role != "channel" or not channels):
        raise ValueError("only channel keys take --channel, and then at least one")
    if (
        node_id is not None
        and not db.execute("SELECT 1 FROM nodes WHERE node_id = ?", [node_id]).fetchone()
    ):
        raise NotFound(f"node {node_id!r} does not exist")
    key = key or PREFIX + secrets.token_urlsafe(32)
    key_id = "key_" + secrets.token_hex(6)
    with database.atomic(db):
        db.execute(
            "INSERT INTO api_keys (key_id, key_hash, role, node_id, label, created_at,"
            " channels, key_prefix, name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                key_id,
                hash_key(key),
                role,
                node_id,
                label,
                database.now(),
                json.dumps(sorted(set(channels))) if channels else None,
                key[:PREFIX_SHOWN],
                name,
            ],
        )
    # The key's id and binding only: never the key, and no name of a person.
    logs.event("key.created", key_id=key_id, role=role, node_id=node_id, channels=channels)
    return key_id, key


def list_keys(db: Database) -> list[dict]:
    """Every key, newest first: id, prefix, role, binding, label, when made and revoked."""
    rows = db.execute(
        "SELECT key_id, key_prefix, name, role, node_id, channels, label, created_at, revoked_at"
        " FROM api_keys ORDER BY created_at DESC, key_id"
    )
    return [
        {**dict(row), "channels": json.loads(row["channels"]) if row["channels"] else None}
        for row in rows
    ]


def key_exists(db: Database, key: str) -> bool:
    return bool(db.execute("SELECT 1 FROM api_keys WHERE key_hash = ?", [hash_key(key)]).fetchone())


def revoke_key(db: Database, key_id_or_prefix: str) -> str:
    """Revoke the one active key with this id or key prefix; return its id."""
    with database.atomic(db):
        rows = db.execute(
            "SELECT key_id FROM api_keys WHERE revoked_at IS NULL"
            " AND (key_id = ? OR (length(?) >= ? AND key_prefix = substr(?, 1, ?)))",
            [key_id_or_prefix, key_id_or_prefix, PREFIX_SHOWN, key_id_or_prefix, PREFIX_SHOWN],
        ).fetchall()
        if not rows:
            raise NotFound(f"no active key {key_id_or_prefix!r}")
        if len(rows) > 1:
            raise Conflict(
                f"{len(rows)} active keys start with {key_id_or_prefix!r}; name one by its id"
            )
        db.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE key_id = ?",
            [database.now(), rows[0]["key_id"]],
        )
    logs.event("key.revoked", key_id=rows[0]["key_id"])
    return rows[0]["key_id"]


def authenticate(db: Database, header: str | None) -> Principal:
    """Return the principal of an ``Authorization: Bearer`` header, or raise 401."""
    if not header:
        raise Unauthorized("send an API key: Authorization: Bearer <key>")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("the Authorization header must be: Bearer <key>")
    digest = hash_key(key.strip())
    row = db.execute(
        "SELECT key_id, key_hash, role, node_id, channels, name FROM api_keys"
        " WHERE key_hash = ? AND revoked_at IS NULL",
        [digest],
    ).fetchone()
    # The lookup is by hash, so timing reveals nothing of the key; compare anyway for form.
    if row is None or not hmac.compare_digest(row["key_hash"], digest):
        raise Unauthorized("unknown or revoked API key")
    return principal_of(row)


def principal_of(row) -> Principal:
    """The principal of an ``api_keys`` row (key_id, role, node_id, channels, name)."""
    channels = tuple(json.loads(row["channels"])) if row["channels"] else None
    return Principal(row["key_id"], row["role"], row["node_id"], channels, row["name"])


def authorize(principal: Principal, roles: tuple[str, ...]) -> None:
    """Raise 403 unless the principal's role is one of ``roles``."""
    if principal.role not in roles:
        raise Forbidden(f"the {principal.role} role may not do this; needs {' or '.join(roles)}")
