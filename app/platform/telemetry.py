"""What each request leaves behind: its request id, one log line and its metrics.

The line (event ``http.request``) has the method, the route template (never the
query string, which may hold search terms), the status, the duration, the key's id
and role (never the key) and the ids the request touched.
"""

from __future__ import annotations

import logging
import time

from flask import Flask, g, request

from app.platform import logs, monitoring

log = logging.getLogger("dom.http")
# Path parameters worth a field of their own in the request line.
PATH_IDS = (
    "order_id",
    "decision_id",
    "shipment_id",
    "experiment_id",
    "replay_id",
    "message_id",
    "node_id",
    "transfer_id",
    "subscription_id",
    "scenario_id",
)


def init_app(app: Flask) -> None:
    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()
        g.request_id = logs.request_id_from(request.headers.get("X-Request-Id"))
        g.logging = logs.begin(g.request_id)

    @app.after_request
    def _finish(response):
        request_id = g.get("request_id")
        if request_id is None:
            return response
        response.headers["X-Request-Id"] = request_id
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        seconds = time.perf_counter() - g.started
        # The time spent here, for browsers' timing tools (and the console's page tests).
        response.headers["Server-Timing"] = f"app;dur={seconds * 1000:.1f}"
        monitoring.request_done(route, request.method, response.status_code, seconds)
        principal = g.get("principal")
        view_args = request.view_args or {}
        ids = {name: view_args[name] for name in PATH_IDS if name in view_args}
        if "name" in view_args and request.url_rule.rule.startswith("/v1/rulesets"):
            ids["ruleset"] = view_args["name"]
            if "version" in view_args:
                ids["ruleset_version"] = f"{view_args['name']}@{view_args['version']}"
        ids.update(logs.touched())
        log.log(
            logging.WARNING if response.status_code >= 500 else logging.INFO,
            "%s %s %s",
            request.method,
            route,
            response.status_code,
            extra={
                "event": "http.request",
                "method": request.method,
                "route": route,
                "status": response.status_code,
                "duration_ms": round(seconds * 1000, 3),
                "key_id": principal.key_id if principal else None,
                "role": principal.role if principal else None,
                **ids,
            },
        )
        return response

    @app.teardown_request
    def _end(_exc) -> None:
        tokens = g.pop("logging", None)
        if tokens is not None:
            logs.end(tokens)
