"""Readiness: whether this process can serve now, check by check.

``/healthz`` says the process is alive; ``/readyz`` says a load balancer may send it
requests: the database answers within the timeout, its migrations are current, every
active ruleset compiles in this process's rules engine, and a dispatcher is running
(without one, decisions would be made but nodes never told).
"""

from __future__ import annotations

from app.edges.dispatch import heartbeats
from app.machinery.rules import registry, runtime
from app.platform import db as database
from app.platform.errors import ApiError


def checks(config) -> dict[str, str]:
    """Each check's name and ``"ok"`` or what is wrong; stops at the database when it fails."""
    results: dict[str, str] = {}
    try:
        status = database.probe(
            config["DATABASE"], config["READY_TIMEOUT_SECONDS"], config["MIGRATIONS_DIR"]
        )
    except database.DatabaseUnavailable as exc:
        return {"database": exc.message}
    results["database"] = "ok"
    results["migrations"] = (
        f"pending: {', '.join(status['pending'])}" if status["pending"] else "ok"
    )
    if status["pending"]:
        return results
    try:
        # The checks below use this process's own connections: the pool must give one too.
        with database.open_from_config(config) as db:
            try:
                results["rulesets"] = load_rulesets(db)
                fresh = heartbeats.fresh(db, config["DISPATCH_STALE_SECONDS"])
            finally:
                db.rollback()
    except database.DatabaseUnavailable as exc:
        results["database"] = exc.message
        return results
    results["dispatcher"] = (
        "ok" if fresh else f"no dispatcher has reported in {config['DISPATCH_STALE_SECONDS']:g} s"
    )
    return results


def load_rulesets(db) -> str:
    """Compile every active version in this process's engine (once: it keeps them)."""
    problems = []
    for name in registry.names(db):
        try:
            version = runtime.active_version(db, name)
        except ApiError:
            continue  # a ruleset never activated has nothing to compile
        try:
            runtime.evaluate(version, [])
        except ApiError as exc:
            problems.append(f"{name} version {version['version']}: {exc.message}")
    return "; ".join(problems) if problems else "ok"
