"""End-to-end acks go out from a process of the worker's own, which the worker looks after."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from tests.conftest import World
from tests.e2e.test_pipeline import eventually
from tests.e2e.test_worker_lifecycle import pack, stored
from tests.support.mqtt import Collector, publish_paho, readings_topic
from tests.support.processes import ColdchainProcess, Mosquitto, process_tree

pytestmark = pytest.mark.e2e


def ack_processes(worker: ColdchainProcess) -> list[int]:
    """The worker's ack publishers (spawned by multiprocessing; not its resource tracker)."""
    assert worker.process is not None
    pids = []
    for pid in process_tree(worker.process.pid)[1:]:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            pids.append(pid)
    return pids


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def test_a_killed_ack_process_is_replaced_and_the_next_acks_arrive(
    broker: Mosquitto,
    worker_env: dict[str, str],
    tmp_path: Path,
    client: FlaskClient,
    world: World,
) -> None:
    acks = Collector(broker, "coldchain/v1/loggers/L-1/ack")
    worker = ColdchainProcess(["ingest"], worker_env, tmp_path / "w.log").start()
    try:
        worker.wait_for_log("connected to")
        t = round(time.time()) - 600
        publish_paho(broker, readings_topic("L-1"), pack("L-1", t, 10))
        eventually(lambda: len(acks.snapshot()) == 1)
        assert acks.snapshot()[0][1] == {"first": t, "last": t + 9, "count": 10}
        (first,) = ack_processes(worker)
        os.kill(first, signal.SIGKILL)
        eventually(lambda: not alive(first))
        # The readings are stored whatever became of the ack process; the next batch's
        # acks start a new one.
        publish_paho(broker, readings_topic("L-1"), pack("L-1", t + 100, 5))
        eventually(lambda: stored(client, world) == 15)
        eventually(lambda: len(acks.snapshot()) == 2)
        assert acks.snapshot()[1][1] == {"first": t + 100, "last": t + 104, "count": 5}
        (second,) = ack_processes(worker)
        assert second != first
        assert "ack process exited" in worker.log()
    finally:
        acks.close()
        code = worker.stop()
    assert code == 0, worker.log()
    # Stopping the worker ends its ack process too: nothing is left behind.
    eventually(lambda: not alive(second), timeout_s=5)


def test_acks_still_come_from_the_worker_when_the_ack_process_is_off(
    broker: Mosquitto,
    worker_env: dict[str, str],
    tmp_path: Path,
) -> None:
    acks = Collector(broker, "coldchain/v1/loggers/L-2/ack")
    env = {**worker_env, "COLDCHAIN_INGEST_ACK_PROCESS": "false"}
    worker = ColdchainProcess(["ingest"], env, tmp_path / "w.log").start()
    try:
        worker.wait_for_log("connected to")
        t = round(time.time()) - 600
        publish_paho(broker, readings_topic("L-2"), pack("L-2", t, 3))
        eventually(lambda: len(acks.snapshot()) == 1)
        assert acks.snapshot()[0][1] == {"first": t, "last": t + 2, "count": 3}
        assert ack_processes(worker) == []
    finally:
        acks.close()
        assert worker.stop() == 0, worker.log()


def test_the_ack_process_exits_when_the_worker_is_killed(
    broker: Mosquitto,
    worker_env: dict[str, str],
    tmp_path: Path,
) -> None:
    acks = Collector(broker, "coldchain/v1/loggers/L-3/ack")
    worker = ColdchainProcess(["ingest"], worker_env, tmp_path / "w.log").start()
    try:
        worker.wait_for_log("connected to")
        publish_paho(broker, readings_topic("L-3"), pack("L-3", round(time.time()) - 600, 1))
        eventually(lambda: len(acks.snapshot()) == 1)
        (helper,) = ack_processes(worker)
        assert worker.process is not None
        worker.process.kill()
        worker.process.wait(10)
        # Its pipe closes with the worker: the helper ends instead of lingering as an orphan.
        eventually(lambda: not alive(helper), timeout_s=10)
    finally:
        acks.close()
        worker.stop()  # closes its log; the process is already gone
