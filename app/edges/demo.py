"""A deterministic demo network across Great Britain and Northern Ireland.

3 distribution centres, 1 3PL, 2 drop-ship suppliers, 40 stores, 500 SKUs,
their stock and 300 customers, loaded through the same functions the API uses.
Demo API keys are fixed strings so the README's examples work as written.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

from app.domain import customers
from app.domain.network import nodes, skus, stock
from app.kinds.promising import calendars, carriers
from app.kinds.replenishment import demand, suppliers
from app.platform import auth
from app.platform.db import Database

DEMO_KEYS = {
    "admin": "demo-admin-key",
    "analyst": "demo-analyst-key",
    "channel": "demo-channel-key",
    "node DC-MID": "demo-node-dc-mid-key",
}

# (name, postcode, lat, lon): real places, rounded coordinates.
CITIES = [
    ("London", "EC1A 1BB", 51.5074, -0.1278),
    ("Birmingham", "B1 1AA", 52.4862, -1.8904),
    ("Manchester", "M1 1AE", 53.4808, -2.2426),
    ("Leeds", "LS1 1UR", 53.8008, -1.5491),
    ("Glasgow", "G1 1XQ", 55.8642, -4.2518),
    ("Edinburgh", "EH1 1YZ", 55.9533, -3.1883),
    ("Liverpool", "L1 8JQ", 53.4084, -2.9916),
    ("Bristol", "BS1 4DJ", 51.4545, -2.5879),
    ("Sheffield", "S1 2HE", 53.3811, -1.4701),
    ("Newcastle upon Tyne", "NE1 7RU", 54.9783, -1.6178),
    ("Nottingham", "NG1 5FS", 52.9548, -1.1581),
    ("Leicester", "LE1 5WW", 52.6369, -1.1398),
    ("Cardiff", "CF10 1EP", 51.4816, -3.1791),
    ("Belfast", "BT1 5GS", 54.5973, -5.9301),
    ("Southampton", "SO14 7DU", 50.9097, -1.4044),
    ("Brighton", "BN1 1UG", 50.8225, -0.1372),
    ("Plymouth", "PL1 1EA", 50.3755, -4.1427),
    ("Reading", "RG1 1JX", 51.4543, -0.9781),
    ("Oxford", "OX1 1DP", 51.7520, -1.2577),
    ("Cambridge", "CB2 3QJ", 52.2053, 0.1218),
    ("Norwich", "NR2 1NH", 52.6309, 1.2974),
    ("York", "YO1 7HH", 53.9600, -1.0873),
    ("Exeter", "EX1 1GA", 50.7184, -3.5339),
    ("Aberdeen", "AB10 1AF", 57.1497, -2.0943),
    ("Dundee", "DD1 1DB", 56.4620, -2.9707),
    ("Inverness", "IV1 1EU", 57.4778, -4.2247),
    ("Swansea", "SA1 3SN", 51.6214, -3.9436),
    ("Coventry", "CV1 1FL", 52.4068, -1.5197),
    ("Hull", "HU1 2AA", 53.7676, -0.3274),
    ("Stoke-on-Trent", "ST1 1HP", 53.0027, -2.1794),
    ("Derby", "DE1 2FS", 52.9225, -1.4746),
    ("Portsmouth", "PO1 2DT", 50.8198, -1.0880),
    ("Bournemouth", "BH1 2BU", 50.7192, -1.8808),
    ("Milton Keynes", "MK9 3ES", 52.0406, -0.7594),
    ("Northampton", "NN1 2DL", 52.2405, -0.9027),
    ("Preston", "PR1 2HE", 53.7632, -2.7031),
    ("Carlisle", "CA3 8JH", 54.8925, -2.9329),
    ("Lincoln", "LN1 1XP", 53.2307, -0.5406),
    ("Canterbury", "CT1 2HG", 51.2802, 1.0789),
    ("Ipswich", "IP1 1BA", 52.0567, 1.1482),
]

WAREHOUSES = [
    ("DC-MID", "dc", "Midlands DC, Lutterworth", "LE17 4XT", "Lutterworth", 52.4560, -1.2030),
    ("DC-NORTH", "dc", "North DC, Wakefield", "WF2 0XQ", "Wakefield", 53.6833, -1.4977),
    ("DC-SOUTH", "dc", "South DC, Tilbury", "RM18 7AN", "Tilbury", 51.4627, 0.3570),
    ("3PL-SCOT", "3pl", "Scotland 3PL, Eurocentral", "ML1 4UF", "Motherwell", 55.8480, -3.9690),
    ("SUP-HOME", "supplier", "Hearth & Home Ltd", "ST4 2RS", "Stoke-on-Trent", 53.0, -2.18),
    ("SUP-GARDEN", "supplier", "Green Acre Garden Co", "PE1 5YQ", "Peterborough", 52.5695, -0.2405),
]

CATEGORIES = {
    # category: (weight range kg, price band, share hazmat)
    "apparel": ((0.2, 1.2), 0.0),
    "footwear": ((0.6, 1.8), 0.0),
    "home": ((0.5, 8.0), 0.02),
    "electronics": ((0.2, 6.0), 0.15),
    "beauty": ((0.1, 0.8), 0.25),
    "toys": ((0.2, 3.0), 0.0),
    "sports": ((0.3, 12.0), 0.0),
}
DROPSHIP_CATEGORIES = {"furniture": "SUP-HOME", "garden": "SUP-GARDEN"}

FIRST = "Amelia Oliver Isla George Ava Noah Mia Arthur Ivy Leo Freya Oscar Lily Harry Grace Jack"
LAST = "Smith Jones Taylor Brown Williams Wilson Johnson Davies Patel Wright Walker Khan Evans"
TIERS = [("standard", 70), ("silver", 15), ("gold", 10), ("vip", 5)]
SEGMENTS = ["new", "loyal", "price_sensitive", "click_and_collect", "b2b", "student"]


def is_empty(db: Database) -> bool:
    return db.execute("SELECT COUNT(*) FROM nodes").fetchone()[0] == 0


def _address(rng: random.Random, city, postcode, lat, lon, jitter=0.0) -> dict:
    return {
        "lines": [
            f"{rng.randint(1, 240)} {rng.choice(['High', 'Station', 'Church', 'Mill'])}"
            f" {rng.choice(['Street', 'Road', 'Lane', 'Way'])}"
        ],
        "city": city,
        "postcode": postcode,
        "country": "GB",
        "lat": round(lat + rng.uniform(-jitter, jitter), 5),
        "lon": round(lon + rng.uniform(-jitter, jitter), 5),
    }


def network(seed: int = 7, as_of: datetime | None = None) -> dict:
    """Return the demo's documents (nodes, SKUs, feeds, customers) as plain data.

    The same seed gives the same network; ``as_of`` (default: now) dates the stock counts.
    """
    rng = random.Random(seed)
    as_of = (as_of or datetime.now(UTC)).replace(microsecond=0)
    node_docs = {}
    for node_id, node_type, name, postcode, city, lat, lon in WAREHOUSES:
        capabilities = ["ship"] if node_type != "supplier" else ["ship", "dropship"]
        if node_type == "dc":
            capabilities += ["ship_to_store", "returns"]
        if node_type == "3pl":
            capabilities += ["returns", "refurbish"]  # the returns centre
        node_docs[node_id] = {
            "type": node_type,
            "name": name,
            "address": _address(rng, city, postcode, lat, lon),
            "capabilities": capabilities,
            "daily_capacity": {"dc": 5000, "3pl": 1500, "supplier": 400}[node_type],
            "priority": {"dc": 10, "3pl": 5, "supplier": 1}[node_type],
            "active": True,
            "timezone": "Europe/London",
        }
    for index, (city, postcode, lat, lon) in enumerate(CITIES):
        node_id = f"ST-{index + 1:03d}"
        capabilities = ["ship", "pickup", "returns"]
        if index < 12:
            capabilities.append("same_day")
        node_docs[node_id] = {
            "type": "store",
            "name": f"{city} store",
            "address": _address(rng, city, postcode, lat, lon),
            "capabilities": capabilities,
            "daily_capacity": rng.choice([40, 60, 80, 120]),
            "priority": 0,
            "active": index != 39,  # one store closed for refit
            "timezone": "Europe/London",
        }

    sku_docs = {}
    categories = list(CATEGORIES) + list(DROPSHIP_CATEGORIES)
    for number in range(1, 501):
        category = categories[number % len(categories)]
        code = f"SKU-{number:04d}"
        if category in DROPSHIP_CATEGORIES:
            supplier = DROPSHIP_CATEGORIES[category]
            sku_docs[code] = {
                "name": f"{category.title()} item {number}",
                "weight_kg": round(rng.uniform(5, 40), 2),
                "category": category,
                "hazmat": False,
                "suppliers": [
                    {
                        "node_id": supplier,
                        "cost": round(rng.uniform(20, 300), 2),
                        "lead_time_days": rng.randint(2, 7),
                    }
                ],
            }
            continue
        (low, high), hazmat_share = CATEGORIES[category]
        sku_docs[code] = {
            "name": f"{category.title()} item {number}",
            "weight_kg": round(rng.uniform(low, high), 2),
            "category": category,
            "hazmat": rng.random() < hazmat_share,
        }

    feeds = []
    for node_id, node in node_docs.items():
        items = []
        for code, sku in sku_docs.items():
            dropship = "suppliers" in sku
            if node["type"] == "supplier":
                if dropship and sku["suppliers"][0]["node_id"] == node_id:
                    items.append({"sku": code, "on_hand": rng.randint(20, 400)})
            elif dropship:
                continue
            elif node["type"] == "dc" and rng.random() < 0.9:
                items.append({"sku": code, "on_hand": rng.randint(0, 600)})
            elif node["type"] == "3pl" and rng.random() < 0.5:
                items.append({"sku": code, "on_hand": rng.randint(0, 200)})
            elif node["type"] == "store" and rng.random() < 0.3:
                items.append({"sku": code, "on_hand": rng.randint(0, 12)})
        feeds.append(
            {
                "feed_id": f"demo-{node_id}-{as_of:%Y%m%dT%H%M%S}",
                "node_id": node_id,
                "mode": "snapshot",
                "as_of": as_of.isoformat(),
                "complete": True,
                "items": items,
            }
        )

    customer_docs = {}
    first, last = FIRST.split(), LAST.split()
    tiers = [tier for tier, weight in TIERS for _ in range(weight)]
    for number in range(1, 301):
        given, family = rng.choice(first), rng.choice(last)
        city, postcode, lat, lon = rng.choice(CITIES)
        home = {
            "address_id": "home",
            "label": "home",
            **_address(rng, city, postcode, lat, lon, jitter=0.05),
        }
        addresses = [home]
        if rng.random() < 0.3:
            city, postcode, lat, lon = rng.choice(CITIES)
            addresses.append(
                {
                    "address_id": "work",
                    "label": "work",
                    **_address(rng, city, postcode, lat, lon, jitter=0.05),
                }
            )
        nearest_store = min(
            (n for n in node_docs.items() if n[1]["type"] == "store" and n[1]["active"]),
            key=lambda n: (
                (n[1]["address"]["lat"] - home["lat"]) ** 2
                + (n[1]["address"]["lon"] - home["lon"]) ** 2
            ),
        )[0]
        orders = rng.randint(0, 60)
        customer_docs[f"C{number:05d}"] = {
            "name": f"{given} {family}",
            "email": f"{given.lower()}.{family.lower()}{number}@example.com",
            "phone": f"+44 7700 900{number % 1000:03d}",
            "tier": rng.choice(tiers),
            "segments": sorted(rng.sample(SEGMENTS, rng.randint(0, 2))),
            "addresses": addresses,
            "default_address_id": "home",
            "preferred_pickup_node_id": nearest_store,
            "lifetime_orders": orders,
            "lifetime_value": round(orders * rng.uniform(20, 120), 2),
        }
    # Replenishment draws from its own generator, so the network above stays as it was.
    catalogues, demand_feeds = _replenishment(random.Random(seed + 1), node_docs, sku_docs, feeds)
    return {
        "nodes": node_docs,
        "skus": sku_docs,
        "feeds": feeds,
        "customers": customer_docs,
        "calendars": {"network": BANK_HOLIDAYS},
        "carrier_services": CARRIER_SERVICES,
        "catalogues": catalogues,
        "demand_feeds": demand_feeds,
    }


# Wholesale suppliers that replenish stores and DCs: (id, name, postcode, city, lat, lon,
# categories, price factor, terms). Hearth & Home (a drop-ship supplier too) sells homeware
# wholesale; Value Wholesale sells everything a little cheaper, slower and in bulk only.
WHOLESALERS = [
    (
        "SUP-NORTHWIND",
        "Northwind Apparel",
        "LS9 8AG",
        "Leeds",
        53.79,
        -1.50,
        ("apparel", "footwear", "beauty"),
        1.0,
        {
            "min_order_value": 150,
            "cost_per_delivery": 28,
            "lead_time_days": 3,
            "direct_to_store": True,
        },
    ),
    (
        "SUP-BRIGHT",
        "Brightline Electronics",
        "RG2 0QX",
        "Reading",
        51.42,
        -0.95,
        ("electronics",),
        1.0,
        {
            "min_order_value": 400,
            "cost_per_delivery": 55,
            "lead_time_days": 4,
            "direct_to_store": False,
        },
    ),
    (
        "SUP-PLAY",
        "Playfield Toys & Sports",
        "M17 1DE",
        "Manchester",
        53.47,
        -2.33,
        ("toys", "sports"),
        1.0,
        {
            "min_order_value": 250,
            "cost_per_delivery": 40,
            "lead_time_days": 4,
            "direct_to_store": False,
            "delivery_days": ["mon", "wed", "fri"],
        },
    ),
    (
        "SUP-HOME",
        None,
        None,
        None,
        None,
        None,
        ("home",),
        1.0,
        {
            "min_order_value": 200,
            "cost_per_delivery": 45,
            "lead_time_days": 3,
            "direct_to_store": False,
        },
    ),
    (
        "SUP-VALUE",
        "Value Wholesale",
        "IP11 3TW",
        "Felixstowe",
        51.96,
        1.35,
        ("apparel", "footwear", "beauty", "electronics", "toys", "sports", "home"),
        0.9,
        {
            "min_order_value": 1500,
            "cost_per_delivery": 90,
            "lead_time_days": 7,
            "direct_to_store": False,
            "delivery_days": ["tue", "thu"],
        },
    ),
]
BASE_COST = {
    "apparel": (4, 25),
    "footwear": (12, 45),
    "beauty": (2, 15),
    "electronics": (15, 120),
    "toys": (3, 30),
    "sports": (5, 60),
    "home": (3, 40),
}
PACKS = {
    "apparel": 6,
    "footwear": 1,
    "beauty": 12,
    "electronics": 1,
    "toys": 4,
    "sports": 2,
    "home": 2,
}
HISTORY_DAYS = 28


def _replenishment(rng: random.Random, node_docs: dict, sku_docs: dict, feeds: list):
    """Wholesale suppliers and their catalogues, and 28 days of sales at stores and DCs."""
    catalogues = {}
    cost = {
        code: round(rng.uniform(*BASE_COST[sku["category"]]), 2)
        for code, sku in sku_docs.items()
        if sku["category"] in BASE_COST
    }
    for node_id, name, postcode, city, lat, lon, categories, factor, terms in WHOLESALERS:
        if node_id not in node_docs:
            node_docs[node_id] = {
                "type": "supplier",
                "name": name,
                "address": _address(rng, city, postcode, lat, lon),
                "capabilities": ["ship"],
                "daily_capacity": None,
                "priority": 1,
                "active": True,
                "timezone": "Europe/London",
            }
        catalogues[node_id] = {
            "terms": terms,
            "items": [
                {
                    "sku": code,
                    "unit_cost": round(cost[code] * factor, 2),
                    "pack_size": PACKS[sku["category"]] * (4 if factor < 1 else 1),
                    "min_order_qty": PACKS[sku["category"]] * (4 if factor < 1 else 1),
                }
                for code, sku in sku_docs.items()
                if sku["category"] in categories
            ],
        }
    as_of = datetime.fromisoformat(feeds[0]["as_of"]).date()
    items = []
    for feed in feeds:
        node_type = node_docs[feed["node_id"]]["type"]
        if node_type not in ("store", "dc"):
            continue
        for item in feed["items"]:
            rate = rng.choice(
                [0.1, 0.3, 0.6, 1.2, 2.5, 6.0] if node_type == "store" else [2, 5, 12]
            )
            for back in range(HISTORY_DAYS, 0, -1):
                units = poisson(rng, rate)
                if units:
                    day = (as_of - timedelta(days=back)).isoformat()
                    items.append(
                        {"node_id": feed["node_id"], "sku": item["sku"], "day": day, "units": units}
                    )
    demand_feeds = [
        {
            "feed_id": f"demo-sales-{as_of:%Y%m%d}-{start // 50000}",
            "items": items[start : start + 50000],
        }
        for start in range(0, len(items), 50000)
    ]
    return catalogues, demand_feeds


def poisson(rng: random.Random, rate: float) -> int:
    """A Poisson draw (Knuth's method: rates here are small)."""
    limit, count, product = math.exp(-rate), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


# England and Wales bank holidays: the demo network's calendar.
BANK_HOLIDAYS = {
    "name": "England and Wales bank holidays",
    "closures": [
        {"from": day, "name": name}
        for day, name in (
            ("2026-01-01", "New Year's Day"),
            ("2026-04-03", "Good Friday"),
            ("2026-04-06", "Easter Monday"),
            ("2026-05-04", "Early May bank holiday"),
            ("2026-05-25", "Spring bank holiday"),
            ("2026-08-31", "Summer bank holiday"),
            ("2026-12-25", "Christmas Day"),
            # On a Saturday: the day itself is a holiday for deliveries, and so is Monday.
            ("2026-12-26", "Boxing Day"),
            ("2026-12-28", "Boxing Day (substitute day)"),
            ("2027-01-01", "New Year's Day"),
            ("2027-03-26", "Good Friday"),
            ("2027-03-29", "Easter Monday"),
            ("2027-05-03", "Early May bank holiday"),
            ("2027-05-31", "Spring bank holiday"),
            ("2027-08-30", "Summer bank holiday"),
            ("2027-12-25", "Christmas Day"),
            ("2027-12-26", "Boxing Day"),
            ("2027-12-27", "Christmas Day (substitute day)"),
            ("2027-12-28", "Boxing Day (substitute day)"),
        )
    ],
}
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]
# The demo's carriers: a parcel service (standard and next day) and a city courier.
CARRIER_SERVICES = {
    "northway-standard": {
        "carrier": "Northway Parcels",
        "name": "Standard, 2 to 3 days",
        "service_level": "standard",
        "collection_days": WEEKDAYS,
        "transit": [{"up_to_km": 250, "days": 2}, {"days": 3}],
        "max_weight_kg": 30,
        "rates": {
            "currency": "GBP",
            "base": 3.2,
            "per_km": 0.004,
            "per_kg": 0.15,
            "surcharges": [{"when": "heavy", "over_kg": 20, "amount": 5.0}],
        },
    },
    "northway-next-day": {
        "carrier": "Northway Parcels",
        "name": "Next day",
        "service_level": "express",
        "collection_days": WEEKDAYS,
        "delivery_days": [*WEEKDAYS, "sat"],
        "transit": [{"up_to_km": 400, "days": 1}, {"days": 2}],
        "max_weight_kg": 30,
        "rates": {"currency": "GBP", "base": 6.5, "per_km": 0.006, "per_kg": 0.25},
    },
    "citydash-same-day": {
        "carrier": "CityDash",
        "name": "Same day, evening",
        "service_level": "same_day",
        "collection_days": [*WEEKDAYS, "sat"],
        "delivery_days": [*WEEKDAYS, "sat"],
        "transit": [{"days": 0}],
        "delivery_window": {"from": "17:00", "to": "22:00"},
        "same_day": {"radius_km": 25, "cutoff": "12:00"},
        "max_weight_kg": 15,
        "rates": {"currency": "GBP", "base": 9.5, "per_km": 0.4, "per_kg": 0.1},
    },
    # What the parcel carriers do not take: dangerous goods (aerosols, batteries, solvents)
    # and parcels over 30 kg (furniture, fitness machines), two people to carry them in.
    "safeline-hazmat": {
        "carrier": "Safeline Dangerous Goods",
        "name": "Dangerous goods, 3 days",
        "service_level": "standard",
        "collection_days": WEEKDAYS,
        "transit": [{"up_to_km": 300, "days": 3}, {"days": 4}],
        "max_weight_kg": 30,
        "hazmat": True,
        "rates": {"currency": "GBP", "base": 9.0, "per_km": 0.006, "per_kg": 0.3},
    },
    "hometeam-two-person": {
        "carrier": "Hometeam",
        "name": "Two-person heavy goods, 3 to 5 days",
        "service_level": "standard",
        "collection_days": WEEKDAYS,
        "transit": [{"up_to_km": 150, "days": 3}, {"up_to_km": 400, "days": 4}, {"days": 5}],
        "delivery_window": {"from": "08:00", "to": "18:00"},
        "max_weight_kg": 200,
        "rates": {"currency": "GBP", "base": 29.0, "per_km": 0.02, "per_kg": 0.2},
    },
}


def load(db: Database, seed: int = 7, store_personal_data: bool = True) -> dict:
    """Write the demo through the domain functions; return what was loaded, by kind."""
    data = network(seed)
    for calendar_id, document in data["calendars"].items():
        calendars.put(db, calendar_id, document)
    for service_id, document in data["carrier_services"].items():
        carriers.put(db, service_id, document)
    for node_id, document in data["nodes"].items():
        nodes.put(db, node_id, document)
    for code, document in data["skus"].items():
        skus.put(db, code, document)
    for feed in data["feeds"]:
        stock.apply_feed(db, feed)
    # The counts raised stock; with no order waiting for it there is nothing to run, and the
    # first orders must not each take the path that serves waiting orders first.
    from app.lifecycle import backorders

    backorders.resume_raised(db)
    for customer_id, document in data["customers"].items():
        customers.put(db, customer_id, document, store_personal_data)
    for supplier_id, document in data["catalogues"].items():
        suppliers.put_catalogue(db, supplier_id, document)
    for feed in data["demand_feeds"]:
        demand.apply_feed(db, feed)
    return {
        "nodes": len(data["nodes"]),
        "skus": len(data["skus"]),
        "stock records": sum(len(f["items"]) for f in data["feeds"]),
        "customers": len(data["customers"]),
        "calendars": len(data["calendars"]),
        "carrier services": len(data["carrier_services"]),
        "supplier catalogues": len(data["catalogues"]),
        "days of sales": sum(len(f["items"]) for f in data["demand_feeds"]),
    }


# The demo's channel key serves every channel, so the README's examples work with one key.
DEMO_CHANNELS = ("web", "app", "store", "call_center", "marketplace", "social")


def ensure_keys(db: Database) -> dict[str, str]:
    """Create the fixed demo keys that do not exist yet; return them by role."""
    for label, key in DEMO_KEYS.items():
        role, _, node_id = label.partition(" ")
        if not auth.key_exists(db, key):
            channels = list(DEMO_CHANNELS) if role == "channel" else None
            auth.create_key(
                db, role, node_id or None, label=f"demo {label}", key=key, channels=channels
            )
    return dict(DEMO_KEYS)


# A few days of orders, so that every console page and README command has something to
# show on first start: (share of orders, what their nodes report).
HISTORY_ORDERS = 40
HISTORY_STEPS = (
    (0.55, ("accepted", "shipped", "delivered")),
    (0.15, ("accepted", "shipped")),
    (0.15, ("accepted",)),
    (0.15, ()),
)
HISTORY_RETURNS = 4
HISTORY_CHANNELS = ("web", "web", "web", "app", "app", "store", "call_center", "marketplace")


def history_orders(seed: int = 7) -> list[dict]:
    """The demo's order history: bodies as channels send them, the same for a seed."""
    data = network(seed)
    rng = random.Random(seed * 7919 + 1)
    customer_ids = sorted(data["customers"])
    # SKUs a DC holds: most orders can be served, a few wait for stock.
    stocked = sorted(
        {
            item["sku"]
            for feed in data["feeds"]
            if data["nodes"][feed["node_id"]]["type"] == "dc"
            for item in feed["items"]
            if item.get("on_hand", 0) >= 20
        }
    )
    bodies = []
    for number in range(1, HISTORY_ORDERS + 1):
        customer_id = rng.choice(customer_ids)
        customer = data["customers"][customer_id]
        if number % 5 == 0 and customer.get("preferred_pickup_node_id"):
            delivery = {"method": "ship_to_store", "node_id": customer["preferred_pickup_node_id"]}
        else:
            address = next(
                a
                for a in customer["addresses"]
                if a["address_id"] == customer["default_address_id"]
            )
            delivery = {
                "method": "ship",
                "address": {k: address[k] for k in ("lines", "city", "postcode", "country")}
                | {"lat": address["lat"], "lon": address["lon"]},
            }
        lines = [
            {
                "line_id": str(index + 1),
                "sku": sku,
                "qty": rng.choice((1, 1, 1, 2)),
                "unit_price": round(rng.uniform(4, 120), 2),
            }
            for index, sku in enumerate(rng.sample(stocked, rng.choice((1, 1, 2, 3))))
        ]
        bodies.append(
            {
                "order_id": f"HIST-{number:04d}",
                "channel": rng.choice(HISTORY_CHANNELS),
                "customer_id": customer_id,
                "delivery": delivery,
                "lines": lines,
            }
        )
    return bodies


def _history_steps(roll: float) -> tuple[str, ...]:
    """What the nodes of an order report, for a roll in [0, 1)."""
    for share, steps in HISTORY_STEPS:
        if roll < share:
            return steps
        roll -= share
    return ()


def history(db: Database, seed: int = 7) -> dict:
    """Decide the demo's order history with the active rulesets, then play what its nodes
    report (accepted, shipped, delivered) and a few returns; return what was made.

    The bodies and the nodes' answers are the same for a seed; the decisions are the
    rulesets' own, made now. Needs the shipped rulesets loaded."""
    from app.kinds.returns import returns
    from app.lifecycle import fulfilment, intake

    rng = random.Random(seed * 104729 + 3)
    made = {"orders": 0, "shipment events": 0, "returns": 0}
    delivered = []
    for body in history_orders(seed):
        decision, _ = intake.decide_order(db, body)
        made["orders"] += 1
        steps = _history_steps(rng.random())
        for shipment in decision["shipments"]:
            for step in steps:
                event = {"event_id": f"{shipment['shipment_id']}-{step}", "type": step}
                if step == "shipped":
                    event |= {"carrier": "DPD", "tracking_number": f"DPD{rng.randrange(10**9):09d}"}
                fulfilment.record_event(db, shipment["shipment_id"], event, None)
                made["shipment events"] += 1
        if "delivered" in steps and decision["shipments"] and not decision["unfulfilled"]:
            delivered.append(body)
    for number, body in enumerate(delivered[:HISTORY_RETURNS], start=1):
        line = body["lines"][0]
        returns.create(
            db,
            {
                "return_id": f"HIST-RET-{number}",
                "order_id": body["order_id"],
                "method": "drop_off",
                "lines": [
                    {
                        "line_id": line["line_id"],
                        "qty": 1,
                        "reason": rng.choice(("wrong_size", "changed_mind", "damaged_in_transit")),
                        "condition": "unopened",
                    }
                ],
            },
        )
        made["returns"] += 1
    return made
