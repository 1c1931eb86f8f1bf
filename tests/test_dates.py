"""Promise dates from calendars: cut-offs, weekends, holidays, time zones, daylight saving,
same day and pickup. Pure, table-driven."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from app.kinds.promising import dates
from app.kinds.promising.dates import carrier_calendar, closed_days, node_calendar
from app.platform.db import parse_time

# Pure: the same on every database.
pytestmark = pytest.mark.one_database

LONDON = ZoneInfo("Europe/London")
CHRISTMAS = closed_days([{"from": "2026-12-25", "to": "2026-12-26", "name": "Christmas"}])
NEXT_DAY = {
    "collection_days": ["mon", "tue", "wed", "thu", "fri"],
    "transit": [{"up_to_km": 300, "days": 1}, {"days": 2}],
}
SEVEN_DAYS = {**NEXT_DAY, "collection_days": list(dates.WEEKDAYS)}
ALWAYS = {**SEVEN_DAYS, "delivery_days": list(dates.WEEKDAYS)}
EVERY_DAY = {"cutoffs": {day: "15:00" for day in dates.WEEKDAYS}}


def at(text: str) -> datetime:
    return parse_time(text)


# (case, node time zone, node fulfilment, network holidays, carrier, carrier's closed days,
#  order time, distance km, dispatch day, delivery day)
SHIP = [
    (
        "a minute before the cut-off leaves today",
        "Europe/London",
        None,
        frozenset(),
        NEXT_DAY,
        frozenset(),
        "2026-11-26T14:59:00Z",
        100,
        "2026-11-26",
        "2026-11-27",
    ),
    (
        "at the cut-off it leaves the next working day",
        "Europe/London",
        None,
        frozenset(),
        NEXT_DAY,
        frozenset(),
        "2026-11-26T15:00:00Z",
        100,
        "2026-11-27",
        "2026-11-30",
    ),
    (
        "a minute after the cut-off too",
        "Europe/London",
        None,
        frozenset(),
        NEXT_DAY,
        frozenset(),
        "2026-11-26T15:01:00Z",
        100,
        "2026-11-27",
        "2026-11-30",
    ),
    (
        "farther away takes the next band's days",
        "Europe/London",
        None,
        frozenset(),
        NEXT_DAY,
        frozenset(),
        "2026-11-27T10:00:00Z",
        450,
        "2026-11-27",
        "2026-12-01",
    ),
    (
        "the node works on Saturday but the carrier does not collect",
        "Europe/London",
        None,
        frozenset(),
        NEXT_DAY,
        frozenset(),
        "2026-11-28T10:00:00Z",
        100,
        "2026-11-30",
        "2026-12-01",
    ),
    (
        "a Saturday collection before the Saturday cut-off",
        "Europe/London",
        None,
        frozenset(),
        SEVEN_DAYS,
        frozenset(),
        "2026-11-28T11:59:00Z",
        100,
        "2026-11-28",
        "2026-11-30",
    ),
    (
        "holidays close the node: Christmas Eve after the cut-off waits for Monday",
        "Europe/London",
        None,
        CHRISTMAS,
        NEXT_DAY,
        CHRISTMAS,
        "2026-12-24T16:00:00Z",
        100,
        "2026-12-28",
        "2026-12-29",
    ),
    (
        "a node that opts out of the network's holidays dispatches on them",
        "Europe/London",
        {**EVERY_DAY, "network_holidays": False},
        CHRISTMAS,
        ALWAYS,
        frozenset(),
        "2026-12-24T16:00:00Z",
        100,
        "2026-12-25",
        "2026-12-26",
    ),
    (
        "the carrier's holiday stops transit",
        "Europe/London",
        None,
        frozenset(),
        NEXT_DAY,
        CHRISTMAS | {date(2026, 12, 24)},
        "2026-12-23T10:00:00Z",
        100,
        "2026-12-23",
        "2026-12-28",
    ),
    (
        "the node's own closure",
        "Europe/London",
        {"closures": [{"from": "2026-11-26", "name": "stocktake"}]},
        frozenset(),
        NEXT_DAY,
        frozenset(),
        "2026-11-26T09:00:00Z",
        100,
        "2026-11-27",
        "2026-11-30",
    ),
    (
        "a node in New York keeps its own clock: 14:59 there",
        "America/New_York",
        None,
        frozenset(),
        NEXT_DAY,
        frozenset(),
        "2026-11-26T19:59:00Z",
        100,
        "2026-11-26",
        "2026-11-27",
    ),
    (
        "a node in New York keeps its own clock: 15:01 there",
        "America/New_York",
        None,
        frozenset(),
        NEXT_DAY,
        frozenset(),
        "2026-11-26T20:01:00Z",
        100,
        "2026-11-27",
        "2026-11-30",
    ),
    (
        "the day clocks go forward: 14:30 UTC is 15:30 in London, after the cut-off",
        "Europe/London",
        EVERY_DAY,
        frozenset(),
        SEVEN_DAYS,
        frozenset(),
        "2026-03-29T14:30:00Z",
        100,
        "2026-03-30",
        "2026-03-31",
    ),
    (
        "the day clocks go forward: 13:59 UTC is 14:59 in London",
        "Europe/London",
        EVERY_DAY,
        frozenset(),
        SEVEN_DAYS,
        frozenset(),
        "2026-03-29T13:59:00Z",
        100,
        "2026-03-29",
        "2026-03-30",
    ),
    (
        "the day clocks go back: 14:59 UTC is 14:59 in London again",
        "Europe/London",
        EVERY_DAY,
        frozenset(),
        SEVEN_DAYS,
        frozenset(),
        "2026-10-25T14:59:00Z",
        100,
        "2026-10-25",
        "2026-10-26",
    ),
]


@pytest.mark.parametrize(
    (
        "case",
        "zone",
        "fulfilment",
        "holidays",
        "carrier",
        "closed",
        "ordered",
        "km",
        "leaves",
        "arrives",
    ),
    SHIP,
    ids=[c[0] for c in SHIP],
)
def test_ship(case, zone, fulfilment, holidays, carrier, closed, ordered, km, leaves, arrives):
    node = node_calendar(zone, fulfilment, holidays)
    found = dates.delivery(node, carrier_calendar(carrier, closed), at(ordered), km, LONDON)
    assert (found.dispatch_date.isoformat(), found.delivery_date.isoformat()) == (leaves, arrives)
    # The window is on the customer's clock, on the delivery day.
    assert found.earliest.tzinfo is LONDON and found.earliest.date() == found.delivery_date
    assert (found.earliest.hour, found.latest.hour) == (8, 18)


SAME_DAY = {
    "collection_days": list(dates.WEEKDAYS[:6]),
    "transit": [{"days": 0}],
    "delivery_window": {"from": "17:00", "to": "22:00"},
    "same_day": {"radius_km": 25, "cutoff": "12:00"},
}

# (case, order time, distance km, holidays, delivered within (from, to) or None)
SAME = [
    (
        "a minute before its cut-off, within the radius",
        "2026-11-26T11:59:00Z",
        10,
        frozenset(),
        ("17:00", "22:00"),
    ),
    ("at its cut-off: not today", "2026-11-26T12:00:00Z", 10, frozenset(), None),
    ("beyond the radius", "2026-11-26T09:00:00Z", 26, frozenset(), None),
    ("on a holiday", "2026-12-25T09:00:00Z", 10, CHRISTMAS, None),
    ("on a Sunday the node does not dispatch", "2026-11-29T09:00:00Z", 10, frozenset(), None),
]


@pytest.mark.parametrize(
    ("case", "ordered", "km", "holidays", "window"), SAME, ids=[c[0] for c in SAME]
)
def test_same_day(case, ordered, km, holidays, window):
    node = node_calendar("Europe/London", None, holidays)
    carrier = carrier_calendar(SAME_DAY, holidays)
    found = dates.same_day(node, carrier, at(ordered), km, LONDON)
    if window is None:
        assert found is None
    else:
        assert found.delivery_date == at(ordered).date()
        assert (found.earliest.strftime("%H:%M"), found.latest.strftime("%H:%M")) == window


# (case, order time, holidays, ready from, until) -- opening 09:00-18:00, Sunday 10-16, 2 h
PICKUP = [
    (
        "during opening: two hours later",
        "2026-11-26T10:00:00Z",
        frozenset(),
        "2026-11-26T12:00:00+00:00",
        "2026-11-26T18:00:00+00:00",
    ),
    (
        "before opening: two hours after it opens",
        "2026-11-26T07:00:00Z",
        frozenset(),
        "2026-11-26T11:00:00+00:00",
        "2026-11-26T18:00:00+00:00",
    ),
    (
        "too late to prepare today: the next day",
        "2026-11-26T16:30:00Z",
        frozenset(),
        "2026-11-27T11:00:00+00:00",
        "2026-11-27T18:00:00+00:00",
    ),
    (
        "exactly in time for closing",
        "2026-11-26T16:00:00Z",
        frozenset(),
        "2026-11-26T18:00:00+00:00",
        "2026-11-26T18:00:00+00:00",
    ),
    (
        "closed for Christmas: the Sunday's shorter hours",
        "2026-12-24T17:00:00Z",
        CHRISTMAS,
        "2026-12-27T12:00:00+00:00",
        "2026-12-27T16:00:00+00:00",
    ),
    (
        "in summer time the shop's clock is an hour ahead of UTC",
        "2026-07-02T07:30:00Z",
        frozenset(),
        "2026-07-02T11:00:00+01:00",
        "2026-07-02T18:00:00+01:00",
    ),
]


@pytest.mark.parametrize(
    ("case", "ordered", "holidays", "ready", "until"), PICKUP, ids=[c[0] for c in PICKUP]
)
def test_ready_for_pickup(case, ordered, holidays, ready, until):
    node = node_calendar("Europe/London", None, holidays)
    found = dates.ready_for_pickup(node, at(ordered))
    assert (found[0].isoformat(), found[1].isoformat()) == (ready, until)


def test_a_calendar_with_no_working_day_has_no_date():
    node = node_calendar("Europe/London", {"cutoffs": {}}, frozenset())
    with pytest.raises(dates.NoDate):
        dates.delivery(
            node, carrier_calendar(NEXT_DAY, frozenset()), at("2026-11-26T09:00:00Z"), 10, LONDON
        )


@pytest.mark.parametrize(
    ("fulfilment", "pointers"),
    [
        ({"closures": [{"from": "2026-02-30"}]}, ["/fulfilment/closures/0/from"]),
        ({"closures": [{"from": "2026-12-26", "to": "2026-12-24"}]}, ["/fulfilment/closures/0/to"]),
        ({"opening_hours": {"mon": ["18:00", "09:00"]}}, ["/fulfilment/opening_hours/mon/1"]),
        ({"opening_hours": {"mon": ["09:00", "18:00"]}, "closures": [{"from": "2026-12-25"}]}, []),
    ],
)
def test_fulfilment_settings_are_checked_beyond_the_schema(fulfilment, pointers):
    assert [p["pointer"] for p in dates.fulfilment_problems(fulfilment)] == pointers
