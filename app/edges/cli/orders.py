"""Orders after their decision: ``dom orders open`` and ``dom orders release``."""

from __future__ import annotations

import json

import click

from app.edges.cli.common import with_db
from app.platform.errors import ApiError


@click.group("orders")
def orders_group():
    """Open orders: why each waits, and releasing held ones.

    \b
    Example:
        dom orders open --reason no_supply
    """


@orders_group.command("open")
@click.option("--reason", help="Only orders waiting for this reason.")
@click.option("--limit", type=int, default=500, show_default=True, help="Most orders listed.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@with_db
def orders_open(db, reason: str | None, limit: int, as_json: bool):
    """Every open order with why it waits, what happens next and its age, oldest first.

    \b
    Example:
        dom orders open
    """
    from app.lifecycle import waiting

    if reason is not None and reason not in waiting.REASONS:
        raise click.BadParameter(f"one of {', '.join(waiting.REASONS)}", param_hint="--reason")
    found = waiting.report(db, reason=reason, limit=limit)
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    click.echo(f"{found['open']} open order(s) as of {found['as_of']}")
    for row in found["by_reason"]:
        click.echo(f"  {row['reason']:<20} {row['orders']:>6}  oldest {row['oldest_hours']} h")
    for entry in found["orders"]:
        click.echo(
            f"{entry['order_id']}  {entry['status']}  {entry['reason']}  {entry['age_hours']} h"
            f"  {entry['message']}; next: {entry['next_action']}"
        )


@orders_group.command("release")
@click.argument("order_id")
@click.option("--note", help="Why it was released (kept on the order's timeline).")
@with_db
def orders_release(db, order_id: str, note: str | None):
    """Release a held order: it is decided again without the rules' holds.

    \b
    Example:
        dom orders release web-10042 --note "fraud review passed"
    """
    from app.lifecycle import orders as lifecycle

    try:
        view = lifecycle.release(db, order_id, {"note": note} if note else {}, "cli")
    except ApiError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"{order_id}: {view['status']}, {len(view['shipments'])} shipment(s)")
