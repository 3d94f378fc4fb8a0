"""Logger presence end to end: retained status messages through Mosquitto and the worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from coldchain.services import accounts
from tests.conftest import World
from tests.e2e.test_pipeline import eventually
from tests.support.processes import ColdchainProcess, Mosquitto

pytestmark = pytest.mark.e2e

# A logger that announces itself and leaves a Last Will, as devices/logger.py does.
LOGGER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import paho.mqtt.client as mqtt
    port, topic = int(sys.argv[1]), sys.argv[2]
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=sys.argv[3],
                         protocol=mqtt.MQTTv5)
    client.will_set(topic, "offline", qos=1, retain=True)
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    client.publish(topic, "online", qos=1, retain=True).wait_for_publish(10)
    print("online", flush=True)
    time.sleep(600)
    """
)


@pytest.fixture
def logger_id(sessions: sessionmaker[Session], broker: Mosquitto) -> Iterator[str]:
    """A logger of this test only, whose retained status is cleared afterwards."""
    # The broker is shared by the whole test session: a retained status left behind would
    # reach every later worker, as an unknown logger in their databases.
    name = f"PRES-{uuid.uuid4().hex[:8]}"
    accounts.add_logger(sessions=sessions, logger_id=name)
    yield name
    retain(broker, status_topic(name), b"")


def status_topic(logger_id: str) -> str:
    return f"coldchain/v1/loggers/{logger_id}/status"


def retain(broker: Mosquitto, topic: str, payload: bytes) -> None:
    """Publish a retained QoS 1 message with mosquitto_pub (empty: clear the retained one)."""
    command = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-r"]
    command += ["-t", topic, "-n"] if not payload else ["-t", topic, "-m", payload.decode()]
    subprocess.run(command, check=True, timeout=10)


def presence(client: FlaskClient, world: World, logger_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/loggers/{logger_id}", headers=world.auth("coord"))
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def test_retained_online_then_offline_shows_in_the_api(
    worker: ColdchainProcess,
    broker: Mosquitto,
    client: FlaskClient,
    world: World,
    logger_id: str,
) -> None:
    assert presence(client, world, logger_id)["online"] is None
    retain(broker, status_topic(logger_id), b"online")
    online = eventually(lambda: (p := presence(client, world, logger_id))["online"] is True and p)
    assert online["status_at"].endswith("Z")
    retain(broker, status_topic(logger_id), b"offline")
    offline = eventually(lambda: (p := presence(client, world, logger_id))["online"] is False and p)
    assert offline["status_at"] >= online["status_at"]
    listed = client.get("/api/v1/loggers", headers=world.auth("qa")).get_json()
    assert next(r for r in listed if r["id"] == logger_id)["online"] is False


def test_a_killed_logger_goes_offline_by_its_last_will_and_a_new_worker_reads_the_retained_state(
    worker_env: dict[str, str],
    broker: Mosquitto,
    client: FlaskClient,
    world: World,
    logger_id: str,
    tmp_path: Path,
) -> None:
    device = subprocess.Popen(
        [sys.executable, "-c", LOGGER_SCRIPT, str(broker.port), status_topic(logger_id), logger_id],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": ""},
    )
    try:
        assert device.stdout is not None and device.stdout.readline().strip() == "online"
        # The worker starts after the logger announced itself: the retained message tells it.
        process = ColdchainProcess(["ingest"], worker_env, tmp_path / "worker.log").start()
        try:
            process.wait_for_log("connected to", timeout_s=20)
            eventually(lambda: presence(client, world, logger_id)["online"] is True)
            # kill -9: no DISCONNECT, so the broker publishes the logger's Last Will.
            os.kill(device.pid, signal.SIGKILL)
            device.wait(10)
            eventually(lambda: presence(client, world, logger_id)["online"] is False)
        finally:
            assert process.stop() == 0, process.log()
    finally:
        if device.poll() is None:
            device.kill()
            device.wait(10)
        assert device.stdout is not None
        device.stdout.close()
