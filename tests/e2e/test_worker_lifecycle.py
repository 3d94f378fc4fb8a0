"""The worker keeps its session across restarts and reconnects after a broker restart."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from tests.conftest import World
from tests.e2e.test_pipeline import eventually
from tests.support.mqtt import Collector, publish_paho, readings_topic
from tests.support.processes import ColdchainProcess, Mosquitto

pytestmark = pytest.mark.e2e


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path).start()
    yield broker
    broker.stop()


def pack(logger_id: str, t: float, n: int) -> str:
    return json.dumps(
        [
            {
                "bn": f"urn:dev:logger:{logger_id}:",
                "bu": "Cel",
                "bt": t,
                "n": "temp",
                "t": i,
                "v": -190,
            }
            for i in range(n)
        ]
    )


def stored(client: FlaskClient, world: World) -> int:
    text = client.get("/metrics").get_data(as_text=True)
    line = next(x for x in text.splitlines() if x.startswith("coldchain_readings_stored_total"))
    return int(float(line.split()[1]))


def test_messages_published_while_the_worker_is_down_are_stored_when_it_returns(
    broker: Mosquitto,
    worker_env: dict[str, str],
    tmp_path: Path,
    client: FlaskClient,
    world: World,
) -> None:
    first = ColdchainProcess(["ingest"], worker_env, tmp_path / "w1.log").start()
    first.wait_for_log("connected to")
    assert first.stop() == 0
    t = round(time.time()) - 600
    for k in range(5):
        publish_paho(broker, readings_topic("L-1"), pack("L-1", t + 10 * k, 10))
    second = ColdchainProcess(["ingest"], worker_env, tmp_path / "w2.log").start()
    try:
        eventually(lambda: stored(client, world) == 50)
    finally:
        assert second.stop() == 0


def test_on_mqtt_3_1_1_the_session_is_kept_and_each_message_acked_after_commit(
    own_broker: Mosquitto,
    worker_env: dict[str, str],
    tmp_path: Path,
    client: FlaskClient,
    world: World,
) -> None:
    # The demo's embedded broker speaks 3.1.1 only: clean_session false keeps the session,
    # and the $share prefix of the configured topic is dropped.
    env = {**worker_env, "COLDCHAIN_MQTT_URL": own_broker.url, "COLDCHAIN_MQTT_PROTOCOL": "3.1.1"}
    first = ColdchainProcess(["ingest"], env, tmp_path / "w1.log").start()
    first.wait_for_log("connected to 127.0.0.1")
    assert "(MQTT 3.1.1)" in first.log()
    assert first.stop() == 0
    acks = Collector(own_broker, "coldchain/v1/loggers/L-4/ack")
    t = round(time.time()) - 600
    for k in range(3):
        publish_paho(own_broker, readings_topic("L-4"), pack("L-4", t + 10 * k, 10))
    second = ColdchainProcess(["ingest"], env, tmp_path / "w2.log").start()
    try:
        eventually(lambda: stored(client, world) == 30)
        eventually(lambda: len(acks.snapshot()) == 3)
        assert sorted(body["first"] for _, body in acks.snapshot()) == [t, t + 10, t + 20]
    finally:
        acks.close()
        assert second.stop() == 0, second.log()


def test_a_bad_mqtt_protocol_setting_is_a_clear_error(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**worker_env, "COLDCHAIN_MQTT_PROTOCOL": "4"}
    process = ColdchainProcess(["ingest"], env, tmp_path / "w.log").start()
    assert process.wait() == 1
    assert "mqtt_protocol must be one of 5, 3.1.1, not '4'" in process.log()


def test_the_worker_reconnects_after_the_broker_restarts(
    own_broker: Mosquitto,
    worker_env: dict[str, str],
    tmp_path: Path,
    client: FlaskClient,
    world: World,
) -> None:
    env = {**worker_env, "COLDCHAIN_MQTT_URL": own_broker.url}
    worker = ColdchainProcess(["ingest"], env, tmp_path / "w.log").start()
    try:
        worker.wait_for_log("connected to")
        t = round(time.time()) - 600
        publish_paho(own_broker, readings_topic("L-2"), pack("L-2", t, 5))
        eventually(lambda: stored(client, world) == 5)
        own_broker.stop()
        worker.wait_for_log("connection lost")
        own_broker.start()
        eventually(lambda: worker.log().count("connected to") >= 2, timeout_s=40)
        publish_paho(own_broker, readings_topic("L-2"), pack("L-2", t + 100, 5))
        eventually(lambda: stored(client, world) == 10)
    finally:
        assert worker.stop() == 0, worker.log()
