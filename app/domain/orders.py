"""Orders: their lifecycle (a state machine) and timeline. Owns ``orders``, ``order_lines``
and ``order_events``.

    received ──> sourced | partially_sourced | backordered | on_hold
    partially_sourced, backordered ──> sourced | partially_sourced | backordered (back-orders)
    sourced ──> completed, partially_sourced (a node rejected part of it)
    completed, partially_returned, returned ──> partially_returned | returned | completed
        (goods came back, or a return was withdrawn)
    any open state ──> cancelled

Transitions outside this table are refused with 409 before anything is written.
"""

from __future__ import annotations

from app.domain import subscriptions
from app.platform import db as database
from app.platform import jsontext
from app.platform.db import Database
from app.platform.errors import Conflict, NotFound
from app.platform.messaging import outbox

OPEN = ("received", "sourced", "partially_sourced", "backordered", "on_hold")
TRANSITIONS = {
    "received": {"sourced", "partially_sourced", "backordered", "on_hold", "cancelled"},
    "sourced": {"completed", "partially_sourced", "backordered", "on_hold", "cancelled"},
    "partially_sourced": {"sourced", "partially_sourced", "backordered", "on_hold", "cancelled"},
    "backordered": {"sourced", "partially_sourced", "backordered", "on_hold", "cancelled"},
    "on_hold": {"sourced", "partially_sourced", "backordered", "cancelled"},
    "cancelled": set(),
    "completed": {"partially_returned", "returned"},
    # A withdrawn return gives the goods back to the order.
    "partially_returned": {"partially_returned", "returned", "completed"},
    "returned": {"partially_returned", "completed"},
}


class IllegalTransition(Conflict):
    code = "illegal_transition"

    def __init__(self, order_id: str, current: str, target: str):
        super().__init__(f"order {order_id!r} is {current}; it cannot become {target}")


def check_transition(order_id: str, current: str, target: str) -> None:
    """Raise ``IllegalTransition`` unless ``current -> target`` is allowed."""
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(order_id, current, target)


def lock(db: Database, order_id: str) -> None:
    """Hold the order until the transaction ends: one change to an order at a time.

    An order is locked before its nodes and stock rows."""
    db.lock_rows("orders", ("order_id",), [(order_id,)])


def find(db: Database, order_id: str) -> dict | None:
    row = db.execute("SELECT * FROM orders WHERE order_id = ?", [order_id]).fetchone()
    if row is None:
        return None
    order = dict(row)
    order["body"] = jsontext.loads(order["body"])
    return order


def summary(db: Database, order_id: str) -> dict | None:
    """The order's state without its body: status, channel, promise, what its customer was
    last told."""
    row = db.execute(
        "SELECT order_id, status, channel, promised_by, promise_broken_at, customer_told"
        " FROM orders WHERE order_id = ?",
        [order_id],
    ).fetchone()
    return dict(row) if row is not None else None


def require(db: Database, order_id: str) -> dict:
    order = find(db, order_id)
    if order is None:
        raise NotFound(f"order {order_id!r} does not exist")
    return order


def create(db: Database, body: dict, body_hash: str, decided: dict | None = None) -> None:
    """Record a new order as received, with its lines and the promise it carries; call inside
    a transaction. ``decided`` is the body as decided, when a held promise added its date
    and service level to it."""
    now = database.now()
    promise = decided or body
    db.execute(
        "INSERT INTO orders (order_id, channel, customer_id, status, body, body_hash,"
        " created_at, updated_at, promised_by, requested_service, promise_id)"
        " VALUES (?, ?, ?, 'received', ?, ?, ?, ?, ?, ?, ?)",
        [
            body["order_id"],
            body["channel"],
            body["customer_id"],
            jsontext.dumps(body),
            body_hash,
            now,
            now,
            database.normalize_time(promise["promised_by"]) if promise.get("promised_by") else None,
            promise.get("requested_service"),
            body.get("promise_id"),
        ],
    )
    db.executemany(
        "INSERT INTO order_lines (order_id, line_id, sku, qty, unit_price, position)"
        " VALUES (?,?,?,?,?,?)",
        [
            (body["order_id"], line["line_id"], line["sku"], line["qty"], line["unit_price"], i)
            for i, line in enumerate(body["lines"])
        ],
    )
    add_event(db, body["order_id"], "received", {"channel": body["channel"]})


def as_decided(order: dict) -> dict:
    """The order's body as every decision of it is made: with the promise it carries (its
    date and service level), whether the channel sent them or a held promise gave them."""
    body = dict(order["body"])
    if order.get("delivery"):
        body["delivery"] = jsontext.loads(order["delivery"])
    if order.get("promised_by"):
        body["promised_by"] = order["promised_by"]
    if order.get("requested_service"):
        body["requested_service"] = order["requested_service"]
    return body


def break_promise(db: Database, order_id: str, detail: dict) -> None:
    """No node can keep the order's promised date: say so on its timeline and to the
    channel (``order.promise_broken``); the first time is kept as ``promise_broken_at``.
    Call inside the decision's transaction."""
    last = last_event(db, order_id, "promise_broken")
    if last is not None and last["new_date"] == detail["new_date"]:
        return  # the channel knows this date already
    db.execute(
        "UPDATE orders SET promise_broken_at = COALESCE(promise_broken_at, ?) WHERE order_id = ?",
        [database.now(), order_id],
    )
    add_event(db, order_id, "promise_broken", detail)
    notify(db, order_id, "order.promise_broken", {"order_id": order_id, **detail})


def notify(
    db: Database, order_id: str, event_type: str, payload: dict, channel: str | None = None
) -> None:
    """Tell the channels subscribed to ``event_type`` for this order's channel (read when
    not given), in the caller's transaction."""
    if channel is None:
        channel = db.execute(
            "SELECT channel FROM orders WHERE order_id = ?", [order_id]
        ).fetchone()[0]
    for subscription_id in subscriptions.matching(db, event_type, channel):
        outbox.enqueue(db, event_type, payload, order_id=order_id, subscription_id=subscription_id)


def set_status(db: Database, order_id: str, target: str, detail: dict) -> str:
    """Move the order to ``target`` (checked), and put it on the timeline; return the old status."""
    current = db.execute(
        "SELECT status, channel FROM orders WHERE order_id = ?", [order_id]
    ).fetchone()
    if current is None:
        raise NotFound(f"order {order_id!r} does not exist")
    if current[0] == target and target in OPEN:
        add_event(db, order_id, "decided", {"status": target, **detail})
        return current[0]
    check_transition(order_id, current[0], target)
    db.execute(
        "UPDATE orders SET status = ?, updated_at = ?, waiting_escalated_at = NULL"
        " WHERE order_id = ?",
        [target, database.now(), order_id],
    )
    add_event(db, order_id, "status_changed", {"from": current[0], "to": target, **detail})
    # Channels that subscribed hear about it, in the same transaction as the change.
    payload = {"order_id": order_id, "from": current[0], "to": target, **detail}
    notify(db, order_id, "order.status_changed", payload, current[1])
    return current[0]


def add_event(db: Database, order_id: str, event_type: str, detail: dict) -> None:
    """Put an entry on the order's timeline. Every change of an order writes one, so this
    is also where its followers (``follow``) are asked to look at it before the change
    commits."""
    db.execute(
        "INSERT INTO order_events (order_id, type, detail, created_at) VALUES (?, ?, ?, ?)",
        [order_id, event_type, jsontext.dumps(detail), database.now()],
    )
    for follower in _FOLLOWERS:
        db.before_commit((follower, order_id), lambda f=follower: f(db, order_id))


# What must look at every changed order in the change's own transaction, from the state it
# leaves (the customer's messages): registered by the layer above, which this one cannot
# import.
_FOLLOWERS: list = []


def follow(callback) -> None:
    """Call ``callback(db, order_id)`` before each transaction that changed an order
    commits (once per order and transaction)."""
    if callback not in _FOLLOWERS:
        _FOLLOWERS.append(callback)


def set_told(db: Database, order_id: str, state: dict) -> None:
    """Keep what the customer was last told of the order (``customer_told``)."""
    db.execute(
        "UPDATE orders SET customer_told = ? WHERE order_id = ?",
        [jsontext.dumps(state), order_id],
    )


def lines(db: Database, order_id: str) -> list[dict]:
    rows = db.execute(
        "SELECT line_id, sku, qty - qty_cancelled AS qty, unit_price, qty_allocated,"
        " qty_cancelled, original_sku FROM order_lines"
        " WHERE order_id = ? ORDER BY position",
        [order_id],
    )
    return [dict(row) for row in rows]


def missing(db: Database, order_id: str, line_ids=None) -> list[dict]:
    """The unallocated part of each line (of ``line_ids``, or all), as order lines."""
    return [
        {
            "line_id": line["line_id"],
            "sku": line["sku"],
            "qty": line["qty"] - line["qty_allocated"],
            "unit_price": line["unit_price"],
        }
        for line in lines(db, order_id)
        if line["qty"] > line["qty_allocated"] and (line_ids is None or line["line_id"] in line_ids)
    ]


def allocate(db: Database, order_id: str, quantities: dict[str, int]) -> None:
    """Add allocated quantities to lines; call inside the decision's transaction."""
    for line_id, qty in quantities.items():
        db.execute(
            "UPDATE order_lines SET qty_allocated = qty_allocated + ?"
            " WHERE order_id = ? AND line_id = ?",
            [qty, order_id, line_id],
        )


def cancel_quantities(db: Database, order_id: str, quantities: dict[str, int]) -> None:
    """Take quantities off lines for good (nobody will serve them; the timeline keeps what
    was cancelled); call inside a transaction."""
    for line_id, qty in quantities.items():
        db.execute(
            "UPDATE order_lines SET qty_cancelled = qty_cancelled + ?"
            " WHERE order_id = ? AND line_id = ?",
            [qty, order_id, line_id],
        )


def substitute(db: Database, order_id: str, line_id: str, sku: str, detail: dict) -> None:
    """Serve a line with another SKU from now on (the one ordered stays as
    ``original_sku``); call inside a transaction."""
    db.execute(
        "UPDATE order_lines SET original_sku = COALESCE(original_sku, sku), sku = ?"
        " WHERE order_id = ? AND line_id = ?",
        [sku, order_id, line_id],
    )
    add_event(db, order_id, "line_substituted", {"line_id": line_id, "sku": sku, **detail})


def deallocate(db: Database, order_id: str, quantities: dict[str, int]) -> None:
    """Take back allocated quantities (a node rejected them); call inside a transaction."""
    for line_id, qty in quantities.items():
        db.execute(
            "UPDATE order_lines SET qty_allocated = CASE WHEN qty_allocated > ?"
            " THEN qty_allocated - ? ELSE 0 END WHERE order_id = ? AND line_id = ?",
            [qty, qty, order_id, line_id],
        )


def timeline(db: Database, order_id: str) -> list[dict]:
    rows = db.execute(
        "SELECT type, detail, created_at FROM order_events WHERE order_id = ? ORDER BY event_id",
        [order_id],
    )
    return [
        {"type": row["type"], "at": row["created_at"], **jsontext.loads(row["detail"])}
        for row in rows
    ]


def redirect(db: Database, order_id: str, delivery: dict) -> None:
    """The order goes somewhere else from now on (``as_decided`` gives it); call in a
    transaction."""
    db.execute(
        "UPDATE orders SET delivery = ?, updated_at = ? WHERE order_id = ?",
        [jsontext.dumps(delivery), database.now(), order_id],
    )


def last_event(db: Database, order_id: str, event_type: str) -> dict | None:
    """The order's latest timeline entry of this type, or None."""
    row = db.execute(
        "SELECT type, detail, created_at FROM order_events WHERE order_id = ? AND type = ?"
        " ORDER BY event_id DESC LIMIT 1",
        [order_id, event_type],
    ).fetchone()
    if row is None:
        return None
    return {"type": row["type"], "at": row["created_at"], **jsontext.loads(row["detail"])}


def open_orders(db: Database, channels: tuple[str, ...] | None = None) -> list[dict]:
    """Every order not finished (open, or sourced and not yet completed), oldest first."""
    sql = "SELECT * FROM orders WHERE status IN ('received', 'sourced', 'partially_sourced',"
    sql += " 'backordered', 'on_hold')"
    params: list = []
    if channels is not None:
        sql += f" AND channel IN ({','.join('?' * len(channels))})"
        params.extend(channels)
    rows = db.execute(sql + " ORDER BY created_at, order_id", params)
    return [{**dict(row), "body": jsontext.loads(row["body"])} for row in rows]


def waiting_unescalated(db: Database) -> list[dict]:
    """Held and back-ordered orders the channel has not been asked about since they began
    to wait, oldest wait first."""
    rows = db.execute(
        "SELECT order_id FROM orders WHERE status IN ('on_hold', 'backordered',"
        " 'partially_sourced') AND waiting_escalated_at IS NULL ORDER BY updated_at, order_id"
    )
    return [dict(row) for row in rows]


def ask_channel(db: Database, order_id: str, at: str, detail: dict) -> None:
    """The order waited past its deadline: the channel is asked (``order.action_needed``)
    and the timeline says so, once per wait. Call in a transaction."""
    db.execute("UPDATE orders SET waiting_escalated_at = ? WHERE order_id = ?", [at, order_id])
    add_event(db, order_id, "action_needed", detail)
    notify(db, order_id, "order.action_needed", {"order_id": order_id, **detail})


def waiting_skus(db: Database) -> set[str]:
    """The SKUs that back-ordered or partially sourced orders still miss."""
    rows = db.execute(
        "SELECT DISTINCT l.sku FROM orders o JOIN order_lines l ON l.order_id = o.order_id"
        " WHERE o.status IN ('backordered', 'partially_sourced')"
        " AND l.qty_allocated < l.qty - l.qty_cancelled"
    )
    return {row[0] for row in rows}


def backordered(db: Database) -> list[dict]:
    """What waiting orders still miss, line by line: ``{sku, qty, node_id, lat, lon}``, with
    the store of a pickup or ship-to-store order, else the delivery address's coordinates."""
    rows = db.execute(
        "SELECT o.body, l.sku, l.qty - l.qty_cancelled - l.qty_allocated FROM orders o"
        " JOIN order_lines l ON l.order_id = o.order_id"
        " WHERE o.status IN ('backordered', 'partially_sourced')"
        " AND l.qty_allocated < l.qty - l.qty_cancelled"
        " ORDER BY o.order_id, l.line_id"
    )
    found = []
    for body, sku, qty in rows:
        delivery = jsontext.loads(body)["delivery"]
        address = delivery.get("address") or {}
        found.append(
            {
                "sku": sku,
                "qty": qty,
                "node_id": delivery.get("node_id"),
                "lat": address.get("lat"),
                "lon": address.get("lon"),
            }
        )
    return found


def waiting_for(
    db: Database, skus: list[str], limit: int = 100, after: tuple | None = None
) -> list[tuple[str, str]]:
    """Back-ordered or partially sourced orders missing any of these SKUs, oldest first:
    ``[(order_id, created_at)]``, starting after ``(created_at, order_id)`` when given."""
    if not skus:
        return []
    marks = ",".join("?" * len(skus))
    params: list = [*skus]
    page = ""
    if after is not None:
        page = " AND (o.created_at > ? OR (o.created_at = ? AND o.order_id > ?))"
        params.extend([after[0], after[0], after[1]])
    rows = db.execute(
        f"SELECT DISTINCT o.order_id, o.created_at FROM orders o"
        f" JOIN order_lines l ON l.order_id = o.order_id"
        f" WHERE o.status IN ('backordered', 'partially_sourced')"
        f" AND l.qty_allocated < l.qty - l.qty_cancelled AND l.sku IN ({marks}){page}"
        f" ORDER BY o.created_at, o.order_id LIMIT ?",
        [*params, limit],
    )
    return [(row[0], row[1]) for row in rows]


def search(
    db: Database,
    filters: dict,
    after: tuple | None,
    limit: int,
    channels: tuple[str, ...] | None = None,
) -> list[dict]:
    """Orders newest first, after the cursor ``(created_at, order_id)``; ``filters`` by
    status, channel, created_after/before, a SKU on a line, a node with a shipment."""
    where, params = [], []
    for column in ("status", "channel"):
        if filters.get(column):
            where.append(f"o.{column} = ?")
            params.append(filters[column])
    if channels is not None:
        where.append(f"o.channel IN ({','.join('?' * len(channels))})")
        params.extend(channels)
    if filters.get("created_after"):
        where.append("o.created_at >= ?")
        params.append(filters["created_after"])
    if filters.get("created_before"):
        where.append("o.created_at < ?")
        params.append(filters["created_before"])
    if filters.get("sku"):
        where.append(
            "EXISTS (SELECT 1 FROM order_lines l WHERE l.order_id = o.order_id AND l.sku = ?)"
        )
        params.append(filters["sku"])
    if filters.get("node_id"):
        where.append(
            "EXISTS (SELECT 1 FROM shipments s WHERE s.order_id = o.order_id AND s.node_id = ?)"
        )
        params.append(filters["node_id"])
    if after is not None:
        where.append("(o.created_at < ? OR (o.created_at = ? AND o.order_id < ?))")
        params.extend([after[0], after[0], after[1]])
    rows = db.execute(
        "SELECT o.order_id, o.channel, o.customer_id, o.status, o.created_at, o.updated_at"
        " FROM orders o"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY o.created_at DESC, o.order_id DESC LIMIT ?",
        [*params, limit],
    )
    return [dict(row) for row in rows]
