"""Nodes: stores, distribution centres, 3PLs and drop-ship suppliers. Owns ``nodes``."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta

from app.platform import db as database
from app.platform import jsontext, logs, monitoring
from app.platform.db import Database
from app.platform.errors import NotFound
from app.platform.messaging import brokers, circuits
from app.platform.vault import Vault

NODE_TYPES = ("store", "dc", "3pl", "supplier")
# What a node document read back holds that writing it again takes (webhook and transport
# aside: their secrets are never read back).
WRITABLE = (
    "type",
    "name",
    "address",
    "capabilities",
    "daily_capacity",
    "priority",
    "active",
    "timezone",
    "fulfilment",
)

_COLUMNS = (
    "node_id, type, name, region, address, lat, lon, capabilities, daily_capacity, priority,"
    " active, timezone, webhook_url, webhook_secret IS NOT NULL AS webhook_secret_set,"
    " webhook_disabled_at, webhook_disabled_reason, created_at, updated_at, transport,"
    " fulfilment,"
    # The endpoint's run of failures lives with its circuit, in a table of its own: the
    # dispatcher writes it after attempts while decisions lock the node rows.
    " COALESCE((SELECT c.failures FROM endpoint_circuits c"
    " WHERE c.endpoint = 'node:' || nodes.node_id), 0) AS webhook_failures"
)


def _public(row) -> dict:
    """Turn a row into the API's node document; the webhook secret never leaves here."""
    address = jsontext.loads(row["address"])
    address.update(lat=row["lat"], lon=row["lon"])
    health = {
        "secret_set": bool(row["webhook_secret_set"]),
        "failures": row["webhook_failures"],
        "disabled_at": row["webhook_disabled_at"],
        "disabled_reason": row["webhook_disabled_reason"],
    }
    webhook = {"url": row["webhook_url"], **health} if row["webhook_url"] else None
    transport = {**jsontext.loads(row["transport"]), **health} if row["transport"] else None
    return {
        "node_id": row["node_id"],
        "type": row["type"],
        "name": row["name"],
        "region": row["region"],
        "address": address,
        "capabilities": jsontext.loads(row["capabilities"]),
        "daily_capacity": row["daily_capacity"],
        "priority": row["priority"],
        "active": bool(row["active"]),
        "timezone": row["timezone"],
        "fulfilment": jsontext.loads(row["fulfilment"]) if row["fulfilment"] else None,
        "webhook": webhook,
        "transport": transport,
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def get(db: Database, node_id: str) -> dict:
    row = db.execute(f"SELECT {_COLUMNS} FROM nodes WHERE node_id = ?", [node_id]).fetchone()
    if row is None:
        raise NotFound(f"node {node_id!r} does not exist")
    return _public(row)


def list_nodes(
    db: Database, node_type: str | None = None, active: bool | None = None
) -> list[dict]:
    where, params = [], []
    if node_type is not None:
        where.append("type = ?")
        params.append(node_type)
    if active is not None:
        where.append("active = ?")
        params.append(int(active))
    sql = f"SELECT {_COLUMNS} FROM nodes"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return [_public(row) for row in db.execute(sql + " ORDER BY node_id", params)]


def pickup_points(db: Database) -> list[tuple[str, float, float]]:
    """``(node_id, lat, lon)`` of every active node where customers collect orders, read
    again only when a node changed since this process last read them."""
    stamp = tuple(db.execute("SELECT COUNT(*), MAX(updated_at) FROM nodes").fetchone())
    cached = _PICKUP_POINTS.get(stamp)
    if cached is None:
        rows = db.execute(
            "SELECT node_id, lat, lon, capabilities FROM nodes WHERE active = ? ORDER BY node_id",
            [1],
        )
        cached = [(row[0], row[1], row[2]) for row in rows if "pickup" in jsontext.loads(row[3])]
        _PICKUP_POINTS.clear()
        _PICKUP_POINTS[stamp] = cached
    return cached


# By the nodes' count and latest change (to the microsecond): one entry.
_PICKUP_POINTS: dict[tuple, list[tuple[str, float, float]]] = {}


def active_nodes(db: Database) -> list[dict]:
    """``{node_id, type, capabilities, lat, lon, region, daily_capacity}`` of every active
    node, read again only when a node changed since this process last read them."""
    stamp = tuple(db.execute("SELECT COUNT(*), MAX(updated_at) FROM nodes").fetchone())
    cached = _ACTIVE.get(stamp)
    if cached is None:
        rows = db.execute(
            "SELECT node_id, type, capabilities, lat, lon, region, daily_capacity FROM nodes"
            " WHERE active = ? ORDER BY node_id",
            [1],
        )
        cached = [
            {**dict(row), "capabilities": jsontext.loads(row["capabilities"])} for row in rows
        ]
        _ACTIVE.clear()
        _ACTIVE[stamp] = cached
    return cached


_ACTIVE: dict[tuple, list[dict]] = {}


def lock(db: Database, node_ids) -> None:
    """Hold these nodes (their day's capacity) until the transaction ends; nodes are
    locked before stock rows, each kind in key order."""
    db.lock_rows("nodes", ("node_id",), [(node_id,) for node_id in node_ids])


def existing(db: Database, node_ids) -> dict[str, dict]:
    """Return ``{node_id: {"type", "capabilities", "lat", "lon", "active", "priority",
    "daily_capacity", "timezone", "region", "city", "postcode", "fulfilment"}}`` for the
    ids that exist.

    The dicts are this process's copies (see ``current``): read them, never change them.
    """
    ids = sorted(set(node_ids))
    if not ids:
        return {}
    found = {}
    # Databases bound the parameters of one statement.
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows = db.execute(
            "SELECT node_id, type, capabilities, lat, lon, active, priority, daily_capacity,"
            f" timezone, region, address, fulfilment, revision FROM nodes"
            f" WHERE node_id IN ({','.join('?' * len(chunk))})",
            chunk,
        )
        for row in rows:
            info = _node_info(tuple(row)[:-1])
            _KNOWN[row[0]] = (row[-1], info)
            found[row[0]] = info
    return found


# The nodes this process has read: {node_id: (revision, what ``existing`` gives)}.
_KNOWN: dict[str, tuple[int, dict]] = {}


def current(db: Database, revisions: dict[str, int]) -> dict[str, dict]:
    """The nodes, as ``existing`` gives them, for ``{node_id: revision}`` read beside
    other rows (``stock.positions``): this process's copy where its revision is the one
    read, and the others read again."""
    found, stale = {}, []
    for node_id, revision in revisions.items():
        known = _KNOWN.get(node_id)
        if known is not None and known[0] == revision:
            found[node_id] = known[1]
        else:
            stale.append(node_id)
    if stale:
        found.update(existing(db, stale))
    return found


def _node_info(row: tuple) -> dict:
    (
        _,
        kind,
        capabilities,
        lat,
        lon,
        active,
        priority,
        capacity,
        timezone,
        region,
        address,
        fulfilment,
    ) = row
    address = jsontext.loads(address)
    return {
        "type": kind,
        "capabilities": jsontext.loads(capabilities),
        "lat": lat,
        "lon": lon,
        "active": bool(active),
        "priority": priority,
        "daily_capacity": capacity,
        "timezone": timezone,
        "region": region,
        "city": address.get("city"),
        "postcode": address.get("postcode"),
        "fulfilment": jsontext.loads(fulfilment) if fulfilment else None,
    }


def put(
    db: Database,
    node_id: str,
    document: dict,
    vault: Vault | None = None,
    secret_grace_seconds: int = 86400,
) -> tuple[dict, bool]:
    """Create or replace a node; return ``(node, created)``. Secrets are stored sealed.

    A webhook given without a secret keeps the stored secret, so clients can
    update the URL without ever having to read the secret back. A new secret
    keeps the old one valid for ``secret_grace_seconds``: messages carry both
    signatures meanwhile. Setting the webhook re-enables a disabled endpoint.
    """
    address = dict(document["address"])
    lat, lon = address.pop("lat"), address.pop("lon")
    webhook = document.get("webhook")
    transport = document.get("transport")
    # Whichever way the node is told (a webhook or a broker), its messages are signed.
    endpoint = webhook or transport
    now = database.now()
    with database.atomic(db):
        previous = db.execute(
            "SELECT webhook_secret, created_at FROM nodes WHERE node_id = ?", [node_id]
        ).fetchone()
        old_sealed = previous["webhook_secret"] if previous else None
        sealed, rotated = None, False
        if endpoint:
            if vault is None:
                raise ValueError("a node's signing secret is stored sealed: pass the vault")
            old_secret = vault.unseal(old_sealed)
            secret = endpoint.get("secret") or old_secret
            rotated = bool(old_secret) and secret != old_secret
            sealed = old_sealed if not rotated and old_sealed else vault.seal(secret)
        db.execute(
            "INSERT INTO nodes (node_id, type, name, address, lat, lon, capabilities,"
            " daily_capacity, priority, active, timezone, webhook_url, webhook_secret,"
            " created_at, updated_at, region, transport, revision, fulfilment)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT (node_id) DO UPDATE SET type = excluded.type, name = excluded.name,"
            " region = excluded.region,"
            " address = excluded.address, lat = excluded.lat, lon = excluded.lon,"
            " capabilities = excluded.capabilities, daily_capacity = excluded.daily_capacity,"
            " priority = excluded.priority, active = excluded.active,"
            " timezone = excluded.timezone, webhook_url = excluded.webhook_url,"
            " webhook_secret = excluded.webhook_secret, updated_at = excluded.updated_at,"
            " transport = excluded.transport, revision = excluded.revision,"
            " fulfilment = excluded.fulfilment",
            [
                node_id,
                document["type"],
                document["name"],
                json.dumps(address),
                lat,
                lon,
                json.dumps(document["capabilities"]),
                document.get("daily_capacity"),
                document.get("priority", 0),
                int(document.get("active", True)),
                document["timezone"],
                webhook["url"] if webhook else None,
                sealed,
                now,
                now,
                document.get("region"),
                brokers.destination(transport),
                secrets.randbits(62),
                json.dumps(document["fulfilment"]) if document.get("fulfilment") else None,
            ],
        )
        if rotated:
            until = database.format_time(
                database.parse_time(now) + timedelta(seconds=secret_grace_seconds)
            )
            db.execute(
                "UPDATE nodes SET webhook_previous_secret = ?, webhook_previous_until = ?"
                " WHERE node_id = ?",
                [old_sealed, until, node_id],
            )
        if endpoint:
            db.execute(
                "UPDATE nodes SET webhook_disabled_at = NULL, webhook_disabled_reason = NULL,"
                " webhook_failures = 0 WHERE node_id = ?",
                [node_id],
            )
            circuits.reset(db, circuits.key(node_id, None))
    return get(db, node_id), previous is None


def transport_kinds(db: Database) -> set[str]:
    """The broker transports some node uses."""
    rows = db.execute("SELECT DISTINCT transport FROM nodes WHERE transport IS NOT NULL")
    return {jsontext.loads(row[0])["kind"] for row in rows}


def signing_secrets(db: Database, node_id: str, vault: Vault) -> list[str]:
    """The secrets a node signs with now: its own, and the previous one during a rotation."""
    row = db.execute(
        "SELECT webhook_secret, webhook_previous_secret, webhook_previous_until FROM nodes"
        " WHERE node_id = ?",
        [node_id],
    ).fetchone()
    return _secrets(row, vault) if row is not None else []


def _secrets(row, vault: Vault) -> list[str]:
    if not row["webhook_secret"]:
        return []
    found = [vault.unseal(row["webhook_secret"])]
    if row["webhook_previous_secret"] and (row["webhook_previous_until"] or "") > database.now():
        found.append(vault.unseal(row["webhook_previous_secret"]))
    return found


def endpoint(db: Database, node_id: str, vault: Vault) -> dict | None:
    """Where and how to deliver to a node: url or broker transport, the secrets to sign
    with, whether disabled. None when the node has neither."""
    row = db.execute(
        "SELECT webhook_url, transport, webhook_disabled_at, webhook_secret,"
        " webhook_previous_secret, webhook_previous_until FROM nodes WHERE node_id = ?",
        [node_id],
    ).fetchone()
    if row is None or not (row["webhook_url"] or row["transport"]):
        return None
    return {
        "url": row["webhook_url"],
        "transport": jsontext.loads(row["transport"]) if row["transport"] else None,
        "secrets": _secrets(row, vault),
        "disabled": bool(row["webhook_disabled_at"]),
    }


def disable_webhook(db, node_id: str, reason: str) -> bool:
    """Disable a node's webhook (call in a transaction); True if it was enabled until now."""
    cursor = db.execute(
        "UPDATE nodes SET webhook_disabled_at = ?, webhook_disabled_reason = ?"
        " WHERE node_id = ? AND webhook_disabled_at IS NULL",
        [database.now(), reason, node_id],
    )
    return cursor.rowcount == 1


def reenable_webhook(db: Database, node_id: str) -> None:
    with database.atomic(db):
        enabled = db.execute(
            "UPDATE nodes SET webhook_disabled_at = NULL, webhook_disabled_reason = NULL"
            " WHERE node_id = ? AND webhook_disabled_at IS NOT NULL",
            [node_id],
        ).rowcount
        db.execute("UPDATE nodes SET webhook_failures = 0 WHERE node_id = ?", [node_id])
        circuits.reset(db, circuits.key(node_id, None))
    if enabled:
        monitoring.ENDPOINT_CHANGES.labels("enabled").inc()
        logs.event("endpoint.enabled", endpoint=circuits.key(node_id, None))


def reseal_secrets(db: Database, vault: Vault) -> int:
    """Encrypt every stored webhook secret again under the vault's first key; return how many."""
    count = 0
    with database.atomic(db):
        rows = db.execute(
            "SELECT node_id, webhook_secret, webhook_previous_secret FROM nodes"
            " WHERE webhook_secret IS NOT NULL OR webhook_previous_secret IS NOT NULL"
        ).fetchall()
        for row in rows:
            db.execute(
                "UPDATE nodes SET webhook_secret = ?, webhook_previous_secret = ?"
                " WHERE node_id = ?",
                [
                    vault.rotate(row["webhook_secret"]),
                    vault.rotate(row["webhook_previous_secret"]),
                    row["node_id"],
                ],
            )
            count += 1
    return count
