"""Carrier services: when they collect, how long they take, when they deliver, what they
cost. Owns ``carrier_services``."""

from __future__ import annotations

from app.kinds.promising import calendars
from app.kinds.promising.dates import DEFAULT_DELIVERY_DAYS, DEFAULT_WINDOW, clock
from app.platform import db as database
from app.platform import jsontext
from app.platform.db import Database
from app.platform.errors import InvalidInput, NotFound, field_error


def put(db: Database, service_id: str, document: dict) -> tuple[dict, bool]:
    """Create or replace a carrier service; return ``(service, created)``."""
    problems = problems_of(document)
    calendar_id = document.get("calendar")
    if calendar_id and calendar_id != calendars.NETWORK and not calendars.exists(db, calendar_id):
        problems.append(field_error(("calendar",), f"calendar {calendar_id!r} does not exist"))
    if problems:
        raise InvalidInput(sorted(problems, key=lambda p: p["pointer"]))
    now = database.now()
    with database.atomic(db):
        previous = db.execute(
            "SELECT created_at FROM carrier_services WHERE service_id = ?", [service_id]
        ).fetchone()
        db.execute(
            "INSERT INTO carrier_services (service_id, carrier, service_level, active, document,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (service_id) DO UPDATE SET carrier = excluded.carrier,"
            " service_level = excluded.service_level, active = excluded.active,"
            " document = excluded.document, updated_at = excluded.updated_at",
            [
                service_id,
                document["carrier"],
                document["service_level"],
                int(document.get("active", True)),
                jsontext.dumps(document),
                now,
                now,
            ],
        )
    return get(db, service_id), previous is None


def problems_of(document: dict) -> list[dict]:
    """What the schema cannot say: distance bands in order with only the last open-ended,
    a window that ends after it starts, the threshold each surcharge needs, and same-day
    terms only for a service that delivers the same day."""
    problems = []
    bands = document["transit"]
    last = 0.0
    for index, band in enumerate(bands):
        up_to = band.get("up_to_km")
        if up_to is None and index != len(bands) - 1:
            problems.append(
                field_error(("transit", index, "up_to_km"), "is required but on the last band")
            )
        elif up_to is not None and up_to <= last:
            problems.append(
                field_error(("transit", index, "up_to_km"), "must be farther than the band before")
            )
        last = up_to if up_to is not None else last
    window = document.get("delivery_window")
    if window and clock(window["from"]) >= clock(window["to"]):
        problems.append(field_error(("delivery_window", "to"), "is not after from"))
    for index, surcharge in enumerate(document["rates"].get("surcharges") or []):
        needs = {"heavy": "over_kg", "remote": "over_km"}.get(surcharge["when"])
        if needs and needs not in surcharge:
            problems.append(field_error(("rates", "surcharges", index, needs), "is required"))
    same_day = document.get("same_day")
    if same_day and any(band["days"] for band in bands):
        problems.append(
            field_error(
                ("same_day",), "a same-day service delivers in 0 days: every band's days is 0"
            )
        )
    return problems


def get(db: Database, service_id: str) -> dict:
    row = db.execute(
        "SELECT service_id, document, created_at, updated_at FROM carrier_services"
        " WHERE service_id = ?",
        [service_id],
    ).fetchone()
    if row is None:
        raise NotFound(f"carrier service {service_id!r} does not exist")
    return _public(row)


def list_services(
    db: Database, service_level: str | None = None, active: bool | None = None
) -> list[dict]:
    where, params = [], []
    if service_level is not None:
        where.append("service_level = ?")
        params.append(service_level)
    if active is not None:
        where.append("active = ?")
        params.append(int(active))
    sql = "SELECT service_id, document, created_at, updated_at FROM carrier_services"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return [_public(row) for row in db.execute(sql + " ORDER BY service_id", params)]


def cost(service: dict, distance_km: float, weight_kg: float, hazmat: bool) -> float:
    """What one parcel costs the retailer with this service. Pure."""
    rates = service["rates"]
    total = (
        rates["base"] + rates.get("per_km", 0) * distance_km + rates.get("per_kg", 0) * weight_kg
    )
    for surcharge in rates.get("surcharges") or []:
        when = surcharge["when"]
        if (
            (when == "hazmat" and hazmat)
            or (when == "heavy" and weight_kg > surcharge["over_kg"])
            or (when == "remote" and distance_km > surcharge["over_km"])
        ):
            total += surcharge["amount"]
    return round(total, 2)


def carries(service: dict, weight_kg: float, hazmat: bool) -> bool:
    """Whether the service takes this parcel at all."""
    if hazmat and not service.get("hazmat", False):
        return False
    limit = service.get("max_weight_kg")
    return limit is None or weight_kg <= limit


def _public(row) -> dict:
    """A stored service with what it left out filled in as it applies."""
    document = jsontext.loads(row["document"])
    return {
        "service_id": row["service_id"],
        "active": True,
        "hazmat": False,
        "calendar": calendars.NETWORK,
        "delivery_days": list(DEFAULT_DELIVERY_DAYS),
        "delivery_window": dict(DEFAULT_WINDOW),
        **document,
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }
