"""Several worker processes behind one broker: each reading stored once, sessions retired."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from flask.testing import FlaskClient
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.conftest import World, make_coi
from tests.e2e.test_pipeline import eventually
from tests.e2e.test_worker_lifecycle import stored
from tests.support.mqtt import readings_topic
from tests.support.processes import ColdchainProcess, Mosquitto

pytestmark = pytest.mark.e2e

LOGGERS = [f"L-{n}" for n in range(1, 6)]


def connect(broker: Mosquitto, client_id: str, *, expiry_s: int = 600) -> tuple[mqtt.Client, bool]:
    """Connect with a persistent MQTT 5 session; return the client and `session present`."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
    )
    present: list[bool] = []
    connected = threading.Event()

    def on_connect(_c: mqtt.Client, _u: object, flags: object, _rc: object, _p: object) -> None:
        present.append(bool(flags.session_present))  # type: ignore[attr-defined]
        connected.set()

    client.on_connect = on_connect
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = expiry_s
    client.connect("127.0.0.1", broker.port, clean_start=False, properties=properties)
    client.loop_start()
    assert connected.wait(10)
    return client, present[0]


def publish_all(broker: Mosquitto, messages: list[tuple[str, str]]) -> None:
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"pub-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv5,
    )
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(timeout=20)
    finally:
        client.disconnect()
        client.loop_stop()


def one_reading_each(t0: int, count: int, value: float = -190.0) -> list[tuple[str, str]]:
    """`count` messages of one reading, spread over the loggers, one second apart each."""
    return [
        (
            readings_topic(logger_id),
            json.dumps(
                [
                    {
                        "bn": f"urn:dev:logger:{logger_id}:",
                        "n": "temp",
                        "u": "Cel",
                        "t": t0 + k,
                        "v": value,
                    }
                ]  # fmt: skip
            ),
        )
        for k in range(count)
        for logger_id in LOGGERS
    ]


def test_two_workers_share_the_load_and_store_each_reading_once(
    broker: Mosquitto,
    worker_env: dict[str, str],
    tmp_path: Path,
    client: FlaskClient,
    world: World,
) -> None:
    # L-1 is monitored: an out-of-range run arrives as single-reading messages that the
    # two workers take in turns, and must still make exactly one excursion.
    created = client.post(
        "/api/v1/shipments",
        json={
            "coi": make_coi(5),
            "profile": "LN2_VAPOR",
            "origin_site": "MFG-1",
            "destination_site": "TC-1",
            "loggers": ["L-1"],
            "patient": {"mrn": "1"},
            "monitoring_from": "2020-01-01T00:00:00Z",
        },
        headers=world.auth("coord"),
    )
    assert created.status_code == 201
    workers = ColdchainProcess(
        ["ingest", "--workers", "2"], worker_env, tmp_path / "workers.log"
    ).start()
    try:
        for index in (1, 2):
            workers.wait_for_log(f"worker {index} started")
        eventually(lambda: workers.log().count("connected to") == 2)
        t0 = round(time.time()) - 300
        messages = one_reading_each(t0, 40)
        messages += [(topic, body.replace("-190.0", "-120.0")) for topic, body in
                     one_reading_each(t0 + 40, 20)]  # fmt: skip
        messages += one_reading_each(t0 + 60, 20)
        publish_all(broker, messages)
        # The same messages again (a logger resending): nothing changes.
        publish_all(broker, messages[:50])
        eventually(lambda: stored(client, world) == len(LOGGERS) * 80, timeout_s=30)
        excursions = client.get(
            f"/api/v1/shipments/{created.get_json()['id']}/excursions", headers=world.auth("qa")
        ).get_json()
        assert [(e["kind"], e["status"], e["duration_s"]) for e in excursions] == [
            ("HIGH", "CLOSED", 20.0)
        ]
    finally:
        assert workers.stop() == 0
    log = workers.log()
    assert f"{worker_env['COLDCHAIN_INGEST_CLIENT_ID']}-2 stopped" in log
    assert "all 2 workers stopped" in log


def test_a_worker_no_longer_run_has_its_queued_messages_stored_and_its_session_ended(
    broker: Mosquitto,
    worker_env: dict[str, str],
    tmp_path: Path,
    client: FlaskClient,
    world: World,
) -> None:
    base = worker_env["COLDCHAIN_INGEST_CLIENT_ID"]
    topic = worker_env["COLDCHAIN_INGEST_READINGS_TOPIC"]
    # Workers 1 and 2 once ran and subscribed; now they are stopped but their sessions live.
    for index in (1, 2):
        member, _present = connect(broker, f"{base}-{index}")
        member.subscribe(topic, qos=1)
        time.sleep(0.3)
        member.disconnect()
        member.loop_stop()
    # The broker queues these for the two stopped sessions, in turns.
    publish_all(broker, one_reading_each(round(time.time()) - 600, 10))
    worker = ColdchainProcess(["ingest", "--workers", "1"], worker_env, tmp_path / "w.log").start()
    try:
        worker.wait_for_log(f"draining the session of retired worker {base}-2")
        eventually(lambda: stored(client, world) == len(LOGGERS) * 10, timeout_s=30)
    finally:
        assert worker.stop() == 0
    retired, present = connect(broker, f"{base}-2", expiry_s=0)
    retired.disconnect()
    retired.loop_stop()
    assert not present, "the retired worker's session should have been ended"


def test_a_worker_that_dies_is_started_again(worker_env: dict[str, str], tmp_path: Path) -> None:
    workers = ColdchainProcess(
        ["ingest", "--workers", "2"], worker_env, tmp_path / "workers.log"
    ).start()
    try:
        workers.wait_for_log("worker 2 started")
        eventually(lambda: workers.log().count("connected to") == 2)
        pid = int(workers.log().split("worker 2 started (pid ")[1].split(")")[0])
        import os
        import signal

        os.kill(pid, signal.SIGKILL)
        workers.wait_for_log("worker 2 exited with -9")
        eventually(lambda: workers.log().count("worker 2 started") == 2, timeout_s=10)
        eventually(lambda: workers.log().count("connected to") == 3)
    finally:
        assert workers.stop() == 0
