"""Mosquitto restarted (SIGTERM) and killed (SIGKILL) under load: the loggers make up the rest."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.faults.harness import (
    account,
    eventually,
    start_loggers,
    start_worker,
    stored_count,
    stored_identities,
    wait_all_stored,
)
from tests.support.mqtt import publish_paho, readings_topic
from tests.support.processes import ROOT, Mosquitto

pytestmark = pytest.mark.faults

LOGGERS = ["L-1", "L-2", "L-3", "L-4"]


def test_readings_queued_for_a_stopped_worker_survive_a_kill_after_autosave_and_a_restart(
    fault_broker: Mosquitto,
    fault_env: dict[str, str],
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    # The worker's persistent session exists, then the worker stops: the broker queues.
    start_worker(fault_env, tmp_path / "w0.log").stop()
    t0 = round(time.time()) - 600

    def pack(first: int) -> str:
        records: list[dict[str, object]] = [
            {"bn": "urn:dev:logger:L-5:", "bt": t0 + first, "bu": "Cel", "n": "temp", "v": -190}
        ]
        records += [{"n": "temp", "v": -190.0, "t": i} for i in range(1, 10)]
        return json.dumps(records)

    def saved_at() -> int:
        path = fault_broker.persistence_file
        return path.stat().st_mtime_ns if path.exists() else 0

    publish_paho(fault_broker, readings_topic("L-5"), pack(0))
    publish_paho(fault_broker, readings_topic("L-5"), pack(10))
    saved = saved_at()  # the PUBACKs came: both are queued, and saved at the next autosave
    # After the next autosave (every 5 s), a kill -9 loses nothing of what was saved...
    eventually(lambda: saved_at() > saved, timeout_s=12)
    fault_broker.restart(graceful=False)
    # ...and a graceful stop saves everything as Mosquitto exits.
    fault_broker.restart(graceful=True)
    worker = start_worker(fault_env, tmp_path / "w1.log")
    try:
        eventually(lambda: stored_count(sessions, ["L-5"]) == 20, timeout_s=20)
    finally:
        assert worker.stop() == 0, worker.log()
    assert sorted(t for _, _, t in stored_identities(sessions, ["L-5"])) == [
        (t0 + i) * 1000 for i in range(20)
    ]


def test_broker_restarted_and_killed_while_loggers_publish_loses_and_duplicates_nothing(
    fault_broker: Mosquitto,
    fault_env: dict[str, str],
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    worker = start_worker(fault_env, tmp_path / "worker.log")
    loggers = start_loggers(fault_broker.url, LOGGERS, interval_s=0.02, ack_timeout_s=1.5)
    try:
        for restart, graceful in enumerate((True, False, True, False), start=2):
            before = stored_count(sessions, LOGGERS)
            eventually(lambda b=before: stored_count(sessions, LOGGERS) > b + 100, timeout_s=40)
            fault_broker.restart(graceful=graceful)
            eventually(lambda n=restart: worker.log().count("connected to") >= n, timeout_s=40)
            eventually(lambda: all(sim._client.is_connected() for sim in loggers), timeout_s=40)
        wait_all_stored(sessions, loggers)
    finally:
        for sim in loggers:
            sim.stop()
        code = worker.stop()
    assert code == 0, worker.log()
    account("broker restarted twice and killed -9 twice", loggers, sessions)


def test_the_shipped_broker_config_is_durable() -> None:
    settings = {}
    for line in (ROOT / "config" / "mosquitto.conf").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition(" ")
            settings[key] = value.strip()
    # Sessions and queued messages kept across restarts, saved every few seconds; nothing
    # dropped for a slow or absent worker.
    assert settings["persistence"] == "true"
    assert 0 < int(settings["autosave_interval"]) <= 10
    assert "autosave_on_changes" not in settings
    assert settings["max_queued_messages"] == "0" and settings["max_queued_bytes"] == "0"
    assert settings["max_inflight_messages"] == "0"
