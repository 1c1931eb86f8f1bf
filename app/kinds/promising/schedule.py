"""What dates are worked out from: the active carrier services, their calendars, the
network's holidays and each node's calendar, read once per process and again only
when a carrier service or a calendar changed. ``dated`` is the one place that turns a
node, a carrier service and a delivery method into the dates a customer is told.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from app.kinds.promising import calendars, carriers
from app.kinds.promising.dates import (
    CarrierCalendar,
    Delivery,
    NoDate,
    NodeCalendar,
    carrier_calendar,
    closed_days,
    delivery,
    node_calendar,
    ready_for_pickup,
    same_day,
)
from app.platform import jsontext
from app.platform.db import Database


@dataclass
class Schedule:
    """The active carrier services and every calendar, as of one read."""

    services: tuple[dict, ...]  # active carrier services, as carriers.get gives them
    carrier_calendars: dict[str, CarrierCalendar]
    holidays: frozenset[date]
    _nodes: dict = field(default_factory=dict)

    def of_level(self, service_level: str) -> list[dict]:
        return [s for s in self.services if s["service_level"] == service_level]

    def node(self, info: dict) -> NodeCalendar:
        """A node's calendar from what ``nodes.existing`` gives (timezone, fulfilment)."""
        fulfilment = info.get("fulfilment")
        key = (info["timezone"], jsontext.dumps(fulfilment) if fulfilment else None)
        found = self._nodes.get(key)
        if found is None:
            found = self._nodes[key] = node_calendar(info["timezone"], fulfilment, self.holidays)
        return found


# Schedules by what identifies their rows' state (counts and latest changes, to the
# microsecond): a database whose services and calendars are unchanged reuses its own.
_CACHE: dict[tuple, Schedule] = {}


def load(db: Database) -> Schedule:
    """The schedule as stored now: read again only when a service or calendar changed."""
    stamp = tuple(
        db.execute(
            "SELECT (SELECT COUNT(*) FROM carrier_services),"
            " (SELECT MAX(updated_at) FROM carrier_services),"
            " (SELECT COUNT(*) FROM calendars), (SELECT MAX(updated_at) FROM calendars)"
        ).fetchone()
    )
    cached = _CACHE.get(stamp)
    if cached is not None:
        return cached
    closed = {c["calendar_id"]: closed_days(c["closures"]) for c in calendars.list_calendars(db)}
    services = tuple(carriers.list_services(db, active=True))
    schedule = Schedule(
        services=services,
        carrier_calendars={
            s["service_id"]: carrier_calendar(s, closed.get(s["calendar"], frozenset()))
            for s in services
        },
        holidays=closed.get(calendars.NETWORK, frozenset()),
    )
    if len(_CACHE) > 16:
        _CACHE.clear()
    _CACHE[stamp] = schedule
    return schedule


def compact(service: dict) -> dict:
    """What a decision keeps of a carrier service to choose and price it again (replays)."""
    kept = {
        "service_id": service["service_id"],
        "carrier": service["carrier"],
        "service_level": service["service_level"],
        "rates": service["rates"],
        "hazmat": service.get("hazmat", False),
    }
    if service.get("max_weight_kg") is not None:
        kept["max_weight_kg"] = service["max_weight_kg"]
    if service.get("same_day"):
        kept["same_day_radius_km"] = service["same_day"]["radius_km"]
    return kept


def fact(service: dict, collected: dict[str, int]) -> dict:
    """The carrier fact rules match: one per active carrier service. ``collected`` counts
    the shipments dispatched today with each service that has a daily limit."""
    compacted = compact(service)
    compacted.pop("rates")
    limit = service.get("daily_collection_limit")
    if limit is not None:
        compacted["collection_limit"] = limit
        compacted["collections_left"] = limit - collected.get(service["service_id"], 0)
    return {"fact": "carrier", "key": f"carrier:{service['service_id']}", **compacted}


def limited(schedule: Schedule) -> list[str]:
    """The services with a daily collection limit."""
    return [s["service_id"] for s in schedule.services if s.get("daily_collection_limit")]


def cheapest(
    services: list[dict],
    distance_km: float,
    weight_kg: float,
    hazmat: bool,
    excluded: frozenset = frozenset(),
    preference: dict | None = None,
) -> tuple[dict, float] | None:
    """The service that carries this parcel for least, less what rules prefer it by, with
    its cost; None when none carries it. Ties go to the service id, so it is stable."""
    best = None
    for service in services:
        # Inline checks: this runs for every candidate of every decision.
        if (hazmat and not service.get("hazmat")) or service["service_id"] in excluded:
            continue
        limit = service.get("max_weight_kg")
        radius = service.get("same_day_radius_km")
        if (limit is not None and weight_kg > limit) or (
            radius is not None and distance_km > radius
        ):
            continue
        price = carriers.cost(service, distance_km, weight_kg, hazmat)
        rank = price - preference.get(service["service_id"], 0.0) if preference else price
        if best is None or (rank, service["service_id"]) < best[0]:
            best = ((rank, service["service_id"]), service, price)
    return None if best is None else (best[1], best[2])


@dataclass(frozen=True)
class Dates:
    """When goods leave a node and when the customer has them (delivered or ready)."""

    dispatch_date: date
    delivery_date: date  # on the customer's calendar
    earliest: datetime
    latest: datetime


def dated(
    schedule: Schedule,
    node: dict,
    method: str,
    service_id: str | None,
    moment: datetime,
    distance_km: float,
    customer_zone: ZoneInfo | None = None,
    pickup_node: dict | None = None,
    extra_days: int = 0,
) -> Dates | None:
    """The dates of goods at ``node`` (``nodes.existing``'s info) ordered at ``moment``:
    shipped or same-day with the carrier service, ready at the node for pickup, or
    shipped to ``pickup_node`` and ready there. None when no date exists (no carrier, out
    of the same-day radius or past its cut-off, no working day within the horizon)."""
    calendar = schedule.node(node)
    zone = customer_zone or calendar.zone
    try:
        if method == "pickup":
            ready, closes = ready_for_pickup(calendar, moment)
            return _later(
                Dates(ready.date(), ready.date(), ready, closes), extra_days, calendar.zone
            )
        carrier = schedule.carrier_calendars.get(service_id) if service_id else None
        if carrier is None:
            return None
        if method == "same_day":
            found = same_day(calendar, carrier, moment, distance_km, zone)
            if found is None:
                return None
            return _later(_of(found), extra_days, zone)
        if carrier.same_day is not None:
            return None  # a same-day service only delivers the same day
        if method == "ship_to_store":
            store = schedule.node(pickup_node)
            arrives = delivery(calendar, carrier, moment, distance_km, store.zone)
            ready, closes = ready_for_pickup(store, arrives.earliest)
            return _later(
                Dates(arrives.dispatch_date, ready.date(), ready, closes), extra_days, store.zone
            )
        return _later(_of(delivery(calendar, carrier, moment, distance_km, zone)), extra_days, zone)
    except NoDate:
        return None


def _of(found: Delivery) -> Dates:
    return Dates(found.dispatch_date, found.delivery_date, found.earliest, found.latest)


def _later(dates: Dates, days: int, zone: ZoneInfo) -> Dates:
    """The dates moved ``days`` later (a rule's ``extra_days``)."""
    if not days:
        return dates
    step = timedelta(days=days)
    return Dates(
        dates.dispatch_date,
        dates.delivery_date + step,
        (dates.earliest.astimezone(zone) + step),
        (dates.latest.astimezone(zone) + step),
    )
