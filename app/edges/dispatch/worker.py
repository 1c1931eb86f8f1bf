"""The dispatcher: claims due outbox messages, delivers them, records every attempt.

Several dispatchers (threads inside `dom serve`, or `dom dispatch` processes) share
one outbox: a claim is a lease, so no two deliver the same message at once, and a
lease left by a dead worker expires and the message is delivered by another. On a
graceful stop the current message is finished and the others are handed back.
A lease is renewed before each attempt and outlives it; an attempt is logged
before the request goes out; a worker that lost its lease settles nothing.
The dispatcher also sweeps: shipments whose holds lapsed or that no node accepted
in time are withdrawn, and back-orders waiting for freed stock are decided again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import secrets
import threading
import time
from datetime import UTC, datetime

from app.domain import shipments, subscriptions
from app.domain.network import nodes
from app.edges.dispatch import heartbeats, node_events
from app.platform import db as database
from app.platform import logs, monitoring, vault
from app.platform.messaging import brokers, circuits, deliver, outbox

log = logging.getLogger(__name__)
BATCH = 20
SWEEP_EVERY = 5.0
# Guardrails read every decision of an experiment: check them less often than the rest.
GUARDRAILS_EVERY = 60.0
# Rows of dispatchers silent this long (killed) are removed.
HEARTBEATS_KEPT = 86400.0


class Dispatcher:
    """Delivers outbox messages using the service's settings."""

    def __init__(self, config, worker: str | None = None, rng: random.Random | None = None):
        self.config = config
        self.vault = vault.from_config(config)
        self.worker = worker or f"{os.getpid()}-{secrets.token_hex(3)}"
        self.rng = rng or random.Random()
        self.stopping = threading.Event()
        self._last_sweep = 0.0
        self._last_beat = 0.0
        self.brokers = brokers.Brokers(config)
        self.consumers: dict[str, threading.Thread] = {}
        self._last_guardrails = 0.0
        # Endpoints with no webhook set that this dispatcher has warned of: said once each
        # (the demo's nodes, a node being set up), not at every message and retry.
        self._unconfigured: set[str] = set()

    def connect(self):
        return database.open_from_config(self.config)

    # One round ---------------------------------------------------------------------

    def run_once(self, db) -> int:
        """Claim and deliver one batch; sweep when due. Returns messages attempted."""
        self._beat(db)
        if time.monotonic() - self._last_sweep > SWEEP_EVERY:
            self._last_sweep = time.monotonic()
            self.sweep(db)
        claimed = outbox.claim(db, self.worker, self.config["DISPATCH_LEASE_SECONDS"], BATCH)
        done = 0
        for message in claimed:
            if self.stopping.is_set():
                break
            self._beat(db)  # a batch of slow endpoints can take minutes
            try:
                if self.deliver(db, message) is not None:
                    done += 1
            except Exception:  # one message must never hold up the others
                log.exception("delivering %s failed", message["message_id"])
                if db.in_transaction:
                    db.rollback()
        return done

    def _beat(self, db) -> None:
        """Report this dispatcher alive, at most every few seconds."""
        if time.monotonic() - self._last_beat > SWEEP_EVERY:
            self._last_beat = time.monotonic()
            heartbeats.beat(db, self.worker)

    def lease_seconds(self) -> float:
        """A lease outlives the attempt made under it, whatever the settings say."""
        # The slowest attempt: a webhook's timeout, or a broker's connect and confirm.
        slowest = max(
            self.config["WEBHOOK_TIMEOUT_SECONDS"], 2 * self.config["BROKER_TIMEOUT_SECONDS"] + 1
        )
        return max(self.config["DISPATCH_LEASE_SECONDS"], 2 * slowest + 5)

    def deliver(self, db, message: dict) -> str | None:
        """Attempt one message and record the outcome; return its new status.

        None when the message was not attempted (no longer this worker's to send).
        The attempt is logged before the request goes out and completed after it.
        Its log lines carry the request id of the request that caused the message.
        """
        with logs.handling(message.get("request_id")):
            return self._deliver(db, message)

    def _deliver(self, db, message: dict) -> str | None:
        attempt_id = outbox.begin_attempt(db, message, self.worker, self.lease_seconds())
        if attempt_id is None:
            return None
        target = (
            nodes.endpoint(db, message["node_id"], self.vault)
            if message["node_id"]
            else subscriptions.endpoint(db, message["subscription_id"], self.vault)
        )
        body = message["payload"].encode()
        if target is None or target["disabled"] or not target["secrets"]:
            reason = (
                "no webhook URL is set"
                if target is None
                else "the endpoint is disabled"
                if target["disabled"]
                else "no signing secret is set"
            )
            outcome = deliver.Outcome(
                database.now(), 0.0, error_class="no_endpoint", excerpt=reason
            )
        elif target["transport"]:
            outcome = self.brokers.publish(target["transport"], target["secrets"], message, body)
        else:
            outcome = deliver.send(
                target["url"],
                target["secrets"],
                message["message_id"],
                body,
                self.config["WEBHOOK_TIMEOUT_SECONDS"],
                self.config["WEBHOOK_ALLOW"],
                message.get("request_id"),
            )
        status, next_at = deliver.next_step(
            outcome,
            message["attempts"],
            tuple(self.config["RETRY_SCHEDULE"]),
            self.config["RETRY_JITTER"],
            self.rng.random(),
            datetime.now(UTC),
        )
        error = (
            None
            if outcome.ok
            else f"{outcome.error_class}: {outcome.status_code or ''}"
            f" {outcome.excerpt[:120]}".strip()
        )

        def settle() -> bool:
            with database.immediate(db):
                settled = outbox.finish_attempt(
                    db, attempt_id, message, self.worker, outcome, status, next_at, error
                )
                if target is not None and outcome.error_class != "no_endpoint":
                    self._endpoint_health(db, message, outcome)
                if settled and outcome.ok and message["event_type"] == "fulfillment.requested":
                    from app.lifecycle import holds

                    shipments.mark_requested(db, message["shipment_id"])
                    holds.extend(db, message["shipment_id"])
            return settled

        # A settle that lost a race (a deadlock, a serialization failure) is run again, not
        # dropped: dropped, the message would be sent again when its lease ends.
        settled = database.retrying(settle)
        if settled:
            self._report(message, outcome, status, next_at)
        return status if settled else None

    def _report(self, message: dict, outcome: deliver.Outcome, status: str, next_at) -> None:
        result = "delivered" if outcome.ok else "dead" if status == "dead" else "retry"
        error_class = outcome.error_class or ("http" if not outcome.ok else "none")
        monitoring.DELIVERIES.labels(result, error_class, message["event_type"]).inc()
        monitoring.DELIVERY_SECONDS.labels(result).observe(outcome.duration_ms / 1000)
        endpoint = circuits.key(message["node_id"], message["subscription_id"])
        level = logging.INFO if outcome.ok else logging.WARNING
        if outcome.error_class == "no_endpoint" and result != "dead":
            if endpoint in self._unconfigured:
                level = logging.DEBUG
            self._unconfigured.add(endpoint)
        elif outcome.ok:
            self._unconfigured.discard(endpoint)
        logs.event(
            "delivery.attempted",
            level,
            message_id=message["message_id"],
            event_type=message["event_type"],
            node_id=message["node_id"],
            subscription_id=message["subscription_id"],
            shipment_id=message["shipment_id"],
            attempt=message["attempts"] + 1,
            result=result,
            status_code=outcome.status_code,
            error_class=outcome.error_class,
            duration_ms=outcome.duration_ms,
            next_attempt_at=next_at,
        )

    def _endpoint_health(self, db, message: dict, outcome: deliver.Outcome) -> None:
        """Feed the endpoint's circuit; disable it on 410 or after failing for too long."""
        endpoint = circuits.key(message["node_id"], message["subscription_id"])
        circuit, too_long = circuits.record(
            db, endpoint, outcome.ok, datetime.now(UTC), circuits.Limits.from_config(self.config)
        )
        if message["subscription_id"]:
            subscriptions.note_failures(db, message["subscription_id"], circuit.failures)
        # A node's run of failures is read from its circuit: the node's row, which decisions
        # lock, is not written after an attempt.
        gone = outcome.status_code == 410
        if not (gone or too_long):
            return
        reason = (
            "the endpoint answered 410 Gone"
            if gone
            else f"failing without a success since {circuit.failing_since}"
        )
        if message["node_id"]:
            disabled = nodes.disable_webhook(db, message["node_id"], reason)
        else:
            disabled = subscriptions.disable(db, message["subscription_id"], reason)
        if disabled:
            monitoring.ENDPOINT_CHANGES.labels("disabled").inc()
            logs.event("endpoint.disabled", logging.WARNING, endpoint=endpoint, reason=reason)

    # Sweeps ------------------------------------------------------------------------

    def sweep(self, db) -> None:
        """Withdraw what nodes let lapse, and run the back-orders that freed stock waits for."""
        from app.kinds.replenishment import runs
        from app.lifecycle import backorders, fulfilment, holds, waiting
        from app.machinery.rules import runtime

        # Each job runs on one server at a time (an advisory lock on PostgreSQL); a server
        # that finds it taken skips it this round.
        steps = [
            ("shipments at risk", lambda: holds.flag_at_risk(db)),
            ("lapsed holds", lambda: holds.lapse(db, self.config)),
            (
                "acknowledgement timeouts",
                lambda: fulfilment.expire_acknowledgements(db, self.config),
            ),
            ("back-orders", lambda: backorders.resume_raised(db)),
            ("orders waiting too long", lambda: waiting.escalate(db)),
            ("scheduled activations", lambda: runtime.confirm_due(db)),
            ("replenishment", lambda: runs.run_scheduled(db, self.config["REPLENISH_AT"])),
        ]
        if time.monotonic() - self._last_guardrails > GUARDRAILS_EVERY:
            self._last_guardrails = time.monotonic()
            steps.append(("guardrails", lambda: self._guardrails(db)))
            steps.append(("heartbeats", lambda: heartbeats.prune(db, HEARTBEATS_KEPT)))
        try:
            self._start_consumers(db)
        except Exception:  # deliveries go on; the next sweep tries again
            log.exception("dispatcher sweep failed: broker consumers")
            if db.in_transaction:
                db.rollback()
        for name, step in steps:
            try:
                # What a step changes (a back-order decided, its messages) is traced to it.
                with db.job(name) as mine, logs.handling(f"job_{secrets.token_hex(8)}"):
                    if mine:
                        # A step that lost a race is run again (each is safe to repeat).
                        database.retrying(step)
            except Exception:  # a failed sweep must not stop deliveries, nor the next step
                log.exception("dispatcher sweep failed: %s", name)
                if db.in_transaction:
                    db.rollback()

    def _start_consumers(self, db) -> None:
        """Consume node events from each broker a node or subscription uses (and only then):
        the embedded default needs no broker."""
        used = nodes.transport_kinds(db) | subscriptions.transport_kinds(db)
        for kind in sorted(used):
            running = self.consumers.get(kind)
            if running is not None and running.is_alive():
                continue
            if not self.config[brokers.SETTING[kind]]:
                continue
            consumer = node_events.CONSUMERS[kind](self.config, self.vault, self.stopping)
            thread = threading.Thread(
                target=consumer.run, name=f"node-events-{kind}-{self.worker}", daemon=True
            )
            thread.start()
            self.consumers[kind] = thread
            logs.event("node_events.consuming", transport=kind, worker=self.worker)

    def _guardrails(self, db) -> None:
        from app.machinery import experiments

        for experiment in experiments.list_all(db):
            if experiment["status"] == "running":
                experiments.check_guardrails(db, experiment["experiment_id"])

    # Loops -------------------------------------------------------------------------

    def run(self) -> None:
        """Deliver until asked to stop; then hand back what is claimed."""
        db = None
        logs.event("dispatcher.started", worker=self.worker)
        try:
            while not self.stopping.is_set():
                try:
                    if db is None:
                        db = self.connect()
                    if self.run_once(db) == 0:
                        self.stopping.wait(self.config["DISPATCH_POLL_SECONDS"])
                except database.DatabaseUnavailable as exc:
                    # The database restarted or failed over: a new connection when it is back.
                    log.warning("dispatcher waiting for the database: %s", exc)
                    if db is not None:
                        db.close()
                        db = None
                    self.stopping.wait(max(1.0, self.config["DISPATCH_POLL_SECONDS"]))
                except Exception:  # keep delivering after a bad round
                    log.exception("dispatcher round failed")
                    self.stopping.wait(self.config["DISPATCH_POLL_SECONDS"])
        finally:
            self.close()
            if db is not None:
                with contextlib.suppress(database.DatabaseUnavailable):
                    released = outbox.release(db, self.worker)
                    heartbeats.forget(db, self.worker)
                    logs.event("dispatcher.stopped", worker=self.worker, released=released)
                db.close()

    def close(self) -> None:
        """Stop the node-event consumers and close the broker connections."""
        self.stopping.set()
        for consumer in self.consumers.values():
            consumer.join(self.config["BROKER_TIMEOUT_SECONDS"] + 5)
        self.consumers = {}
        self.brokers.close()

    def start_thread(self) -> threading.Thread:
        self.thread = threading.Thread(
            target=self.run, name=f"dispatcher-{self.worker}", daemon=True
        )
        self.thread.start()
        return self.thread

    def stop(self, wait: float | None = None) -> bool:
        """Ask the loop to stop: the message in hand is finished, the others handed back.

        With ``wait``, wait that long for the thread to be done; True when it is.
        """
        self.stopping.set()
        thread = getattr(self, "thread", None)
        if wait is None or thread is None:
            return True
        thread.join(wait)
        return not thread.is_alive()
