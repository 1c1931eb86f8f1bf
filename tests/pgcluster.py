"""A PostgreSQL server of the suite's own, for tests that stop or restart one.

Those tests never touch the machine's server: they initialise a cluster in a temporary
directory (Debian's ``initdb`` and ``pg_ctl``) on a free port of 127.0.0.1, with its
socket in that directory, and remove it afterwards. PostgreSQL refuses to run as root,
so as root the cluster belongs to the ``postgres`` user, as the packaged server does.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.servers import free_port


def _tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def why_not() -> str | None:
    """Why no cluster of our own can be started here, or None when one can."""
    if _tool("initdb") is None or _tool("pg_ctl") is None:
        return "PostgreSQL's initdb and pg_ctl are not installed"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root with no postgres user to own a cluster"
        if shutil.which("runuser") is None:
            return "running as root without runuser"
    return None


class Cluster:
    """A running cluster: ``url(name)`` for a database on it, ``restart()`` and ``stop()``."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="dom-test-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.log = self.dir / "server.log"
        self._as_user = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]
        self._run(
            _tool("initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        )
        self.start()

    def _run(self, *command) -> None:
        subprocess.run([*self._as_user, *command], check=True, capture_output=True, timeout=120)

    def _pg_ctl(self, *args) -> None:
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            _tool("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", *args
        )

    def start(self) -> None:
        self._pg_ctl("start")

    def restart(self) -> None:
        """Restart it as an operator would in a hurry: open connections are cut."""
        self._pg_ctl("restart", "-m", "fast")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self._pg_ctl("stop", "-m", "immediate")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new, empty database on this cluster; its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def own_cluster():
    """A cluster of the suite's own for the block; removed after it."""
    cluster = Cluster()
    try:
        yield cluster
    finally:
        cluster.remove()
