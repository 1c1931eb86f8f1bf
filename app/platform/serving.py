"""gunicorn, made to answer in the service's one error shape and log in its one format.

gunicorn itself answers some requests before the application sees them: a request
line or a header that is too long (414, 431), or a request it cannot parse (400).
It writes those as HTML; this worker writes them as the JSON error body every other
error has (``schemas/error.schema.json``).
"""

from __future__ import annotations

import json
import logging

from gunicorn import glogging, util
from gunicorn.workers.sync import SyncWorker

from app.platform import logs, settings

log = logging.getLogger("dom.http")

CODES = {
    400: "bad_request",
    414: "uri_too_long",
    431: "headers_too_large",
    500: "internal_error",
}


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's ``util.write_error``, with the JSON error body and a request id."""
    request_id = logs.new_request_id()
    code = CODES.get(status_int, "http_error")
    body = json.dumps(
        {"error": {"code": code, "message": mesg or reason, "request_id": request_id}}
    )
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"X-Request-Id: {request_id}\r\n\r\n"
    )
    util.write_nonblock(sock, (head + body).encode("latin1"))
    log.log(
        logging.WARNING if status_int >= 500 else logging.INFO,
        "%s answered by the server: %s",
        status_int,
        code,
        extra={"event": "http.request", "status": status_int, "request_id": request_id},
    )


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


class Logs(glogging.Logger):
    """gunicorn's logger, writing through the service's own log lines (``logs.py``)."""

    def setup(self, cfg):
        super().setup(cfg)
        values = settings.load()
        logs.configure(values["LOG_LEVEL"], values["LOG_FORMAT"])
