"""One JSON error body for every error the service returns.

Shape (documented in the README and ``schemas/error.schema.json``)::

    {"error": {"code": "invalid_input", "message": "...",
               "errors": [{"pointer": "/items/0/on_hand", "message": "..."}]}}

``errors`` is present only when the problem is tied to fields of the request body.
"""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from app.platform import logs

log = logging.getLogger(__name__)


def pointer(*parts: str | int) -> str:
    """Build an RFC 6901 JSON pointer from path parts."""
    escaped = (str(p).replace("~", "~0").replace("/", "~1") for p in parts)
    return "".join("/" + p for p in escaped)


class ApiError(Exception):
    """An error with an HTTP status, a stable machine code and a message."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, errors: list[dict] | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.errors = errors
        if code:
            self.code = code

    def body(self) -> dict:
        error: dict = {"code": self.code, "message": self.message}
        if self.errors is not None:
            error["errors"] = self.errors
        return {"error": error}


class MalformedJson(ApiError):
    status = 400
    code = "malformed_json"


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"


class Forbidden(ApiError):
    status = 403
    code = "forbidden"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class Conflict(ApiError):
    status = 409
    code = "conflict"


class PayloadTooLarge(ApiError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(ApiError):
    status = 415
    code = "unsupported_media_type"


class InvalidInput(ApiError):
    """The body is well-formed JSON but breaks the schema or refers to unknown things."""

    status = 422
    code = "invalid_input"

    def __init__(self, errors: list[dict], message: str | None = None):
        super().__init__(message or _summary(errors), errors=errors)


class Unavailable(ApiError):
    status = 503
    code = "unavailable"


def _summary(errors: list[dict]) -> str:
    count = len(errors)
    return f"the request has {count} invalid field{'s' if count != 1 else ''}"


def field_error(path: tuple[str | int, ...] | str, message: str) -> dict:
    """One entry of ``errors``: the pointer of the bad field and what is wrong."""
    return {"pointer": path if isinstance(path, str) else pointer(*path), "message": message}


# Codes for the HTTP errors Werkzeug raises before a view runs.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


def response(error: ApiError):
    headers = {}
    if getattr(error, "retry_after", None):
        headers["Retry-After"] = str(error.retry_after)
    body = error.body()
    request_id = logs.current_request_id()
    if request_id:
        body["error"]["request_id"] = request_id
    return jsonify(body), error.status, headers


def init_app(app: Flask) -> None:
    """Make every error, including Werkzeug's and unexpected ones, use the one shape."""

    @app.errorhandler(ApiError)
    def _api_error(error: ApiError):
        return response(error)

    @app.after_request
    def _no_type_without_body(answer):
        # 204 has no body, so no content type (Flask would call it text/html).
        if answer.status_code == 204:
            answer.headers.pop("Content-Type", None)
        return answer

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        status = error.code or 500
        api_error = ApiError(error.description or error.name)
        api_error.status = status
        api_error.code = _HTTP_CODES.get(status, "http_error")
        if status == 413:
            api_error.message = (
                f"the request body is larger than {app.config['MAX_CONTENT_LENGTH']} bytes"
            )
        body, status, headers = response(api_error)
        if status == 405 and hasattr(error, "valid_methods") and error.valid_methods:
            headers["Allow"] = ", ".join(error.valid_methods)
        return body, status, headers

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        log.exception("unhandled error")
        return response(ApiError("the service failed to handle this request"))
