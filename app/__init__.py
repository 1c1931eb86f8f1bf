"""DOM: a distributed order management decision service."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask

from app import settings


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the service: settings, database, error handlers, blueprints.

    ``config`` overrides settings by name (``{"DATABASE": path}``); everything
    else comes from ``DOM_*`` environment variables or the defaults.
    """
    from app import db, errors
    from app.api import init_app as init_api

    app = Flask(__name__)
    values = settings.load(overrides=config)
    app.config.from_mapping(values)
    app.config["MAX_CONTENT_LENGTH"] = values["MAX_BODY_BYTES"]
    app.json.sort_keys = False
    logging.basicConfig(level=values["LOG_LEVEL"])

    db.init_app(app)
    errors.init_app(app)
    init_api(app)

    if values["AUTO_MIGRATE"] or values["LOAD_RULESETS"]:
        connection = db.open_from_config(app.config)
        try:
            if values["AUTO_MIGRATE"]:
                db.migrate(connection, values["MIGRATIONS_DIR"])
            if values["LOAD_RULESETS"]:
                from app.rules.runtime import load_shipped
                from app.schemas import catalogue

                load_shipped(connection, values["RULESETS_DIR"], catalogue(values["SCHEMAS_DIR"]))
        finally:
            connection.close()
    return app
