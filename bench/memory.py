"""Memory: a process's resident size after 1,000 decisions and after 100,000.

Decisions run in process on the demo network, as a worker runs them; the rules
engine runs in the process's evaluation child, which is measured too. Orders draw
from a seeded generator; stock runs out along the way, so later orders are
back-ordered (decided and stored all the same). ``BENCH_MEMORY_DECISIONS`` sets the
second count (default 100,000).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from app.lifecycle import intake
from app.machinery.rules import runtime
from app.platform import db as database
from bench.decisions import demo_network, orders

ROOT = Path(__file__).parent.parent
FIRST = 1_000
DECISIONS = int(os.environ.get("BENCH_MEMORY_DECISIONS", "100000"))
BATCH = 1_000


def resident_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no resident size for process {pid}")


def main() -> None:
    """Measure in a fresh process: the others' allocations must not count as its own."""
    subprocess.run([sys.executable, "-m", "bench.memory"], check=True, cwd=ROOT)


def measure() -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "bench.db")
        setup = demo_network(path)
        connection = database.open_database(path)
        done, sizes, started = 0, {}, time.perf_counter()
        while done < DECISIONS:
            for body in orders(setup, path, BATCH, f"m{done}-", done):
                intake.decide_order(connection, body)
            done += BATCH
            if done in (FIRST, DECISIONS):
                child = runtime.SANDBOX._process.pid
                sizes[done] = (resident_kb(os.getpid()), resident_kb(child))
        connection.close()
        elapsed = time.perf_counter() - started
    (worker_first, engine_first), (worker_last, engine_last) = sizes[FIRST], sizes[DECISIONS]
    print(
        f"memory: resident after {FIRST:,} / {DECISIONS:,} decisions:"
        f" worker {worker_first / 1024:,.1f} / {worker_last / 1024:,.1f} MB"
        f" ({(worker_last - worker_first) / worker_first:+.1%}),"
        f" engine child {engine_first / 1024:,.1f} / {engine_last / 1024:,.1f} MB"
        f" ({(engine_last - engine_first) / engine_first:+.1%}); goal within 20%;"
        f" {DECISIONS / elapsed:,.0f} decisions/s along the way"
    )


if __name__ == "__main__":
    measure()
