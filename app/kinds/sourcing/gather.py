"""Read what an order's decision needs: its references checked, the network around
its SKUs gathered, and its facts built from them."""

from __future__ import annotations

from datetime import datetime

from app.domain import customers, shipments
from app.domain.network import nodes, reservations, skus, stock, transfers
from app.kinds.promising import promises
from app.kinds.promising import schedule as schedules
from app.kinds.promising.dates import timezone_problems
from app.kinds.sourcing.facts import (
    NetworkView,
    build,
)
from app.platform import db as database
from app.platform.db import Database
from app.platform.errors import InvalidInput, field_error


def check_references(db: Database, order: dict) -> None:
    """422 with a pointer for an unknown customer, SKU or node, or a repeated line id."""
    problems = []
    if not customers.exists(db, order["customer_id"]):
        problems.append(
            field_error(("customer_id",), f"customer {order['customer_id']!r} does not exist")
        )
    known = skus.existing(db, [line["sku"] for line in order["lines"]])
    seen = set()
    for index, line in enumerate(order["lines"]):
        if line["sku"] not in known:
            problems.append(
                field_error(("lines", index, "sku"), f"SKU {line['sku']!r} does not exist")
            )
        if line["line_id"] in seen:
            problems.append(field_error(("lines", index, "line_id"), "is listed twice"))
        seen.add(line["line_id"])
    problems.extend(
        timezone_problems(
            (order["delivery"].get("address") or {}).get("timezone"),
            ("delivery", "address", "timezone"),
        )
    )
    node_id = order["delivery"].get("node_id")
    if node_id is not None:
        node = nodes.existing(db, [node_id]).get(node_id)
        if node is None:
            problems.append(
                field_error(("delivery", "node_id"), f"node {node_id!r} does not exist")
            )
        elif "pickup" not in node["capabilities"]:
            problems.append(
                field_error(("delivery", "node_id"), f"node {node_id!r} does not hand over orders")
            )
    if problems:
        raise InvalidInput(problems)
    promises.check_quoted(db, order)


def gather(db: Database, order: dict, settings: dict, now: str) -> NetworkView:
    """Read what the facts need: only the order's SKUs and the nodes that hold them."""
    sku_list = sorted({line["sku"] for line in order["lines"]})
    positions = stock.positions(db, sku_list)
    network = nodes.current(db, {p["node_id"]: p["node_revision"] for p in positions})
    node_ids = set()
    if order["delivery"].get("node_id"):
        node_ids.add(order["delivery"]["node_id"])
    in_transit = []
    if settings.get("use_in_transit") and (order.get("promised_by") or order.get("quote")):
        latest: dict[tuple, str] = {}
        for transfer in transfers.in_transit(db, sku_list):
            key = (transfer["destination_node_id"], transfer["sku"])
            latest[key] = max(latest.get(key, transfer["eta"]), transfer["eta"])
        for (node_id, sku), eta in latest.items():
            atp = reservations.in_transit_atp(db, node_id, sku)
            in_transit.append({"node_id": node_id, "sku": sku, "atp": atp, "eta": eta})
            node_ids.add(node_id)
    network.update(nodes.existing(db, node_ids - network.keys()))
    schedule = schedules.load(db)
    # Only a node with a daily capacity has its shipments counted; most share a timezone.
    moment = datetime.fromisoformat(now)
    zones: dict[str, str] = {}
    days = {}
    for node_id, info in network.items():
        if info["daily_capacity"] is not None:
            zone = info["timezone"]
            if zone not in zones:
                zones[zone] = shipments.node_day(zone, moment)
            days[node_id] = zones[zone]
    return NetworkView(
        nodes=network,
        positions=positions,
        skus=skus.details(db, sku_list),
        capacity_used=shipments.used_today(db, days),
        in_transit=in_transit,
        now=now,
        schedule=schedule,
        collected=shipments.collected(db, schedules.limited(schedule), moment.date().isoformat()),
    )


def facts_for(
    db: Database, order: dict, settings: dict, excluded_nodes=None, only_nodes=None
) -> tuple:
    """``(facts, context, view)``: the facts and context a decision records, and what
    they were built from."""
    now = database.now()
    view = gather(db, order, settings, now)
    profile = customers.profile_for_decisions(customers.get(db, order["customer_id"]))
    facts, context = build(order, profile, view, settings, excluded_nodes, only_nodes)
    return facts, complete(context, facts, order, view), view


def complete(context: dict, facts: list[dict], order: dict, view: NetworkView) -> dict:
    """Add what later steps read of the candidates' nodes to a context ``build`` made."""
    # Shipments can only go to candidates' nodes: their days and types are what later
    # steps read (a large network holds hundreds more).
    moment = datetime.fromisoformat(view.now)
    serving = {f["node_id"] for f in facts if f["fact"] == "candidate"}
    context["node_days"] = {
        n: shipments.node_day(view.nodes[n]["timezone"], moment) for n in sorted(serving)
    }
    context["node_types"] = {n: view.nodes[n]["type"] for n in sorted(serving)}
    context["delivery"] = order["delivery"]
    return context
