"""Settings as data: every knob has a name, a default and a help text.

Each setting is read from the environment variable ``DOM_<NAME>``; tests and
embedders pass a mapping to ``create_app(config)`` instead. The README's table of
settings, the CLI and a test all iterate over ``SETTINGS``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _seconds(value: str) -> tuple[float, ...]:
    delays = tuple(float(part) for part in value.split(",") if part.strip())
    if not delays or any(delay < 0 for delay in delays):
        raise ValueError(f"expected comma-separated seconds, got {value!r}")
    return delays


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value.strip().lower() not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}, got {value!r}")
        return value.strip().lower()

    return parse


def _time_of_day(value: str) -> str:
    """HH:MM on a 24-hour clock, or empty (never)."""
    value = value.strip()
    if value:
        hours, _, minutes = value.partition(":")
        if not (hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60):
            raise ValueError(f"expected HH:MM or nothing, got {value!r}")
        value = f"{int(hours):02d}:{int(minutes):02d}"
    return value


@dataclass(frozen=True)
class Setting:
    """One configuration value: its name, default, meaning and parser."""

    name: str
    default: Any
    help: str
    parse: Callable[[str], Any] = str
    secret: bool = False  # never printed: `dom settings` shows it redacted

    @property
    def env(self) -> str:
        return f"DOM_{self.name}"


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "DATABASE",
        "dom.db",
        "Path of the SQLite database file, or a PostgreSQL URL (postgresql://user@host/db).",
    ),
    Setting(
        "DATABASE_POOL_SIZE",
        10,
        "PostgreSQL: most connections each process keeps open.",
        int,
    ),
    Setting(
        "DATABASE_WAIT_SECONDS",
        5.0,
        "PostgreSQL: how long a request waits for a connection before 503.",
        float,
    ),
    Setting(
        "STATEMENT_TIMEOUT_MS",
        30000,
        "PostgreSQL: a statement running longer than this is cancelled.",
        int,
    ),
    Setting(
        "LOCK_TIMEOUT_MS",
        10000,
        "PostgreSQL: a transaction waiting longer than this for a row lock is run again.",
        int,
    ),
    Setting(
        "DATABASE_RETRIES",
        8,
        "PostgreSQL: times a request is run again after a deadlock or a lost race, then 503.",
        int,
    ),
    Setting("HOST", "127.0.0.1", "Address `dom serve` listens on."),
    Setting("PORT", 8000, "Port `dom serve` listens on.", int),
    Setting("WORKERS", 2, "Worker processes started by `dom serve`.", int),
    Setting(
        "MAX_BODY_BYTES",
        16 * 1024 * 1024,
        "Largest request body accepted, in bytes; larger bodies get 413.",
        int,
    ),
    Setting(
        "AUTO_MIGRATE",
        True,
        "Apply pending migrations when the service starts.",
        _bool,
    ),
    Setting(
        "LOAD_RULESETS",
        True,
        "Load the rulesets in DOM_RULESETS_DIR when the service starts.",
        _bool,
    ),
    Setting(
        "STORE_PERSONAL_DATA",
        True,
        "Store customers' email and phone. When false they are dropped on write.",
        _bool,
    ),
    Setting(
        "SQLITE_BUSY_TIMEOUT_MS",
        10000,
        "How long a writer waits for SQLite's write lock before failing.",
        int,
    ),
    Setting(
        "DISPATCH_EMBEDDED",
        True,
        "Run the webhook dispatcher inside `dom serve` (one thread per worker process).",
        _bool,
    ),
    Setting("WEBHOOK_TIMEOUT_SECONDS", 15.0, "A node has this long to answer a webhook.", float),
    Setting(
        "RETRY_SCHEDULE",
        (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0),
        "Seconds between failed attempts, comma-separated; after the last, a message is dead.",
        _seconds,
    ),
    Setting("RETRY_JITTER", 0.2, "Random share added to or taken from each retry delay.", float),
    Setting(
        "WEBHOOK_ALLOW",
        "",
        "Hosts or networks webhooks may reach although private or loopback (e.g. 127.0.0.1).",
    ),
    Setting(
        "WEBHOOK_SECRET_GRACE_SECONDS",
        86400,
        "After a node's secret changes, messages carry both signatures for this long.",
        int,
    ),
    Setting(
        "ENDPOINT_DISABLE_AFTER_SECONDS",
        259200,
        "An endpoint that has failed without one success for this long is disabled and"
        " reported; its messages then run out their own retry schedules.",
        int,
    ),
    Setting(
        "CIRCUIT_OPEN_AFTER",
        5,
        "Consecutive failed attempts after which an endpoint's circuit opens: its messages"
        " wait, unattempted, and one probe is sent when the wait ends.",
        int,
    ),
    Setting(
        "CIRCUIT_WAIT_SECONDS",
        30.0,
        "How long an open circuit waits before its first probe; doubled after each failed"
        " probe, up to DOM_CIRCUIT_MAX_WAIT_SECONDS.",
        float,
    ),
    Setting(
        "CIRCUIT_MAX_WAIT_SECONDS",
        600.0,
        "The longest an open circuit waits between probes.",
        float,
    ),
    Setting(
        "DISPATCH_LEASE_SECONDS",
        60.0,
        "How long a worker holds a claimed message; renewed before each attempt, and never"
        " shorter than twice the webhook timeout while a request is in flight.",
        float,
    ),
    Setting("DISPATCH_POLL_SECONDS", 0.5, "How often an idle dispatcher looks for work.", float),
    Setting(
        "REPLENISH_AT",
        "",
        "UTC time of day (HH:MM) at which a dispatcher runs replenishment over the whole"
        " network, once a day across all servers; empty: runs only on request.",
        _time_of_day,
    ),
    Setting(
        "AMQP_URL",
        "",
        "RabbitMQ (AMQP 0-9-1) URL with its credentials, e.g."
        " amqp://dom:secret@mq.internal:5672/%2F; needed once a node or subscription uses"
        " the `amqp` transport.",
        secret=True,
    ),
    Setting(
        "NATS_URL",
        "",
        "NATS URL with its credentials, e.g. nats://dom:secret@nats.internal:4222 (JetStream"
        " enabled); needed once a node or subscription uses the `nats` transport.",
        secret=True,
    ),
    Setting(
        "BROKER_TIMEOUT_SECONDS",
        10.0,
        "How long a broker has to confirm a message (publisher confirm, JetStream"
        " acknowledgement); past it the attempt failed and is retried on the schedule.",
        float,
    ),
    Setting(
        "NODE_EVENTS_QUEUE",
        "dom.node-events",
        "RabbitMQ: the durable queue node events are consumed from; invalid events go to"
        " `<queue>.dead` with their error.",
    ),
    Setting(
        "NODE_EVENTS_SUBJECT",
        "dom.node-events",
        "NATS: nodes publish their events to `<subject>.<node_id>` (stream DOM_NODE_EVENTS,"
        " named after the subject); invalid events go to `<subject>-dead.<node_id>` (stream"
        " DOM_NODE_EVENTS_DEAD).",
    ),
    Setting(
        "SECRET_KEYS",
        "",
        "Fernet keys that encrypt webhook and subscription secrets at rest, comma-separated;"
        " the first encrypts, all decrypt. Empty: a key file beside the SQLite database"
        " (on PostgreSQL they must be set, the same on every server).",
        str,
        secret=True,
    ),
    Setting(
        "EVALUATION_TIMEOUT_SECONDS",
        5.0,
        "The longest one rules evaluation may run (compilation included, a new engine"
        " process's start-up not); past it the engine's process is killed and replaced,"
        " and the request gets 503.",
        float,
    ),
    Setting(
        "EVALUATION_MEMORY_MB",
        2048,
        "The address space the rules engine's process may use, in MiB.",
        int,
    ),
    Setting(
        "RESOURCING_MAX_ROUNDS",
        3,
        "Times an order's lines are sourced again after rejections before it is held.",
        int,
    ),
    Setting("LOG_LEVEL", "INFO", "Logging level of the service (DEBUG, INFO, WARNING, ERROR)."),
    Setting(
        "LOG_FORMAT",
        "json",
        "Log lines as `json` (one object per line, for a log pipeline) or `text` (for a terminal).",
        _choice("json", "text"),
    ),
    Setting(
        "METRICS_TOKEN",
        "",
        "Bearer token that `GET /metrics` requires. Empty: /metrics answers without one"
        " (keep the port private then).",
        secret=True,
    ),
    Setting(
        "METRICS_DIR",
        "",
        "Folder where `dom serve`'s workers and `dom dispatch` on this machine keep their"
        " metrics, summed at each scrape. Empty: one per database under the temp folder.",
    ),
    Setting(
        "SHUTDOWN_GRACE_SECONDS",
        30.0,
        "On SIGTERM, how long requests in flight and the dispatcher's current delivery may"
        " take to finish before the process stops.",
        float,
    ),
    Setting(
        "READY_TIMEOUT_SECONDS",
        2.0,
        "`/readyz`: how long the database may take to answer before the process is not ready.",
        float,
    ),
    Setting(
        "DISPATCH_STALE_SECONDS",
        30.0,
        "`/readyz`: a dispatcher that has not reported for this long is not running; with"
        " none running, the service is not ready (messages would not go out).",
        float,
    ),
    Setting(
        "CONSOLE_SESSION_HOURS",
        12.0,
        "How long a console sign-in lasts before the person signs in again with their key.",
        float,
    ),
    Setting(
        "CONSOLE_SECURE_COOKIE",
        False,
        "Mark the console's cookies Secure (sent over HTTPS only): set it where the service is"
        " reached over HTTPS, as it should be beyond one machine.",
        _bool,
    ),
    Setting(
        "PUBLIC_URL",
        "",
        "The address customers reach the service at (https://track.example.com), for the"
        " tracking links it hands out; empty: the address the channel called.",
    ),
    Setting(
        "TRACKING_LINK_DAYS",
        60.0,
        "How long a customer's tracking link works, in days, unless the channel asks for less.",
        float,
    ),
    Setting("MIGRATIONS_DIR", str(ROOT / "migrations"), "Folder of numbered SQL migrations."),
    Setting("SCHEMAS_DIR", str(ROOT / "schemas"), "Folder of the JSON Schemas."),
    Setting("RULESETS_DIR", str(ROOT / "rulesets"), "Folder of the rulesets shipped."),
    Setting(
        "COOKBOOK_DIR",
        str(ROOT / "docs" / "cookbook"),
        "Folder of the cookbook policies shown in the ruleset language reference.",
    ),
)

BY_NAME = {setting.name: setting for setting in SETTINGS}


class SettingError(ValueError):
    """An environment variable holds a value its setting cannot parse."""


def load(environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None):
    """Return every setting's value: defaults, then ``DOM_*`` variables, then overrides."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        value = setting.default
        if setting.env in environ:
            try:
                value = setting.parse(environ[setting.env])
            except ValueError as exc:
                raise SettingError(f"{setting.env}: {exc}") from exc
        values[setting.name] = value
    for name, value in (overrides or {}).items():
        values[name] = value
    return values


def effective(environ: Mapping[str, str] | None = None) -> list[dict]:
    """Each setting's value and where it came from (default, environment), secrets redacted."""
    environ = os.environ if environ is None else environ
    values = load(environ)
    rows = []
    for setting in SETTINGS:
        value = values[setting.name]
        if isinstance(value, tuple):
            value = ",".join(f"{part:g}" for part in value)
        if setting.secret and value:
            value = "(set, redacted)"
        elif setting.name == "DATABASE":
            from app.platform.db import describe

            value = describe(str(value))
        rows.append(
            {
                "name": setting.name,
                "env": setting.env,
                "value": value,
                "source": "environment" if setting.env in environ else "default",
            }
        )
    return rows
