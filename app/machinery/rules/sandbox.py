"""Evaluations under a budget: the engine runs in a child process that can be killed.

The validator keeps every known way to hang or crash durable-rules out of stored
rulesets and drafts, but a validator can always miss something, and the engine's C
code cannot be interrupted from Python. So each serving process evaluates in one
child process of its own:

- a wall-clock budget (``EVALUATION_TIMEOUT_SECONDS``): past it the child is killed
  and replaced, and the caller gets ``BudgetExceeded`` (503
  ``evaluation_budget_exceeded``) instead of a worker held until gunicorn kills it;
- a memory budget (``EVALUATION_MEMORY_MB``, the child's address-space limit);
- compiled drafts live only in the child, which is replaced after compiling
  ``DRAFTS_PER_CHILD`` of them, so drafts never accumulate in a serving process.

The child compiles each version once (under its engine name) and keeps it until it
is replaced. Calls are serialised, as the engine's own are.
"""

from __future__ import annotations

import atexit
import os
import resource
import socket
import subprocess
import sys
import threading
from collections import defaultdict
from multiprocessing.connection import Connection
from pathlib import Path

import orjson

from app.machinery.rules.engine import Engine, EngineError, Evaluation
from app.platform.errors import ApiError

DRAFTS_PER_CHILD = 20
# How long a new child may take to start (an interpreter and the engine's imports) before
# its first evaluation: not part of any evaluation's budget, which a busy machine's
# start-up alone could use up.
STARTUP_SECONDS = 30.0
READY = b"ready"


class BudgetExceeded(ApiError):
    """An evaluation ran out of time or memory; the engine behind it was replaced."""

    status = 503
    code = "evaluation_budget_exceeded"


def _serve(connection: Connection, memory_mb: int) -> None:
    """The child: compile and evaluate on request until the parent goes away."""
    memory_bytes = memory_mb * 1024 * 1024
    if memory_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    engine = Engine()
    connection.send_bytes(READY)
    while True:
        try:
            name, document, batch = orjson.loads(connection.recv_bytes())
        except (EOFError, OSError):
            return
        try:
            if not engine.loaded(name):
                engine.load(name, document)
            answer = ["ok", [engine.evaluate(name, facts) for facts in batch]]
        except MemoryError:
            connection.send_bytes(orjson.dumps(["memory", "the evaluation ran out of memory"]))
            os._exit(1)  # the engine's state after a failed allocation is not to be trusted
        except (ValueError, EngineError) as exc:
            answer = [type(exc).__name__, str(exc)]
        except Exception as exc:
            answer = ["EngineError", f"{type(exc).__name__}: {exc}"]
        connection.send_bytes(orjson.dumps(answer))
        if answer[0] == "EngineBroken":
            os._exit(1)  # its sessions could not be cleared: a fresh child takes over


class Sandbox:
    """One evaluation child for this process, started on first use."""

    def __init__(self, timeout: float = 5.0, memory_mb: int = 2048, reports: bool = True):
        self.timeout = timeout
        self.memory_mb = memory_mb
        # Whether this is the process's own engine, whose loaded versions /metrics shows
        # (not one a replay starts for itself).
        self.reports = reports
        self._lock = threading.Lock()
        self._process = None
        self._connection = None
        self._loaded: set[str] = set()
        self._drafts = 0
        self._pid = None
        atexit.register(self.close)

    def close(self) -> None:
        """Stop the child (it also stops by itself when this process ends)."""
        with self._lock:
            self._stop()

    def configure(self, timeout: float, memory_mb: int) -> None:
        """Take the budget from the settings; a child running under another is replaced."""
        with self._lock:
            if (timeout, memory_mb) != (self.timeout, self.memory_mb):
                self.timeout, self.memory_mb = timeout, memory_mb
                self._stop()

    def evaluate(
        self, name: str, document: dict, facts: list[dict], draft: bool = False
    ) -> Evaluation:
        """Evaluate facts under the ruleset ``document`` registered as ``name``."""
        return self.evaluate_many(name, document, [facts], draft)[0]

    def evaluate_many(
        self, name: str, document: dict, batch: list[list[dict]], draft: bool = False
    ) -> list[Evaluation]:
        """Evaluate several sets of facts in one exchange with the child (a replay's):
        the budget is the per-evaluation one times their number; any failure fails all."""
        timeout, memory_mb = self.timeout * max(1, len(batch)), self.memory_mb
        with self._lock:
            if self._pid != os.getpid():  # a forked worker must not share its parent's child
                self._forget()
            if draft and name not in self._loaded and self._drafts >= DRAFTS_PER_CHILD:
                self._stop()
            if self._process is None:
                self._start(memory_mb)
            fresh = name not in self._loaded
            try:
                # JSON both ways (orjson): facts are plain values, and it is several times
                # quicker than pickling them.
                request = orjson.dumps([name, document if fresh else None, batch])
            except TypeError as exc:
                raise ValueError(f"the facts are not plain JSON values: {exc}") from exc
            try:
                self._connection.send_bytes(request)
                if not self._connection.poll(timeout):
                    self._stop()
                    raise BudgetExceeded(
                        f"the rules took longer than {timeout:g} s; the evaluation was stopped"
                    )
                kind, payload = orjson.loads(self._connection.recv_bytes())
            except (EOFError, OSError, BrokenPipeError):
                self._stop()
                raise BudgetExceeded(
                    "the rules engine stopped during this evaluation (out of memory, or"
                    " a crash); it was replaced"
                ) from None
            if kind == "memory":
                self._stop()
                raise BudgetExceeded(f"the rules needed more than {memory_mb} MB; stopped")
            if fresh:
                self._loaded.add(name)
                self._drafts += int(draft)
                if self.reports:
                    _report_loaded(len(self._loaded) - self._drafts, self._drafts)
            if kind == "ok":
                return [_evaluation(entry) for entry in payload]
            if kind == "ValueError":
                raise ValueError(payload)
            if kind == "EngineBroken":
                self._stop()
            raise EngineError(payload)

    def _start(self, memory_mb: int) -> None:
        # A fresh interpreter (not fork: this process has threads and the engine's state;
        # not multiprocessing's spawn: it would re-run the caller's main script).
        parent, child = socket.socketpair()
        root = str(Path(__file__).resolve().parents[3])
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
        }
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app.machinery.rules.sandbox",
                str(child.fileno()),
                str(memory_mb),
            ],
            pass_fds=[child.fileno()],
            env=env,
            stdin=subprocess.DEVNULL,
        )
        child.close()
        self._connection = Connection(parent.detach())
        self._pid = os.getpid()
        try:
            started = self._connection.poll(STARTUP_SECONDS) and self._connection.recv_bytes()
        except (EOFError, OSError):
            started = None
        if started != READY:
            self._stop()
            raise BudgetExceeded("the rules engine could not be started; try again")

    def _stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(5)
            self._connection.close()
        self._forget()

    def _forget(self) -> None:
        self._process = None
        self._connection = None
        if self._loaded and self.reports:
            _report_loaded(0, 0)
        self._loaded = set()
        self._drafts = 0
        self._pid = os.getpid()


def _report_loaded(versions: int, drafts: int) -> None:
    # Imported here: the engine's child process imports this module and needs no metrics.
    from app.platform import monitoring

    monitoring.engine_loaded(versions, drafts)


def _evaluation(payload: dict) -> Evaluation:
    return Evaluation(
        fired=payload["fired"],
        trace=payload["trace"],
        excluded=defaultdict(list, payload["excluded"]),
        scores=defaultdict(list, payload["scores"]),
        attributes=payload["attributes"],
        item_attributes=payload.get("item_attributes", {}),
        holds=payload["holds"],
        tags=payload["tags"],
        flags=payload["flags"],
    )


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1])), int(sys.argv[2]))
