"""When goods can leave a node, arrive at a customer or be collected: pure, from calendars.

A node works on the days it has an order cut-off, except its closures and (unless it
opts out) the network calendar's; an order that comes in strictly before the day's
cut-off, on the node's own clock, leaves that day. A carrier service collects on its
collection days and delivers on its delivery days, except its calendar's closures;
its transit time is a number of delivery days after the collection day, by distance.
Pickup is ready a processing time after the order, within opening hours (processing
starts at opening for an order that came in while the node was closed).

Every time is aware; each rule is applied on the clock of the place it belongs to
(the node's for cut-offs and opening hours, the customer's for the delivery window),
so daylight saving changes and nodes in other time zones need nothing special.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.platform.errors import field_error

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# How far ahead a date is looked for before the calendars are called impossible.
HORIZON_DAYS = 120

# A node that says nothing about when it works (settings as data: docs/promising.md).
DEFAULT_FULFILMENT = {
    "cutoffs": {day: "15:00" for day in WEEKDAYS[:5]} | {"sat": "12:00"},
    "processing_minutes": 120,
    "opening_hours": {day: ["09:00", "18:00"] for day in WEEKDAYS[:6]}
    | {"sun": ["10:00", "16:00"]},
    "closures": [],
    "network_holidays": True,
}
DEFAULT_DELIVERY_DAYS = WEEKDAYS[:5]
DEFAULT_WINDOW = {"from": "08:00", "to": "18:00"}


# The clock of an address that does not name its time zone, by its country (ISO 3166-1
# alpha-2): the countries with one zone. Elsewhere the serving node's clock is used.
COUNTRY_ZONES = {
    "GB": "Europe/London",
    "IE": "Europe/Dublin",
    "IM": "Europe/Isle_of_Man",
    "JE": "Europe/Jersey",
    "GG": "Europe/Guernsey",
    "FR": "Europe/Paris",
    "BE": "Europe/Brussels",
    "NL": "Europe/Amsterdam",
    "LU": "Europe/Luxembourg",
    "DE": "Europe/Berlin",
    "AT": "Europe/Vienna",
    "CH": "Europe/Zurich",
    "IT": "Europe/Rome",
    "ES": "Europe/Madrid",
    "DK": "Europe/Copenhagen",
    "SE": "Europe/Stockholm",
    "NO": "Europe/Oslo",
    "FI": "Europe/Helsinki",
    "PL": "Europe/Warsaw",
    "CZ": "Europe/Prague",
    "GR": "Europe/Athens",
}


def address_zone(address: dict | None) -> ZoneInfo | None:
    """The clock a delivery window is given on: the address's own time zone, else its
    country's when the country has one; None for the serving node's."""
    if not address:
        return None
    name = address.get("timezone") or COUNTRY_ZONES.get((address.get("country") or "").upper())
    return ZoneInfo(name) if name else None


class NoDate(ValueError):
    """The calendars leave no working day within the horizon."""


def clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def closed_days(closures: list[dict]) -> frozenset[date]:
    """Every day a list of closures covers (each ``from``, through ``to`` when given)."""
    days = set()
    for closure in closures:
        first = date.fromisoformat(closure["from"])
        last = date.fromisoformat(closure.get("to", closure["from"]))
        while first <= last:
            days.add(first)
            first += timedelta(days=1)
    return frozenset(days)


@dataclass(frozen=True)
class NodeCalendar:
    """When one node works, on its own clock."""

    zone: ZoneInfo
    cutoffs: dict[int, time]  # weekday (0 is Monday) -> cut-off
    processing: timedelta
    opening: dict[int, tuple[time, time]]
    closed: frozenset[date]

    def works(self, day: date) -> bool:
        return day.weekday() in self.cutoffs and day not in self.closed

    def open_on(self, day: date) -> tuple[datetime, datetime] | None:
        hours = self.opening.get(day.weekday())
        if hours is None or day in self.closed:
            return None
        return (
            datetime.combine(day, hours[0], self.zone),
            datetime.combine(day, hours[1], self.zone),
        )


def node_calendar(
    timezone: str, fulfilment: dict | None, holidays: frozenset[date]
) -> NodeCalendar:
    """A node's calendar from its ``fulfilment`` settings (defaults where it says nothing)
    and the network calendar's closed days."""
    settings = {**DEFAULT_FULFILMENT, **(fulfilment or {})}
    closed = closed_days(settings["closures"])
    if settings["network_holidays"]:
        closed |= holidays
    return NodeCalendar(
        zone=ZoneInfo(timezone),
        cutoffs={WEEKDAYS.index(day): clock(at) for day, at in settings["cutoffs"].items()},
        processing=timedelta(minutes=settings["processing_minutes"]),
        opening={
            WEEKDAYS.index(day): (clock(hours[0]), clock(hours[1]))
            for day, hours in settings["opening_hours"].items()
        },
        closed=closed,
    )


@dataclass(frozen=True)
class CarrierCalendar:
    """When one carrier service collects and delivers, how long it takes, and its window."""

    collects: frozenset[int]
    delivers: frozenset[int]
    closed: frozenset[date]
    transit: tuple[tuple[float | None, int], ...]  # (up_to_km or None, days), in order
    window: tuple[time, time]
    same_day: tuple[float, time] | None  # (radius_km, cut-off on the node's clock)

    def transit_days(self, distance_km: float) -> int:
        for up_to, days in self.transit:
            if up_to is None or distance_km <= up_to:
                return days
        return self.transit[-1][1]


def carrier_calendar(service: dict, closed: frozenset[date]) -> CarrierCalendar:
    """A carrier service's calendar from its document and its calendar's closed days."""
    window = service.get("delivery_window") or DEFAULT_WINDOW
    same_day = service.get("same_day")
    return CarrierCalendar(
        collects=frozenset(WEEKDAYS.index(d) for d in service["collection_days"]),
        delivers=frozenset(
            WEEKDAYS.index(d) for d in service.get("delivery_days") or DEFAULT_DELIVERY_DAYS
        ),
        closed=closed,
        transit=tuple((band.get("up_to_km"), band["days"]) for band in service["transit"]),
        window=(clock(window["from"]), clock(window["to"])),
        same_day=(same_day["radius_km"], clock(same_day["cutoff"])) if same_day else None,
    )


@dataclass(frozen=True)
class Delivery:
    """When a parcel leaves its node and when it arrives, on the customer's clock."""

    dispatch_date: date
    delivery_date: date
    earliest: datetime
    latest: datetime


def dispatch_date(node: NodeCalendar, carrier: CarrierCalendar, moment: datetime) -> date:
    """The day an order that comes in at ``moment`` leaves the node with this carrier: the
    first day the node works and the carrier collects, today only before the cut-off."""
    local = moment.astimezone(node.zone)
    day = local.date()
    for _ in range(HORIZON_DAYS):
        if (
            node.works(day)
            and day.weekday() in carrier.collects
            and day not in carrier.closed
            and (day > local.date() or local.time() < node.cutoffs[day.weekday()])
        ):
            return day
        day += timedelta(days=1)
    raise NoDate(f"no day within {HORIZON_DAYS} when the node works and the carrier collects")


def delivery(
    node: NodeCalendar,
    carrier: CarrierCalendar,
    moment: datetime,
    distance_km: float,
    customer_zone: ZoneInfo,
) -> Delivery:
    """When a parcel ordered at ``moment`` arrives, ``distance_km`` from the node."""
    leaves = dispatch_date(node, carrier, moment)
    day, left = leaves, carrier.transit_days(distance_km)
    for _ in range(HORIZON_DAYS):
        if left == 0:
            break
        day += timedelta(days=1)
        if day.weekday() in carrier.delivers and day not in carrier.closed:
            left -= 1
    else:
        raise NoDate(f"the carrier delivers on no day within {HORIZON_DAYS}")
    return Delivery(
        dispatch_date=leaves,
        delivery_date=day,
        earliest=datetime.combine(day, carrier.window[0], customer_zone),
        latest=datetime.combine(day, carrier.window[1], customer_zone),
    )


def same_day(
    node: NodeCalendar,
    carrier: CarrierCalendar,
    moment: datetime,
    distance_km: float,
    customer_zone: ZoneInfo,
) -> Delivery | None:
    """Delivery today, when the carrier offers it this far and the order is in before its
    cut-off on a day the node works and the carrier collects; else None."""
    if carrier.same_day is None:
        return None
    radius, cutoff = carrier.same_day
    local = moment.astimezone(node.zone)
    today = local.date()
    if (
        distance_km > radius
        or not node.works(today)
        or today.weekday() not in carrier.collects
        or today in carrier.closed
        or local.time() >= cutoff
    ):
        return None
    return Delivery(
        dispatch_date=today,
        delivery_date=today,
        earliest=max(
            datetime.combine(today, carrier.window[0], customer_zone),
            (local + node.processing).astimezone(customer_zone),
        ),
        latest=datetime.combine(today, carrier.window[1], customer_zone),
    )


def ready_for_pickup(node: NodeCalendar, moment: datetime) -> tuple[datetime, datetime]:
    """From when until when goods ordered at ``moment`` (or arriving then) can be collected
    on their first day: processing time after the order, or after opening for an order
    that came in while the node was closed, on a day it is open long enough."""
    local = moment.astimezone(node.zone)
    day = local.date()
    for _ in range(HORIZON_DAYS):
        hours = node.open_on(day)
        if hours is not None:
            opens, closes = hours
            start = max(opens, local) if day == local.date() else opens
            ready = start + node.processing
            if ready <= closes:
                return ready, closes
        day += timedelta(days=1)
    raise NoDate(f"the node opens on no day within {HORIZON_DAYS} long enough to prepare it")


def after_working_days(node: NodeCalendar, day: date, working_days: int) -> datetime:
    """The end (midnight that closes it, on the node's clock) of the node's ``working_days``-th
    working day after ``day``; ``day`` itself when ``working_days`` is 0. The node's days
    without work never count, so a deadline set on a Friday runs over the weekend free."""
    left = working_days
    for _ in range(HORIZON_DAYS):
        if left == 0:
            break
        day += timedelta(days=1)
        if node.works(day):
            left -= 1
    else:
        raise NoDate(f"the node works on no day within {HORIZON_DAYS}")
    return datetime.combine(day + timedelta(days=1), time(0, 0), node.zone)


def transfer_arrival(
    origin: NodeCalendar, destination: NodeCalendar, moment: datetime, days: int
) -> tuple[date, datetime]:
    """``(leaves, arrives)`` of goods one node sends another at ``moment``: they leave on
    the origin's first working day (today before its cut-off) and are on the destination's
    shelf at its opening ``days`` of its working days later."""
    local = moment.astimezone(origin.zone)
    leaves = local.date()
    for _ in range(HORIZON_DAYS):
        if origin.works(leaves) and (
            leaves > local.date() or local.time() < origin.cutoffs[leaves.weekday()]
        ):
            break
        leaves += timedelta(days=1)
    else:
        raise NoDate(f"the node works on no day within {HORIZON_DAYS}")
    last = after_working_days(destination, leaves, days) - timedelta(days=1)
    opening = destination.opening.get(last.weekday(), (time(9, 0), time(17, 0)))[0]
    return leaves, datetime.combine(last.date(), opening, destination.zone)


# Checks the schemas cannot make -------------------------------------------------------


def timezone_problems(name: str | None, at: tuple) -> list[dict]:
    """A time zone name that is not in the IANA database."""
    if name is None:
        return []
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return [field_error(at, f"{name!r} is not an IANA time zone")]
    return []


def closure_problems(closures: list[dict], at: tuple) -> list[dict]:
    """Real dates, each range in order."""
    problems = []
    for index, closure in enumerate(closures or []):
        bounds = {}
        for end in ("from", "to"):
            if end in closure:
                try:
                    bounds[end] = date.fromisoformat(closure[end])
                except ValueError:
                    problems.append(field_error((*at, index, end), "is not a calendar date"))
        if len(bounds) == 2 and bounds["to"] < bounds["from"]:
            problems.append(field_error((*at, index, "to"), "is before from"))
    return problems


def fulfilment_problems(fulfilment: dict | None, at: tuple = ("fulfilment",)) -> list[dict]:
    """A node's fulfilment settings: closures as above, each day's opening before closing."""
    if not fulfilment:
        return []
    problems = closure_problems(fulfilment.get("closures"), (*at, "closures"))
    for day, hours in (fulfilment.get("opening_hours") or {}).items():
        if clock(hours[0]) >= clock(hours[1]):
            problems.append(field_error((*at, "opening_hours", day, 1), "is not after opening"))
    return problems
