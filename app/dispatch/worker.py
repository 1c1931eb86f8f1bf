"""The dispatcher: claims due outbox messages, delivers them, records every attempt.

Several dispatchers (threads inside `dom serve`, or `dom dispatch` processes) share
one outbox: a claim is a lease, so no two deliver the same message at once, and a
lease left by a dead worker expires and the message is delivered by another. On a
graceful stop the current message is finished and the others are handed back.
The dispatcher also sweeps: shipments not acknowledged in time are treated as
rejected, and expired reservations are marked so.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import threading
import time
from datetime import UTC, datetime

from app import db as database
from app import shipments
from app.dispatch import deliver, outbox, subscriptions
from app.network import nodes, reservations

log = logging.getLogger(__name__)
BATCH = 20
SWEEP_EVERY = 5.0
# Guardrails read every decision of an experiment: check them less often than the rest.
GUARDRAILS_EVERY = 60.0


class Dispatcher:
    """Delivers outbox messages using the service's settings."""

    def __init__(self, config, worker: str | None = None, rng: random.Random | None = None):
        self.config = config
        self.worker = worker or f"{os.getpid()}-{secrets.token_hex(3)}"
        self.rng = rng or random.Random()
        self.stopping = threading.Event()
        self._last_sweep = 0.0
        self._last_guardrails = 0.0

    def connect(self):
        return database.open_from_config(self.config)

    # One round ---------------------------------------------------------------------

    def run_once(self, db) -> int:
        """Claim and deliver one batch; sweep when due. Returns messages attempted."""
        if time.monotonic() - self._last_sweep > SWEEP_EVERY:
            self._last_sweep = time.monotonic()
            self.sweep(db)
        claimed = outbox.claim(db, self.worker, self.config["DISPATCH_LEASE_SECONDS"], BATCH)
        done = 0
        for message in claimed:
            if self.stopping.is_set():
                break
            self.deliver(db, message)
            done += 1
        if self.stopping.is_set():
            outbox.release(db, self.worker)
        return done

    def deliver(self, db, message: dict) -> str:
        """Attempt one message and record the outcome; returns its new status."""
        target = (
            nodes.endpoint(db, message["node_id"])
            if message["node_id"]
            else subscriptions.endpoint(db, message["subscription_id"])
        )
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
        else:
            outcome = deliver.send(
                target["url"],
                target["secrets"],
                message["message_id"],
                message["payload"].encode(),
                self.config["WEBHOOK_TIMEOUT_SECONDS"],
                self.config["WEBHOOK_ALLOW"],
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
        with database.immediate(db):
            outbox.record_attempt(db, message["message_id"], self.worker, outcome)
            outbox.settle(db, message["message_id"], status, next_at, error)
            if target is not None and outcome.error_class != "no_endpoint":
                self._endpoint_health(db, message, outcome)
            if outcome.ok and message["event_type"] == "fulfillment.requested":
                shipments.mark_requested(db, message["shipment_id"])
        return status

    def _endpoint_health(self, db, message: dict, outcome: deliver.Outcome) -> None:
        gone = outcome.status_code == 410
        limit = self.config["ENDPOINT_DISABLE_AFTER"]
        if message["node_id"]:
            disabled = nodes.record_webhook_result(db, message["node_id"], outcome.ok, limit, gone)
            owner = {"node_id": message["node_id"], "subscription_id": None}
        else:
            disabled = subscriptions.record_result(
                db, message["subscription_id"], outcome.ok, limit, gone
            )
            owner = {"node_id": None, "subscription_id": message["subscription_id"]}
        if disabled:
            log.warning("webhook endpoint disabled: %s (%s)", owner, outcome.error_class)
            outbox.kill_for_endpoint(db, reason="endpoint disabled", **owner)

    # Sweeps ------------------------------------------------------------------------

    def sweep(self, db) -> None:
        from app import experiments
        from app.sourcing import fulfilment

        try:
            reservations.expire(db)
            fulfilment.expire_acknowledgements(db, self.config)
            if time.monotonic() - self._last_guardrails > GUARDRAILS_EVERY:
                self._last_guardrails = time.monotonic()
                for experiment in experiments.list_all(db):
                    if experiment["status"] == "running":
                        experiments.check_guardrails(db, experiment["experiment_id"])
        except Exception:  # a failed sweep must not stop deliveries
            log.exception("dispatcher sweep failed")

    # Loops -------------------------------------------------------------------------

    def run(self) -> None:
        """Deliver until asked to stop; then hand back what is claimed."""
        db = self.connect()
        try:
            while not self.stopping.is_set():
                try:
                    if self.run_once(db) == 0:
                        self.stopping.wait(self.config["DISPATCH_POLL_SECONDS"])
                except Exception:  # keep delivering after a bad round
                    log.exception("dispatcher round failed")
                    self.stopping.wait(self.config["DISPATCH_POLL_SECONDS"])
        finally:
            outbox.release(db, self.worker)
            db.close()

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name=f"dispatcher-{self.worker}", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.stopping.set()
