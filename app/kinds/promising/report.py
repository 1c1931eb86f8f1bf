"""Promises kept: judged per order against the date the customer was quoted, and per
shipment against its own window; by channel, node, week and (per order) cause. Pure.

The date quoted to the customer is the order's ``promised_by`` (the promise it was placed
on, or the date its channel sent), else the end of the latest window its first decision
gave. A re-planned shipment does not move it: a line re-sourced after a rejection that
arrives after that date breaks the promise. Goods reach the customer when delivered, or,
for collection at a store, when they are ready there (not when the customer happened to
come by).
"""

from __future__ import annotations

from datetime import date, datetime

GROUPS = ("channel", "node", "week")
ORDER_GROUPS = (*GROUPS, "cause")
PER = ("order", "shipment")
# Why an order's promise was broken, in the order they are looked for.
CAUSES = ("rejection", "lapse", "back_order", "no_carrier", "node_late")
# Shipments that will never be delivered do not count for or against a promise.
NOT_COUNTED = ("cancelled", "rejected")
LAPSES = ("hold_lapsed", "ack_timeout", "dispatch_overdue")


def week_of(day: str) -> str:
    """The ISO week of a day: ``2026-W48``."""
    year, week, _ = date.fromisoformat(day[:10]).isocalendar()
    return f"{year}-W{week:02d}"


def arrival(shipment: dict) -> str | None:
    """When the goods reached the customer: delivered, or ready at the collection store."""
    if shipment["method"] in ("pickup", "ship_to_store") and shipment.get("ready_at"):
        return shipment["ready_at"]
    return shipment["delivered_at"]


def quoted(order: dict, shipment_list: list[dict], first: dict | None) -> str | None:
    """The date the customer was quoted (see the module's docstring): none when the
    order's first decision (``first``: its id and status) did not date all of it."""
    if order.get("promised_by"):
        return order["promised_by"]
    if first is None or first["status"] != "sourced":
        return None
    ends = [s["promised_until"] for s in shipment_list if s["decision_id"] == first["decision_id"]]
    return None if None in ends or not ends else max(ends)


def judge_order(
    order: dict, shipment_list: list[dict], first: dict | None, waited: bool, now: datetime
) -> dict | None:
    """One order's outcome: kept, broken or pending (its date not reached, goods on their
    way), with the cause of a broken one and the node that decided it; None when the
    order was never quoted a date or was cancelled. ``first`` is its first decision."""
    by = quoted(order, shipment_list, first)
    if by is None or order["status"] == "cancelled":
        return None
    # A consolidation's transfer legs carry goods between nodes, not to the customer.
    live = [
        s for s in shipment_list if s["status"] not in NOT_COUNTED and s["method"] != "transfer"
    ]
    arrived = {s["shipment_id"]: arrival(s) for s in live}
    late = [s for s in live if arrived[s["shipment_id"]] and arrived[s["shipment_id"]] > by]
    missing = [s for s in live if not arrived[s["shipment_id"]]]
    waiting = order["status"] in ("backordered", "partially_sourced", "on_hold")
    overdue = now > datetime.fromisoformat(by.replace("Z", "+00:00")) and (
        missing or waiting or not live
    )
    if late or overdue or order.get("promise_broken_at"):
        outcome = "broken"
    elif live and not missing and not waiting:
        outcome = "kept"
    else:
        outcome = "pending"
    deciding = (late or missing or live or shipment_list or [{"node_id": None}])[-1]
    judged = {
        "order_id": order["order_id"],
        "channel": order["channel"],
        "node_id": deciding["node_id"],
        "week": week_of(by),
        "promised_by": by,
        "outcome": outcome,
        "cause": None,
    }
    if outcome == "broken":
        judged["cause"] = _cause(shipment_list, live, waited)
    return judged


def _cause(shipment_list: list[dict], live: list[dict], waited: bool) -> str:
    if any(
        s["status"] == "rejected" and s["withdrawn_reason"] != "ack_timeout" for s in shipment_list
    ):
        return "rejection"
    if any(s["withdrawn_reason"] in LAPSES for s in shipment_list):
        return "lapse"
    if waited:
        return "back_order"
    if any(s["method"] in ("ship", "same_day") and not s["promised_date"] for s in live):
        return "no_carrier"
    return "node_late"


def summarise_orders(judged: list[dict], group_by: tuple[str, ...]) -> list[dict]:
    """One row per group: orders quoted a date, kept, broken, pending, the share kept of
    those decided either way, and the broken ones by cause."""
    groups: dict[tuple, dict] = {}
    for entry in judged:
        fields = {
            "channel": entry["channel"],
            "node": entry["node_id"],
            "week": entry["week"],
            "cause": entry["cause"],
        }
        key = tuple(fields[name] or "" for name in group_by)
        row = groups.setdefault(
            key,
            {
                **{("node_id" if name == "node" else name): fields[name] for name in group_by},
                "orders": 0,
                "kept": 0,
                "broken": 0,
                "pending": 0,
                "causes": {},
            },
        )
        row["orders"] += 1
        row[entry["outcome"]] += 1
        if entry["cause"]:
            row["causes"][entry["cause"]] = row["causes"].get(entry["cause"], 0) + 1
    result = []
    for key in sorted(groups):
        row = groups[key]
        decided = row["kept"] + row["broken"]
        row["kept_share"] = round(row["kept"] / decided, 4) if decided else None
        result.append(row)
    return result


def summarise(outcomes: list[dict], group_by: tuple[str, ...], now: datetime) -> list[dict]:
    """Per shipment, one row per group: shipments promised, delivered (or ready for
    collection), kept (by the window's end), overdue (not there, the window past), the
    share kept of those decided either way, and the mean lateness in days of those that
    arrived (0 for those on time)."""
    groups: dict[tuple, dict] = {}
    for outcome in outcomes:
        if outcome["status"] in NOT_COUNTED or outcome["method"] == "transfer":
            continue
        key_fields = {
            "channel": outcome["channel"],
            "node": outcome["node_id"],
            "week": week_of(outcome["promised_date"]),
        }
        key = tuple(key_fields[name] for name in group_by)
        row = groups.setdefault(
            key,
            {
                **{("node_id" if name == "node" else name): key_fields[name] for name in group_by},
                "promised": 0,
                "delivered": 0,
                "kept": 0,
                "overdue": 0,
                "_lateness": [],
            },
        )
        row["promised"] += 1
        until = datetime.fromisoformat(outcome["promised_until"])
        reached = arrival(outcome)
        if reached:
            delivered = datetime.fromisoformat(reached)
            row["delivered"] += 1
            late = max(0.0, (delivered - until).total_seconds() / 86400)
            row["kept"] += late == 0
            row["_lateness"].append(late)
        elif now > until:
            row["overdue"] += 1
    result = []
    for key in sorted(groups):
        row = groups[key]
        lateness = row.pop("_lateness")
        decided = row["delivered"] + row["overdue"]
        row["kept_share"] = round(row["kept"] / decided, 4) if decided else None
        row["mean_lateness_days"] = round(sum(lateness) / len(lateness), 3) if lateness else None
        result.append(row)
    return result
