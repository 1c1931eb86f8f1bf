"""What every command shares: the settings, the database it opens, API errors as messages."""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import click

from app.platform import db as database
from app.platform import settings
from app.platform.errors import ApiError

log = logging.getLogger("dom.service")


def load_config() -> dict:
    """The service's settings, or the error that names the bad one."""
    try:
        return settings.load()
    except settings.SettingError as exc:
        raise click.ClickException(str(exc)) from exc


def open_database(config, create: bool = False):
    """Open the configured database, saying which on stderr; only ``create`` makes one."""
    url = config["DATABASE"]
    if not create and not database.is_postgres(url) and not Path(url).exists():
        raise click.ClickException(
            f"no database at {Path(url).resolve()}: set DOM_DATABASE, or create one with"
            " `dom db migrate`"
        )
    click.echo(f"database: {database.describe(url)}", err=True)
    return database.open_from_config(config)


def metrics_directory(config) -> Path:
    """Keep this process's metrics where `dom serve` and `dom dispatch` of its database share
    them; return the folder."""
    from app.platform import monitoring

    folder = config["METRICS_DIR"] or monitoring.default_directory(config["DATABASE"])
    return monitoring.use_directory(folder)


def with_db(command):
    """Give the command an open, migrated database as its first argument.

    It says which database on stderr, and refuses a SQLite path where no database is:
    only `dom db migrate` creates one (a command run from the wrong folder must not
    report on a new, empty database).
    """

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        config = load_config()
        db = open_database(config)
        try:
            database.migrate(db, config["MIGRATIONS_DIR"])
            return command(db, *args, **kwargs)
        finally:
            db.close()

    return wrapper


def api_errors(command):
    """Turn the service's errors into a message and exit 1, listing each bad field."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except ApiError as exc:
            for entry in exc.errors or []:
                click.echo(f"  {entry['pointer'] or '/'}: {entry['message']}", err=True)
            raise click.ClickException(f"{exc.message} ({exc.code})") from exc

    return wrapper


def author() -> str:
    """Who a CLI change is recorded as made by: DOM_AUTHOR, else the login name."""
    import getpass

    return os.environ.get("DOM_AUTHOR") or f"{getpass.getuser()} (cli)"


def schemas():
    """The JSON Schemas of the configured schemas folder."""
    from app.platform.schemas import catalogue

    return catalogue(load_config()["SCHEMAS_DIR"])
