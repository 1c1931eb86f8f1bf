"""DOM: a distributed order management decision service.

Six packages, one per layer, top to bottom: ``edges`` (API, console, dispatcher, CLI),
``lifecycle`` (the order's life around its decisions), ``kinds`` (sourcing, returns,
replenishment, promising), ``machinery`` (rules, decision records, experiments, replays),
``domain`` (network, orders, customers) and ``platform`` (database, settings, errors,
logs, auth, messaging). Each imports only those below it (``.importlinter``);
``create_app`` here wires them together.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from app.platform import jsontext, settings


class StrictJSON(DefaultJSONProvider):
    """Responses are JSON: never a bare NaN or Infinity, which JSON does not have.

    Compact answers (all of them but the development server's) are written by orjson,
    several times faster than the standard library on a decision's explanation; it
    writes NaN as null. What it cannot write falls back to the standard library.
    """

    sort_keys = False
    COMPACT = {"separators": (",", ":")}

    def dumps(self, obj, **kwargs):
        if not kwargs or kwargs == self.COMPACT:
            try:
                return jsontext.dumps(obj)
            except TypeError:
                pass
        kwargs.setdefault("allow_nan", False)
        return super().dumps(obj, **kwargs)


class Service(Flask):
    """Flask, running a request again from its start when the database reports a lost race
    (a deadlock, a serialization failure, a key inserted by a racing request)."""

    def dispatch_request(self):
        from flask import g

        from app.platform import db

        def roll_back() -> None:
            connection = g.get("db")
            if connection is not None:
                connection.rollback()

        return db.retrying(
            super().dispatch_request, self.config["DATABASE_RETRIES"], before_retry=roll_back
        )


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the service: settings, database, error handlers, blueprints.

    ``config`` overrides settings by name (``{"DATABASE": path}``); everything
    else comes from ``DOM_*`` environment variables or the defaults.
    """
    from app.edges.api import init_app as init_api
    from app.platform import db, errors, logs, telemetry

    app = Service(__name__)
    app.json = StrictJSON(app)
    values = settings.load(overrides=config)
    app.config.from_mapping(values)
    app.config["MAX_CONTENT_LENGTH"] = values["MAX_BODY_BYTES"]
    logs.configure(values["LOG_LEVEL"], values["LOG_FORMAT"])

    db.init_app(app)
    errors.init_app(app)
    telemetry.init_app(app)
    from app.machinery.rules.runtime import SANDBOX
    from app.platform import vault

    app.extensions["dom.vault"] = vault.from_config(values)
    SANDBOX.configure(values["EVALUATION_TIMEOUT_SECONDS"], values["EVALUATION_MEMORY_MB"])
    init_api(app)
    from app.edges import console, customer

    console.init_app(app)
    customer.init_app(app)

    if values["AUTO_MIGRATE"] or values["LOAD_RULESETS"]:
        connection = db.open_from_config(app.config)
        try:
            if values["AUTO_MIGRATE"]:
                db.migrate(connection, values["MIGRATIONS_DIR"])
            if values["LOAD_RULESETS"]:
                from app.machinery.rules.runtime import load_shipped
                from app.platform.schemas import catalogue

                load_shipped(connection, values["RULESETS_DIR"], catalogue(values["SCHEMAS_DIR"]))
        finally:
            connection.close()
    return app
