"""Lists: newest first, a page at a time with an opaque cursor, or the whole list exported.

A list answers JSON pages (``{"<items>": [...], "next_cursor": ...}``) by default; with
``Accept: text/csv`` or ``Accept: application/x-ndjson`` (JSON lines) it streams every
item that matches, page after page, so an export never holds the whole list in memory.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from collections.abc import Callable, Iterator

from flask import Response, current_app, jsonify, request, stream_with_context

from app.edges.api.endpoints import Param
from app.platform import db as database
from app.platform.db import get_db
from app.platform.errors import InvalidInput, field_error

PAGE_QUERY = (
    Param("limit", "Items per page (default 50).", "integer", minimum=1, maximum=500),
    Param("cursor", "Where the previous page ended: its next_cursor."),
)
EXPORT_PAGE = 500
CSV = "text/csv"
JSON_LINES = "application/x-ndjson"

# fetch(db, after, limit) -> rows, newest first, each with "created_at" and its id.
Fetch = Callable[[object, tuple | None, int], list[dict]]


def encode_cursor(row: dict, key: str) -> str:
    raw = json.dumps([row["created_at"], row[key]], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str | None) -> tuple | None:
    if not text:
        return None
    try:
        padded = text + "=" * (-len(text) % 4)
        created_at, item_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(created_at, str) or not isinstance(item_id, str):
            raise ValueError
    except (ValueError, TypeError, binascii.Error):
        raise InvalidInput(
            [field_error(("cursor",), "is not a cursor this service gave (use next_cursor)")]
        ) from None
    return created_at, item_id


def answer(name: str, key: str, fetch: Fetch, args: dict) -> Response:
    """A page of ``name`` as JSON, or every item as CSV or JSON lines (by ``Accept``)."""
    after = decode_cursor(args.get("cursor"))
    wanted = request.accept_mimetypes.best_match(["application/json", CSV, JSON_LINES])
    if wanted in (CSV, JSON_LINES):
        # The export outlives the request's connection: it reads on one of its own.
        rows = _every(current_app.config, fetch, key, after)
        body = _csv(rows) if wanted == CSV else (json.dumps(row) + "\n" for row in rows)
        return Response(stream_with_context(body), mimetype=wanted)
    limit = args.get("limit") or 50
    rows = fetch(get_db(), after, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1], key) if more and rows else None
    return jsonify({name: rows, "next_cursor": next_cursor})


def _every(config, fetch: Fetch, key: str, after: tuple | None) -> Iterator[dict]:
    with database.open_from_config(config) as db:
        while True:
            rows = fetch(db, after, EXPORT_PAGE)
            yield from rows
            if len(rows) < EXPORT_PAGE:
                return
            after = (rows[-1]["created_at"], rows[-1][key])


def _csv(rows: Iterator[dict]) -> Iterator[str]:
    """CSV with a header from the first item; lists and objects as JSON in their cell."""
    columns = None
    for row in rows:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        if columns is None:
            columns = list(row)
            writer.writerow(columns)
        writer.writerow(
            [
                json.dumps(row.get(c)) if isinstance(row.get(c), list | dict) else row.get(c)
                for c in columns
            ]
        )
        yield buffer.getvalue()
