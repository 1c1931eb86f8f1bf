"""Decisions over HTTP with one, two and three server processes, on PostgreSQL and on SQLite.

Every measurement starts from a copy of one database holding the demo network (50 nodes,
500 SKUs, 300 customers): a copied file for SQLite, ``CREATE DATABASE ... TEMPLATE`` for
PostgreSQL. Each server process runs 2 gunicorn workers without the embedded dispatcher;
8 client threads send 300 orders of 1-3 lines, to each server in turn. Figures are the
median of 3 runs.

Then the oversell load: 300 orders for one SKU that one node holds 100 of, from 16
threads across three servers. It reports how many were sourced (100, or stock was
promised twice), and what the servers' data layer counted: row locks taken, the time
spent waiting for them, and transactions run again after a deadlock or a lost race.

PostgreSQL is the server at ``DOM_BENCH_POSTGRES`` (default the local one); its part is
skipped, saying so, when it does not answer.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from cryptography.fernet import Fernet

from app.platform import auth
from app.platform import db as database
from bench.decisions import demo_network, free_port, load, orders, percentile, serve

ADMIN_URL = os.environ.get("DOM_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
ORDERS = 300
CLIENTS = 8
WORKERS = 2
RUNS = 3
# Servers sharing a PostgreSQL database share the key that seals webhook secrets.
SECRET_KEYS = os.environ.setdefault("DOM_SECRET_KEYS", Fernet.generate_key().decode())


def admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


def postgres_reachable() -> bool:
    import psycopg

    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def named(name: str) -> str:
    return urlunsplit(urlsplit(ADMIN_URL)._replace(path="/" + name))


class Copies:
    """Fresh copies of one prepared database, for SQLite or PostgreSQL."""

    def __init__(self, backend: str, folder: str):
        self.backend = backend
        self.folder = folder
        self.count = 0
        self.made: list[str] = []
        if backend == "sqlite":
            self.original = str(Path(folder) / "original.db")
        else:
            self.template = f"dom_bench_{os.getpid()}_template"
            admin(f"DROP DATABASE IF EXISTS {self.template} WITH (FORCE)")
            admin(f"CREATE DATABASE {self.template}")
            self.original = named(self.template)
        self.setup = demo_network(self.original)
        with database.open_database(self.original) as connection:
            self.key = auth.create_key(connection, "admin")[1]
        database.close_pools()

    def fresh(self) -> str:
        self.count += 1
        if self.backend == "sqlite":
            path = str(Path(self.folder) / f"copy{self.count}.db")
            shutil.copy(self.original, path)
            copy = path
        else:
            name = f"dom_bench_{os.getpid()}_{self.count}"
            admin(f"CREATE DATABASE {name} TEMPLATE {self.template}")
            copy = named(name)
        self.made.append(copy)
        return copy

    def orders(self, count: int, prefix: str, seed: int) -> list[dict]:
        """Order bodies for this network (read from the original, which is then let go)."""
        bodies = orders(self.setup, self.original, count, prefix, seed)
        database.close_pools(self.original)
        return bodies

    def drop(self) -> None:
        database.close_pools()
        if self.backend == "postgresql":
            for url in [*self.made, self.original]:
                name = urlsplit(url).path.lstrip("/")
                admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextlib.contextmanager
def servers(url: str, count: int, folder: str):
    """``count`` `dom serve` processes on ``url``; yields their ports and, after, their stats."""
    started = []
    stats: collections.Counter = collections.Counter()
    env = {
        **os.environ,
        "DOM_DATABASE": url,
        "DOM_WORKERS": str(WORKERS),
        "DOM_LOG_LEVEL": "WARNING",
        "DOM_DISPATCH_EMBEDDED": "false",
        "DOM_SECRET_KEYS": SECRET_KEYS,
    }
    try:
        for _ in range(count):
            port = free_port()
            log = Path(folder) / f"server-{port}.log"
            with open(log, "w") as handle:
                process = serve(
                    [sys.executable, "-m", "app.edges.cli", "serve", "--port", str(port)],
                    {**env, "DOM_PORT": str(port)},
                    port,
                    stderr=handle,
                )
            started.append((port, process, log))
        yield [port for port, _, _ in started], stats
    finally:
        for _, process, _ in started:
            process.terminate()
        for _, process, log in started:
            process.wait(15)
            for line in log.read_text().splitlines():
                if "database stats " in line:
                    stats.update(json.loads(line.split("database stats ", 1)[1]))


def postgres_cpu_seconds() -> float:
    """CPU time used so far by this machine's PostgreSQL processes (0 if none are visible)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        if name.startswith("postgres"):
            fields = stat[stat.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def activity(url: str) -> tuple[int, int]:
    """Transactions committed and rows written in ``url``'s database so far."""
    with database.open_database(url) as connection:
        connection.execute("SELECT pg_stat_clear_snapshot()")
        row = connection.execute(
            "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted FROM pg_stat_database"
            " WHERE datname = current_database()"
        ).fetchone()
    database.close_pools(url)
    return row[0], row[1]


def throughput(copies: Copies, count: int, folder: str) -> dict:
    runs = []
    for run in range(RUNS):
        url = copies.fresh()
        bodies = copies.orders(ORDERS, f"s{count}-{run}-", run)
        with servers(url, count, folder) as (ports, _stats):
            cpu = postgres_cpu_seconds()
            before = activity(url) if copies.backend == "postgresql" else (0, 0)
            rate, latencies = load(ports, "/v1/orders", copies.key, bodies, CLIENTS)
            cpu = postgres_cpu_seconds() - cpu
            after = activity(url) if copies.backend == "postgresql" else (0, 0)
        runs.append(
            {
                "rate": rate,
                "latencies": latencies,
                "db_cpu_ms": cpu * 1000 / len(bodies),
                "commits": (after[0] - before[0] - 1) / len(bodies),
                "rows": (after[1] - before[1]) / len(bodies),
            }
        )
    middle = sorted(runs, key=lambda r: r["rate"])[len(runs) // 2]
    return {**middle, "rate": statistics.median(r["rate"] for r in runs)}


def oversell(copies: Copies, folder: str) -> dict:
    url = copies.fresh()
    with database.open_database(url) as connection:
        node = connection.execute("SELECT node_id FROM nodes WHERE type = 'dc' LIMIT 1").fetchone()[
            0
        ]
        sku = copies.setup["skus"][0]
        connection.execute("DELETE FROM stock WHERE sku = ?", [sku])
        connection.execute(
            "INSERT INTO stock (node_id, sku, on_hand, snapshot_as_of, feed_as_of, updated_at)"
            " VALUES (?, ?, 100, ?, ?, ?)",
            [node, sku, database.now(), database.now(), database.now()],
        )
    database.close_pools(url)
    bodies = copies.orders(ORDERS, "hot-", 5)
    for body in bodies:
        body["lines"] = [{"line_id": "1", "sku": sku, "qty": 1, "unit_price": 9.99}]
    with servers(url, 3, folder) as (ports, stats):
        rate, latencies = load(ports, "/v1/orders", copies.key, bodies, 16)
    with database.open_database(url) as connection:
        held = connection.execute(
            "SELECT COALESCE(SUM(qty), 0) FROM reservations WHERE status = 'active' AND sku = ?",
            [sku],
        ).fetchone()[0]
    database.close_pools(url)
    return {"rate": rate, "latencies": latencies, "held": held, "stats": stats}


def line(label: str, rate: float, latencies: list[float]) -> str:
    return (
        f"{label:<46} {rate:>8,.0f} decisions/s   p50 {percentile(latencies, 0.5) * 1000:6.1f} ms"
        f"   p99 {percentile(latencies, 0.99) * 1000:6.1f} ms"
    )


def main() -> None:
    backends = ["sqlite"]
    if postgres_reachable():
        backends.append("postgresql")
    else:
        print(f"scaling: PostgreSQL does not answer at {ADMIN_URL}; only SQLite is measured")
    print(
        f"scaling: {ORDERS} orders per run, {CLIENTS} client threads, {WORKERS} workers per"
        f" server, median of {RUNS} runs"
    )
    for backend in backends:
        with tempfile.TemporaryDirectory() as folder:
            copies = Copies(backend, folder)
            try:
                for count in (1, 2, 3):
                    run = throughput(copies, count, folder)
                    label = f"{backend}, {count} server(s) x {WORKERS} workers"
                    print(line(label, run["rate"], run["latencies"]))
                    if backend == "postgresql":
                        print(
                            f"{'':<46} PostgreSQL CPU {run['db_cpu_ms']:.2f} ms per decision,"
                            f" {run['commits']:.1f} transactions and {run['rows']:.0f} rows written"
                            " per decision"
                        )
                hot = oversell(copies, folder)
                stats = hot["stats"]
                retries = {k[6:]: v for k, v in stats.items() if k.startswith("retry_")}
                print(
                    line(
                        f"{backend}, oversell load, 3 servers, 16 threads",
                        hot["rate"],
                        hot["latencies"],
                    )
                )
                print(
                    f"{'':<46} sourced {hot['held']} of 100 units held (oversold"
                    f" {max(0, hot['held'] - 100)}); row locks {stats['row_locks']},"
                    f" lock wait {stats['lock_wait_ms']:,} ms in all,"
                    f" retries {stats['retries']} {retries or ''}"
                )
            finally:
                copies.drop()


if __name__ == "__main__":
    main()
