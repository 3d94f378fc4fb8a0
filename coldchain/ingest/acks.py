"""End-to-end acks published from a process of their own, beside the worker.

The contract asks for one QoS 1 ack per committed message. Published by the worker itself,
each is a PUBLISH to write and a PUBACK to read in paho's Python code, in the same thread
that receives and stores the readings: a third of the worker's time at one reading per
message. Here the worker hands each batch's acks, after its commit, through a pipe to a
small process with its own MQTT connection, which runs on the other core.

Nothing is weakened: an ack still leaves only after its readings are committed. If this
process dies or the broker drops its connection, the acks it held are lost, and the loggers
resend those readings after their timeout; storage is idempotent, so a resent reading
changes nothing and is acked again. A pipe that fills up (the broker slower than the
worker) makes the worker wait: acks never pile up without bound.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import ssl
import uuid
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from coldchain.ingest.client import Client
from coldchain.ingest.mqtturl import parse_mqtt_url

log = logging.getLogger(__name__)

Ack = tuple[str, str]  # (topic, JSON body)
# How long a stopping sender waits for the broker to take the acks it still holds.
DRAIN_S = 5.0


class AckSender:
    """The worker's side: start the ack process, hand it batches, restart it if it died."""

    def __init__(
        self,
        mqtt_url: str,
        protocol: MQTTProtocolVersion,
        client_id: str,
        *,
        ca_file: str | None = None,
    ) -> None:
        self._args = (mqtt_url, int(protocol), client_id)
        self._ca_file = ca_file
        self._context = multiprocessing.get_context("spawn")
        self._process: Any = None
        self._pipe: Connection | None = None

    def start(self) -> None:
        """Start the ack process (a fresh interpreter: nothing of the worker is copied)."""
        receiving, sending = self._context.Pipe(duplex=False)
        self._process = self._context.Process(
            target=run_ack_process,
            args=(*self._args, receiving, self._ca_file),
            name="coldchain-acks",
            daemon=True,
        )
        self._process.start()
        receiving.close()
        self._pipe = sending

    def send(self, acks: Sequence[Ack]) -> None:
        """Hand a committed batch's acks to the ack process (restarting it if it died)."""
        if not acks:
            return
        if self._process is None or not self._process.is_alive():
            if self._process is not None:
                log.warning(
                    "ack process exited (%s); starting another: loggers resend what it held",
                    self._process.exitcode,
                )
                self._close_pipe()
            self.start()
        assert self._pipe is not None
        try:
            self._pipe.send(list(acks))
        except (BrokenPipeError, EOFError, OSError) as exc:
            log.warning("ack process unreachable (%s); these acks are lost, loggers resend", exc)
            self._close_pipe()
            self._process = None

    def stop(self) -> None:
        """Let the ack process publish what it holds, then end it."""
        if self._process is None:
            return
        try:
            if self._pipe is not None:
                self._pipe.send(None)
        except (BrokenPipeError, OSError):
            pass
        self._process.join(DRAIN_S + 5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        self._close_pipe()
        self._process = None

    def _close_pipe(self) -> None:
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None


def _fit_in_flight_window(
    client: mqtt.Client, _userdata: Any, _flags: Any, _reason: Any, properties: Any
) -> None:
    assert isinstance(client, Client)
    client.fit_in_flight_window(properties)


def run_ack_process(
    mqtt_url: str, protocol: int, client_id: str, pipe: Connection, ca_file: str | None = None
) -> None:
    """Publish each batch read from the pipe at QoS 1 until told to stop or the worker is gone."""
    # Ctrl-C and SIGTERM reach the whole process group: the worker decides when this ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    address = parse_mqtt_url(mqtt_url)
    version = MQTTProtocolVersion(protocol)
    client = Client(
        CallbackAPIVersion.VERSION2,
        # Its own id: the worker's id holds the persistent session of the readings.
        client_id=f"{client_id}-acks-{uuid.uuid4().hex[:6]}",
        protocol=version,
    )
    # Unlimited queue while disconnected: the acks wait for the reconnect, not the worker.
    client.max_queued_messages_set(0)
    if address.username:
        client.username_pw_set(address.username, address.password)
    if address.tls:
        client.tls_set(ca_certs=ca_file, cert_reqs=ssl.CERT_REQUIRED)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    client.on_connect = _fit_in_flight_window
    client.connect_async(address.host, address.port, keepalive=30)
    client.loop_start()
    last: mqtt.MQTTMessageInfo | None = None
    try:
        while True:
            try:
                batch = pipe.recv()
            except (EOFError, OSError):
                return  # the worker is gone; what it sent last is lost and will be resent
            if batch is None:
                if last is not None and client.is_connected():
                    try:
                        last.wait_for_publish(DRAIN_S)
                    except (RuntimeError, ValueError):
                        pass
                return
            # A batch's publishes leave in one write, not one each.
            with client.corked():
                for topic, body in batch:
                    last = client.publish(topic, body, qos=1)
    finally:
        client.disconnect()
        client.loop_stop()
