"""The ``dom`` command: serve, migrate, load the demo, manage API keys.

Every command reads the same settings as the service (``DOM_*`` variables).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import sys
from pathlib import Path

import click

from app.edges.dispatch.worker import Dispatcher
from app.platform import auth, settings
from app.platform import db as database
from app.platform.errors import ApiError, Conflict, InvalidInput, NotFound

log = logging.getLogger("dom.service")


def _config() -> dict:
    try:
        return settings.load()
    except settings.SettingError as exc:
        raise click.ClickException(str(exc)) from exc


def _open(config, create: bool = False):
    """Open the configured database, saying which on stderr; only ``create`` makes one."""
    url = config["DATABASE"]
    if not create and not database.is_postgres(url) and not Path(url).exists():
        raise click.ClickException(
            f"no database at {Path(url).resolve()}: set DOM_DATABASE, or create one with"
            " `dom db migrate`"
        )
    click.echo(f"database: {database.describe(url)}", err=True)
    return database.open_from_config(config)


def _metrics(config) -> Path:
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
        config = _config()
        db = _open(config)
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
    metrics_dir = _metrics(config)
    # Migrate once here, before workers fork, instead of in every worker.
    app = create_app({"AUTO_MIGRATE": True})
    log.info(
        "serving",
        extra={
            "event": "service.starting",
            "address": f"{host}:{port}",
            "workers": workers,
            "database": database.describe(config["DATABASE"]),
            "metrics_dir": str(metrics_dir),
        },
    )
    click.echo(f"DOM serving on http://{host}:{port} (database {config['DATABASE']})")
    embedded = config["DISPATCH_EMBEDDED"]
    if dev:
        import os

        # The reloader runs the app in a child process; deliver from that one only.
        if embedded and os.environ.get("WERKZEUG_RUN_MAIN") == "true":
            Dispatcher(app.config).start_thread()
        app.run(host=host, port=port, debug=True, use_reloader=True)
        return
    from gunicorn.app.base import BaseApplication

    # Workers open their own connections: none is shared across the fork.
    database.close_pools()

    dispatchers = {}

    grace = config["SHUTDOWN_GRACE_SECONDS"]

    def worker_ready(worker):
        # The worker's rules engine starts and compiles the active versions now, not on
        # the first order it is sent (which would wait a few hundred milliseconds).
        from app.edges import readiness

        try:
            with database.open_from_config(app.config) as db:
                readiness.load_rulesets(db)
        except Exception:  # the first request will try again, and /readyz reports it
            worker.log.exception("the rules engine could not be loaded at start")
        if embedded:
            dispatchers[worker.pid] = Dispatcher(app.config)
            dispatchers[worker.pid].start_thread()

    def worker_exit(server, worker):
        # The worker has finished its requests in flight; its dispatcher finishes the
        # message in hand and hands back the others, so another takes them at once.
        if worker.pid in dispatchers and not dispatchers[worker.pid].stop(wait=grace):
            server.log.warning("the dispatcher did not stop within %s s", grace)
        # What the data layer saw in this worker: lock waits, retries, outages.
        if database.STATS:
            server.log.info(
                "database stats",
                extra={"event": "database.stats", **dict(sorted(database.STATS.items()))},
            )

    def child_exit(server, worker):
        from app.platform import monitoring

        monitoring.process_exited(worker.pid)

    class Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            # One line per request comes from the service (http.request), none from gunicorn.
            self.cfg.set("accesslog", None)
            self.cfg.set("errorlog", "-")
            self.cfg.set("logger_class", "app.platform.serving.Logs")
            self.cfg.set("loglevel", config["LOG_LEVEL"].lower())
            self.cfg.set("timeout", 60)
            self.cfg.set("graceful_timeout", math.ceil(grace))
            self.cfg.set("worker_class", "app.platform.serving.JsonErrorsWorker")
            self.cfg.set("post_worker_init", worker_ready)
            self.cfg.set("worker_exit", worker_exit)
            self.cfg.set("child_exit", child_exit)

        def load(self):
            return app

    Server().run()


@main.command()
def dispatch():
    """Deliver outbox messages as signed webhooks until stopped (SIGTERM finishes cleanly).

    Run several for more throughput; they share the outbox through leases. With
    `dom serve`, set DOM_DISPATCH_EMBEDDED=false to deliver only from these.

    \b
    Example:
        DOM_DATABASE=/var/lib/dom/dom.db dom dispatch
    """
    import signal

    from app.platform import logs

    config = _config()
    logs.configure(config["LOG_LEVEL"], config["LOG_FORMAT"])
    _open(config).close()  # says which database, and refuses one that does not exist
    _metrics(config)
    dispatcher = Dispatcher(config)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: dispatcher.stop())
    click.echo(f"dispatcher {dispatcher.worker} delivering", err=True)
    dispatcher.run()
    click.echo(f"dispatcher {dispatcher.worker} stopped", err=True)


@main.group()
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

    sealer = vault.from_config(_config())
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
    connection = _open(config, create=True)
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
    connection = _open(config)
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

    config = _config()
    _open(config).close()  # says which database, and refuses one that does not exist
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

    config = _config()
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


@main.command("settings")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per setting.")
def show_settings(as_json: bool):
    """Print the effective settings, where each comes from, secrets redacted.

    \b
    Example:
        DOM_LOG_FORMAT=text dom settings
    """
    try:
        rows = settings.effective()
    except settings.SettingError as exc:
        raise click.ClickException(str(exc)) from exc
    for row in rows:
        if as_json:
            click.echo(json.dumps(row))
        else:
            click.echo(f"{row['env']:<34} {row['value']!s:<40} ({row['source']})")


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
    from app.edges import demo as demo_data

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


@main.group()
def rules():
    """Rulesets: validate, test with their scenarios, load the shipped ones.

    \b
    Example:
        dom rules validate rulesets/sourcing/ruleset.json
    """


def _schemas():
    from app.platform.schemas import catalogue

    return catalogue(_config()["SCHEMAS_DIR"])


@rules.command("validate")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def rules_validate(path: str):
    """Check a ruleset file and list every problem with its pointer and rule id.

    Exits 1 when there are problems.

    \b
    Example:
        dom rules validate rulesets/sourcing/ruleset.json
    """
    from app.machinery.rules import runtime

    try:
        document = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{path} is not JSON: {exc}") from exc
    found = runtime.validate(document, _schemas())
    if not found:
        click.echo(f"{path}: valid ({len(document['rules'])} rules)")
        return
    for entry in found:
        rule = f" [{entry['rule_id']}]" if entry.get("rule_id") else ""
        click.echo(f"{entry['pointer']}{rule}: {entry['message']} ({entry['code']})")
    click.echo(f"{path}: {len(found)} problem(s)", err=True)
    sys.exit(1)


@rules.command("test")
@click.argument("target", required=False)
@click.option("--version", "version_number", type=int, help="Test this stored version.")
def rules_test(target: str | None, version_number: int | None):
    """Run scenarios and print a table; exits 1 on a failure.

    TARGET is a ruleset file (a draft, tested with the scenarios in the scenarios/
    folder beside it, nothing stored), or the name of a stored ruleset (its active
    version, or --version N, with that version's own scenarios); without it, every
    stored ruleset.

    \b
    Example:
        dom rules test rulesets/sourcing/ruleset.json
        dom rules test sourcing --version 2
    """
    from app.machinery.rules import runtime

    if target and Path(target).is_file():
        path = Path(target)
        try:
            document = json.loads(path.read_text())
            cases = {
                p.stem: json.loads(p.read_text())
                for p in sorted(path.parent.glob("scenarios/*.json"))
            }
        except json.JSONDecodeError as exc:
            raise click.ClickException(f"not JSON: {exc}") from exc
        try:
            report = runtime.test_draft(document, cases, _schemas())
        except ApiError as exc:
            for entry in exc.errors or []:
                click.echo(f"{entry['pointer']}: {entry['message']}")
            raise click.ClickException(exc.message) from exc
        if _print_report(f"{path} (draft, {len(cases)} scenarios)", report):
            sys.exit(1)
        return
    _test_stored(target, version_number)


@with_db
def _test_stored(db, name: str | None, version_number: int | None):
    from app.machinery.rules import registry, runtime

    schemas = _schemas()
    runtime.load_shipped(db, _config()["RULESETS_DIR"], schemas)
    failed = 0
    for ruleset in [name] if name else registry.names(db):
        if version_number:
            version = registry.get(db, ruleset, version_number)
        else:
            version = runtime.active_version(db, ruleset)
        cases = runtime.version_cases(db, ruleset, version["version"])
        report = runtime.run_scenarios(version, cases, schemas)
        failed += _print_report(f"{ruleset} version {version['version']}", report)
    if failed:
        sys.exit(1)


def _print_report(title: str, report: dict) -> int:
    """Print a scenario report as a table; return how many failed."""
    click.echo(title)
    width = max((len(r["scenario_id"]) for r in report["scenarios"]), default=10)
    for row in report["scenarios"]:
        mark = "pass" if row["passed"] else "FAIL"
        click.echo(f"  {mark}  {row['scenario_id']:<{width}}  {row['scenario']}")
        for failure in row["failures"]:
            click.echo(f"        {'':<{width}}  - {failure}")
    click.echo(f"  {report['passed']} passed, {report['failed']} failed")
    return report["failed"]


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


def _author() -> str:
    """Who a CLI change is recorded as made by: DOM_AUTHOR, else the login name."""
    import getpass

    return os.environ.get("DOM_AUTHOR") or f"{getpass.getuser()} (cli)"


@rules.command("versions")
@click.argument("name")
@with_db
@api_errors
def rules_versions(db, name: str):
    """List a ruleset's versions: which is active, who made each, and its change note.

    \b
    Example:
        dom rules versions sourcing
    """
    from app.machinery.rules import registry, runtime

    active = runtime.active_version(db, name)["version"]
    for version in registry.versions(db, name):
        mark = "*" if version["version"] == active else " "
        note = version["change_note"] or version["description"] or ""
        made = version["created_at"][:19]
        click.echo(
            f"{mark} v{version['version']:<4} {version['sha256'][:12]}  {made}"
            f"  {version['created_by']:<20}  {note}"
        )


@rules.command("diff")
@click.argument("name")
@click.argument("old", type=int)
@click.argument("new", type=int)
@with_db
@api_errors
def rules_diff(db, name: str, old: int, new: int):
    """What changed between two versions: rules added, removed and changed, and settings.

    \b
    Example:
        dom rules diff sourcing 1 2
    """
    from app.machinery.rules import diff, registry

    changes = diff.diff(
        registry.get(db, name, old)["document"], registry.get(db, name, new)["document"]
    )
    click.echo(json.dumps(changes, indent=2))


@rules.command("activate")
@click.argument("name")
@click.argument("version", type=int)
@click.option("--at", default=None, help="Activate at this future time (RFC 3339).")
@with_db
@api_errors
def rules_activate(db, name: str, version: int, at: str | None):
    """Activate a version (now, or --at a time) once its own scenarios pass.

    Recorded as made by DOM_AUTHOR (default: your login name).

    \b
    Example:
        DOM_AUTHOR="Priya Shah" dom rules activate sourcing 2
    """
    from app.machinery.rules import runtime

    when = database.normalize_time(at) if at else None
    activation = runtime.activate(db, _schemas(), name, version, _author(), when)
    click.echo(
        f"{name} v{activation['version']} {activation['status']} from {activation['effective_at']}"
        f" (was v{activation['previous_version']})"
    )


@rules.command("rollback")
@click.argument("name")
@with_db
@api_errors
def rules_rollback(db, name: str):
    """Make the version that was active before the current one active again.

    \b
    Example:
        dom rules rollback sourcing
    """
    from app.machinery.rules import registry, runtime

    target = registry.previous_version(db, name)
    activation = runtime.activate(db, _schemas(), name, target, _author(), kind="rollback")
    click.echo(f"{name} rolled back to v{activation['version']}")


@rules.command("load")
@with_db
def rules_load(db):
    """Load the rulesets in DOM_RULESETS_DIR: new content becomes a new version.

    \b
    Example:
        DOM_RULESETS_DIR=./rulesets dom rules load
    """
    from app.machinery.rules import runtime

    report = runtime.load_shipped(db, _config()["RULESETS_DIR"], _schemas())
    for line in report:
        click.echo(line)
    if any("not loaded" in line for line in report):
        sys.exit(1)


@main.group("decisions")
def decisions_group():
    """Stored decisions.

    \b
    Example:
        dom decisions replay dec_3f2a9c01b7e4d2aa
    """


@decisions_group.command("replay")
@click.argument("decision_id")
@click.option("--version", "version_number", type=int, help="Ruleset version to replay under.")
@with_db
def decisions_replay(db, decision_id: str, version_number: int | None):
    """Re-decide a stored decision from the facts it saw; exit 1 if the outcome differs.

    \b
    Example:
        dom decisions replay dec_3f2a9c01b7e4d2aa --version 2
    """
    from app.machinery import decisions
    from app.machinery.rules import kinds, registry

    try:
        record = decisions.get(db, decision_id)
        original = record["decision"]
        number = version_number or original["ruleset"]["version"]
        version = registry.get(db, original["ruleset"]["name"], number)
    except NotFound as exc:
        raise click.ClickException(exc.message) from exc
    kind = kinds.of_decision(original)
    [replayed] = kind.replay_many([record], version)
    same = kind.reproduce(replayed) == kind.reproduce(original)
    click.echo(
        json.dumps(
            {"original": kind.reproduce(original), "replayed": kind.reproduce(replayed)}, indent=2
        )
    )
    click.echo(
        f"{decision_id} under {original['ruleset']['name']} version {number}: "
        + ("identical" if same else "different")
    )
    if not same:
        sys.exit(1)


@main.group("experiments")
def experiments_group():
    """A/B experiments between ruleset versions.

    \b
    Example:
        dom experiments report ab-2026-11
    """


@experiments_group.command("report")
@click.argument("experiment_id")
@with_db
def experiments_report(db, experiment_id: str):
    """Print an experiment's measures per variant and the difference with its 95% interval.

    \b
    Example:
        dom experiments report ab-2026-11
    """
    from app.machinery import experiments

    try:
        result = experiments.report(db, experiment_id)
    except NotFound as exc:
        raise click.ClickException(exc.message) from exc
    experiment = result["experiment"]
    click.echo(
        f"{experiment_id}: {experiment['ruleset']} v{experiment['champion']} (champion)"
        f" vs v{experiment['challenger']} (challenger), {experiment['mode']},"
        f" {experiment['status']}"
    )
    _comparison_table(
        result["variants"]["champion"],
        result["variants"]["challenger"],
        result["challenger_minus_champion"],
        ("champion", "challenger"),
    )
    if "disagreement_rate" in result and result["disagreement_rate"] is not None:
        click.echo(f"disagreement rate: {result['disagreement_rate']:.1%}")
        for rule, count in result["rules_making_the_difference"][:5]:
            click.echo(f"  rule {rule}: {count} of {result['disagreements']} disagreeing orders")
        for node in result["nodes_making_the_difference"][:5]:
            click.echo(
                f"  node {node['node_id']}: +{node['lines_gained']} lines, -{node['lines_lost']}"
            )


@experiments_group.command("start")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@with_db
@api_errors
def experiments_start(db, path: str):
    """Start an experiment described in a JSON file (schemas/experiment.schema.json).

    \b
    Example:
        dom experiments start ab-2026-11.json
    """
    from app.machinery import experiments

    document = json.loads(Path(path).read_text())
    _schemas().validate("experiment", document)
    started = experiments.create(db, _schemas(), document, _author())
    click.echo(
        f"{started['experiment_id']} {started['status']}: v{started['champion']} (champion)"
        f" vs v{started['challenger']} (challenger), {started['mode']}"
    )


@experiments_group.command("stop")
@click.argument("experiment_id")
@click.option("--reason", default=None, help="Why it stops (recorded).")
@with_db
@api_errors
def experiments_stop(db, experiment_id: str, reason: str | None):
    """Stop a running experiment; the active version alone decides again.

    \b
    Example:
        dom experiments stop ab-2026-11 --reason "enough data"
    """
    from app.machinery import experiments

    stopped = experiments.stop(db, experiment_id, reason or f"stopped by {_author()}")
    click.echo(f"{experiment_id} {stopped['status']}")


@experiments_group.command("promote")
@click.argument("experiment_id")
@with_db
@api_errors
def experiments_promote(db, experiment_id: str):
    """Stop an experiment and activate its challenger (once its scenarios pass).

    \b
    Example:
        dom experiments promote ab-2026-11
    """
    from app.machinery import experiments

    promoted = experiments.promote(db, _schemas(), experiment_id, _author())
    click.echo(f"{experiment_id} promoted: {json.dumps(promoted.get('activation', promoted))}")


def replay_options(command):
    """What a replay compares and on which decisions: the options of both replay commands."""
    for option in reversed(
        [
            click.option("--ruleset", default="sourcing", show_default=True),
            click.option(
                "--champion",
                "--a",
                "version_a",
                type=int,
                required=True,
                help="The baseline version.",
            ),
            click.option(
                "--challenger",
                "--b",
                "version_b",
                type=int,
                required=True,
                help="The version compared.",
            ),
            click.option("--from", "since", default=None, help="Decisions made at or after."),
            click.option("--to", "until", default=None, help="Decisions made before (RFC 3339)."),
            click.option("--channel", default=None, help="Only orders from this channel."),
            click.option("--limit", type=int, default=None, help="At most this many decisions."),
        ]
    ):
        command = option(command)
    return command


@main.group("replays")
def replays_group():
    """Replays: A/B on history, as background jobs or in the foreground.

    \b
    Example:
        dom replays start --champion 1 --challenger 2 --channel web
    """


@replays_group.command("start")
@replay_options
@click.pass_context
def replays_start(ctx, **options):
    """Replay stored decisions under two versions and print the comparison (same as `dom replay`).

    \b
    Example:
        dom replays start --champion 1 --challenger 2 --from 2026-11-01T00:00:00Z
    """
    ctx.invoke(replay_command, **options)


@replays_group.command("show")
@click.argument("replay_id")
@with_db
@api_errors
def replays_show(db, replay_id: str):
    """Show a replay: its progress, and its comparison when done.

    \b
    Example:
        dom replays show rpl_0123456789ab
    """
    from app.machinery import replays

    replay = replays.get(db, replay_id)
    click.echo(
        f"{replay_id}: {replay['status']}, {replay['done']} of {replay['total']} decisions"
        + (f" ({replay['error']})" if replay.get("error") else "")
    )
    report = replay.get("report")
    if report:
        request = replay["request"]
        names = (f"v{request['champion']}", f"v{request.get('challenger', 'draft')}")
        _comparison_table(
            report["champion"], report["challenger"], report["challenger_minus_champion"], names
        )
        click.echo(f"{report['changed']} of {replay['total']} decisions changed")


def _comparison_table(left: dict, right: dict, differences: dict, names: tuple) -> None:
    def show(value):
        return "-" if value is None else f"{value:,.3f}"

    from app.machinery.metrics import verdict

    click.echo(
        f"{'measure':<22}{names[0]:>12}{names[1]:>12}{'difference':>12}"
        f"  {'95% interval (always valid)':<28}verdict"
    )
    click.echo(f"{'decisions':<22}{left['decisions']:>12}{right['decisions']:>12}")
    for name in differences:  # the measures of the ruleset's kind
        diff = differences[name]
        interval = f"[{diff['ci95'][0]:,.3f}, {diff['ci95'][1]:,.3f}]" if diff["ci95"] else "-"
        said = diff.get("verdict") or verdict(name, diff)
        click.echo(
            f"{name:<22}{show(left[name]):>12}{show(right[name]):>12}"
            f"{show(diff['difference']):>12}  {interval:<28}{said}"
        )
    for share in ("p50", "p95"):
        latency = [side.get("latency_ms", {}).get(share) for side in (left, right)]
        if any(value is not None for value in latency):
            click.echo(
                f"{'latency ' + share + ' (ms)':<22}{show(latency[0]):>12}{show(latency[1]):>12}"
            )


@main.command("replay")
@replay_options
@with_db
def replay_command(db, ruleset, version_a, version_b, since, until, channel, limit):
    """Re-decide stored decisions under two versions and compare them (nothing is reserved).

    \b
    Example:
        dom replay --champion 1 --challenger 2 --from 2026-11-01T00:00:00Z --channel web
    """
    from app.machinery import replays

    request = {"ruleset": ruleset, "champion": version_a, "challenger": version_b}
    for name, value in (("from", since), ("to", until), ("channel", channel), ("limit", limit)):
        if value is not None:
            request[name] = value
    try:
        replay = replays.create(db, request, "cli")
    except NotFound as exc:
        raise click.ClickException(exc.message) from exc
    with click.progressbar(length=replay["total"], label="replaying") as bar:

        def progress(done, total):
            bar.update(1)

        finished = replays.run(db, replay["replay_id"], progress)
    if finished["status"] != "done":
        raise click.ClickException(f"replay failed: {finished['error']}")
    report = finished["report"]
    _comparison_table(
        report["champion"],
        report["challenger"],
        report["challenger_minus_champion"],
        (f"v{version_a}", f"v{version_b}"),
    )
    click.echo(
        f"{report['changed']} of {finished['total']} decisions changed ({finished['replay_id']})"
    )


@main.group("replenish")
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
        _schemas().validate("replenishment-run", body)
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


if __name__ == "__main__":
    sys.exit(main())
