"""The customer's tracking page at ``/track/<token>``: no sign-in, reached by a signed link
that expires, which a channel asks for (``POST /v1/orders/{id}/tracking-link``) and
emails to its customer.

The link names the order and the moment it stops working, signed with a key derived from
the service's vault keys (the same on every server; a rotated-out key stops its links).
The page shows what ``tracking.view`` gives the channel, in words: the status, the
dates, each parcel with its carrier and tracking number, and of the address only the
town. It runs no script, and tells the browser not to pass the link on (no referrer)
nor to keep the page.
"""

from __future__ import annotations

import base64
import binascii
import time
from datetime import datetime

from flask import Blueprint, Flask, current_app, render_template

from app.domain import orders
from app.domain.network import skus
from app.lifecycle import tracking
from app.platform.db import get_db

bp = Blueprint(
    "customer",
    __name__,
    url_prefix="/track",
    template_folder="templates",
    static_folder="static",
)

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none';"
        " form-action 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    # The link is the key to the page: it must not leave in a Referer header.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow",
}
STATUS_WORDS = {
    "received": "Order received",
    "sourced": "Being prepared",
    "partially_shipped": "Partly on its way",
    "shipped": "On its way",
    "ready_for_pickup": "Ready to collect",
    "partially_delivered": "Partly delivered",
    "delivered": "Delivered",
    "delayed": "Delayed",
    "cancelled": "Cancelled",
    "returned": "Returned",
}
STAGE_WORDS = {
    "preparing": "Being prepared",
    "shipped": "On its way",
    "ready_for_pickup": "Ready to collect",
    "delivered": "Delivered",
}
METHOD_WORDS = {
    "ship": "Home delivery",
    "same_day": "Same-day delivery",
    "pickup": "Click and collect",
    "ship_to_store": "Delivery to a store",
}
LINE_WORDS = {
    **STATUS_WORDS,
    "backordered": "Waiting for stock",
}


class BadLink(Exception):
    """A link that was not made here, or was changed."""


class ExpiredLink(Exception):
    """A link past the moment it stops working."""


def _encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(text: str) -> str:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadLink from None


def make_link(order_id: str, days: float, vault, now: float | None = None) -> tuple[str, int]:
    """A token for the order's page that works for ``days``; ``(token, expires)`` with
    ``expires`` in seconds since the epoch."""
    expires = int((now if now is not None else time.time()) + days * 86400)
    message = f"track:{order_id}:{expires}"
    return f"{_encode(order_id)}.{expires}.{vault.sign(message)}", expires


def read_link(token: str, vault, now: float | None = None) -> str:
    """The order a token opens; ``BadLink`` or ``ExpiredLink`` otherwise."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[1].isdigit() or len(parts[1]) > 12:
        raise BadLink
    order_id, expires = _decode(parts[0]), int(parts[1])
    if not vault.verify(f"track:{order_id}:{expires}", parts[2]):
        raise BadLink
    if (now if now is not None else time.time()) >= expires:
        raise ExpiredLink
    return order_id


@bp.route("/<token>")
def page(token: str):
    vault = current_app.extensions["dom.vault"]
    try:
        order_id = read_link(token, vault)
    except ExpiredLink:
        return _sorry(
            410,
            "This tracking link has expired",
            "Ask the shop for a new link, or sign in to your account to follow the order.",
        )
    except BadLink:
        return _sorry(
            404, "This tracking link does not work", "Check that the whole link was copied."
        )
    db = get_db()
    if orders.find(db, order_id) is None:
        return _sorry(404, "This tracking link does not work", "The order is not known here.")
    found = tracking.view(db, order_id)
    ordered = [line["original_sku"] for line in found["lines"] if line["original_sku"]]
    names = skus.names(db, [line["sku"] for line in found["lines"]] + ordered)
    return render_template(
        "customer/track.html",
        order=found,
        names=names,
        status_words=STATUS_WORDS,
        stage_words=STAGE_WORDS,
        method_words=METHOD_WORDS,
        line_words=LINE_WORDS,
        day=_day,
        moment=_moment,
    )


def _sorry(status: int, title: str, advice: str):
    return render_template("customer/sorry.html", title=title, advice=advice), status


def _day(value: str | None) -> str:
    """``2027-01-14`` or a time on it, as ``Thursday 14 January 2027``."""
    if not value:
        return ""
    found = datetime.fromisoformat(value[:10])
    return f"{found:%A} {found.day} {found:%B %Y}"


def _moment(value: str | None) -> str:
    """A stored time as ``Thursday 14 January 2027, 14:05 UTC``."""
    if not value:
        return ""
    found = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return f"{_day(value)}, {found:%H:%M} UTC"


@bp.after_request
def _secure(response):
    response.headers.update(SECURITY_HEADERS)
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
