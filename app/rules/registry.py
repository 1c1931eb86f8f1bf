"""Stored ruleset versions, activations and scenarios.

Owns ``ruleset_versions``, ``ruleset_activations`` and ``ruleset_scenarios``.
Versions are immutable, identified by name, version and the sha256 of their
canonical JSON. The active version at a time is named by the newest activation
that is effective by then, so scheduled activations need no timer.
"""

from __future__ import annotations

import json

from app import db as database
from app.db import Database
from app.errors import Conflict, NotFound
from app.rules.language import canonical, content_hash


class VersionConflict(Conflict):
    code = "version_conflict"


def _version(row, with_document: bool = True) -> dict:
    version = {
        "ruleset": row["name"],
        "version": row["version"],
        "sha256": row["sha256"],
        "description": row["description"],
        "rule_count": row["rule_count"],
        "source": row["source"],
        "created_by": row["created_by"],
        "created_at": row["created_at"],
    }
    if with_document:
        version["document"] = json.loads(row["document"])
    return version


def store(db: Database, document: dict, source: str, created_by: str) -> tuple[dict, bool]:
    """Store a validated version; return ``(version, created)``.

    The same content again is a no-op; other content under a stored number is a conflict.
    """
    name, number = document["ruleset"], document["version"]
    digest = content_hash(document)
    with database.immediate(db):
        row = db.execute(
            "SELECT * FROM ruleset_versions WHERE name = ? AND version = ?", [name, number]
        ).fetchone()
        if row is not None:
            if row["sha256"] != digest:
                raise VersionConflict(
                    f"{name} version {number} is stored with other content"
                    f" (sha256 {row['sha256'][:12]}…); versions are immutable: use a new number"
                )
            return _version(row), False
        db.execute(
            "INSERT INTO ruleset_versions (name, version, sha256, document, description,"
            " rule_count, source, created_by, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
            [
                name,
                number,
                digest,
                canonical(document),
                document.get("description"),
                len(document["rules"]),
                source,
                created_by,
                database.now(),
            ],
        )
    return get(db, name, number), True


def get(db: Database, name: str, version: int) -> dict:
    row = db.execute(
        "SELECT * FROM ruleset_versions WHERE name = ? AND version = ?", [name, version]
    ).fetchone()
    if row is None:
        raise NotFound(f"ruleset {name!r} has no version {version}")
    return _version(row)


def versions(db: Database, name: str) -> list[dict]:
    rows = db.execute(
        "SELECT * FROM ruleset_versions WHERE name = ? ORDER BY version", [name]
    ).fetchall()
    if not rows:
        raise NotFound(f"no ruleset {name!r}")
    return [_version(row, with_document=False) for row in rows]


def names(db: Database) -> list[str]:
    return [row[0] for row in db.execute("SELECT DISTINCT name FROM ruleset_versions ORDER BY 1")]


def _activation(row) -> dict:
    return {
        "activation_id": row["activation_id"],
        "ruleset": row["name"],
        "version": row["version"],
        "previous_version": row["previous_version"],
        "kind": row["kind"],
        "effective_at": row["effective_at"],
        "created_by": row["created_by"],
        "created_at": row["created_at"],
    }


def active(db: Database, name: str, at: str | None = None) -> dict | None:
    """Return the activation in force at ``at`` (default now), or None."""
    row = db.execute(
        "SELECT * FROM ruleset_activations WHERE name = ? AND effective_at <= ?"
        " ORDER BY effective_at DESC, activation_id DESC LIMIT 1",
        [name, at or database.now()],
    ).fetchone()
    return _activation(row) if row is not None else None


def activations(db: Database, name: str) -> list[dict]:
    rows = db.execute(
        "SELECT * FROM ruleset_activations WHERE name = ? ORDER BY effective_at, activation_id",
        [name],
    )
    return [_activation(row) for row in rows]


def activate(
    db: Database,
    name: str,
    version: int,
    created_by: str,
    effective_at: str | None = None,
    kind: str = "activate",
) -> dict:
    """Record that ``version`` becomes active at ``effective_at`` (default now)."""
    now = database.now()
    effective_at = effective_at or now
    with database.immediate(db):
        # Activations of one ruleset one at a time: each records the one it replaces.
        db.wait_job_lock(f"ruleset {name}")
        get(db, name, version)
        current = active(db, name, effective_at)
        row = db.execute(
            "INSERT INTO ruleset_activations (name, version, previous_version, kind,"
            " effective_at, created_by, created_at) VALUES (?,?,?,?,?,?,?) RETURNING *",
            [
                name,
                version,
                current["version"] if current else None,
                kind,
                effective_at,
                created_by,
                now,
            ],
        ).fetchone()
    return _activation(row)


def previous_version(db: Database, name: str) -> int:
    """The version that was active before the current one: what a rollback restores."""
    current = active(db, name)
    if current is None:
        raise NotFound(f"ruleset {name!r} has no active version")
    if current["previous_version"] is None:
        raise Conflict(
            f"{name} version {current['version']} was the first active version;"
            " there is nothing to roll back to",
            code="nothing_to_roll_back",
        )
    return current["previous_version"]


# Scenarios -----------------------------------------------------------------------------


def put_scenario(
    db: Database, name: str, scenario_id: str, document: dict, source: str
) -> tuple[dict, bool]:
    with database.atomic(db):
        created = not db.execute(
            "SELECT 1 FROM ruleset_scenarios WHERE name = ? AND scenario_id = ?",
            [name, scenario_id],
        ).fetchone()
        db.execute(
            "INSERT INTO ruleset_scenarios (name, scenario_id, document, source, updated_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (name, scenario_id) DO UPDATE SET"
            " document = excluded.document, source = excluded.source,"
            " updated_at = excluded.updated_at",
            [name, scenario_id, canonical(document), source, database.now()],
        )
    return {"scenario_id": scenario_id, **document}, created


def scenarios(db: Database, name: str) -> list[dict]:
    rows = db.execute(
        "SELECT scenario_id, document FROM ruleset_scenarios WHERE name = ? ORDER BY scenario_id",
        [name],
    )
    return [{"scenario_id": row[0], **json.loads(row[1])} for row in rows]
