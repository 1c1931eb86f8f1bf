"""Holds: the stock reserved for a shipment lives exactly as long as the shipment.

- A request the node has not answered is held for the ruleset's
  ``reservation_ttl_seconds`` from when it was made, and again from when it reached
  the node.
- An accepted shipment is the node's commitment to its dispatch date, and its hold lasts
  until the node's deadlines, counted in the node's working days (its calendar's days
  without work never count): not shipped by the end of the dispatch date plus
  ``dispatch_grace_days``, it is **at risk** (the node is sent ``fulfillment.at_risk``,
  the order's timeline says so); not shipped ``at_risk_withdraw_days`` later, it is
  withdrawn (``dispatch_overdue``) and its lines are decided again.
- A pickup ready on the collection shelf is held for the customer ``collect_within_days``;
  one never collected goes back on the shelf and its lines are cancelled (``uncollected``).
- A hold that lapses withdraws its shipment (the node is told, the lines are sourced
  again without it) in the same transaction that frees the stock, so no other order
  can be promised stock that a live shipment still counts on.
- A count (snapshot or delta) that leaves a node holding less than its holds is
  reconciled in the feed's own transaction: the holds of picked shipments are taken
  as gone with their goods (the count no longer sees them: the hold stays with its
  shipment, and lapses with it, but stops counting against on hand), then the newest
  other shipments are withdrawn until the holds fit what is on hand.

So, at every instant, for every node and SKU: the holds that count <= on hand.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from app.domain import orders, shipments
from app.domain.network import nodes, reservations, stock
from app.kinds.promising import promises, schedule
from app.kinds.promising.dates import after_working_days
from app.kinds.sourcing import decide
from app.lifecycle import pickups, resource
from app.machinery.rules import runtime
from app.platform import db as database
from app.platform.db import Database
from app.platform.messaging import outbox

DEFAULT_TTL_SECONDS = 86400
DEFAULT_GRACE_DAYS = 1
DEFAULT_WITHDRAW_DAYS = 2
DEFAULT_COLLECT_DAYS = 7


def _settings(db: Database) -> dict:
    return runtime.active_version(db, decide.RULESET)["document"]["settings"]


def ttl_seconds(db: Database) -> int:
    """How long a request is held without an answer from the node: the ruleset's setting."""
    return _settings(db).get("reservation_ttl_seconds", DEFAULT_TTL_SECONDS)


def extend(db: Database, shipment_id: str, now: datetime | None = None) -> None:
    """The request reached the node: its holds last another TTL from now."""
    reservations.extend_for_shipment(db, shipment_id, ttl_seconds(db), now)


def deadlines(db: Database, shipment: dict, now: datetime | None = None) -> tuple[str, str]:
    """``(ship_by, withdraw_by)`` of a shipment its node accepts now: the end of the
    node's working day ``dispatch_grace_days`` after its dispatch date (today, when
    that date has passed or the shipment has none), and ``at_risk_withdraw_days``
    working days after that."""
    settings = _settings(db)
    grace = settings.get("dispatch_grace_days", DEFAULT_GRACE_DAYS)
    patience = settings.get("at_risk_withdraw_days", DEFAULT_WITHDRAW_DAYS)
    info = nodes.existing(db, [shipment["node_id"]])[shipment["node_id"]]
    calendar = schedule.load(db).node(info)
    today = (now or datetime.now(UTC)).astimezone(calendar.zone).date()
    planned = shipment.get("dispatch_date")
    dispatch = max(date.fromisoformat(planned), today) if planned else today
    return (
        database.format_time(after_working_days(calendar, dispatch, grace)),
        database.format_time(after_working_days(calendar, dispatch, grace + patience)),
    )


def commit_to_dispatch(db: Database, shipment: dict, now: datetime | None = None) -> None:
    """The node accepted the shipment: its holds last until it ships, is rejected, or is
    withdrawn after its deadlines (``deadlines``). Call in the event's transaction."""
    ship_by, withdraw_by = deadlines(db, shipment, now)
    shipments.set_deadlines(db, shipment["shipment_id"], ship_by, withdraw_by)
    reservations.hold_until(db, shipment["shipment_id"], withdraw_by)


def ready_for_collection(db: Database, shipment: dict, now: datetime | None = None) -> None:
    """A pickup is on the collection shelf: the store has done its part (it is never at risk
    now), and the stock is held for the customer ``collect_within_days``. Call in the
    event's transaction."""
    days = _settings(db).get("collect_within_days", DEFAULT_COLLECT_DAYS)
    collect_by = database.format_time((now or datetime.now(UTC)) + timedelta(days=days))
    shipments.set_deadlines(db, shipment["shipment_id"], None, collect_by)
    reservations.hold_until(db, shipment["shipment_id"], collect_by)


def flag_at_risk(db: Database, now: str | None = None) -> list[str]:
    """Ask the nodes about the accepted shipments not shipped by their ``ship_by``: each is
    marked at risk, its node is sent ``fulfillment.at_risk`` and its order's timeline
    says so, in one transaction per shipment. Returns the shipments flagged."""
    moment = now or database.now()
    flagged = []
    for candidate in shipments.due_at_risk(db, moment):
        with database.immediate(db):
            orders.lock(db, candidate["order_id"])
            shipment = shipments.get(db, candidate["shipment_id"])
            # Checked again under the lock: the node may have shipped meanwhile.
            if shipment["status"] not in ("accepted", "picked") or shipment["at_risk_at"]:
                continue
            shipments.set_at_risk(db, shipment["shipment_id"], moment)
            detail = {
                "shipment_id": shipment["shipment_id"],
                "order_id": shipment["order_id"],
                "node_id": shipment["node_id"],
                "dispatch_date": shipment["dispatch_date"],
                "ship_by": shipment["ship_by"],
                "withdraw_by": shipment["withdraw_by"],
                "message": f"not shipped by {shipment['ship_by']}: ship it, or reject it;"
                f" it is withdrawn at {shipment['withdraw_by']}",
            }
            outbox.enqueue(
                db,
                "fulfillment.at_risk",
                detail,
                node_id=shipment["node_id"],
                shipment_id=shipment["shipment_id"],
                order_id=shipment["order_id"],
            )
            orders.add_event(db, shipment["order_id"], "shipment.at_risk", detail)
            flagged.append(shipment["shipment_id"])
    return flagged


def lapse(db: Database, config, now: str | None = None) -> list[str]:
    """Withdraw every live shipment whose hold ran out by ``now``; expire standalone holds.

    Each shipment goes in a transaction of its own. Returns the shipments withdrawn.
    """
    moment = now or database.now()
    shipment_ids = list(
        dict.fromkeys(r["shipment_id"] for r in reservations.lapsed(db, moment) if r["shipment_id"])
    )
    withdrawn = []
    for shipment_id in shipment_ids:
        with database.immediate(db):
            orders.lock(db, shipments.get(db, shipment_id)["order_id"])
            # Checked again under the lock: an event may have extended the hold meanwhile.
            if not any(r["shipment_id"] == shipment_id for r in reservations.lapsed(db, moment)):
                continue
            live = shipments.live(db, [shipment_id])
            if not live:
                reservations.release_for_shipments(db, [shipment_id], "expired")
                continue
            shipment = live[0]
            if shipment["ready_at"]:
                # Ready at the store, and the customer never came: the goods go back on the
                # shelf and the lines are cancelled for the channel to refund.
                message = f"not collected from {shipment['node_id']} by {shipment['withdraw_by']}"
                quantities = resource.withdraw(
                    db, shipment, "uncollected", message, hold_status="expired"
                )
                order = orders.require(db, shipment["order_id"])
                pickups.cancel_lines(db, order, quantities, message)
                withdrawn.append(shipment_id)
                continue
            if shipment["status"] in ("accepted", "picked"):
                reason = "dispatch_overdue"
                message = (
                    f"{shipment['node_id']} accepted it for {shipment['dispatch_date']}"
                    f" and had not shipped it by {shipment['withdraw_by']}"
                )
            else:
                reason = "hold_lapsed"
                message = f"the hold at {shipment['node_id']} lapsed without news from the node"
            quantities = resource.withdraw(db, shipment, reason, message, hold_status="expired")
            resource.resource(db, shipment["order_id"], list(quantities), config, message)
            withdrawn.append(shipment_id)
    promises.expire(db, moment)
    reservations.expire(db, moment)
    return withdrawn


def apply_feed(db: Database, feed: dict, config) -> tuple[dict, bool]:
    """Apply an inventory feed and reconcile the holds it leaves uncovered, in one transaction."""
    with database.immediate(db):
        result, replayed = stock.apply_feed(db, feed)
        if not replayed:
            if feed["mode"] == "snapshot" and feed.get("complete"):
                counted = None  # every SKU at the node may have changed
            else:
                skipped = {item["sku"] for item in result["skipped"]}
                counted = [item["sku"] for item in feed["items"] if item["sku"] not in skipped]
            reconcile(db, feed["node_id"], counted, config)
    return result, replayed


def reconcile(db: Database, node_id: str, sku_list: list[str] | None, config) -> list[str]:
    """Make the holds at a node fit its on hand again; call inside the count's transaction.

    Returns the shipments withdrawn.
    """
    withdrawn: list[str] = []
    orders_hit: dict[str, set[str]] = {}
    for sku, on_hand, held in stock.overcommitted(db, node_id, sku_list):
        excess = held - on_hand
        holds = reservations.active_at(db, node_id, sku)
        by_shipment = {
            s["shipment_id"]: s
            for s in shipments.live(db, [h["shipment_id"] for h in holds if h["shipment_id"]])
        }
        # Picked goods a count no longer sees have left with their parcel.
        for hold in holds:
            if excess <= 0:
                break
            shipment = by_shipment.get(hold["shipment_id"])
            if shipment is not None and shipment["status"] == "picked":
                reservations.count_out(db, hold["reservation_id"])
                excess -= hold["qty"]
        # Then the newest promises give way to the older ones.
        for hold in reversed(holds):
            if excess <= 0:
                break
            if hold["shipment_id"] is None:
                reservations.release(db, hold["reservation_id"])
                excess -= hold["qty"]
                continue
            shipment = by_shipment.get(hold["shipment_id"])
            if shipment is None or shipment["status"] == "picked":
                continue
            if hold["shipment_id"] in withdrawn:
                continue
            quantities = resource.withdraw(
                db, shipment, "recount", f"a count at {node_id} showed the stock gone"
            )
            withdrawn.append(shipment["shipment_id"])
            orders_hit.setdefault(shipment["order_id"], set()).update(quantities)
            excess -= sum(h["qty"] for h in holds if h["shipment_id"] == shipment["shipment_id"])
    for order_id, line_ids in orders_hit.items():
        resource.resource(
            db, order_id, sorted(line_ids), config, f"a count at {node_id} showed the stock gone"
        )
    return withdrawn
