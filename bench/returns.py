"""Return decisions per second, in process and over HTTP, on the demo network.

Orders are drawn from the seeded generator of ``bench/decisions.py`` and decided for real;
their shipments are then marked delivered (setup, not measured). Each return takes one
unit of a random delivered line back, with a random reason, condition and hand-over
method, so every rule of the shipped returns ruleset gets its share of the load.
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
from pathlib import Path

from app.kinds.returns import returns
from app.lifecycle import intake
from app.platform import db as database
from bench.decisions import (
    SERVER_WORKERS,
    WRK_CONNECTIONS,
    WRK_SECONDS,
    demo_network,
    free_port,
    in_process,
    orders,
    percentile,
    serve,
    serving_env,
    wrk_load,
)

RUNS = 3
ORDERS = 900
IN_PROCESS_RETURNS = 200
REASONS = ("changed_mind", "wrong_size", "not_as_described", "damaged_in_transit", "defective")
CONDITIONS = ("unopened", "unopened", "opened", "damaged", "defective")
METHODS = ("drop_off", "ship_back", "collect")
# wrk's two threads each send the bodies in the same order, in the warm-up and again in
# the measured run: a body is sent up to four times, so its line must hold four units.
SENDS_PER_BODY = 4


def delivered(setup: dict, path: str) -> list[tuple[str, str, int]]:
    """Decide the bench's orders and mark what they shipped delivered; return each
    delivered line as ``(order_id, line_id, units)``."""
    connection = database.open_database(path)
    for body in orders(setup, path, ORDERS, "ret-", 7):
        for line in body["lines"]:
            line["qty"] = SENDS_PER_BODY + 2
        intake.decide_order(connection, body)
    now = database.now()
    with database.immediate(connection):
        connection.execute(
            "UPDATE shipments SET status = 'delivered', delivered_at = ?, updated_at = ?",
            [now, now],
        )
        connection.execute("UPDATE orders SET status = 'completed' WHERE status = 'sourced'")
    lines = [
        (row[0], row[1], row[2])
        for row in connection.execute(
            "SELECT order_id, line_id, qty_allocated FROM order_lines o WHERE qty_allocated > 0"
            " AND EXISTS (SELECT 1 FROM orders x WHERE x.order_id = o.order_id"
            " AND x.status = 'completed') ORDER BY order_id, line_id"
        )
    ]
    connection.close()
    return lines


def bodies(lines: list[tuple[str, str, int]], count: int, prefix: str, seed: int) -> list[dict]:
    """Returns of one unit each, never more of a line than it delivered."""
    rng = random.Random(seed)
    units = [(order_id, line_id) for order_id, line_id, qty in lines for _ in range(qty)]
    rng.shuffle(units)
    found = []
    for n, (order_id, line_id) in enumerate(units[:count]):
        found.append(
            {
                "return_id": f"{prefix}{n}",
                "order_id": order_id,
                "method": rng.choice(METHODS),
                "lines": [
                    {
                        "line_id": line_id,
                        "qty": 1,
                        "reason": rng.choice(REASONS),
                        "condition": rng.choice(CONDITIONS),
                    }
                ],
            }
        )
    return found


def over_http(path: str, requests: list[dict]) -> tuple[float, float, float]:
    key, env = serving_env(path)
    port = free_port()
    server = serve([sys.executable, "-m", "app.edges.cli", "serve", "--port", str(port)], env, port)
    try:
        # wrk makes each return id unique (``__ORDER__``); a line asked back more often
        # than it was delivered would be refused, which wrk counts as a failure: each
        # body is a line of its own with SENDS_PER_BODY units to give.
        templated = [{**body, "return_id": "__ORDER__"} for body in requests]
        return wrk_load(port, "/v1/returns", key, templated)
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "bench.db")
        setup = demo_network(path)
        lines = delivered(setup, path)
        units = sum(qty for _, _, qty in lines)
        runs = []
        for run in range(RUNS):
            requests = bodies(lines, IN_PROCESS_RETURNS, f"ip{run}-", run)
            runs.append(in_process(path, requests, returns.create))
            # Give the units back for the next run: the same lines, the same checks.
            connection = database.open_database(path)
            with database.immediate(connection):
                connection.execute("UPDATE returns SET status = 'cancelled'")
            connection.close()
        rate = statistics.median(r[0] for r in runs)
        latencies = sorted(runs, key=lambda r: r[0])[1][1]
        p50, p99 = (percentile(latencies, share) * 1000 for share in (0.5, 0.99))
        label = "return decisions in process, demo network"
        print(f"{label:<52} {rate:>7,.0f} returns/s   p50 {p50:6.1f} ms   p99 {p99:6.1f} ms")
        roomy = [(o, line, 1) for o, line, qty in lines if qty >= SENDS_PER_BODY]
        dom_rate, dom_p50, dom_p99 = over_http(path, bodies(roomy, len(roomy), "http-", 99))
        label = f"return decisions over HTTP ({SERVER_WORKERS} workers), demo network"
        print(
            f"{label:<52} {dom_rate:>7,.0f} returns/s   p50 {dom_p50 * 1000:6.1f} ms"
            f"   p99 {dom_p99 * 1000:6.1f} ms"
        )
        print(
            f"{'':<52} {len(lines)} delivered lines of {ORDERS} orders ({units} units);"
            f" wrk, {WRK_CONNECTIONS} connections, {WRK_SECONDS} s; median of {RUNS} runs"
            " in process"
        )


if __name__ == "__main__":
    main()
