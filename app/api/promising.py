"""Calendars and carrier services: what delivery promises are computed from."""

from __future__ import annotations

from flask import Blueprint, jsonify

from app.api import READERS, Param, created_or_ok, endpoint, query_args
from app.db import get_db
from app.promising import calendars, carriers

bp = Blueprint("promising", __name__, url_prefix="/v1")

CARRIER_QUERY = (
    Param("service_level", "Only services of this level."),
    Param("active", "Only active (true) or inactive (false) services.", "boolean"),
)


@endpoint(
    bp,
    "/calendars/<calendar_id>",
    "PUT",
    summary="Create or replace a calendar of days without work (network: every node's)",
    roles=("admin",),
    body="calendar",
    responses={200: "Replaced", 201: "Created", 422: "Invalid calendar"},
)
def put_calendar(calendar_id: str, body: dict):
    calendar, created = calendars.put(get_db(), calendar_id, body)
    return created_or_ok(calendar, created)


@endpoint(
    bp,
    "/calendars/<calendar_id>",
    "GET",
    summary="Read a calendar",
    roles=READERS,
    responses={200: "The calendar", 404: "No such calendar"},
)
def get_calendar(calendar_id: str):
    return jsonify(calendars.get(get_db(), calendar_id))


@endpoint(
    bp,
    "/calendars",
    "GET",
    summary="List calendars",
    roles=READERS,
    responses={200: "The calendars"},
)
def list_calendars():
    found = calendars.list_calendars(get_db())
    return jsonify({"calendars": found, "count": len(found)})


@endpoint(
    bp,
    "/carrier-services/<service_id>",
    "PUT",
    summary="Create or replace a carrier service: collection, transit, delivery, rates",
    roles=("admin",),
    body="carrier-service",
    responses={200: "Replaced", 201: "Created", 422: "Invalid carrier service"},
)
def put_carrier_service(service_id: str, body: dict):
    service, created = carriers.put(get_db(), service_id, body)
    return created_or_ok(service, created)


@endpoint(
    bp,
    "/carrier-services/<service_id>",
    "GET",
    summary="Read a carrier service",
    roles=READERS,
    responses={200: "The carrier service", 404: "No such carrier service"},
)
def get_carrier_service(service_id: str):
    return jsonify(carriers.get(get_db(), service_id))


@endpoint(
    bp,
    "/carrier-services",
    "GET",
    summary="List carrier services",
    roles=READERS,
    query=CARRIER_QUERY,
    responses={200: "The carrier services", 422: "Invalid filter"},
)
def list_carrier_services():
    args = query_args(CARRIER_QUERY)
    found = carriers.list_services(get_db(), args.get("service_level"), args.get("active"))
    return jsonify({"carrier_services": found, "count": len(found)})
