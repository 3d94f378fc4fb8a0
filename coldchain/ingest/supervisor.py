"""`coldchain ingest --workers N`: run N worker processes and keep them running."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType

log = logging.getLogger(__name__)

# A worker that dies is started again after a pause that doubles up to this, so a worker
# that cannot start (a database that is away) does not spin.
MAX_RESTART_BACKOFF_S = 30.0
# A worker that ran this long before dying had been healthy: its next restart is quick.
HEALTHY_AFTER_S = 60.0
STOP_TIMEOUT_S = 30.0


class Child:
    """One worker process and its restart state."""

    def __init__(self, index: int, argv: Sequence[str]):
        self.index = index
        self.argv = list(argv)
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.backoff_s = 1.0
        self.restart_at = 0.0

    def start(self) -> None:
        self.process = subprocess.Popen(self.argv, env=os.environ.copy())
        self.started = time.monotonic()
        log.info("worker %d started (pid %d)", self.index, self.process.pid)

    def check(self, now: float) -> None:
        """Start the process again if it died, after its backoff."""
        if self.process is None:
            if now >= self.restart_at:
                self.start()
            return
        code = self.process.poll()
        if code is None:
            return
        ran_s = now - self.started
        if ran_s > HEALTHY_AFTER_S:
            self.backoff_s = 1.0
        log.error(
            "worker %d exited with %d after %.0fs; restarting in %.0fs",
            self.index,
            code,
            ran_s,
            self.backoff_s,
        )
        self.process = None
        self.restart_at = now + self.backoff_s
        self.backoff_s = min(self.backoff_s * 2, MAX_RESTART_BACKOFF_S)

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def wait(self, deadline: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.error("worker %d did not stop in time: killed", self.index)
            self.process.kill()
            self.process.wait()


def worker_argv(index: int, *, verbose: bool) -> list[str]:
    """The command line of worker process `index`."""
    flags = ["-v"] if verbose else []
    return [sys.executable, "-m", "coldchain", *flags, "ingest", "--worker-index", str(index)]


def supervise(workers: int, *, verbose: bool) -> None:
    """Run worker processes 1..`workers` until SIGTERM or SIGINT, restarting any that dies.

    Each worker stops after its current batch when told: what it has not acknowledged is
    delivered again by the broker, to it or to another member of the shared subscription.
    """
    stopping = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping %d workers", signum, workers)
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    children = [Child(i, worker_argv(i, verbose=verbose)) for i in range(1, workers + 1)]
    try:
        for child in children:
            child.start()
        while not stopping.wait(0.5):
            now = time.monotonic()
            for child in children:
                child.check(now)
    finally:
        for child in children:
            child.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for child in children:
            child.wait(deadline)
        log.info("all %d workers stopped", workers)
