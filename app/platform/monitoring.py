"""Prometheus metrics: what each process counts, and what the database says at scrape time.

Counters and histograms are kept by ``prometheus_client``. Under `dom serve` and
`dom dispatch` it runs in its multiprocess mode: every gunicorn worker and every
dispatcher writes its own files in one folder (``DOM_METRICS_DIR``), and a scrape of
any worker sums them all. State that lives in the database (back-orders waiting,
reservations, the outbox, disabled endpoints, feed ages, experiments) is read from it
when ``/metrics`` is scraped, so every server reports the same truth.

Every metric here has labels: its values are made when first used, which is after
``use_directory`` has chosen where they are kept.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess, values
from prometheus_client.core import GaugeMetricFamily

from app.platform import db as database

# The *_created series say when a process first counted; a scrape needs none of them.
prometheus_client.disable_created_metrics()

# Seconds: a decision phase takes from 0.1 ms to seconds; a request up to the gunicorn timeout.
PHASE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
PHASES = ("facts", "rules", "allocation", "commit")

REQUESTS = Counter("dom_http_requests", "HTTP requests answered.", ["route", "method", "status"])
REQUEST_SECONDS = Histogram(
    "dom_http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["route", "method"],
    buckets=REQUEST_BUCKETS,
)
DECISIONS = Counter(
    "dom_decisions",
    "Decisions committed, by kind (order, resource, resume, simulation), ruleset version,"
    " outcome and experiment variant.",
    ["kind", "ruleset", "version", "outcome", "variant"],
)
DECISION_PHASE_SECONDS = Histogram(
    "dom_decision_phase_seconds",
    "Time a decision spends in each phase: facts, rules, allocation, commit.",
    ["kind", "phase"],
    buckets=PHASE_BUCKETS,
)
DECISION_SECONDS = Histogram(
    "dom_decision_duration_seconds",
    "Time from reading the facts to the decision's commit.",
    ["kind"],
    buckets=PHASE_BUCKETS,
)
RULES_FIRED = Counter(
    "dom_rules_fired", "Rules that fired in committed decisions.", ["ruleset", "rule"]
)
DELIVERIES = Counter(
    "dom_deliveries",
    "Delivery attempts of outbox messages, by result (delivered, retry, dead) and error class.",
    ["result", "error_class", "event_type"],
)
DELIVERY_SECONDS = Histogram(
    "dom_delivery_duration_seconds",
    "Time of one delivery attempt.",
    ["result"],
    buckets=REQUEST_BUCKETS,
)
ENDPOINT_CHANGES = Counter(
    "dom_endpoint_changes", "Webhook endpoints disabled or enabled again.", ["change"]
)
FEED_ITEMS = Counter(
    "dom_feed_items", "Inventory feed items applied or skipped.", ["mode", "result"]
)
NODE_EVENTS = Counter(
    "dom_node_events",
    "Node events received over a broker: applied, replayed (a duplicate) or dead-lettered.",
    ["transport", "result"],
)
BACKORDERS_RESUMED = Counter(
    "dom_backorders_resumed", "Waiting orders decided again when stock was freed.", ["source"]
)
ACTIVATIONS = Counter(
    "dom_ruleset_activations",
    "Ruleset activations and rollbacks, by result.",
    ["ruleset", "action", "result"],
)
EXPERIMENT_STOPS = Counter(
    "dom_experiment_stops", "Experiments stopped, by why (stopped, guardrail, promoted).", ["why"]
)
ENGINE_LOADED = Gauge(
    "dom_engine_rulesets_loaded",
    "Ruleset versions and drafts compiled in the rules engines of live processes.",
    ["kind"],
    multiprocess_mode="livesum",
)

OWN = (
    REQUESTS,
    REQUEST_SECONDS,
    DECISIONS,
    DECISION_PHASE_SECONDS,
    DECISION_SECONDS,
    RULES_FIRED,
    DELIVERIES,
    DELIVERY_SECONDS,
    ENDPOINT_CHANGES,
    FEED_ITEMS,
    BACKORDERS_RESUMED,
    NODE_EVENTS,
    ACTIVATIONS,
    EXPERIMENT_STOPS,
    ENGINE_LOADED,
)


def use_directory(directory: str | Path) -> Path:
    """Keep this process's metrics in ``directory``, shared with the processes it starts.

    Call before any metric is used. Files of processes that are no longer running are
    removed (gunicorn's workers of an earlier run, a dispatcher that was killed).
    """
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for file in path.glob("*.db"):
        pid = file.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            file.unlink(missing_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    # prometheus_client chooses its storage when imported; choose it again now that the
    # folder is known (the metrics above have made no values yet: they all have labels).
    values.ValueClass = values.get_value_class()
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_exited(pid: int) -> None:
    """Forget the live gauges of a gunicorn worker that exited."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)


def default_directory(database_url: str) -> Path:
    """Where `dom serve` and `dom dispatch` of one database keep metrics on this machine."""
    import hashlib
    import tempfile

    digest = hashlib.sha256(database.describe(database_url).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"dom-metrics-{digest}"


# What the code reports -----------------------------------------------------------------


def request_done(route: str, method: str, status: int, seconds: float) -> None:
    REQUESTS.labels(route, method, str(status)).inc()
    REQUEST_SECONDS.labels(route, method).observe(seconds)


def decision_committed(decision: dict, kind: str, commit_seconds: float) -> None:
    """Count a committed decision, its phases and the rules that fired in it."""
    ruleset = decision.get("ruleset") or {}
    variant = (decision.get("experiment") or {}).get("variant") or "none"
    DECISIONS.labels(
        kind, ruleset.get("name", ""), str(ruleset.get("version", "")), decision["status"], variant
    ).inc()
    timings = decision.get("timings_ms") or {}
    for phase in PHASES[:3]:
        if phase in timings:
            DECISION_PHASE_SECONDS.labels(kind, phase).observe(timings[phase] / 1000)
    DECISION_PHASE_SECONDS.labels(kind, "commit").observe(commit_seconds)
    if "total" in timings:
        DECISION_SECONDS.labels(kind).observe(timings["total"] / 1000 + commit_seconds)
    for rule in sorted(set((decision.get("explanation") or {}).get("rules_fired") or [])):
        RULES_FIRED.labels(ruleset.get("name", ""), rule).inc()


def engine_loaded(versions: int, drafts: int) -> None:
    ENGINE_LOADED.labels("version").set(versions)
    ENGINE_LOADED.labels("draft").set(drafts)


# What the database says, read at each scrape ------------------------------------------------


class DatabaseState:
    """A collector that reads the service's state from the database at each scrape."""

    def __init__(self, config) -> None:
        self.config = config

    def collect(self):
        db = database.open_from_config(self.config)
        try:
            yield from state_metrics(db, time.time())
        finally:
            db.rollback()
            db.close()


def _age(now: float, stamp: str | None) -> float:
    return max(0.0, now - database.parse_time(stamp).timestamp()) if stamp else 0.0


def state_metrics(db, now: float) -> list:
    """The gauges read from the database (a pure read; ``now`` in epoch seconds)."""
    gauge = GaugeMetricFamily
    waiting = gauge("dom_backorders_waiting", "Orders waiting for stock (back-ordered).")
    waiting.add_metric(
        [], db.execute("SELECT COUNT(*) FROM orders WHERE status = 'backordered'").fetchone()[0]
    )
    held = gauge("dom_orders_on_hold", "Orders held by a rule for a person to review.")
    held.add_metric(
        [], db.execute("SELECT COUNT(*) FROM orders WHERE status = 'on_hold'").fetchone()[0]
    )
    active = gauge(
        "dom_reservations_active", "Active stock reservations, by supply.", labels=["supply"]
    )
    for row in db.execute(
        "SELECT supply, COUNT(*) FROM reservations WHERE status = 'active' GROUP BY supply"
        " ORDER BY supply"
    ):
        active.add_metric([row[0]], row[1])
    depth = gauge("dom_outbox_pending", "Outbox messages not yet delivered.", labels=["event_type"])
    oldest = gauge(
        "dom_outbox_oldest_pending_age_seconds",
        "Age of the oldest undelivered outbox message.",
        labels=["event_type"],
    )
    dead = gauge(
        "dom_outbox_dead", "Outbox messages that ran out of attempts.", labels=["event_type"]
    )
    for row in db.execute(
        "SELECT event_type, status, COUNT(*), MIN(created_at) FROM outbox"
        " WHERE status IN ('pending', 'dead') GROUP BY event_type, status ORDER BY event_type"
    ):
        if row[1] == "pending":
            depth.add_metric([row[0]], row[2])
            oldest.add_metric([row[0]], _age(now, row[3]))
        else:
            dead.add_metric([row[0]], row[2])
    disabled = gauge(
        "dom_endpoints_disabled", "Webhook endpoints disabled after failing.", labels=["kind"]
    )
    disabled.add_metric(
        ["node"],
        db.execute("SELECT COUNT(*) FROM nodes WHERE webhook_disabled_at IS NOT NULL").fetchone()[
            0
        ],
    )
    disabled.add_metric(
        ["subscription"],
        db.execute("SELECT COUNT(*) FROM subscriptions WHERE disabled_at IS NOT NULL").fetchone()[
            0
        ],
    )
    feed_age = gauge(
        "dom_node_feed_age_seconds",
        "Seconds since the newest inventory count of each node (as_of of its last feed).",
        labels=["node"],
    )
    oldest_feed = gauge(
        "dom_node_feed_oldest_age_seconds",
        "The feed age of the node whose inventory is the most out of date.",
    )
    ages = [
        (row[0], _age(now, row[1]))
        for row in db.execute(
            "SELECT node_id, MAX(as_of) FROM feeds GROUP BY node_id ORDER BY node_id"
        )
    ]
    for node_id, age in ages:
        feed_age.add_metric([node_id], age)
    oldest_feed.add_metric([], max((age for _, age in ages), default=0.0))
    assignments = gauge(
        "dom_experiment_assignments",
        "Orders decided under each variant of a running experiment.",
        labels=["experiment", "variant"],
    )
    running = gauge(
        "dom_experiment_running",
        "1 while an experiment runs, 0 once it stopped.",
        labels=["experiment"],
    )
    guardrail = gauge(
        "dom_experiment_guardrail_stopped",
        "1 when a guardrail stopped the experiment.",
        labels=["experiment"],
    )
    experiments = db.execute(
        "SELECT experiment_id, status, stop_reason FROM experiments ORDER BY experiment_id"
    ).fetchall()
    for row in experiments:
        running.add_metric([row[0]], 1 if row[1] == "running" else 0)
        guardrail.add_metric([row[0]], 1 if (row[2] or "").startswith("guardrail") else 0)
    for row in db.execute(
        "SELECT d.experiment_id, d.variant, COUNT(*) FROM decisions d"
        " JOIN experiments e ON e.experiment_id = d.experiment_id"
        " WHERE e.status = 'running' AND d.kind = 'order'"
        " GROUP BY d.experiment_id, d.variant ORDER BY d.experiment_id, d.variant"
    ):
        assignments.add_metric([row[0], row[1]], row[2])
    beats = gauge(
        "dom_dispatcher_heartbeat_age_seconds",
        "Seconds since each running dispatcher last reported.",
        labels=["worker"],
    )
    for row in db.execute("SELECT worker, beat_at FROM dispatchers ORDER BY worker"):
        beats.add_metric([row[0]], _age(now, row[1]))
    return [
        waiting,
        held,
        active,
        depth,
        oldest,
        dead,
        disabled,
        feed_age,
        oldest_feed,
        assignments,
        running,
        guardrail,
        beats,
    ]


def exposition(config) -> tuple[bytes, str]:
    """The text a scrape gets: every process's counters, and the database's state."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        for metric in OWN:
            registry.register(metric)
    registry.register(DatabaseState(config))
    return prometheus_client.generate_latest(registry), prometheus_client.CONTENT_TYPE_LATEST
