"""Circuit breakers for webhook endpoints. Owns ``endpoint_circuits``.

Failures are counted over time, not over messages, so one brief outage cannot use
up a backlog's retries:

- **closed**: messages go out as they fall due. ``CIRCUIT_OPEN_AFTER`` failed
  attempts in a row open the circuit.
- **open**: no message to the endpoint is attempted (none loses a retry) until the
  wait ends: ``CIRCUIT_WAIT_SECONDS``, doubled after each failed probe up to
  ``CIRCUIT_MAX_WAIT_SECONDS``.
- **half open**: one due message goes as a probe. Success closes the circuit and the
  backlog flows; failure opens it again for longer.

An endpoint that has failed without a single success for
``ENDPOINT_DISABLE_AFTER_SECONDS`` (or answered 410 Gone) is disabled and reported;
its messages then run out their own retry schedules and end dead, replayable.
``after`` is the pure rule; the rest reads and writes the table.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from app.platform import db as database
from app.platform import logs
from app.platform.db import Database


def key(node_id: str | None, subscription_id: str | None) -> str:
    """The endpoint a message goes to."""
    return f"node:{node_id}" if node_id else f"subscription:{subscription_id}"


@dataclass(frozen=True)
class Circuit:
    state: str = "closed"
    failures: int = 0
    failing_since: str | None = None
    open_until: str | None = None
    opened_count: int = 0
    probe_message_id: str | None = None


@dataclass(frozen=True)
class Limits:
    open_after: int
    wait_seconds: float
    max_wait_seconds: float
    disable_after_seconds: float

    @classmethod
    def from_config(cls, config) -> Limits:
        return cls(
            config["CIRCUIT_OPEN_AFTER"],
            config["CIRCUIT_WAIT_SECONDS"],
            config["CIRCUIT_MAX_WAIT_SECONDS"],
            config["ENDPOINT_DISABLE_AFTER_SECONDS"],
        )


def after(circuit: Circuit, ok: bool, now: datetime, limits: Limits) -> tuple[Circuit, bool]:
    """The circuit after an attempt, and whether the endpoint has now failed for too long."""
    if ok:
        return Circuit(), False
    failing_since = circuit.failing_since or database.format_time(now)
    failures = circuit.failures + 1
    opened = circuit.opened_count
    state, open_until = circuit.state, circuit.open_until
    if circuit.state == "half_open" or (
        circuit.state == "closed" and failures >= limits.open_after
    ):
        wait = min(limits.max_wait_seconds, limits.wait_seconds * 2**opened)
        state, open_until, opened = (
            "open",
            database.format_time(now + timedelta(seconds=wait)),
            opened + 1,
        )
    too_long = now - database.parse_time(failing_since) >= timedelta(
        seconds=limits.disable_after_seconds
    )
    updated = replace(
        circuit,
        state=state,
        failures=failures,
        failing_since=failing_since,
        open_until=open_until,
        opened_count=opened,
        probe_message_id=None,
    )
    return updated, too_long


def get(db: Database, endpoint: str) -> Circuit:
    row = db.execute(
        "SELECT state, failures, failing_since, open_until, opened_count, probe_message_id"
        " FROM endpoint_circuits WHERE endpoint = ?",
        [endpoint],
    ).fetchone()
    return Circuit(**dict(row)) if row else Circuit()


def put(db: Database, endpoint: str, circuit: Circuit) -> None:
    """Store a circuit; call inside a transaction."""
    db.execute(
        "INSERT INTO endpoint_circuits (endpoint, state, failures, failing_since, open_until,"
        " opened_count, probe_message_id, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (endpoint) DO UPDATE SET state = excluded.state,"
        " failures = excluded.failures, failing_since = excluded.failing_since,"
        " open_until = excluded.open_until, opened_count = excluded.opened_count,"
        " probe_message_id = excluded.probe_message_id, updated_at = excluded.updated_at",
        [
            endpoint,
            circuit.state,
            circuit.failures,
            circuit.failing_since,
            circuit.open_until,
            circuit.opened_count,
            circuit.probe_message_id,
            database.now(),
        ],
    )


def record(
    db: Database, endpoint: str, ok: bool, now: datetime, limits: Limits
) -> tuple[Circuit, bool]:
    """Apply an attempt's result; return the circuit and whether the endpoint failed too long."""
    # Dispatchers on several servers record results of one endpoint: one at a time.
    db.wait_job_lock(f"circuit {endpoint}")
    before = get(db, endpoint)
    circuit, too_long = after(before, ok, now, limits)
    put(db, endpoint, circuit)
    if before.state != circuit.state:
        logs.event(
            "circuit.opened" if circuit.state == "open" else f"circuit.{circuit.state}",
            logging.WARNING if circuit.state == "open" else logging.INFO,
            endpoint=endpoint,
            failures=circuit.failures,
            was=before.state,
        )
    return circuit, too_long


def may_send(circuit: Circuit, message_id: str) -> bool:
    """Whether a message may be attempted now: the circuit is closed, or it is the probe."""
    return circuit.state == "closed" or circuit.probe_message_id == message_id


def admit(db: Database, endpoint: str, message_id: str, now: str, probe_until: str) -> bool:
    """At claim time: may this message go? An open circuit whose wait is over (or whose
    probe was lost with its worker) lets this one through as its probe."""
    circuit = get(db, endpoint)
    if circuit.state == "closed":
        return True
    # Only one dispatcher may pick the probe: read the circuit again under its lock.
    db.wait_job_lock(f"circuit {endpoint}")
    circuit = get(db, endpoint)
    if circuit.state == "closed":
        return True
    if circuit.probe_message_id == message_id:
        return True
    if (circuit.open_until or "") > now:
        return False
    put(
        db,
        endpoint,
        replace(circuit, state="half_open", open_until=probe_until, probe_message_id=message_id),
    )
    return True


def reset(db: Database, endpoint: str) -> None:
    """Close a circuit (an operator re-enabled or changed the endpoint)."""
    db.execute("DELETE FROM endpoint_circuits WHERE endpoint = ?", [endpoint])
