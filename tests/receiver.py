"""A real webhook receiver on 127.0.0.1 that verifies Standard Webhooks signatures.

``script`` lists what to do with the next requests, one entry each, then 200:
an int status (optionally with headers), ("sleep", seconds) before answering 200,
or ("redirect", url). Until ``down_until`` (a ``time.monotonic()`` instant) every
request gets 503 instead: an outage. ``down_from_first(seconds)`` starts one when the
next request arrives, so a test's outage meets its senders however late they start.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


class Receiver:
    def __init__(self, secrets: list[str]):
        self.secrets = list(secrets)
        self.received: list[dict] = []
        self.script: collections.deque = collections.deque()
        self.in_flight: collections.Counter = collections.Counter()
        self.overlaps = 0
        self.down_until = 0.0
        self.outage_seconds: float | None = None
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                message_id = headers.get("webhook-id")
                with receiver.lock:
                    receiver.in_flight[message_id] += 1
                    if receiver.in_flight[message_id] > 1:
                        receiver.overlaps += 1
                    if receiver.outage_seconds is not None:
                        receiver.down_until = time.monotonic() + receiver.outage_seconds
                        receiver.outage_seconds = None
                    if time.monotonic() < receiver.down_until:
                        action = 503
                    else:
                        action = receiver.script.popleft() if receiver.script else 200
                verified = {}
                for secret in receiver.secrets:
                    try:
                        Webhook(secret).verify(body, headers)
                        verified[secret] = True
                    except WebhookVerificationError:
                        verified[secret] = False
                if isinstance(action, tuple) and action[0] == "sleep":
                    time.sleep(action[1])
                    action = 200
                extra = {}
                if isinstance(action, tuple) and action[0] == "redirect":
                    action, extra = 302, {"Location": action[1]}
                elif isinstance(action, tuple):
                    action, extra = action
                # Record before answering: the sender may look as soon as it has the answer.
                with receiver.lock:
                    receiver.received.append(
                        {
                            "id": message_id,
                            "headers": headers,
                            "body": json.loads(body),
                            "verified": verified,
                            "status": action,
                        }
                    )
                try:
                    self.send_response(action)
                    for name, value in extra.items():
                        self.send_header(name, value)
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with receiver.lock:
                        receiver.in_flight[message_id] -= 1

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def down_from_first(self, seconds: float) -> None:
        """Answer 503 for ``seconds`` from the next request on."""
        with self.lock:
            self.outage_seconds = seconds

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def delivered_ids(self) -> set[str]:
        return {r["id"] for r in self.received if r["status"] == 200}

    def close(self):
        self.server.shutdown()
        self.server.server_close()
