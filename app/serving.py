"""gunicorn, made to answer in the service's one error shape.

gunicorn itself answers some requests before the application sees them: a request
line or a header that is too long (414, 431), or a request it cannot parse (400).
It writes those as HTML; this worker writes them as the JSON error body every other
error has (``schemas/error.schema.json``).
"""

from __future__ import annotations

import json

from gunicorn import util
from gunicorn.workers.sync import SyncWorker

CODES = {
    400: "bad_request",
    414: "uri_too_long",
    431: "headers_too_large",
    500: "internal_error",
}


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's ``util.write_error``, with the JSON error body."""
    body = json.dumps(
        {"error": {"code": CODES.get(status_int, "http_error"), "message": mesg or reason}}
    )
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, (head + body).encode("latin1"))


class JsonErrorsWorker(SyncWorker):
    """gunicorn's sync worker, answering its own errors as JSON."""

    def handle_error(self, req, client, addr, exc):
        # A sync worker handles one request at a time: swapping the writer is safe here.
        original = util.write_error
        util.write_error = write_json_error
        try:
            super().handle_error(req, client, addr, exc)
        finally:
            util.write_error = original
