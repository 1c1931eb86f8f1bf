"""The ``dom`` command: serve, migrate, load the demo, manage API keys.

Every command reads the same settings as the service (``DOM_*`` variables).
"""

from __future__ import annotations

import functools
import json
import sys

import click

from app import auth, settings
from app import db as database
from app.errors import NotFound


def _config() -> dict:
    try:
        return settings.load()
    except settings.SettingError as exc:
        raise click.ClickException(str(exc)) from exc


def with_db(command):
    """Give the command an open, migrated database as its first argument."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        config = _config()
        db = database.open_from_config(config)
        try:
            database.migrate(db, config["MIGRATIONS_DIR"])
            return command(db, *args, **kwargs)
        finally:
            db.close()

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """DOM: distributed order management decision service.

    \b
    Example:
        dom db migrate && dom demo load --if-empty && dom serve
    """


@main.command()
@click.option("--dev", is_flag=True, help="Flask's development server with the reloader.")
@click.option("--host", default=None, help="Address to listen on (default: DOM_HOST).")
@click.option("--port", type=int, default=None, help="Port (default: DOM_PORT).")
@click.option("--workers", type=int, default=None, help="Worker processes (default: DOM_WORKERS).")
def serve(dev: bool, host: str | None, port: int | None, workers: int | None):
    """Serve the HTTP API with several worker processes (gunicorn).

    \b
    Example:
        DOM_DATABASE=dom.db dom serve --port 8000 --workers 4
        dom serve --dev
    """
    from app import create_app

    config = _config()
    host = host or config["HOST"]
    port = port or config["PORT"]
    workers = workers or config["WORKERS"]
    # Migrate once here, before workers fork, instead of in every worker.
    app = create_app({"AUTO_MIGRATE": True})
    click.echo(f"DOM serving on http://{host}:{port} (database {config['DATABASE']})")
    if dev:
        app.run(host=host, port=port, debug=True, use_reloader=True)
        return
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("accesslog", "-")
            self.cfg.set("timeout", 60)

        def load(self):
            return app

    Server().run()


@main.group()
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
    config = _config()
    connection = database.open_from_config(config)
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
    config = _config()
    connection = database.open_from_config(config)
    try:
        click.echo(json.dumps(database.migration_status(connection, config["MIGRATIONS_DIR"])))
    finally:
        connection.close()


@main.group()
def demo():
    """Demo data.

    \b
    Example:
        dom demo load
    """


@demo.command("load")
@click.option("--if-empty", is_flag=True, help="Do nothing when the database has nodes already.")
@click.option("--seed", type=int, default=7, show_default=True, help="Random seed of the demo.")
@with_db
def demo_load(db, if_empty: bool, seed: int):
    """Load the deterministic demo network, stock, customers and demo API keys.

    \b
    Example:
        DOM_DATABASE=demo.db dom demo load --if-empty
    """
    from app import demo as demo_data

    if if_empty and not demo_data.is_empty(db):
        click.echo("database has data already; demo not loaded")
    else:
        counts = demo_data.load(db, seed)
        click.echo("loaded demo: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    keys = demo_data.ensure_keys(db)
    click.echo("demo API keys (for local use only):")
    for role, key in keys.items():
        click.echo(f"  {role:<22} {key}")


@main.group()
def keys():
    """API keys.

    \b
    Example:
        dom keys create --role channel --label web-shop
    """


@keys.command("create")
@click.option("--role", type=click.Choice(auth.ROLES), required=True, help="What the key may do.")
@click.option("--node", "node_id", default=None, help="The node a node key is bound to.")
@click.option("--label", default=None, help="A note saying who holds the key.")
@with_db
def keys_create(db, role: str, node_id: str | None, label: str | None):
    """Create an API key; the key is printed once, on the last line.

    \b
    Example:
        dom keys create --role node --node DC-LON
    """
    try:
        key_id, key = auth.create_key(db, role, node_id, label)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    except NotFound as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"created {key_id} ({role}{' for ' + node_id if node_id else ''})", err=True)
    click.echo(key)


@keys.command("revoke")
@click.argument("key_id")
@with_db
def keys_revoke(db, key_id: str):
    """Revoke an API key by its id.

    \b
    Example:
        dom keys revoke key_3f2a9c01b7e4
    """
    try:
        auth.revoke_key(db, key_id)
    except NotFound as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"revoked {key_id}")


if __name__ == "__main__":
    sys.exit(main())
