"""Processes of the benchmark suite: the worker's counters, signals, peak memory, stopping.

The processes themselves are the test suite's (tests/support/processes.py).
"""

from __future__ import annotations

import os
import signal
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import create_engine

from bench.servers import file_of
from tests.support.processes import ColdchainProcess, process_tree


class Counters:
    """Read the worker's ingest counters (exact across workers: kept in the database)."""

    def __init__(self, url: str):
        self.url = url
        path = file_of(url)
        self._sqlite = sqlite3.connect(path, timeout=30) if path is not None else None
        self._engine = None if path is not None else create_engine(url, pool_size=1)

    def read(self) -> dict[str, int]:
        query = "SELECT name, value FROM ingest_counters"
        if self._sqlite is not None:
            return dict(self._sqlite.execute(query).fetchall())
        assert self._engine is not None
        with self._engine.connect() as conn:
            return {str(k): int(v) for k, v in conn.exec_driver_sql(query).fetchall()}

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
        if self._engine is not None:
            self._engine.dispose()


# --------------------------------------------------------------------------------------------
# Processes


def signal_tree(pids: Sequence[int], signum: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def peak_rss_mb(pid: int) -> float:
    """The peak resident set size of a live process (VmHWM), in MB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return float("nan")
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def stop_all(processes: Sequence[ColdchainProcess]) -> None:
    """Stop processes we started (SIGTERM, then SIGKILL), never raising."""
    for process in processes:
        if process.process is None or process.process.poll() is not None:
            process.stop() if process.process is not None else None
            continue
        try:
            for pid in process_tree(process.process.pid):
                os.kill(pid, signal.SIGCONT)  # a stopped process cannot handle SIGTERM
        except OSError:
            pass
        try:
            process.stop()
        except Exception:  # noqa: BLE001 - cleanup must go on
            process.process.kill()
