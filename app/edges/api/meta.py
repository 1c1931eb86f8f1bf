"""Health, the OpenAPI document and the JSON Schemas it references."""

from __future__ import annotations

import hmac
import os

from flask import Blueprint, current_app, jsonify, request

from app.edges.api import openapi
from app.edges.api.endpoints import ALL_ROLES, endpoint
from app.platform import errors
from app.platform.errors import NotFound, Unauthorized, Unavailable, field_error
from app.platform.schemas import catalogue

bp = Blueprint("meta", __name__)


@endpoint(
    bp,
    "/healthz",
    "GET",
    summary="Liveness: this process answers (no authentication; the database is not asked)",
    roles=None,
    responses={200: "The process serves"},
)
def healthz():
    # A liveness probe that asked the database would have every server restarted during a
    # database outage, which restarting cannot cure; /readyz says whether it can do work.
    return jsonify({"status": "ok", "pid": os.getpid()})


@endpoint(
    bp,
    "/readyz",
    "GET",
    summary="Whether this process can serve: database, migrations, rulesets, dispatcher"
    " (no authentication)",
    roles=None,
    responses={200: "Ready", 503: "Not ready: the failing checks, one error per check"},
)
def readyz():
    from app.edges import readiness

    results = readiness.checks(current_app.config)
    failing = {name: detail for name, detail in results.items() if detail != "ok"}
    if not failing:
        return jsonify({"status": "ready", "checks": results})
    error = Unavailable(
        f"not ready: {', '.join(failing)}",
        errors=[field_error(("checks", name), detail) for name, detail in failing.items()],
        code="not_ready",
    )
    error.retry_after = 5
    return errors.response(error)


@endpoint(
    bp,
    "/metrics",
    "GET",
    summary="Prometheus metrics of every worker and dispatcher on this machine, and the"
    " database's state (Bearer DOM_METRICS_TOKEN when set)",
    roles=None,
    responses={200: "Metrics in Prometheus' text format", 401: "Token missing or wrong"},
    response_schema="prometheus",
)
def metrics():
    from app.platform import monitoring

    token = current_app.config["METRICS_TOKEN"]
    if token:
        sent = request.headers.get("Authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            raise Unauthorized("/metrics needs the bearer token set in DOM_METRICS_TOKEN")
    body, content_type = monitoring.exposition(current_app.config)
    return current_app.response_class(body, content_type=content_type)


@endpoint(
    bp,
    "/v1/docs/rulesets",
    "GET",
    summary="The ruleset language reference, as an HTML page",
    roles=("admin", "analyst"),
    response_schema="html",
)
def ruleset_reference():
    import markdown

    from app.machinery.rules import reference

    config = current_app.config
    text = reference.markdown(config["SCHEMAS_DIR"], config["COOKBOOK_DIR"])
    body = markdown.markdown(text, extensions=["tables", "fenced_code"])
    page = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<title>The ruleset language</title><style>body{font:15px/1.5 system-ui,sans-serif;"
        "max-width:60rem;margin:2rem auto;padding:0 1rem}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.2rem .5rem;vertical-align:top}"
        "code,pre{background:#f6f6f6}pre{padding:.5rem;overflow:auto}</style></head>"
        f"<body>{body}</body></html>"
    )
    return current_app.response_class(page, mimetype="text/html")


@endpoint(
    bp,
    "/v1/openapi.json",
    "GET",
    summary="This API's OpenAPI 3.1 document",
    roles=ALL_ROLES,
)
def openapi_document():
    return jsonify(openapi.document(current_app))


@endpoint(
    bp,
    "/v1/schemas/<name>",
    "GET",
    summary="A JSON Schema referenced by the OpenAPI document",
    roles=ALL_ROLES,
    responses={200: "The schema", 404: "No such schema"},
)
def schema_document(name: str):
    documents = catalogue(current_app.config["SCHEMAS_DIR"]).documents
    short = name.removesuffix(".schema.json")
    if short not in documents:
        raise NotFound(f"no schema {name!r}")
    return jsonify(documents[short])
