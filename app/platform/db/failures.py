"""What goes wrong with a database, and what this process saw of it."""

from __future__ import annotations

from collections import Counter

from app.platform.errors import Unavailable

# What the data layer saw in this process: retries by cause, lock waits, outages.
STATS: Counter = Counter()


class DatabaseUnavailable(Unavailable):
    """The database cannot be reached (restart, failover, pool exhausted): 503, retry soon."""

    code = "database_unavailable"
    retry_after = 2


class Retry(Exception):
    """The transaction lost a race the database detected; run the whole unit again."""

    def __init__(self, cause: str):
        super().__init__(cause)
        self.cause = cause


class DatabaseBusy(Unavailable):
    """A request kept losing races for the same rows: 503, retry soon."""

    code = "database_busy"
    retry_after = 1
