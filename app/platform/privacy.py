"""What analysts may see of customers: nothing personal.

Analysts work on rules and reports. They see orders as the rules do: channel, lines,
shipments, the customer's id and decision profile, and where an order goes only as
its delivery method, pickup node and country. Street lines, postcode, coordinates,
names, emails and phone numbers stay with the roles that fulfil orders.
"""

from __future__ import annotations


def delivery_for_analysts(delivery: dict) -> dict:
    """An order's delivery without the address: method, pickup node, country."""
    seen = {key: delivery[key] for key in ("method", "node_id") if key in delivery}
    address = delivery.get("address")
    if isinstance(address, dict) and "country" in address:
        seen["country"] = address["country"]
    return seen
