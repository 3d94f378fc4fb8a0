"""The worker killed with -9 again and again while loggers publish: nothing lost, nothing twice."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.faults.harness import (
    account,
    eventually,
    kill_tree,
    start_loggers,
    start_worker,
    stored_count,
    wait_all_stored,
)
from tests.support.processes import Mosquitto

pytestmark = pytest.mark.faults

LOGGERS = ["L-1", "L-2", "L-3", "L-4"]
KILLS = 8


def test_a_worker_killed_mid_batch_six_times_loses_and_duplicates_nothing(
    fault_broker: Mosquitto,
    fault_env: dict[str, str],
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    rng = random.Random(8)
    worker = start_worker(fault_env, tmp_path / "worker-0.log")
    loggers = start_loggers(fault_broker.url, LOGGERS, interval_s=0.02, ack_timeout_s=1.5)
    try:
        for kill in range(1, KILLS + 1):
            # Each kill lands while readings stream in: the worker has stored more since the
            # last one, and holds an uncommitted batch or unsent acks at a random moment.
            before = stored_count(sessions, LOGGERS)
            eventually(lambda b=before: stored_count(sessions, LOGGERS) > b + 100, timeout_s=30)
            time.sleep(rng.uniform(0.05, 0.4))
            assert kill_tree(worker) >= 2, "the worker and its ack helper"
            worker = start_worker(fault_env, tmp_path / f"worker-{kill}.log")
        wait_all_stored(sessions, loggers)
    finally:
        for sim in loggers:
            sim.stop()
        code = worker.stop()
    assert code == 0, worker.log()
    account(f"worker killed -9 {KILLS} times", loggers, sessions)
