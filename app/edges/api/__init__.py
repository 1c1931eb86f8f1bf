"""HTTP API under /v1: one blueprint per resource (a module each), declared with
``endpoints.endpoint``, which also feeds the OpenAPI document (``openapi``)."""

from __future__ import annotations

from flask import Flask

from app.edges.api import (
    customers,
    dispatch,
    experiments,
    inventory,
    meta,
    network,
    orders,
    promising,
    replenishment,
    returns,
    rulesets,
)


def init_app(app: Flask) -> None:
    """Register every resource's blueprint."""
    for module in (
        meta,
        network,
        inventory,
        customers,
        rulesets,
        orders,
        dispatch,
        experiments,
        promising,
        returns,
        replenishment,
    ):
        app.register_blueprint(module.bp)
