"""Stored ruleset versions, activations and scenarios.

Owns ``ruleset_versions``, ``ruleset_activations``, ``ruleset_version_scenarios`` and
``ruleset_scenarios``. Versions are immutable, identified by name, version and the
sha256 of their canonical JSON; each keeps the scenarios it was stored with, as
immutable as its rules (``scenarios_sha256``). ``ruleset_scenarios`` is the draft
set: what the next version will carry, starting from the latest version's. The
active version at a time is named by the newest activation that is effective by
then, so scheduled activations need no timer.
"""

from __future__ import annotations

from functools import lru_cache

from app.machinery.rules.kinds import DEFAULT as DEFAULT_KIND
from app.machinery.rules.language import canonical, content_hash
from app.platform import db as database
from app.platform import jsontext
from app.platform.db import Database
from app.platform.errors import Conflict, NotFound


class VersionConflict(Conflict):
    code = "version_conflict"


def _version(row, with_document: bool = True) -> dict:
    document = _document(row["name"], row["version"], row["sha256"], row["document"])
    version = {
        "ruleset": row["name"],
        "kind": document.get("kind", DEFAULT_KIND),
        "version": row["version"],
        "sha256": row["sha256"],
        "description": row["description"],
        "change_note": document.get("change_note"),
        "rule_count": row["rule_count"],
        "source": row["source"],
        "created_by": row["created_by"],
        "created_at": row["created_at"],
    }
    if with_document:
        version["document"] = document
    return version


@lru_cache(maxsize=256)
def _document(name: str, version: int, sha256: str, text: str) -> dict:
    # A stored version never changes (its hash names it): each process parses it once,
    # and every reader shares it, so no reader may modify it.
    return jsontext.loads(text)


def store(
    db: Database,
    document: dict,
    source: str,
    created_by: str,
    scenarios: dict[str, dict] | None = None,
) -> tuple[dict, bool]:
    """Store a validated version with its scenarios; return ``(version, created)``.

    The version carries ``scenarios`` (id to document) or, without them, the draft set.
    The same content again is a no-op; other content under a stored number is a conflict.
    """
    name, number = document["ruleset"], document["version"]
    digest = content_hash(document)
    with database.immediate(db):
        _require_same_kind(db, name, document.get("kind", DEFAULT_KIND))
        row = db.execute(
            "SELECT * FROM ruleset_versions WHERE name = ? AND version = ?", [name, number]
        ).fetchone()
        if row is not None:
            if row["sha256"] != digest:
                raise VersionConflict(
                    f"{name} version {number} is stored with other content"
                    f" (sha256 {row['sha256'][:12]}…); versions are immutable: use a new number"
                )
            return detail(db, name, number), False
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
        draft = draft_scenarios(db, name)
        carried = draft if scenarios is None else scenarios
        db.executemany(
            "INSERT INTO ruleset_version_scenarios (name, version, scenario_id, document)"
            " VALUES (?, ?, ?, ?)",
            [(name, number, sid, canonical(case)) for sid, case in sorted(carried.items())],
        )
        if scenarios is not None and _draft_untouched(db, name, number, draft):
            # A version stored with scenarios of its own (a shipped file) becomes the parent
            # of the next one: the draft follows it, unless analysts have edited the draft.
            db.execute("DELETE FROM ruleset_scenarios WHERE name = ?", [name])
            for sid, case in sorted(scenarios.items()):
                put_scenario(db, name, sid, case, source)
    return detail(db, name, number), True


class KindChanged(Conflict):
    code = "kind_changed"


def _require_same_kind(db: Database, name: str, kind: str) -> None:
    """Every version of a ruleset decides the same kind of thing."""
    row = db.execute(
        "SELECT name, version, sha256, document FROM ruleset_versions WHERE name = ?"
        " ORDER BY version DESC LIMIT 1",
        [name],
    ).fetchone()
    if row is None:
        return
    stored = _document(row[0], row[1], row[2], row[3]).get("kind", DEFAULT_KIND)
    if stored != kind:
        raise KindChanged(
            f"{name} is a {stored} ruleset; a version of kind {kind} cannot join it"
            " (store it under another name)"
        )


def _draft_untouched(db: Database, name: str, number: int, draft: dict) -> bool:
    """Whether the draft set is still the scenarios of the version before ``number``."""
    previous = db.execute(
        "SELECT MAX(version) FROM ruleset_versions WHERE name = ? AND version != ?",
        [name, number],
    ).fetchone()[0]
    return previous is None or content_hash(draft) == content_hash(
        version_scenarios(db, name, previous)
    )


def get(db: Database, name: str, version: int) -> dict:
    row = db.execute(
        "SELECT * FROM ruleset_versions WHERE name = ? AND version = ?", [name, version]
    ).fetchone()
    if row is None:
        raise NotFound(f"ruleset {name!r} has no version {version}")
    return _version(row)


def detail(db: Database, name: str, version: int) -> dict:
    """A version with the ids and the hash of the scenarios it carries."""
    carried = version_scenarios(db, name, version)
    return {
        **get(db, name, version),
        "scenarios": sorted(carried),
        "scenarios_sha256": content_hash(carried),
    }


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
        "status": row["status"],
        "failure": row["failure"],
        "checked_at": row["checked_at"],
        "created_by": row["created_by"],
        "created_at": row["created_at"],
    }


def active(db: Database, name: str, at: str | None = None) -> dict | None:
    """Return the activation in force at ``at`` (default now), or None.

    A scheduled one that fell due counts from its time unless its check failed; its
    ``status`` stays ``scheduled`` until ``runtime.confirm_due`` has run its scenarios.
    """
    row = db.execute(
        "SELECT * FROM ruleset_activations WHERE name = ? AND effective_at <= ?"
        " AND status != 'failed' ORDER BY effective_at DESC, activation_id DESC LIMIT 1",
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
            " effective_at, created_by, created_at, status) VALUES (?,?,?,?,?,?,?,?) RETURNING *",
            [
                name,
                version,
                current["version"] if current else None,
                kind,
                effective_at,
                created_by,
                now,
                "scheduled" if effective_at > now else "effective",
            ],
        ).fetchone()
    return _activation(row)


def due(db: Database, now: str | None = None) -> list[dict]:
    """Scheduled activations whose time has come and whose scenarios have not run since."""
    rows = db.execute(
        "SELECT * FROM ruleset_activations WHERE status = 'scheduled' AND effective_at <= ?"
        " ORDER BY effective_at, activation_id",
        [now or database.now()],
    )
    return [_activation(row) for row in rows]


def settle(db: Database, activation_id: int, failure: str | None) -> None:
    """Record a due activation's check: effective, or failed with the reason."""
    db.execute(
        "UPDATE ruleset_activations SET status = ?, failure = ?, checked_at = ?"
        " WHERE activation_id = ? AND status = 'scheduled'",
        ["failed" if failure else "effective", failure, database.now(), activation_id],
    )


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
    return [{"scenario_id": row[0], **jsontext.loads(row[1])} for row in rows]


def draft_scenarios(db: Database, name: str) -> dict[str, dict]:
    """The draft set: what the next version of ``name`` will carry, by id."""
    return {case.pop("scenario_id"): case for case in scenarios(db, name)}


def draft_scenario(db: Database, name: str, scenario_id: str) -> dict:
    row = db.execute(
        "SELECT document FROM ruleset_scenarios WHERE name = ? AND scenario_id = ?",
        [name, scenario_id],
    ).fetchone()
    if row is None:
        raise NotFound(f"ruleset {name!r} has no scenario {scenario_id!r} in its draft")
    return {"scenario_id": scenario_id, **jsontext.loads(row[0])}


def delete_scenario(db: Database, name: str, scenario_id: str) -> None:
    """Take a scenario out of the draft set (versions keep theirs)."""
    with database.atomic(db):
        gone = db.execute(
            "DELETE FROM ruleset_scenarios WHERE name = ? AND scenario_id = ?",
            [name, scenario_id],
        )
        if gone.rowcount == 0:
            raise NotFound(f"ruleset {name!r} has no scenario {scenario_id!r} in its draft")


def version_scenarios(db: Database, name: str, version: int) -> dict[str, dict]:
    """The scenarios ``version`` was stored with, by id: immutable, like its rules."""
    rows = db.execute(
        "SELECT scenario_id, document FROM ruleset_version_scenarios"
        " WHERE name = ? AND version = ? ORDER BY scenario_id",
        [name, version],
    )
    return {row[0]: jsontext.loads(row[1]) for row in rows}
