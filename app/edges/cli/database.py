"""The database: ``dom db`` (migrate, status, backup, restore) and ``dom demo load``."""

from __future__ import annotations

import json
import logging

import click

from app.edges.cli.common import (
    load_config,
    open_database,
    schemas,
    with_db,
)
from app.platform import db as database

log = logging.getLogger("dom.service")


@click.group()
def db():
    """Database commands.

    \b
    Example:
        dom db migrate
    """


@db.command()
def migrate():
    """Apply pending migrations from migrations/ in order.

    \b
    Example:
        DOM_DATABASE=/var/lib/dom/dom.db dom db migrate
    """
    config = load_config()
    connection = open_database(config, create=True)
    try:
        applied = database.migrate(connection, config["MIGRATIONS_DIR"])
    finally:
        connection.close()
    if applied:
        for name in applied:
            click.echo(f"applied {name}")
    else:
        click.echo("database is up to date")


@db.command()
def status():
    """Show applied and pending migrations as JSON.

    \b
    Example:
        dom db status
    """
    config = load_config()
    connection = open_database(config)
    try:
        click.echo(json.dumps(database.migration_status(connection, config["MIGRATIONS_DIR"])))
    finally:
        connection.close()


@db.command("backup")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
def db_backup(file: str, force: bool):
    """Copy the live database to FILE: a consistent snapshot, taken while it serves.

    SQLite: the online backup API (with the key file of webhook secrets, as FILE.key).
    PostgreSQL: pg_dump's custom format.

    \b
    Example:
        dom db backup /var/backups/dom-$(date +%F).db
    """
    from app.platform import backups

    config = load_config()
    open_database(config).close()  # says which database, and refuses one that does not exist
    try:
        result = backups.backup(config["DATABASE"], file, force)
    except backups.BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(result))


@db.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--yes", is_flag=True, help="Do not ask before replacing the database.")
def db_restore(file: str, yes: bool):
    """Replace the database with the backup FILE, then apply newer migrations.

    Stop `dom serve` and `dom dispatch` first: what they wrote after the backup is lost.

    \b
    Example:
        dom db restore /var/backups/dom-2026-11-26.db --yes
    """
    from app.platform import backups

    config = load_config()
    click.echo(f"database: {database.describe(config['DATABASE'])}", err=True)
    if not yes:
        click.confirm(f"Replace {database.describe(config['DATABASE'])} with {file}?", abort=True)
    try:
        result = backups.restore(config["DATABASE"], file)
    except backups.BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    connection = database.open_from_config(config)
    try:
        result["migrations_applied"] = database.migrate(connection, config["MIGRATIONS_DIR"])
    finally:
        connection.close()
    click.echo(json.dumps(result))


@click.group()
def demo():
    """Demo data.

    \b
    Example:
        dom demo load
    """


@demo.command("load")
@click.option("--if-empty", is_flag=True, help="Do nothing when the database has nodes already.")
@click.option("--seed", type=int, default=7, show_default=True, help="Random seed of the demo.")
@click.option(
    "--history/--no-history",
    default=True,
    show_default=True,
    help="Also decide a few days of orders, ship and deliver most, and return some.",
)
@with_db
def demo_load(db, if_empty: bool, seed: int, history: bool):
    """Load the deterministic demo network, stock, customers, a few days of orders (decided,
    shipped, delivered, some returned) and the demo API keys.

    \b
    Example:
        DOM_DATABASE=demo.db dom demo load --if-empty
    """
    from app.edges import demo as demo_data

    if if_empty and not demo_data.is_empty(db):
        click.echo("database has data already; demo not loaded")
    else:
        counts = demo_data.load(db, seed)
        click.echo("loaded demo: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
        if history:
            # The history is decided by the shipped rulesets, as `dom serve` loads them.
            from app.machinery.rules import runtime

            config = load_config()
            runtime.load_shipped(db, config["RULESETS_DIR"], schemas())
            made = demo_data.history(db, seed)
            click.echo("order history: " + ", ".join(f"{v} {k}" for k, v in made.items()))
    keys = demo_data.ensure_keys(db)
    click.echo("demo API keys (for local use only):")
    for role, key in keys.items():
        click.echo(f"  {role:<22} {key}")
