"""Logs: one event per line, JSON by default, the same for the app, gunicorn and the dispatcher.

Every line carries the time, level, logger, process, the event's name and the
``request_id`` of the request (or outbox message) being handled. Business events
are logged with ``event(name, **fields)``: the fields are ids, counts, outcomes and
timings, never personal data and never a key or secret.

The request id is taken from ``X-Request-Id`` when a caller sends a well-formed one,
generated otherwise; it is returned in the response and in every error body, stored
with the decision and the outbox messages it causes, and sent with each webhook.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import secrets
import sys
import time
from collections.abc import Iterator

from pythonjsonlogger.json import JsonFormatter

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
# The ids a request touched, gathered as the domain code meets them, for its request line.
TOUCHED: contextvars.ContextVar[dict | None] = contextvars.ContextVar("touched", default=None)
# What a caller may send as a request id; anything else is replaced by a new one.
WELL_FORMED = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
FORMATS = ("json", "text")
EVENTS = logging.getLogger("dom.events")


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


def request_id_from(header: str | None) -> str:
    """The caller's request id when it is well formed, else a new one."""
    if header and WELL_FORMED.fullmatch(header):
        return header
    return new_request_id()


def current_request_id() -> str | None:
    return REQUEST_ID.get()


def begin(request_id: str | None) -> tuple:
    """Log under ``request_id`` from now on, gathering touched ids; ``end`` undoes it."""
    return REQUEST_ID.set(request_id), TOUCHED.set({})


def end(tokens: tuple) -> None:
    REQUEST_ID.reset(tokens[0])
    TOUCHED.reset(tokens[1])


def touched() -> dict:
    """The ids touched since ``begin``."""
    return dict(TOUCHED.get() or {})


@contextlib.contextmanager
def handling(request_id: str | None) -> Iterator[None]:
    """Log everything in the block under ``request_id``."""
    tokens = begin(request_id)
    try:
        yield
    finally:
        end(tokens)


def touch(**ids) -> None:
    """Note ids (order, decision, shipment, ruleset version, experiment) the request touched."""
    touched = TOUCHED.get()
    if touched is not None:
        touched.update((name, value) for name, value in ids.items() if value is not None)


def event(name: str, level: int = logging.INFO, **fields) -> None:
    """Log a business event: its name and its fields (ids, counts, outcomes, timings)."""
    EVENTS.log(level, name, extra={"event": name, **fields})


class Context(logging.Filter):
    """Stamp every record with the request id in force and the process id."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get()
        return True


class Json(JsonFormatter):
    """A record as one JSON object: time, level, logger, process, event, message, fields."""

    def __init__(self) -> None:
        super().__init__(
            "{asctime}{levelname}{name}{process}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            json_ensure_ascii=False,
        )

    def formatTime(self, record, datefmt=None) -> str:
        moment = time.gmtime(record.created)
        return time.strftime("%Y-%m-%dT%H:%M:%S", moment) + f".{int(record.msecs):03d}Z"

    def add_fields(self, log_record, record, message_dict) -> None:
        super().add_fields(log_record, record, message_dict)
        log_record.setdefault("event", "log")
        if log_record.get("request_id") is None:
            log_record.pop("request_id", None)


# Attributes every LogRecord has: the text formatter shows the others as key=value.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id"}


class Text(logging.Formatter):
    """A record as one line for a terminal: time, level, logger, message, then key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        fields.pop("event", None)
        if getattr(record, "request_id", None):
            fields = {"request_id": record.request_id, **fields}
        if fields:
            line += " " + " ".join(f"{key}={value}" for key, value in fields.items())
        return line


class Console(logging.StreamHandler):
    """A handler writing to whatever ``sys.stderr`` is when a record comes (it may be
    replaced after logging is set up: by gunicorn's daemon mode, or a test runner)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure(level: str, style: str) -> None:
    """Set up this process's logging: one line per record on stderr, in ``style``.

    Idempotent, and it leaves other handlers on the root alone. gunicorn's own loggers
    hand their records to the root, so their lines have the same format.
    """
    if style not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {style!r}")
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, Console)), None)
    if handler is None:
        handler = Console()
        handler.addFilter(Context())
        root.addHandler(handler)
    handler.setFormatter(Json() if style == "json" else Text())
    root.setLevel(level.upper())
    for name in ("gunicorn.error", "gunicorn.access"):
        logger = logging.getLogger(name)
        for own in list(logger.handlers):
            logger.removeHandler(own)
        logger.propagate = True
    # One line per request comes from the service itself (http.request). pika logs every
    # connection, and a returned message with the start of its body (a customer's
    # address): the dispatcher's own events say what failed, without the body.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("pika").setLevel(logging.CRITICAL)
