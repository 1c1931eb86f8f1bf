"""Great-circle distance between two points on the Earth."""

from __future__ import annotations

import math
import re
from functools import lru_cache

EARTH_RADIUS_KM = 6371.0088


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Return the haversine distance in kilometres."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlambda = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


@lru_cache(maxsize=8192)  # nodes' postcodes recur in every decision
def postcode_area(postcode: str | None) -> str | None:
    """The postcode area: the leading letters of a UK postcode ("SW1A 1AA" gives "SW"),
    else the part before the space; None without a postcode."""
    if not postcode:
        return None
    text = postcode.strip().upper()
    letters = re.match(r"[A-Z]{1,2}(?=[0-9])", text)
    return letters.group(0) if letters else text.split(" ")[0]
