"""Real servers for tests: `dom serve` with gunicorn worker processes on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log_path(name: str) -> Path:
    """Where a process started by the tests writes its log (scanned at the end of the run)."""
    folder = Path(os.environ.get("DOM_TEST_LOG_DIR") or tempfile.gettempdir())
    return folder / f"{name}-{os.getpid()}.log"


def start_dom(command: str, env: dict, log_name: str) -> subprocess.Popen:
    """Start `dom COMMAND`, its stderr appended to its log file."""
    with open(log_path(log_name), "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "app.edges.cli", command],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


@contextlib.contextmanager
def serving(database_path: str, workers: int = 3, **settings):
    """Run `dom serve` on a free port until the block ends; yield the port.

    ``settings`` are extra ``DOM_*`` variables, named without the prefix.
    """
    port = free_port()
    env = {
        **os.environ,
        "DOM_DATABASE": database_path,
        "DOM_PORT": str(port),
        "DOM_WORKERS": str(workers),
        **{f"DOM_{name}": str(value) for name, value in settings.items()},
    }
    server = start_dom("serve", env, f"serve-{port}")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.1)
        yield port
    finally:
        server.terminate()
        server.wait(10)


@contextlib.contextmanager
def several(database_path: str, count: int, workers: int = 2, **settings):
    """Run ``count`` `dom serve` processes on one database; yield their ports."""
    with contextlib.ExitStack() as stack:
        yield [
            stack.enter_context(serving(database_path, workers, **settings)) for _ in range(count)
        ]


@contextlib.contextmanager
def dispatching(database_path: str, count: int = 1, **settings):
    """Run ``count`` `dom dispatch` processes until the block ends; yield them."""
    env = {
        **os.environ,
        "DOM_DATABASE": database_path,
        **{f"DOM_{name}": str(value) for name, value in settings.items()},
    }
    workers = [start_dom("dispatch", env, f"dispatch-{number}") for number in range(count)]
    try:
        yield workers
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(15)


def wait_for(condition, seconds: float = 30.0, every: float = 0.05) -> bool:
    """Poll until ``condition()`` is true or the time is up; return its last answer."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True


def _request(port: int, key: str, method: str, path: str, body=None):
    return urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )


def call(port: int, key: str, method: str, path: str, body=None):
    """Send a JSON request with a key; return the decoded JSON answer."""
    with urllib.request.urlopen(_request(port, key, method, path, body), timeout=30) as response:
        return json.loads(response.read())


def status_of(port: int, key: str, method: str, path: str, body=None) -> int:
    """Send a JSON request with a key; return the HTTP status, errors included."""
    try:
        with urllib.request.urlopen(_request(port, key, method, path, body), timeout=60) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


class Proxy:
    """A TCP proxy on 127.0.0.1 to a server (a database, a broker): stop it and the server
    is unreachable (connections refused, open ones cut), start it and it is back, at the
    same port."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.port = free_port()
        self.sockets: list[socket.socket] = []
        self.start()

    def start(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self.running:
            try:
                client, _ = self.listener.accept()
                server = socket.create_connection(self.target)
            except OSError:
                return
            self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.close()

    def cut(self) -> None:
        """Close every open connection, as a server does to one it gave up on; new ones
        still go through."""
        for end in self.sockets:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
                end.close()
        self.sockets = []

    def stop(self) -> None:
        self.running = False
        # shutdown wakes the thread blocked in accept(); close alone would leave it listening.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for end in self.sockets:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
                end.close()
        self.sockets = []
