"""Helpers shared by the benchmarks: fresh services, medians, printing."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from app import create_app
from app.platform import auth
from app.platform import db as database

RUNS = 5


def fresh_app(folder: str):
    """A service on a new database file in ``folder``, and an admin key for it."""
    app = create_app({"DATABASE": str(Path(folder) / "bench.db"), "LOG_LEVEL": "WARNING"})
    connection = database.open_from_config(app.config)
    key = auth.create_key(connection, "admin")[1]
    connection.close()
    return app, {"Authorization": f"Bearer {key}"}


def median_of(runs: int, once: Callable[[str], float]) -> tuple[float, list[float]]:
    """Run ``once(tmpdir)`` ``runs`` times, each in a fresh folder; return median and all."""
    figures = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as folder:
            figures.append(once(folder))
    return statistics.median(figures), figures


def report(name: str, unit: str, median: float, figures: list[float], note: str) -> None:
    spread = ", ".join(f"{f:,.0f}" for f in figures)
    print(f"{name:<46} {median:>12,.0f} {unit}   (median of {len(figures)}: {spread})")
    print(f"{'':<46} {note}")


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def cpu_seconds() -> float:
    """CPU time used so far by this process (all its threads) and its live children (the
    engine processes), from /proc: what "per core" figures divide by."""
    total = time.process_time()
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        if int(fields[1]) == me:  # utime and stime, in clock ticks
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total
