"""Two workers on the shared subscription, one killed with -9 at a time: nothing lost."""

from __future__ import annotations

import os
import re
import signal
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
from tests.support.processes import ColdchainProcess, Mosquitto, process_tree

pytestmark = pytest.mark.faults

LOGGERS = ["L-1", "L-2", "L-3", "L-4"]


def worker_pid(supervisor: ColdchainProcess, index: int) -> int:
    """The pid of the latest start of worker `index` (from the supervisor's log)."""
    return int(re.findall(rf"worker {index} started \(pid (\d+)\)", supervisor.log())[-1])


def test_one_of_two_shared_subscription_workers_killed_loses_and_duplicates_nothing(
    fault_broker: Mosquitto,
    fault_env: dict[str, str],
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    supervisor = ColdchainProcess(
        ["ingest", "--workers", "2"], fault_env, tmp_path / "workers.log"
    ).start()
    loggers = []
    try:
        eventually(lambda: supervisor.log().count("connected to") == 2, timeout_s=30)
        loggers = start_loggers(fault_broker.url, LOGGERS, interval_s=0.02, ack_timeout_s=1.5)
        for kill, index in enumerate((2, 1, 2), start=1):
            before = stored_count(sessions, LOGGERS)
            eventually(lambda b=before: stored_count(sessions, LOGGERS) > b + 100, timeout_s=30)
            # The worker and its ack helper die at once, as in a crash of that process.
            for pid in process_tree(worker_pid(supervisor, index)):
                os.kill(pid, signal.SIGKILL)
            supervisor.wait_for_log(f"worker {index} exited with -9")
            # The other worker goes on storing while this one is down...
            before = stored_count(sessions, LOGGERS)
            eventually(lambda b=before: stored_count(sessions, LOGGERS) > b + 20, timeout_s=30)
            # ...and the supervisor starts it again; it takes back its session's messages.
            eventually(lambda n=kill: supervisor.log().count("connected to") >= 2 + n, timeout_s=30)
        wait_all_stored(sessions, loggers)
    finally:
        for sim in loggers:
            sim.stop()
        code = supervisor.stop()
    assert code == 0, supervisor.log()
    account("one of two workers killed -9 three times", loggers, sessions)


def test_a_worker_that_dies_for_good_has_its_share_brought_through_the_other_by_resends(
    fault_broker: Mosquitto,
    fault_env: dict[str, str],
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    # Two hosts, one worker each; the second host dies and does not come back. The broker
    # keeps queueing the dead worker's share for its session (until it expires), and the
    # loggers' resends of what was never acked reach the living worker in turn.
    workers = [
        start_worker(
            fault_env, tmp_path / f"w{index}.log", ["ingest", "--worker-index", str(index)]
        )
        for index in (1, 2)
    ]
    loggers = []
    try:
        loggers = start_loggers(fault_broker.url, LOGGERS, interval_s=0.02, ack_timeout_s=1.0)
        eventually(lambda: stored_count(sessions, LOGGERS) > 200, timeout_s=30)
        kill_tree(workers[1])
        before = stored_count(sessions, LOGGERS)
        eventually(lambda: stored_count(sessions, LOGGERS) > before + 300, timeout_s=30)
        wait_all_stored(sessions, loggers, timeout_s=60)
    finally:
        for sim in loggers:
            sim.stop()
        code = workers[0].stop()
    assert code == 0, workers[0].log()
    account("one of two workers killed -9 for good", loggers, sessions)
