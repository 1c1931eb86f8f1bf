"""Transactions: ``atomic`` (one, or a savepoint inside one) and ``retrying`` (a unit of
work run again when it lost a race the database detected)."""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator

from app.platform.db.failures import STATS, DatabaseBusy, Retry
from app.platform.db.sqlite import Database


@contextlib.contextmanager
def atomic(db: Database) -> Iterator[Database]:
    """Run the block in one transaction (SQLite: holding the write lock from its start).

    Inside an open transaction it nests as a savepoint of the outer one.
    """
    if db.in_transaction:
        db._savepoints += 1
        name = f"dom_{db._savepoints}"
        db.execute(f"SAVEPOINT {name}")
        pending = len(db._after_commit)
        asked = set(db._before_commit)
        try:
            yield db
        except BaseException:
            del db._after_commit[pending:]
            for key in set(db._before_commit) - asked:
                del db._before_commit[key]
            with contextlib.suppress(Exception):
                db.execute(f"ROLLBACK TO SAVEPOINT {name}")
                db.execute(f"RELEASE SAVEPOINT {name}")
            raise
        else:
            db.execute(f"RELEASE SAVEPOINT {name}")
        finally:
            db._savepoints -= 1
        return
    db.begin()
    try:
        yield db
    except BaseException:
        db.rollback()
        raise
    else:
        try:
            db.commit()
        except BaseException:
            db.rollback()
            raise


# Reservations, feeds and decisions read and then write: the name says why they need it.
immediate = atomic


def retrying(work: Callable[[], object], attempts: int = 8, before_retry=None):
    """Run ``work`` (a whole unit of work) again when it lost a race; count each retry.

    After ``attempts`` it gives up with ``DatabaseBusy``.
    """
    for attempt in range(attempts):
        try:
            return work()
        except Retry as exc:
            STATS[f"retry_{exc.cause}"] += 1
            STATS["retries"] += 1
            if before_retry is not None:
                before_retry()
            if attempt == attempts - 1:
                raise DatabaseBusy(
                    f"the request lost {attempts} races for the same rows ({exc.cause})"
                ) from exc
            time.sleep(random.uniform(0, 0.005 * 2**attempt))
    raise AssertionError("unreachable")
