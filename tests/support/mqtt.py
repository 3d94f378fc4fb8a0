"""Publish and subscribe with real MQTT clients (paho and the mosquitto_pub command)."""

from __future__ import annotations

import json
import subprocess
import threading
import uuid
from typing import Any

import paho.mqtt.client as mqtt

from tests.support.processes import Mosquitto


def readings_topic(logger_id: str) -> str:
    return f"coldchain/v1/loggers/{logger_id}/readings"


def publish_paho(broker: Mosquitto, topic: str, payload: bytes | str) -> None:
    """Publish one QoS 1 message with paho and wait for the broker's PUBACK."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"t-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv5,
    )
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        info = client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=10)
        assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def publish_cli(broker: Mosquitto, topic: str, payload: bytes | str) -> None:
    """Publish one QoS 1 message with the mosquitto_pub command."""
    data = payload.encode() if isinstance(payload, str) else payload
    subprocess.run(
        ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-t", topic, "-s"],
        input=data,
        check=True,
        timeout=10,
    )


class Collector:
    """Subscribe to a topic filter and keep every JSON message received."""

    def __init__(self, broker: Mosquitto, topic: str):
        self.messages: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"c-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self._ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert self._ready.wait(10)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, json.loads(msg.payload)))

    def snapshot(self) -> list[tuple[str, Any]]:
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
