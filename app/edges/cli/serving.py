"""Running the service: ``dom serve``, ``dom dispatch``, ``dom settings``."""

from __future__ import annotations

import json
import logging
import math

import click

from app.edges.cli.common import (
    load_config,
    metrics_directory,
    open_database,
)
from app.edges.dispatch.worker import Dispatcher
from app.platform import db as database
from app.platform import settings

log = logging.getLogger("dom.service")


@click.command()
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

    config = load_config()
    host = host or config["HOST"]
    port = port or config["PORT"]
    workers = workers or config["WORKERS"]
    metrics_dir = metrics_directory(config)
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
            # Nothing here uses gunicornc: no control socket in a folder other servers
            # share (gunicorn 25.1 and later make one by default).
            if "control_socket_disable" in self.cfg.settings:
                self.cfg.set("control_socket_disable", True)

        def load(self):
            return app

    Server().run()


@click.command()
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

    config = load_config()
    logs.configure(config["LOG_LEVEL"], config["LOG_FORMAT"])
    open_database(config).close()  # says which database, and refuses one that does not exist
    metrics_directory(config)
    dispatcher = Dispatcher(config)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: dispatcher.stop())
    click.echo(f"dispatcher {dispatcher.worker} delivering", err=True)
    dispatcher.run()
    click.echo(f"dispatcher {dispatcher.worker} stopped", err=True)


@click.command("settings")
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
