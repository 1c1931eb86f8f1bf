"""The customer's view of an order: a status they recognise, what each line and parcel is
doing, and a message to the channel whenever that changes.

The customer's status is derived from the order's lines and parcels (``status_of``,
pure), first match wins:

    cancelled            the order was cancelled, or every unit of it
    returned             every unit came back
    delivered            every unit reached the customer (a pickup: collected)
    delayed              a unit not yet on its way will miss its date: the promise is
                         broken, or its node has not shipped by its dispatch date
    ready_for_pickup     a parcel waits at the store
    partially_delivered  some units reached the customer
    shipped              every unit is on its way
    partially_shipped    some units are
    sourced              a node prepares the goods
    received             nothing is sourced yet (held, or waiting for stock)

A parcel is a shipment to the customer (a consolidation's transfer legs are not: their
goods travel on in the hub's parcel). Its stage is ``preparing``, ``shipped``,
``ready_for_pickup`` (a pickup picked onto the shelf, a ship-to-store parcel delivered to
its store) or ``delivered`` (a pickup: collected).

Every change of an order is compared, in its own transaction, with what the customer was
last told (the order's ``customer_told``), and each difference is a message to the
channel's subscriptions (``messages``, pure), numbered per order (``sequence``, 1, 2, ...) in the
order the customer would live them: ``order.line_cancelled``, ``order.line_substituted``
(another SKU serves a line, ``substitution.py``), ``order.backordered``
(with the date supply is expected), ``order.delayed`` (with the new date when there is
one), then per parcel ``order.shipped`` (carrier and tracking number),
``order.ready_for_pickup`` and ``order.delivered``; or ``order.cancelled`` alone. A stage
a parcel skipped between two changes is told all the same, in its place. Payloads:
``schemas/customer-events.schema.json``.
"""

from __future__ import annotations

from app.domain import orders, shipments
from app.domain.network import nodes
from app.kinds.returns import returns
from app.lifecycle import waiting
from app.platform import db as database
from app.platform import jsontext
from app.platform.db import Database

STATUSES = (
    "received",
    "sourced",
    "partially_shipped",
    "shipped",
    "ready_for_pickup",
    "partially_delivered",
    "delivered",
    "delayed",
    "cancelled",
    "returned",
)
MESSAGES = (
    "order.line_cancelled",
    "order.line_substituted",
    "order.backordered",
    "order.delayed",
    "order.shipped",
    "order.ready_for_pickup",
    "order.delivered",
    "order.cancelled",
)
# The stages of a parcel, in order; what a method passes through on its way.
STAGES = ("preparing", "shipped", "ready_for_pickup", "delivered")
PATH = {
    "pickup": ("ready_for_pickup", "delivered"),
    "ship_to_store": ("shipped", "ready_for_pickup"),
}
HOME_PATH = ("shipped", "delivered")
WAITING = ("backordered", "partially_sourced")


# Pure: the view from the order's rows --------------------------------------------------


def stage_of(shipment: dict) -> str:
    """Where a parcel is, as the customer sees it."""
    status, method = shipment["status"], shipment["method"]
    if method == "pickup":
        if status == "delivered":
            return "delivered"
        # Picked onto the shelf; "shipped" is the hand-over at the counter.
        return "ready_for_pickup" if status in ("picked", "shipped") else "preparing"
    if method == "ship_to_store":
        return {"shipped": "shipped", "delivered": "ready_for_pickup"}.get(status, "preparing")
    return {"shipped": "shipped", "delivered": "delivered"}.get(status, "preparing")


def parcels(shipment_list: list[dict]) -> list[dict]:
    """The order's parcels: its live shipments to the customer, each with its stage and
    whether it is late (its node has not shipped by its dispatch date)."""
    return [
        {
            **s,
            "stage": stage_of(s),
            "late": bool(s.get("at_risk_at")) and stage_of(s) == "preparing",
        }
        for s in shipment_list
        if s["method"] != "transfer" and s["status"] not in ("cancelled", "rejected")
    ]


def units(lines: list[dict], parcel_list: list[dict]) -> dict[str, dict[str, int]]:
    """Per line, its units at each stage of the parcels that carry them."""
    found = {line["line_id"]: dict.fromkeys(STAGES, 0) for line in lines}
    for parcel in parcel_list:
        for line in parcel["lines"]:
            if line["line_id"] in found:
                found[line["line_id"]][parcel["stage"]] += line["qty"]
    return found


def status_of(
    order_status: str, quantity: int, at: dict[str, int], allocated: int, delayed: bool
) -> str:
    """The customer's status of an order (or of one line) with ``quantity`` units left to
    serve, ``at`` of them at each parcel stage, ``allocated`` to nodes."""
    if order_status == "cancelled" or quantity <= 0:
        return "cancelled"
    if order_status == "returned":
        return "returned"
    delivered, ready, shipped = at["delivered"], at["ready_for_pickup"], at["shipped"]
    if delivered >= quantity:
        return "delivered"
    if delayed and delivered + ready + shipped < quantity:
        return "delayed"
    if ready:
        return "ready_for_pickup"
    if delivered:
        return "partially_delivered"
    if shipped:
        return "shipped" if delivered + ready + shipped >= quantity else "partially_shipped"
    return "sourced" if allocated else "received"


def line_state(order_status: str, line: dict, at: dict[str, int], late: bool, returned: int):
    """The customer's status of one line: the order's statuses, and ``backordered`` for a
    line that waits for stock."""
    if line["qty"] > 0 and returned >= line["qty"]:
        return "returned"
    state = status_of(order_status, line["qty"], at, line["qty_allocated"], late)
    short = line["qty_allocated"] < line["qty"]
    if state in ("received", "sourced", "delayed") and short and order_status in WAITING:
        return "backordered"
    return state


def state(order: dict, lines: list[dict], parcel_list: list[dict], broken: dict | None) -> dict:
    """What the customer should know of an order now: its status, each parcel's stage, the
    quantities cancelled and back-ordered per line, and the delay (a key that changes when
    there is a new one to tell). ``broken`` is the order's last ``promise_broken``."""
    at = units(lines, parcel_list)
    pending = any(p["stage"] == "preparing" for p in parcel_list) or any(
        line["qty_allocated"] < line["qty"] for line in lines
    )
    late = sorted(p["shipment_id"] for p in parcel_list if p["late"])
    delay = None
    if order["status"] != "cancelled" and pending:
        if order.get("promise_broken_at") and broken is not None:
            delay = f"promise_broken:{broken.get('new_date') or 'unknown'}"
        elif late:
            delay = "at_risk:" + ",".join(late)
    totals = dict.fromkeys(STAGES, 0)
    for line_units in at.values():
        for stage, qty in line_units.items():
            totals[stage] += qty
    status = status_of(
        order["status"],
        sum(line["qty"] for line in lines),
        totals,
        sum(line["qty_allocated"] for line in lines),
        delay is not None,
    )
    return {
        "status": status,
        "parcels": {p["shipment_id"]: p["stage"] for p in parcel_list if p["stage"] != "preparing"},
        "cancelled": {
            line["line_id"]: line["qty_cancelled"] for line in lines if line["qty_cancelled"]
        },
        "substituted": {line["line_id"]: line["sku"] for line in lines if line.get("original_sku")},
        "backordered": {
            line["line_id"]: line["qty"] - line["qty_allocated"]
            for line in lines
            if order["status"] in WAITING and line["qty_allocated"] < line["qty"]
        },
        "delay": delay,
    }


def messages(
    told: dict, now: dict, order: dict, lines: list[dict], parcel_list: list[dict], extra: dict
) -> list[tuple[str, dict]]:
    """The messages that take the customer from what they were told to ``now``, in order:
    ``[(type, payload)]`` without the numbering. ``extra`` has what the state leaves out:
    ``expected_date``, ``broken`` (the last promise_broken), ``cancel_reason``, and
    ``stores`` (node_id -> name and town)."""
    if now["status"] == "cancelled" and order["status"] == "cancelled":
        if told.get("status") == "cancelled":
            return []
        return [("order.cancelled", {"reason": extra.get("cancel_reason")})]
    found: list[tuple[str, dict]] = []
    by_line = {line["line_id"]: line for line in lines}
    was = told.get("cancelled", {})
    newly = {k: v - was.get(k, 0) for k, v in now["cancelled"].items() if v > was.get(k, 0)}
    if newly:
        found.append(
            (
                "order.line_cancelled",
                {
                    "lines": [
                        {
                            "line_id": line_id,
                            "sku": by_line[line_id]["sku"],
                            "qty_cancelled": qty,
                            "qty_left": by_line[line_id]["qty"],
                        }
                        for line_id, qty in sorted(newly.items())
                    ],
                    "reason": extra.get("cancel_reason"),
                },
            )
        )
    swapped = told.get("substituted", {})
    replaced = [
        {
            "line_id": line_id,
            "from_sku": swapped.get(line_id) or by_line[line_id]["original_sku"],
            "to_sku": sku,
            "qty": by_line[line_id]["qty"],
        }
        for line_id, sku in sorted(now.get("substituted", {}).items())
        if swapped.get(line_id) != sku
    ]
    if replaced:
        found.append(("order.line_substituted", {"lines": replaced}))
    before = told.get("backordered", {})
    grew = any(qty > before.get(line_id, 0) for line_id, qty in now["backordered"].items())
    # A new day supply is expected is news; supply that arrived is told by what follows.
    expected = extra.get("expected_date")
    moved = now["backordered"] and expected and expected != told.get("expected_date")
    if grew or moved:
        found.append(
            (
                "order.backordered",
                {
                    "lines": [
                        {"line_id": line_id, "sku": by_line[line_id]["sku"], "qty": qty}
                        for line_id, qty in sorted(now["backordered"].items())
                    ],
                    "expected_date": extra.get("expected_date"),
                },
            )
        )
    if now["delay"] and now["delay"] != told.get("delay"):
        broken = extra.get("broken") if now["delay"].startswith("promise_broken") else None
        found.append(
            (
                "order.delayed",
                {
                    "reason": "promise_broken" if broken else "not_dispatched",
                    "promised_by": order.get("promised_by"),
                    "new_date": broken.get("new_date") if broken else None,
                    "shipment_ids": []
                    if broken
                    else sorted(p["shipment_id"] for p in parcel_list if p["late"]),
                },
            )
        )
    seen = told.get("parcels", {})
    for parcel in parcel_list:
        path = PATH.get(parcel["method"], HOME_PATH)
        if parcel["stage"] not in path:
            continue
        reached = path.index(parcel["stage"])
        start = path.index(seen[parcel["shipment_id"]]) + 1 if parcel["shipment_id"] in seen else 0
        for stage in path[start : reached + 1]:
            found.append(_parcel_message(stage, parcel, extra.get("stores", {})))
    return found


def _parcel_message(stage: str, parcel: dict, stores: dict) -> tuple[str, dict]:
    payload = {
        "shipment_id": parcel["shipment_id"],
        "method": parcel["method"],
        "lines": [
            {"line_id": line["line_id"], "sku": line["sku"], "qty": line["qty"]}
            for line in parcel["lines"]
        ],
    }
    if stage == "shipped":
        payload.update(
            carrier=parcel.get("carrier"),
            tracking_number=parcel.get("tracking_number"),
            promised_date=parcel.get("promised_date"),
            promised_until=parcel.get("promised_until"),
        )
    elif stage == "ready_for_pickup":
        payload.update(
            store=stores.get(parcel["node_id"]),
            collect_by=parcel.get("withdraw_by") if parcel["method"] == "pickup" else None,
        )
    else:
        payload.update(delivered_at=parcel.get("delivered_at"))
    return f"order.{stage}", payload


# Reading and telling ---------------------------------------------------------------------


def _read(db: Database, order: dict) -> tuple[list[dict], list[dict], dict | None, dict]:
    order_id = order["order_id"]
    lines = orders.lines(db, order_id)
    parcel_list = parcels(shipments.for_order(db, order_id))
    broken = (
        orders.last_event(db, order_id, "promise_broken") if order["promise_broken_at"] else None
    )
    return lines, parcel_list, broken, state(order, lines, parcel_list, broken)


def follow(db: Database, order_id: str) -> None:
    """Tell the customer what changed in the order since they were last told: a message
    per difference, numbered, to the channel's subscriptions, and on the timeline
    (``customer_message``). Runs in the change's transaction, before it commits."""
    order = orders.summary(db, order_id)
    if order is None:
        return
    told = jsontext.loads(order["customer_told"]) if order["customer_told"] else {}
    lines, parcel_list, broken, now = _read(db, order)
    extra: dict = {"broken": broken}
    if now["backordered"]:
        missing = sorted({line["sku"] for line in lines if line["line_id"] in now["backordered"]})
        supply = waiting.supply_in_sight(db, missing)
        if all(sku in supply for sku in missing):
            extra["expected_date"] = max(supply[sku] for sku in missing)[:10]
    if set(now["cancelled"].items()) - set(told.get("cancelled", {}).items()):
        last = orders.last_event(db, order_id, "lines_cancelled") or {}
        extra["cancel_reason"] = last.get("because")
    ready = [p["node_id"] for p in parcel_list if p["stage"] == "ready_for_pickup"]
    if ready:
        extra["stores"] = stores(db, ready)
    found = messages(told, now, order, lines, parcel_list, extra)
    expected = extra.get("expected_date") or told.get("expected_date")
    changed = {**now, "expected_date": expected if now["backordered"] else None}
    sequence = told.get("sequence", 0)
    at = database.now()
    for event_type, detail in found:
        sequence += 1
        payload = {
            "order_id": order_id,
            "sequence": sequence,
            "status": now["status"],
            "at": at,
            **detail,
        }
        entry = {"message": event_type, "sequence": sequence, "status": now["status"]}
        if detail.get("shipment_id"):
            entry["shipment_id"] = detail["shipment_id"]
        orders.add_event(db, order_id, "customer_message", entry)
        orders.notify(db, order_id, event_type, payload, order["channel"])
    changed["sequence"] = sequence
    # Kept: what a later change is compared with (a cancelled order is told nothing more);
    # a new order with nothing to tell leaves nothing to write.
    changed["status"] = "cancelled" if now["status"] == "cancelled" else None
    kept = {key: value for key, value in changed.items() if value}
    if kept != told:
        orders.set_told(db, order_id, kept)


def stores(db: Database, node_ids: list[str]) -> dict[str, dict]:
    """Each store's name and town, what a customer needs to find it."""
    found = {}
    for node_id in sorted(set(node_ids)):
        node = nodes.get(db, node_id)
        found[node_id] = {
            "node_id": node_id,
            "name": node["name"],
            "town": (node.get("address") or {}).get("city"),
        }
    return found


orders.follow(follow)


# The view -------------------------------------------------------------------------------


def _delay(key: str | None, broken: dict | None) -> dict | None:
    if key is None:
        return None
    if key.startswith("promise_broken"):
        return {"reason": "promise_broken", "new_date": (broken or {}).get("new_date")}
    return {"reason": "not_dispatched", "new_date": None}


def view(db: Database, order_id: str) -> dict:
    """What a channel shows on the customer's order page, in one read: the status, the
    promise, each line and parcel, returns and the messages sent. Nothing the customer
    should not see: no address beyond the town, no costs, rules or nodes behind the
    parcels."""
    order = orders.require(db, order_id)
    lines, parcel_list, broken, now = _read(db, order)
    at = units(lines, parcel_list)
    returned = returns.returned_quantities(db, order_id)
    delayed = now["delay"] is not None
    body = orders.as_decided(order)
    delivery = body["delivery"]
    store_ids = [p["node_id"] for p in parcel_list if p["method"] in PATH]
    if delivery.get("node_id"):
        store_ids.append(delivery["node_id"])
    known = stores(db, store_ids)
    line_list = []
    for line in lines:
        carried_late = any(
            p["late"] and any(x["line_id"] == line["line_id"] for x in p["lines"])
            for p in parcel_list
        )
        late = delayed and (carried_late or now["delay"].startswith("promise_broken"))
        line_list.append(
            {
                "line_id": line["line_id"],
                "sku": line["sku"],
                "original_sku": line.get("original_sku"),
                "qty": line["qty"] + line["qty_cancelled"],
                "qty_cancelled": line["qty_cancelled"],
                "qty_backordered": now["backordered"].get(line["line_id"], 0),
                "qty_shipped": at[line["line_id"]]["shipped"],
                "qty_ready_for_pickup": at[line["line_id"]]["ready_for_pickup"],
                "qty_delivered": at[line["line_id"]]["delivered"],
                "qty_returned": returned.get(line["line_id"], 0),
                "status": line_state(
                    order["status"],
                    line,
                    at[line["line_id"]],
                    late,
                    returned.get(line["line_id"], 0),
                ),
            }
        )
    return {
        "order_id": order_id,
        "status": now["status"],
        "placed_at": order["created_at"],
        "promised_by": order["promised_by"],
        "delay": _delay(now["delay"], broken),
        "delivery": {
            "method": delivery["method"],
            "town": (delivery.get("address") or {}).get("city"),
            "store": known.get(delivery.get("node_id")),
        },
        "lines": line_list,
        "parcels": [
            {
                "shipment_id": p["shipment_id"],
                "method": p["method"],
                "stage": p["stage"],
                "late": p["late"],
                "carrier": p["carrier"] if p["stage"] != "preparing" else None,
                "tracking_number": p["tracking_number"] if p["stage"] != "preparing" else None,
                "promised_date": p["promised_date"],
                "promised_until": p["promised_until"],
                "ready_at": p["ready_at"],
                "collect_by": p["withdraw_by"]
                if p["stage"] == "ready_for_pickup" and p["method"] == "pickup"
                else None,
                "delivered_at": p["delivered_at"],
                "store": known.get(p["node_id"]) if p["method"] in PATH else None,
                "lines": [
                    {"line_id": x["line_id"], "sku": x["sku"], "qty": x["qty"]} for x in p["lines"]
                ],
            }
            for p in parcel_list
        ],
        "returns": [
            {
                "return_id": r["return_id"],
                "status": r["status"],
                "refund_total": r["refund_total"] if r["status"] != "cancelled" else None,
                "created_at": r["created_at"],
            }
            for r in returns.for_order(db, order_id)
        ],
        "messages": [
            {"sequence": e["sequence"], "type": e["message"], "at": e["at"]}
            for e in orders.timeline(db, order_id)
            if e["type"] == "customer_message"
        ],
        "updated_at": order["updated_at"],
    }
