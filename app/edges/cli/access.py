"""Who may call the service: ``dom keys`` (API keys) and ``dom secrets`` (webhook secrets)."""

from __future__ import annotations

import logging

import click

from app.edges.cli.common import (
    load_config,
    with_db,
)
from app.platform import auth
from app.platform.errors import Conflict, NotFound

log = logging.getLogger("dom.service")


@click.group()
def secrets():
    """Webhook and subscription secrets, encrypted at rest.

    \b
    Example:
        DOM_SECRET_KEYS=NEWKEY,OLDKEY dom secrets rotate
    """


@secrets.command("rotate")
@with_db
def secrets_rotate(db):
    """Encrypt every stored secret again under the first key of DOM_SECRET_KEYS.

    Put the new key first and keep the old ones after it; once this has run, the old
    keys can go.

    \b
    Example:
        DOM_SECRET_KEYS=NEWKEY,OLDKEY dom secrets rotate
    """
    from app.domain import subscriptions
    from app.domain.network import nodes
    from app.platform import vault

    sealer = vault.from_config(load_config())
    count = nodes.reseal_secrets(db, sealer) + subscriptions.reseal_secrets(db, sealer)
    click.echo(f"re-encrypted the secrets of {count} endpoints")


@secrets.command("new-key")
def secrets_new_key():
    """Print a new key for DOM_SECRET_KEYS (every server of one database shares the keys).

    \b
    Example:
        export DOM_SECRET_KEYS=$(dom secrets new-key)
    """
    from cryptography.fernet import Fernet

    click.echo(Fernet.generate_key().decode())


@click.group()
def keys():
    """API keys.

    \b
    Example:
        dom keys create --role channel --label web-shop
    """


@keys.command("create")
@click.option("--role", type=click.Choice(auth.ROLES), required=True, help="What the key may do.")
@click.option("--node", "node_id", default=None, help="The node a node key is bound to.")
@click.option(
    "--channel",
    "channels",
    multiple=True,
    help="A channel a channel key serves (required for channel keys; repeat for several).",
)
@click.option("--label", default=None, help="A note saying who holds the key.")
@click.option("--name", default=None, help="The person the key belongs to: recorded as the author.")
@with_db
def keys_create(
    db, role: str, node_id: str | None, channels: tuple, label: str | None, name: str | None
):
    """Create an API key; the key is printed once, on the last line.

    \b
    Example:
        dom keys create --role node --node DC-LON
        dom keys create --role channel --channel web --channel app --label web-shop
        dom keys create --role analyst --name "Priya Shah"
    """
    if role == "channel" and not channels:
        raise click.UsageError("a channel key serves named channels: give --channel (repeatable)")
    try:
        key_id, key = auth.create_key(
            db, role, node_id, label, channels=list(channels) or None, name=name
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    except NotFound as exc:
        raise click.ClickException(exc.message) from exc
    bound = f" for {node_id}" if node_id else f" for {', '.join(channels)}" if channels else ""
    click.echo(f"created {key_id} ({role}{bound})", err=True)
    click.echo(key)


@keys.command("list")
@with_db
def keys_list(db):
    """List API keys (never the keys themselves): id, prefix, role, binding, label, state.

    \b
    Example:
        dom keys list
    """
    for key in auth.list_keys(db):
        bound = key["node_id"] or ",".join(key["channels"] or []) or "-"
        state = f"revoked {key['revoked_at']}" if key["revoked_at"] else "active"
        click.echo(
            f"{key['key_id']}  {key['key_prefix'] or '?':<12}  {key['role']:<7}  {bound:<20}"
            f"  {state:<10}  {key['created_at']}  {key['label'] or ''}"
        )


@keys.command("revoke")
@click.argument("key_id")
@with_db
def keys_revoke(db, key_id: str):
    """Revoke an API key by its id, or by the start of the key (at least 12 characters).

    \b
    Example:
        dom keys revoke key_3f2a9c01b7e4
        dom keys revoke dom_AbCdEfGh
    """
    try:
        revoked = auth.revoke_key(db, key_id)
    except (NotFound, Conflict) as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"revoked {revoked}")
