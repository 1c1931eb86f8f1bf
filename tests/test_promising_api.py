"""Calendars, carrier services and node fulfilment settings through the API: stored as
sent, read back with what applies, and refused with a pointer at each bad field."""

from __future__ import annotations

import pytest

from app.kinds.promising import carriers
from tests.conftest import NODE_DC, Api

NETWORK = {
    "name": "England and Wales bank holidays",
    "closures": [
        {"from": "2026-12-25", "to": "2026-12-26", "name": "Christmas"},
        {"from": "2027-01-01", "name": "New Year's Day"},
    ],
}
NEXT_DAY = {
    "carrier": "Parcel Co",
    "name": "Next day",
    "service_level": "express",
    "collection_days": ["mon", "tue", "wed", "thu", "fri"],
    "transit": [{"up_to_km": 300, "days": 1}, {"days": 2}],
    "rates": {
        "base": 4.5,
        "per_kg": 0.3,
        "surcharges": [{"when": "heavy", "over_kg": 20, "amount": 6.0}],
    },
}


@pytest.fixture
def channel(client, keys):
    return Api(client, keys["channel"])


def test_a_calendar_is_stored_and_read_back(admin, channel):
    created = admin.put("/v1/calendars/network", json=NETWORK)
    assert created.status_code == 201
    assert created.get_json()["closures"] == NETWORK["closures"]
    assert admin.put("/v1/calendars/network", json=NETWORK).status_code == 200
    read = channel.get("/v1/calendars/network").get_json()
    assert read["calendar_id"] == "network" and read["name"] == NETWORK["name"]
    listed = channel.get("/v1/calendars").get_json()
    assert [c["calendar_id"] for c in listed["calendars"]] == ["network"]
    assert channel.get("/v1/calendars/nowhere").status_code == 404
    assert channel.put("/v1/calendars/network", json=NETWORK).status_code == 403


@pytest.mark.parametrize(
    ("closures", "pointers"),
    [
        ([{"from": "2026-02-30"}], ["/closures/0/from"]),
        ([{"from": "2026-12-26", "to": "2026-12-25"}], ["/closures/0/to"]),
        ([{"from": "26/12/2026"}], ["/closures/0/from"]),
        ([{"to": "2026-12-26"}], ["/closures/0/from"]),
        ([{"from": "2026-12-26", "until": "2026-12-27"}], ["/closures/0/until"]),
    ],
)
def test_a_bad_calendar_is_refused_and_changes_nothing(admin, closures, pointers):
    assert admin.put("/v1/calendars/network", json=NETWORK).status_code == 201
    refused = admin.put("/v1/calendars/network", json={"closures": closures})
    assert refused.status_code == 422
    error = refused.get_json()["error"]
    assert error["code"] == "invalid_input"
    assert [e["pointer"] for e in error["errors"]] == pointers
    assert admin.get("/v1/calendars/network").get_json()["closures"] == NETWORK["closures"]


def test_a_carrier_service_is_read_back_with_what_applies(admin, channel):
    created = admin.put("/v1/carrier-services/parcel-next-day", json=NEXT_DAY)
    assert created.status_code == 201
    service = created.get_json()
    assert service["service_id"] == "parcel-next-day"
    assert service["rates"] == NEXT_DAY["rates"]
    # What it left out, as it applies.
    assert service["active"] is True and service["hazmat"] is False
    assert service["calendar"] == "network"
    assert service["delivery_days"] == ["mon", "tue", "wed", "thu", "fri"]
    assert service["delivery_window"] == {"from": "08:00", "to": "18:00"}
    same_day = {
        **NEXT_DAY,
        "service_level": "same_day",
        "transit": [{"days": 0}],
        "same_day": {"radius_km": 20, "cutoff": "12:00"},
    }
    assert admin.put("/v1/carrier-services/courier-same-day", json=same_day).status_code == 201
    express = channel.get("/v1/carrier-services?service_level=express").get_json()
    assert [s["service_id"] for s in express["carrier_services"]] == ["parcel-next-day"]
    assert channel.get("/v1/carrier-services").get_json()["count"] == 2
    assert channel.get("/v1/carrier-services/courier-same-day").get_json()["same_day"] == {
        "radius_km": 20,
        "cutoff": "12:00",
    }
    assert channel.put("/v1/carrier-services/x", json=NEXT_DAY).status_code == 403


@pytest.mark.parametrize(
    ("change", "pointers"),
    [
        ({"transit": [{"days": 1}, {"up_to_km": 300, "days": 2}]}, ["/transit/0/up_to_km"]),
        (
            {"transit": [{"up_to_km": 300, "days": 1}, {"up_to_km": 200, "days": 2}, {"days": 3}]},
            ["/transit/1/up_to_km"],
        ),
        ({"delivery_window": {"from": "18:00", "to": "08:00"}}, ["/delivery_window/to"]),
        (
            {"rates": {"base": 4.5, "surcharges": [{"when": "heavy", "amount": 6.0}]}},
            ["/rates/surcharges/0/over_kg"],
        ),
        ({"calendar": "scotland"}, ["/calendar"]),
        ({"collection_days": ["monday"]}, ["/collection_days/0"]),
        ({"same_day": {"radius_km": 20, "cutoff": "25:00"}}, ["/same_day/cutoff"]),
        ({"same_day": {"radius_km": 20, "cutoff": "12:00"}}, ["/same_day"]),
        ({"rates": {"base": -1}}, ["/rates/base"]),
        ({"service_level": "Express!"}, ["/service_level"]),
    ],
)
def test_a_bad_carrier_service_is_refused_and_stores_nothing(admin, change, pointers):
    refused = admin.put("/v1/carrier-services/parcel-next-day", json={**NEXT_DAY, **change})
    assert refused.status_code == 422, refused.get_json()
    assert [e["pointer"] for e in refused.get_json()["error"]["errors"]] == pointers
    assert admin.get("/v1/carrier-services/parcel-next-day").status_code == 404


def test_a_carrier_service_may_name_a_stored_calendar(admin):
    assert admin.put("/v1/calendars/scotland", json={"closures": []}).status_code == 201
    service = admin.put("/v1/carrier-services/scot", json={**NEXT_DAY, "calendar": "scotland"})
    assert service.status_code == 201


FULFILMENT = {
    "cutoffs": {"mon": "16:00", "tue": "16:00", "wed": "16:00", "thu": "16:00", "fri": "14:00"},
    "processing_minutes": 90,
    "opening_hours": {"mon": ["08:00", "20:00"], "sat": ["09:00", "17:00"]},
    "closures": [{"from": "2026-12-01", "name": "stocktake"}],
    "network_holidays": False,
}


def test_a_node_keeps_its_fulfilment_calendar(admin):
    assert admin.put("/v1/nodes/DC1", json=NODE_DC).status_code == 201
    assert admin.get("/v1/nodes/DC1").get_json()["fulfilment"] is None  # the defaults
    stored = admin.put("/v1/nodes/DC1", json={**NODE_DC, "fulfilment": FULFILMENT})
    assert stored.status_code == 200
    assert admin.get("/v1/nodes/DC1").get_json()["fulfilment"] == FULFILMENT


@pytest.mark.parametrize(
    ("fulfilment", "pointers"),
    [
        ({"opening_hours": {"mon": ["20:00", "08:00"]}}, ["/fulfilment/opening_hours/mon/1"]),
        ({"closures": [{"from": "2026-13-01"}]}, ["/fulfilment/closures/0/from"]),
        ({"cutoffs": {"someday": "16:00"}}, ["/fulfilment/cutoffs"]),
        ({"cutoffs": {"mon": "4pm"}}, ["/fulfilment/cutoffs/mon"]),
        ({"processing_minutes": -5}, ["/fulfilment/processing_minutes"]),
    ],
)
def test_bad_fulfilment_settings_are_refused_and_change_nothing(admin, fulfilment, pointers):
    assert admin.put("/v1/nodes/DC1", json={**NODE_DC, "fulfilment": FULFILMENT}).status_code == 201
    refused = admin.put("/v1/nodes/DC1", json={**NODE_DC, "fulfilment": fulfilment})
    assert refused.status_code == 422
    assert [e["pointer"] for e in refused.get_json()["error"]["errors"]] == pointers
    assert admin.get("/v1/nodes/DC1").get_json()["fulfilment"] == FULFILMENT


RATED = {
    "hazmat": True,
    "max_weight_kg": 30,
    "rates": {
        "base": 4.0,
        "per_km": 0.01,
        "per_kg": 0.5,
        "surcharges": [
            {"when": "hazmat", "amount": 3.0},
            {"when": "heavy", "over_kg": 20, "amount": 6.0},
            {"when": "remote", "over_km": 400, "amount": 10.0},
        ],
    },
}


@pytest.mark.parametrize(
    ("distance", "weight", "hazmat", "cost"),
    [
        (100, 2, False, 4.0 + 1.0 + 1.0),
        (100, 2, True, 4.0 + 1.0 + 1.0 + 3.0),
        (100, 20, False, 4.0 + 1.0 + 10.0),  # heavy is over 20 kg, not at it
        (100, 21, False, 4.0 + 1.0 + 10.5 + 6.0),
        (401, 2, False, 4.0 + 4.01 + 1.0 + 10.0),
    ],
)
def test_what_a_parcel_costs(distance, weight, hazmat, cost):
    assert carriers.cost(RATED, distance, weight, hazmat) == round(cost, 2)


def test_what_a_service_carries():
    assert carriers.carries(RATED, 30, True)
    assert not carriers.carries(RATED, 30.5, False)
    assert not carriers.carries({**RATED, "hazmat": False}, 1, True)
    assert carriers.carries({"rates": {"base": 1}}, 500, False)  # no limit given
