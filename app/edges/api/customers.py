"""Customer profiles."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from app.domain import customers
from app.edges.api.endpoints import created_or_ok, endpoint
from app.platform.db import get_db

bp = Blueprint("customers", __name__, url_prefix="/v1")

# Analysts work on rules and reports; personal data is not theirs to read.
CUSTOMER_ROLES = ("admin", "channel")


@endpoint(
    bp,
    "/customers/<customer_id>",
    "PUT",
    summary="Create or replace a customer with their addresses",
    roles=CUSTOMER_ROLES,
    body="customer",
    responses={200: "Replaced", 201: "Created", 422: "Invalid customer"},
)
def put_customer(customer_id: str, body: dict):
    customer, created = customers.put(
        get_db(), customer_id, body, current_app.config["STORE_PERSONAL_DATA"]
    )
    return created_or_ok(customer, created)


@endpoint(
    bp,
    "/customers/<customer_id>",
    "GET",
    summary="Read a customer",
    roles=CUSTOMER_ROLES,
    responses={200: "The customer", 404: "No such customer"},
)
def get_customer(customer_id: str):
    return jsonify(customers.get(get_db(), customer_id))
