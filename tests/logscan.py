"""The logs of a whole test run, scanned for personal data and secrets.

Every log record of the test process goes, as the service formats it, to a file in
``DOM_TEST_LOG_DIR``; the servers and dispatchers that tests start write their stderr
there too (``tests/servers.py``). Every API key and webhook secret the run creates is
noted as it is made. When the run ends, each file is searched for the demo customers'
names, e-mails, phones and street lines, for the personal data tests mark, and for every
key and secret: a hit fails the run, with the lines that carry it.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from app.edges import demo
from app.platform import auth, logs, vault

DIRECTORY = Path(
    os.environ.setdefault("DOM_TEST_LOG_DIR", tempfile.mkdtemp(prefix="dom-test-logs-"))
)
SECRETS: set[str] = set(demo.DEMO_KEYS.values())
# Personal data that tests put into customers, to be found nowhere in the logs.
MARKED = {"ada@example.com", "zeb@marker.example", "Zebedee Marker"}


def personal_data() -> set[str]:
    """The demo customers' names, e-mails, phones and street lines (default seed)."""
    found = set(MARKED)
    for customer in demo.network(7)["customers"].values():
        found.update((customer["name"], customer["email"], customer["phone"]))
        for address in customer["addresses"]:
            found.update(address["lines"])
    return found


def install() -> None:
    """Send every record to the run's file, and note every key and secret made."""
    DIRECTORY.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(DIRECTORY / f"pytest-{os.getpid()}.jsonl")
    handler.addFilter(logs.Context())
    handler.setFormatter(logs.Json())
    logging.getLogger().addHandler(handler)

    create_key = auth.create_key

    def noting_create_key(*args, **kwargs):
        key_id, key = create_key(*args, **kwargs)
        SECRETS.add(key)
        return key_id, key

    auth.create_key = noting_create_key
    seal = vault.Vault.seal

    def noting_seal(self, secret):
        if secret:
            SECRETS.add(secret)
        return seal(self, secret)

    vault.Vault.seal = noting_seal


def scan(directory: Path = DIRECTORY) -> list[str]:
    """Each log line that carries personal data or a secret, with what it carries."""
    needles = {text: "personal data" for text in personal_data()}
    # Short strings would match by chance; every key and secret made is long.
    needles.update({text: "a key or secret" for text in SECRETS if len(text) >= 12})
    hits = []
    for path in sorted(directory.glob("*")):
        with open(path, encoding="utf-8", errors="replace") as lines:
            for number, line in enumerate(lines, start=1):
                for needle, kind in needles.items():
                    if needle in line:
                        hits.append(f"{path.name}:{number}: {kind} {needle!r}: {line[:300]}")
    return hits


def clear() -> None:
    """Remove the run's log files (kept when the scan found something)."""
    for path in DIRECTORY.glob("*"):
        path.unlink(missing_ok=True)
