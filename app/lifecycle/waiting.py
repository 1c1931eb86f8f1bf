"""Open orders: why each one waits, what happens next, and the channel asked when it waits
too long.

Every order that is not finished has a reason and a next action (``explain``, pure):

    on_hold             a rule or a person held it            release or cancel it
    pickup_offer        its store could not serve it          the customer takes another store
    awaiting_supply     a line waits for stock on its way     decided again when it arrives
    no_supply           a line waits with no supply in sight  the channel is asked at a deadline
    awaiting_acceptance its nodes have not accepted yet       the node accepts, or times out
    awaiting_dispatch   accepted, to ship by a date           the node ships by ``ship_by``
    at_risk             not shipped by its date               ships, or withdrawn at a deadline
    in_delivery         shipped                               delivered

A hold, an offer or a back-order that waits past its deadline (the sourcing ruleset's
``hold_escalate_hours`` and ``backorder_patience_days``; a back-order with supply on its
way counts from the day it is expected) is sent to the channel once as
``order.action_needed`` by the dispatcher's sweep (``escalate``), and its timeline says so.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from app.domain import orders, shipments
from app.domain.network import transfers
from app.kinds.replenishment import runs
from app.kinds.sourcing import decide
from app.machinery import decisions
from app.machinery.rules import runtime
from app.platform import db as database
from app.platform.db import Database

DEFAULT_HOLD_HOURS = 24
DEFAULT_PATIENCE_DAYS = 7
REASONS = (
    "on_hold",
    "pickup_offer",
    "awaiting_supply",
    "no_supply",
    "awaiting_acceptance",
    "awaiting_dispatch",
    "at_risk",
    "in_delivery",
)
ESCALATED = ("on_hold", "pickup_offer", "awaiting_supply", "no_supply")


def explain(
    order: dict,
    lines: list[dict],
    shipment_list: list[dict],
    held: dict | None,
    supply: dict[str, str],
    settings: dict,
) -> dict:
    """Why an open order waits and what happens next; pure.

    ``held`` is the timeline entry that put it on hold (or made an offer), ``supply``
    the earliest day each SKU is expected anywhere (``{sku: day or time}``)."""
    since = order["updated_at"]
    found = {"reason": None, "message": "", "next_action": "", "deadline": None}
    hours = settings.get("hold_escalate_hours", DEFAULT_HOLD_HOURS)
    patience = timedelta(days=settings.get("backorder_patience_days", DEFAULT_PATIENCE_DAYS))
    status = order["status"]
    missing = {line["sku"] for line in lines if line["qty_allocated"] < line["qty"]}
    live = [s for s in shipment_list if s["status"] in (*shipments.OPEN, "shipped")]
    if status == "on_hold":
        offer = (held or {}).get("offer")
        found.update(
            reason="pickup_offer" if offer else "on_hold",
            message=(held or {}).get("reason") or "held",
            next_action="the customer takes up the offer of "
            f"{offer['pickup_node_id']} (release with pickup_node_id), or the order is cancelled"
            if offer
            else "an admin or the channel releases it (POST /v1/orders/{id}/release) or cancels it",
            deadline=_later(since, timedelta(hours=hours)),
        )
    elif status in ("backordered", "partially_sourced") and missing:
        expected = [supply[sku] for sku in sorted(missing) if sku in supply]
        if len(expected) == len(missing):
            day = max(expected)[:10]
            found.update(
                reason="awaiting_supply",
                message=f"waits for {', '.join(sorted(missing))}, expected by {day}",
                next_action="decided again as soon as the supply arrives",
                deadline=_later(f"{day}T00:00:00.000000Z", patience),
                expected_date=day,
            )
        else:
            unseen = sorted(sku for sku in missing if sku not in supply)
            found.update(
                reason="no_supply",
                message=f"no stock and none on its way for {', '.join(unseen)}",
                next_action="decided again when stock comes in; the channel is asked to"
                " cancel or keep waiting at the deadline",
                deadline=_later(since, patience),
            )
    elif any(s.get("at_risk_at") and s["status"] in ("accepted", "picked") for s in live):
        late = min(s["withdraw_by"] for s in live if s.get("at_risk_at"))
        found.update(
            reason="at_risk",
            message="a node has not shipped by its dispatch date",
            next_action=f"the node ships, or the shipment is withdrawn at {late} and"
            " decided again for the same promise",
            deadline=late,
        )
    elif any(s["status"] in ("pending", "requested") for s in live):
        found.update(
            reason="awaiting_acceptance",
            message="a node has not accepted its shipment yet",
            next_action="the node accepts, or after the acknowledgement timeout the lines"
            " are decided again",
        )
    elif any(s["status"] in ("accepted", "picked") for s in live):
        ship_by = min(s["ship_by"] or "" for s in live if s["status"] in ("accepted", "picked"))
        found.update(
            reason="awaiting_dispatch",
            message="accepted by its nodes",
            next_action=f"ships by {ship_by or 'its dispatch date'}",
            deadline=ship_by or None,
        )
    else:
        found.update(
            reason="in_delivery",
            message="on its way to the customer",
            next_action="delivered",
        )
    return found


def _later(moment: str, delta: timedelta) -> str:
    return database.format_time(datetime.fromisoformat(moment.replace("Z", "+00:00")) + delta)


def supply_in_sight(db: Database, sku_list: list[str]) -> dict[str, str]:
    """The earliest each SKU is expected anywhere: transfers in transit, and replenishment
    orders on their way."""
    found = dict(runs.expected_supply(db, sku_list))
    for transfer in transfers.in_transit(db, sku_list):
        sku = transfer["sku"]
        if sku not in found or transfer["eta"] < found[sku]:
            found[sku] = transfer["eta"]
    return found


def of_order(db: Database, order: dict, settings: dict, now: str) -> dict:
    """The explanation of one open order, with its age."""
    lines = orders.lines(db, order["order_id"])
    missing = [line["sku"] for line in lines if line["qty_allocated"] < line["qty"]]
    held = _held(db, order) if order["status"] == "on_hold" else None
    found = explain(
        order,
        lines,
        shipments.for_order(db, order["order_id"]),
        held,
        supply_in_sight(db, missing),
        settings,
    )
    age = datetime.fromisoformat(now.replace("Z", "+00:00")) - datetime.fromisoformat(
        order["created_at"].replace("Z", "+00:00")
    )
    return {
        "order_id": order["order_id"],
        "channel": order["channel"],
        "status": order["status"],
        "created_at": order["created_at"],
        "since": order["updated_at"],
        "age_hours": round(age.total_seconds() / 3600, 1),
        "expected_date": None,
        **found,
        "escalated_at": order["waiting_escalated_at"],
    }


def _held(db: Database, order: dict) -> dict | None:
    """What put the order on hold: an offer, or the status change's reason, or the rules'."""
    change = orders.last_event(db, order["order_id"], "status_changed")
    detail = dict(change or {})
    if not detail.get("reason") and detail.get("decision_id"):
        unfulfilled = decisions.get(db, detail["decision_id"])["decision"].get("unfulfilled")
        if unfulfilled:
            detail["reason"] = unfulfilled[0].get("message")
    return detail


def report(
    db: Database,
    now: str | None = None,
    reason: str | None = None,
    channels: tuple[str, ...] | None = None,
    limit: int = 500,
) -> dict:
    """Every open order (oldest first, up to ``limit``) with its reason, next action and
    age, and a count by reason."""
    moment = now or database.now()
    settings = runtime.active_version(db, decide.RULESET)["document"]["settings"]
    rows = [order for order in orders.open_orders(db, channels) if order["status"] != "received"]
    explained = [of_order(db, order, settings, moment) for order in rows]
    by_reason: dict[str, dict] = {}
    for entry in explained:
        group = by_reason.setdefault(entry["reason"], {"orders": 0, "oldest_hours": 0.0})
        group["orders"] += 1
        group["oldest_hours"] = max(group["oldest_hours"], entry["age_hours"])
    shown = [e for e in explained if reason is None or e["reason"] == reason]
    return {
        "as_of": moment,
        "open": len(explained),
        "by_reason": [{"reason": name, **by_reason[name]} for name in REASONS if name in by_reason],
        "orders": shown[:limit],
    }


def escalate(db: Database, now: str | None = None) -> list[str]:
    """Ask the channel about each order that waits past its deadline (once per wait): the
    timeline gets ``action_needed`` and subscribers ``order.action_needed``. Returns the
    orders escalated."""
    moment = now or database.now()
    settings = runtime.active_version(db, decide.RULESET)["document"]["settings"]
    asked = []
    for candidate in orders.waiting_unescalated(db):
        # Judged without the write lock (this runs every few seconds); only an order that
        # is due is locked, and judged again under the lock.
        if _due(db, orders.require(db, candidate["order_id"]), settings, moment) is None:
            continue
        with database.immediate(db):
            orders.lock(db, candidate["order_id"])
            order = orders.require(db, candidate["order_id"])
            found = _due(db, order, settings, moment)
            if found is None:
                continue
            detail = {
                "reason": found["reason"],
                "message": found["message"],
                "next_action": found["next_action"],
                "waiting_since": found["since"],
                "expected_date": found.get("expected_date"),
            }
            orders.ask_channel(db, order["order_id"], moment, detail)
            asked.append(order["order_id"])
    return asked


def _due(db: Database, order: dict, settings: dict, moment: str) -> dict | None:
    """The explanation of an order the channel must be asked about now, else None."""
    if order["waiting_escalated_at"] or order["status"] not in (
        "on_hold",
        "backordered",
        "partially_sourced",
    ):
        return None
    found = of_order(db, order, settings, moment)
    if found["reason"] not in ESCALATED or not found["deadline"] or found["deadline"] > moment:
        return None
    return found
