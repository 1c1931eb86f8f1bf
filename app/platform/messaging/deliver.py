"""One HTTP attempt, and what to do after it. ``send`` does the I/O; ``next_step`` is pure.

At-least-once: a 2xx within the timeout is success; anything else is retried on
the schedule (with jitter) until the last attempt, after which the message is dead
and can be replayed. Redirects are not followed. 410 disables the endpoint.
429 and 503 wait as long as their Retry-After asks.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from app.platform.db import format_time
from app.platform.messaging import signing, urls

EXCERPT = 300
MAX_RETRY_AFTER = 86400.0


@dataclass
class Outcome:
    """What happened on one attempt."""

    started_at: str
    duration_ms: float
    status_code: int | None = None
    error_class: str | None = None  # dns, connect, tls, timeout, http, redirect, blocked, ...
    excerpt: str = ""
    retry_after: float | None = None
    confirmed: bool = False  # a broker confirmed the message (there is no HTTP status)

    @property
    def ok(self) -> bool:
        return self.confirmed or (self.status_code is not None and 200 <= self.status_code < 300)


def send(
    url: str,
    secrets_in_use: list[str],
    message_id: str,
    body: bytes,
    timeout: float,
    allow: str,
    request_id: str | None = None,
) -> Outcome:
    """POST the body to the URL with Standard Webhooks headers; never raises.

    ``request_id`` (the request that caused the message) goes in ``X-Request-Id``, so a
    node that sends it back with its callback keeps the chain in the logs.

    Whatever goes wrong, however unexpected, is an outcome with an error class.
    """
    started = time.perf_counter()
    started_at = format_time(datetime.now(UTC))

    def finished(**fields) -> Outcome:
        return Outcome(started_at, round((time.perf_counter() - started) * 1000, 3), **fields)

    try:
        return _send(url, secrets_in_use, message_id, body, timeout, allow, request_id, finished)
    except Exception as exc:
        return finished(error_class="error", excerpt=f"{type(exc).__name__}: {exc}"[:EXCERPT])


def _send(url, secrets_in_use, message_id, body, timeout, allow, request_id, finished) -> Outcome:
    try:
        addresses = urls.check(url, allow)
    except urls.Unresolvable as exc:
        return finished(error_class="dns", excerpt=str(exc)[:EXCERPT])
    except urls.UnsafeURL as exc:
        return finished(error_class="blocked", excerpt=str(exc)[:EXCERPT])
    parts, host, port = urls.parse(url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    headers = {
        "content-type": "application/json",
        "user-agent": "dom-webhooks/1",
        "host": parts.netloc,
        **signing.headers(secrets_in_use, message_id, int(time.time()), body),
    }
    if request_id:
        headers["x-request-id"] = request_id
    # Connect to the address just checked, so a DNS answer cannot change in between
    # (DNS rebinding); TLS still verifies the certificate against the URL's host.
    if parts.scheme.lower() == "https":
        connection = _PinnedHTTPS(addresses[0], host, port, timeout)
    else:
        connection = http.client.HTTPConnection(addresses[0], port, timeout=timeout)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        excerpt = response.read(EXCERPT).decode("utf-8", "replace")
        status = response.status
        retry_after = _retry_after(response.getheader("retry-after"))
    except ssl.SSLError as exc:
        return finished(error_class="tls", excerpt=str(exc)[:EXCERPT])
    except TimeoutError as exc:
        return finished(error_class="timeout", excerpt=str(exc)[:EXCERPT] or "timed out")
    except (ConnectionError, OSError) as exc:
        return finished(error_class="connect", excerpt=str(exc)[:EXCERPT])
    except http.client.HTTPException as exc:
        return finished(error_class="http", excerpt=f"{type(exc).__name__}: {exc}"[:EXCERPT])
    finally:
        connection.close()
    if 200 <= status < 300:
        return finished(status_code=status, excerpt=excerpt)
    kind = "redirect" if 300 <= status < 400 else "http"
    return finished(status_code=status, error_class=kind, excerpt=excerpt, retry_after=retry_after)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to one checked address, with SNI and certificate checks for the URL's host."""

    def __init__(self, address: str, host: str, port: int, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return min(MAX_RETRY_AFTER, max(0.0, float(value)))
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return min(MAX_RETRY_AFTER, max(0.0, (moment - datetime.now(UTC)).total_seconds()))


def next_step(
    outcome: Outcome,
    attempts_before: int,
    schedule: tuple[float, ...],
    jitter: float,
    random_share: float,
    now: datetime,
) -> tuple[str, str | None]:
    """Return ``(status, next_attempt_at)`` after an attempt.

    ``random_share`` in [0, 1) picks the jitter, so this stays a pure function.
    """
    if outcome.ok:
        return "delivered", None
    if outcome.status_code == 410:
        return "dead", None
    attempt = attempts_before + 1
    if attempt > len(schedule):
        return "dead", None
    delay = schedule[attempt - 1] * (1 + jitter * (2 * random_share - 1))
    if outcome.status_code in (429, 503) and outcome.retry_after is not None:
        delay = max(delay, outcome.retry_after)
    return "pending", format_time(now + timedelta(seconds=delay))
