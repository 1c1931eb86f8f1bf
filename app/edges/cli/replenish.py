"""Replenishment: ``dom replenish run``."""

from __future__ import annotations

import logging

import click

from app.edges.cli.common import (
    schemas,
    with_db,
)
from app.platform.errors import InvalidInput, NotFound

log = logging.getLogger("dom.service")


@click.group("replenish")
def replenish_group():
    """Replenishment: plan purchase orders and transfers for stores and DCs.

    \b
    Example:
        dom replenish run --node ST-001 --category apparel --dry-run
    """


@replenish_group.command("run")
@click.option("--node", "nodes", multiple=True, help="Only this destination node (repeat).")
@click.option("--sku", "skus", multiple=True, help="Only this SKU (repeat).")
@click.option("--category", "categories", multiple=True, help="Only this category (repeat).")
@click.option("--dry-run", is_flag=True, help="Propose only: nothing is ordered or planned.")
@click.option("--horizon", help="The review day planned, YYYY-MM-DD (default today).")
@with_db
def replenish_run(db, nodes, skus, categories, dry_run, horizon):
    """Plan replenishment now, with a progress bar; print the orders proposed.

    \b
    Example:
        dom replenish run --dry-run
    """
    from app.kinds.replenishment import runs

    body: dict = {"dry_run": dry_run}
    for name, value in (("nodes", nodes), ("skus", skus), ("categories", categories)):
        if value:
            body[name] = list(value)
    if horizon:
        body["horizon"] = horizon
    try:
        schemas().validate("replenishment-run", body)
    except InvalidInput as exc:
        found = "; ".join(f"{e['pointer']} {e['message']}" for e in exc.errors)
        raise click.ClickException(found) from exc
    with click.progressbar(length=1, label="positions") as bar:
        seen = {"done": 0}

        def progress(done, total):
            bar.length = max(total, 1)
            bar.update(done - seen["done"])
            seen["done"] = done

        try:
            run, _ = runs.start(db, body, "cli", progress)
        except InvalidInput as exc:
            found = "; ".join(f"{e['pointer']} {e['message']}" for e in exc.errors)
            raise click.ClickException(found) from exc
        except NotFound as exc:
            raise click.ClickException(exc.message) from exc
    summary = run["summary"]
    click.echo(
        f"{run['run_id']}: {run['progress']['positions_total']} positions, "
        f"{summary['lines']} lines in {summary['orders']} orders "
        f"({summary['purchase_orders']} purchase orders, {summary['transfers']} transfers), "
        f"worth {summary['value']:,.2f}; landed cost over the horizon "
        f"{summary['landed_cost_over_horizon']:,.2f}; {summary['unplaced']} positions no source"
        f" could serve" + (" (dry run: nothing ordered)" if dry_run else "")
    )
    for order in run["orders"]:
        click.echo(
            f"  {order['type']:<15}{order['source_node_id']:>14} -> "
            f"{order['destination_node_id']:<10}{len(order['lines']):>5} lines "
            f"{order['value']:>12,.2f}  {order['status']}"
        )
