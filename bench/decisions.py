"""Decision throughput and latency, in process and over HTTP, next to a bare echo endpoint.

Two networks: the demo (50 nodes, 500 SKUs) and a generated one of 1,000 nodes.
Orders have 1-3 lines of random SKUs shipped to a random customer's address.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from app import create_app
from app.domain import customers
from app.domain.network import nodes, skus, stock
from app.edges import demo
from app.lifecycle import backorders, intake
from app.platform import auth
from app.platform import db as database

ROOT = Path(__file__).parent.parent
IN_PROCESS_ORDERS = 300
HTTP_ORDERS = 400
CLIENT_THREADS = 8
SERVER_WORKERS = 4


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def demo_network(path: str) -> dict:
    create_app({"DATABASE": path, "LOG_LEVEL": "WARNING"})
    connection = database.open_database(path)
    demo.load(connection)
    skus_list = [f"SKU-{n:04d}" for n in range(1, 501)]
    ids = [f"C{n:05d}" for n in range(1, 301)]
    connection.close()
    return {"skus": skus_list, "customers": ids}


def large_network(path: str, node_count: int = 1000, sku_count: int = 200) -> dict:
    """1,000 nodes across Great Britain; each SKU stocked at about a quarter of them."""
    create_app({"DATABASE": path, "LOG_LEVEL": "WARNING"})
    connection = database.open_database(path)
    rng = random.Random(21)
    base = demo.network(7)
    template = base["nodes"]["ST-001"]
    for n in range(node_count):
        kind = "dc" if n < 60 else "3pl" if n < 80 else "store"
        document = {
            **template,
            "type": kind,
            "name": f"{kind} {n}",
            "address": {
                **template["address"],
                "lat": round(rng.uniform(50.4, 57.5), 4),
                "lon": round(rng.uniform(-4.5, 1.5), 4),
            },
            "capabilities": ["ship", "pickup"] if kind == "store" else ["ship"],
            "daily_capacity": None if kind != "store" else 500,
        }
        nodes.put(connection, f"N{n:04d}", document)
    codes = [f"G{n:04d}" for n in range(sku_count)]
    for code in codes:
        skus.put(
            connection,
            code,
            {"name": code, "weight_kg": round(rng.uniform(0.2, 8), 2), "category": "home"},
        )
    for n in range(node_count):
        items = [{"sku": c, "on_hand": rng.randint(5, 200)} for c in codes if rng.random() < 0.25]
        stock.apply_feed(
            connection,
            {
                "feed_id": f"g{n}",
                "node_id": f"N{n:04d}",
                "mode": "snapshot",
                "as_of": database.now(),
                "items": items,
            },
        )
    backorders.resume_raised(connection)  # nobody waits for the stock the feeds raised
    ids = []
    for n in range(100):
        city, postcode, lat, lon = rng.choice(demo.CITIES)
        address = {
            "address_id": "home",
            "lines": ["1 Main Street"],
            "city": city,
            "postcode": postcode,
            "country": "GB",
            "lat": lat,
            "lon": lon,
        }
        customers.put(
            connection,
            f"G{n:03d}",
            {"name": "Bench", "tier": "standard", "addresses": [address], "lifetime_orders": 3},
            True,
        )
        ids.append(f"G{n:03d}")
    connection.close()
    return {"skus": codes, "customers": ids}


def orders(setup: dict, path: str, count: int, prefix: str, seed: int) -> list[dict]:
    rng = random.Random(seed)
    connection = database.open_database(path)
    homes = {}
    for customer_id in setup["customers"]:
        homes[customer_id] = customers.get(connection, customer_id)["addresses"][0]
    connection.close()
    bodies = []
    for n in range(count):
        customer_id = rng.choice(setup["customers"])
        home = {k: v for k, v in homes[customer_id].items() if k not in ("address_id", "label")}
        bodies.append(
            {
                "order_id": f"{prefix}{n}",
                "channel": rng.choice(["web", "app"]),
                "customer_id": customer_id,
                "delivery": {"method": "ship", "address": home},
                "lines": [
                    {
                        "line_id": str(i),
                        "sku": rng.choice(setup["skus"]),
                        "qty": rng.randint(1, 3),
                        "unit_price": 19.99,
                    }
                    for i in range(rng.randint(1, 3))
                ],
            }
        )
    return bodies


def in_process(path: str, bodies: list[dict], decider=intake.decide_order) -> tuple:
    """Each body through ``decider(connection, body)`` in turn; rate and latencies."""
    connection = database.open_database(path)
    latencies = []
    started = time.perf_counter()
    for body in bodies:
        t0 = time.perf_counter()
        decider(connection, body)
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    connection.close()
    return len(bodies) / elapsed, latencies


def serve(command: list[str], env: dict, port: int, stderr=subprocess.DEVNULL) -> subprocess.Popen:
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr, cwd=ROOT)
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
        except urllib.error.HTTPError:
            return server  # it answers
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise RuntimeError(f"server did not start: {command}") from None
            time.sleep(0.1)
        else:
            return server


def load(
    port: int | list[int],
    path: str,
    key: str,
    bodies: list[dict],
    clients: int = CLIENT_THREADS,
    until: float | None = None,
) -> tuple[float, list[float]]:
    """POST the bodies from ``clients`` threads (until the queue or the ``until`` monotonic
    deadline runs out); return requests per second and each request's latency.

    With several ports, requests go to each in turn, as a load balancer would send them.
    """
    latencies: list[float] = []
    lock = threading.Lock()
    queue = list(bodies)
    ports = port if isinstance(port, list) else [port]

    def worker():
        while until is None or time.monotonic() < until:
            with lock:
                if not queue:
                    return
                body = queue.pop()
                target = ports[len(queue) % len(ports)]
            request = urllib.request.Request(
                f"http://127.0.0.1:{target}{path}",
                data=json.dumps(body).encode(),
                method="POST",
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            )
            t0 = time.perf_counter()
            with urllib.request.urlopen(request, timeout=60) as response:
                response.read()
            with lock:
                latencies.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(bodies) / (time.perf_counter() - started), latencies


WRK_SECONDS = 8
WRK_WARMUP_SECONDS = 2
WRK_CONNECTIONS = 8
WRK_SCRIPT = """
-- Each request POSTs the next prepared body, with an order id no other request has.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  bodies = {}
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  wrk.headers["Authorization"] = "Bearer " .. args[2]
  wrk.headers["Content-Type"] = "application/json"
  prefix = args[3]
  sent = 0
end
function request()
  sent = sent + 1
  local body = bodies[(sent % #bodies) + 1]:gsub("__ORDER__", prefix .. tid .. "-" .. sent, 1)
  return wrk.format("POST", nil, nil, body)
end
function done(summary, latency, requests)
  local failed = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT %d %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), failed))
end
"""


def wrk_load(port: int, path: str, key: str, bodies: list[dict]) -> tuple[float, float, float]:
    """Load ``path`` with Debian's wrk (a load generator in C, not the bottleneck) for
    WRK_SECONDS over WRK_CONNECTIONS connections; return requests/s, p50 and p99 (s).

    Bodies rotate; each request's order id is made unique (``__ORDER__`` in the body).
    A run of WRK_WARMUP_SECONDS comes first, not measured: a server that has just
    started still has workers starting their rules engines and filling their caches.
    """
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (Debian: apt-get install wrk)")
    with tempfile.TemporaryDirectory() as folder:
        script, lines = Path(folder) / "orders.lua", Path(folder) / "bodies.txt"
        script.write_text(WRK_SCRIPT)
        lines.write_text("\n".join(json.dumps(body) for body in bodies) + "\n")

        def run(seconds: int, prefix: str) -> tuple[float, float, float]:
            done = subprocess.run(
                [
                    *("wrk", "-t", "2", "-c", str(WRK_CONNECTIONS), "-d", f"{seconds}s"),
                    *("--timeout", "10s", "-s", str(script), f"http://127.0.0.1:{port}{path}"),
                    *("--", str(lines), key, prefix),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            result = next(line for line in done.stdout.splitlines() if line.startswith("RESULT"))
            requests, duration_us, p50_us, p99_us, failed = (int(v) for v in result.split()[1:])
            if failed:
                raise RuntimeError(f"{failed} of {requests} requests failed: {done.stdout}")
            return requests / (duration_us / 1e6), p50_us / 1e6, p99_us / 1e6

        run(WRK_WARMUP_SECONDS, "warm")
        return run(WRK_SECONDS, "w")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def orders_over_http(
    env: dict, key: str, bodies: list[dict], clients: int = CLIENT_THREADS
) -> tuple[float, list[float]]:
    """Start `dom serve` with ``env``, send the orders from Python threads, stop it;
    return rate and latencies (for comparisons within one run, not for throughput)."""
    port = free_port()
    server = serve(
        [sys.executable, "-m", "app.edges.cli", "serve", "--port", str(port)],
        {**env, "DOM_PORT": str(port)},
        port,
    )
    try:
        return load(port, "/v1/orders", key, bodies, clients)
    finally:
        server.terminate()
        server.wait(10)


def serving_env(db_path: str) -> tuple[str, dict]:
    """A channel key on ``db_path``, and the environment `dom serve` runs with in a bench."""
    connection = database.open_database(db_path)
    key = auth.create_key(connection, "channel")[1]
    connection.close()
    return key, {
        **os.environ,
        "DOM_DATABASE": db_path,
        "DOM_WORKERS": str(SERVER_WORKERS),
        # As run in production: a JSON line per request and per decision, metrics counted.
        "DOM_LOG_LEVEL": "INFO",
        "DOM_METRICS_DIR": tempfile.mkdtemp(prefix="dom-bench-metrics-"),
        # Webhooks are delivered by `dom dispatch` (measured in bench/dispatch.py): the
        # demo nodes' endpoints do not answer here, and retrying them would be measured
        # as decisions.
        "DOM_DISPATCH_EMBEDDED": "false",
    }


def over_http(db_path: str, bodies: list[dict]) -> tuple[tuple, tuple]:
    """Decisions through `dom serve`, then a bare Flask echo, both loaded by wrk."""
    key, env = serving_env(db_path)
    templated = [{**body, "order_id": "__ORDER__"} for body in bodies]

    def served(command: list[str], path: str) -> tuple[float, float, float]:
        port = free_port()
        server = serve([part.replace("{port}", str(port)) for part in command], env, port)
        try:
            return wrk_load(port, path, key, templated)
        finally:
            server.terminate()
            server.wait(10)

    dom = served([sys.executable, "-m", "app.edges.cli", "serve", "--port", "{port}"], "/v1/orders")
    bare = served(
        [
            *(sys.executable, "-m", "gunicorn", "-w", str(SERVER_WORKERS)),
            *("-b", "127.0.0.1:{port}", "bench.echo:app"),
        ],
        "/echo",
    )
    return dom, bare


def report(label: str, rate: float, latencies: list[float]) -> str:
    return (
        f"{label:<44} {rate:>8,.0f} decisions/s   p50 {percentile(latencies, 0.5) * 1000:6.1f} ms"
        f"   p99 {percentile(latencies, 0.99) * 1000:6.1f} ms"
    )


def main() -> None:
    for name, build in (
        ("demo network (50 nodes)", demo_network),
        ("generated network (1,000 nodes)", large_network),
    ):
        with tempfile.TemporaryDirectory() as folder:
            path = str(Path(folder) / "bench.db")
            setup = build(path)
            runs = []
            for run in range(3):
                bodies = orders(setup, path, IN_PROCESS_ORDERS, f"ip{run}-", run)
                runs.append(in_process(path, bodies))
            rate = statistics.median(r[0] for r in runs)
            latencies = sorted(runs, key=lambda r: r[0])[1][1]
            print(report(f"decisions in process, {name}", rate, latencies))
            bodies = orders(setup, path, HTTP_ORDERS, "http-", 99)
            (dom_rate, dom_p50, dom_p99), (echo_rate, echo_p50, echo_p99) = over_http(path, bodies)
            label = f"decisions over HTTP ({SERVER_WORKERS} workers), {name}"
            print(
                f"{label:<44} {dom_rate:>8,.0f} decisions/s   p50 {dom_p50 * 1000:6.1f} ms"
                f"   p99 {dom_p99 * 1000:6.1f} ms"
            )
            label = f"bare Flask echo, same bodies ({SERVER_WORKERS} workers)"
            print(
                f"{label:<44} {echo_rate:>8,.0f} requests/s    p50 {echo_p50 * 1000:6.1f} ms"
                f"   p99 {echo_p99 * 1000:6.1f} ms"
            )
            print(
                f"{'':<44} echo / decision throughput: {echo_rate / dom_rate:.1f}x; wrk, 2 threads,"
                f" {WRK_CONNECTIONS} connections, {WRK_SECONDS} s after {WRK_WARMUP_SECONDS} s of"
                f" warm-up, {len(bodies)} order bodies"
                " rotated, each with a new order id"
            )
