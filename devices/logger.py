"""One simulated temperature logger: an MQTT v5 client that plays a scenario.

It publishes SenML packs on its readings topic (QoS 1) and announces itself `online`
(retained) on its status topic, with `offline` as its Last Will; on a clean stop it publishes
`offline` itself. With `ack_timeout_s > 0` it keeps every reading until the backend's
end-to-end ack (`{"first", "last", "count"}` on its ack topic) covers the reading's time; once
the oldest has waited `ack_timeout_s`, it resends the whole unacked backlog as one pack. While
offline it only buffers, and sends the backlog as one pack when it is back (store-and-forward).
The buffer is bounded (`buffer_max`); an overflow drops the oldest readings with a warning.
With `ack_timeout_s == 0` nothing is buffered, as for benchmarks.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from devices.scenarios import Reading, Scenario, plan
from devices.senml import encode_packs

log = logging.getLogger(__name__)

TOPIC_ROOT = "coldchain/v1/loggers"
DEFAULT_BUFFER_MAX = 100_000
# Half a millisecond: times travel with ms precision, and floats may differ in the last bits.
ACK_TOLERANCE_S = 0.0005
# A load run keeps at most this many messages waiting for their PUBACK, to bound memory.
MAX_PENDING_PUBLISHES = 1000
KEEPALIVE_S = 30
# How often an offline logger looks whether it is back, to send its backlog.
OFFLINE_POLL_S = 0.5


@dataclass(frozen=True)
class Broker:
    """Where the loggers connect: host, port, optional credentials and TLS, MQTT version."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls: bool = False
    # "5", or "3.1.1" for a broker that speaks nothing newer.
    mqtt_version: str = "5"
    # mqtts:// only: CA certificates (PEM) the broker's certificate must chain to; None: the
    # system's CAs.
    ca_file: str | None = None

    @classmethod
    def from_url(cls, url: str) -> Broker:
        """Parse `mqtt://[user:pass@]host:port` or `mqtts://...`."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError(f"broker URL must start with mqtt:// or mqtts://, not {url!r}")
        if not parts.hostname:
            raise ValueError(f"broker URL has no host: {url!r}")
        tls = parts.scheme == "mqtts"
        port = parts.port or (8883 if tls else 1883)
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        return cls(parts.hostname, port, username, password, tls)


def readings_topic(logger_id: str) -> str:
    """Return the topic a logger publishes its readings on."""
    return f"{TOPIC_ROOT}/{logger_id}/readings"


def status_topic(logger_id: str) -> str:
    """Return the retained presence topic of a logger."""
    return f"{TOPIC_ROOT}/{logger_id}/status"


def ack_topic(logger_id: str) -> str:
    """Return the topic on which the backend acknowledges a logger's readings."""
    return f"{TOPIC_ROOT}/{logger_id}/ack"


def parse_ack(payload: bytes) -> tuple[float, float] | None:
    """Return the (first, last) times of an ack payload, or None if it is not one."""
    try:
        body = json.loads(payload)
        first, last = _ack_time(body["first"]), _ack_time(body["last"])
    except (ValueError, TypeError, KeyError, OverflowError):
        return None
    if first is None or last is None or first > last:
        return None
    return first, last


def _ack_time(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        # The contract writes JSON times as RFC 3339; accept that as well as Unix seconds.
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    return None


class SimLogger:
    """A simulated logger: one MQTT client playing one scenario until stopped."""

    def __init__(
        self,
        logger_id: str,
        broker: Broker,
        scenario: Scenario,
        *,
        ack_timeout_s: float = 30.0,
        buffer_max: int = DEFAULT_BUFFER_MAX,
        out: Callable[[str], None] = print,
    ) -> None:
        self.logger_id = logger_id
        self.broker = broker
        self.scenario = scenario
        self.ack_timeout_s = ack_timeout_s
        self.buffer_max = buffer_max
        self._out = out
        self.connected_once = False
        self._reported_unreachable = False
        self.messages_sent = 0
        self.readings_sent = 0
        self.resends = 0
        self._connected = threading.Event()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        # Unacked readings by time, oldest send first: (reading, monotonic time of last send).
        self._buffer: OrderedDict[float, tuple[Reading, float]] = OrderedDict()
        self._unsent = False
        self._pending_mids: set[int] = set()
        self._early_mids: set[int] = set()
        self._client = self._make_client()

    @property
    def unacked(self) -> int:
        """Return how many sent readings still wait for the backend's ack."""
        with self._lock:
            return len(self._buffer)

    def run(self, stop: threading.Event) -> bool:
        """Connect, play the scenario until it ends or `stop` is set, then stop cleanly."""
        self._client.connect_async(self.broker.host, self.broker.port, keepalive=KEEPALIVE_S)
        self._client.loop_start()
        try:
            if not self._wait_connected(stop):
                log.warning("%s stopped before it could connect", self.logger_id)
                return False
            started = time.monotonic()
            self._play(stop)
            if self.scenario.name == "load":
                self._wait_published(stop)
                self._summarise(time.monotonic() - started)
            return True
        finally:
            self._shut_down()

    # paho callbacks: they only record state and delegate.

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: mqtt.ReasonCode,
        properties: mqtt.Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.error("%s connection refused: %s", self.logger_id, reason_code)
            return
        client.subscribe(ack_topic(self.logger_id), qos=1)
        self._publish(status_topic(self.logger_id), b"online", retain=True)
        self._reported_unreachable = False
        if self.connected_once:
            log.info("%s reconnected to %s:%s", self.logger_id, self.broker.host, self.broker.port)
        else:
            self.connected_once = True
            self._out(
                f"{self.logger_id} connected to {self.broker.host}:{self.broker.port}, "
                f"scenario {self.scenario.name}"
            )
        self._connected.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: mqtt.ReasonCode,
        properties: mqtt.Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.warning("%s lost its connection: %s", self.logger_id, reason_code)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        level = logging.DEBUG if self._reported_unreachable else logging.WARNING
        self._reported_unreachable = True
        log.log(
            level,
            "%s cannot reach %s:%s, retrying",
            self.logger_id,
            self.broker.host,
            self.broker.port,
        )

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_code: mqtt.ReasonCode,
        properties: mqtt.Properties,
    ) -> None:
        with self._lock:
            if mid in self._pending_mids:
                self._pending_mids.discard(mid)
            else:
                # The PUBACK beat publish() back to the caller, which will look here.
                self._early_mids.add(mid)
            self._idle.notify_all()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        span = parse_ack(message.payload)
        if span is None:
            log.warning("%s ignored a malformed ack: %r", self.logger_id, message.payload[:200])
            return
        self._acknowledge(*span)

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.logger_id,
            protocol=(
                MQTTProtocolVersion.MQTTv311
                if self.broker.mqtt_version == "3.1.1"
                else MQTTProtocolVersion.MQTTv5
            ),
        )
        username = self.broker.username or self.logger_id
        client.username_pw_set(username, self.broker.password)
        client.will_set(status_topic(self.logger_id), "offline", qos=1, retain=True)
        if self.broker.tls:
            client.tls_set(ca_certs=self.broker.ca_file)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    # Playing the scenario, in the logger's own thread.

    def _wait_connected(self, stop: threading.Event) -> bool:
        while not stop.is_set():
            if self._connected.wait(0.2):
                return True
        return False

    def _play(self, stop: threading.Event) -> None:
        start = round(time.time(), 3)
        started = time.monotonic()
        for send in plan(self.scenario, start):
            if not self._sleep_until(started + send.at_s, stop):
                return
            self._send(send.readings)
            if self.scenario.name == "load":
                self._throttle(stop)

    def _sleep_until(self, deadline: float, stop: threading.Event) -> bool:
        """Wait for `deadline` (monotonic), resending unacked readings meanwhile."""
        while True:
            now = time.monotonic()
            next_resend = self._resend_due(now) if self.ack_timeout_s > 0 else math.inf
            if now >= deadline:
                return not stop.is_set()
            if stop.wait(min(deadline - now, next_resend)):
                return False

    def _send(self, readings: tuple[Reading, ...]) -> None:
        if self.ack_timeout_s > 0:
            online = self._client.is_connected()
            # Offline, a reading waits in the buffer and leaves with the backlog on reconnect,
            # as one pack, instead of piling up one message per reading in the client queue.
            self._remember(readings, time.monotonic(), sent=online)
            if not online:
                log.debug("%s buffered %d reading(s) while offline", self.logger_id, len(readings))
                return
        self._publish_readings(readings)
        self.readings_sent += len(readings)
        log.debug("%s published %d reading(s)", self.logger_id, len(readings))

    def _publish_readings(self, readings: Iterable[Reading]) -> None:
        for payload in encode_packs(self.logger_id, readings):
            self._publish(readings_topic(self.logger_id), payload)
            self.messages_sent += 1

    def _publish(self, topic: str, payload: bytes, *, retain: bool = False) -> int | None:
        """Publish at QoS 1 and track the PUBACK; return the message id, None if not queued."""
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            # Only a full client queue gets here, and the client queue is unbounded.
            log.error("%s could not queue a message: %s", self.logger_id, info.rc)
            return None
        # While offline paho keeps the message and sends it once reconnected.
        with self._lock:
            if info.mid in self._early_mids:
                self._early_mids.discard(info.mid)
            else:
                self._pending_mids.add(info.mid)
        return info.mid

    def _remember(self, readings: Iterable[Reading], now: float, *, sent: bool) -> None:
        with self._lock:
            self._unsent = self._unsent or not sent
            for reading in readings:
                self._buffer.pop(reading.time, None)
                self._buffer[reading.time] = (reading, now)
            overflow = len(self._buffer) - self.buffer_max
            for _ in range(max(0, overflow)):
                self._buffer.popitem(last=False)
        if overflow > 0:
            log.warning(
                "%s buffer is full (%d readings): dropped the %d oldest unacked reading(s)",
                self.logger_id,
                self.buffer_max,
                overflow,
            )

    def _resend_due(self, now: float) -> float:
        """Resend the backlog if due; return the seconds until the next check."""
        # Due once the oldest reading waited `ack_timeout_s`, or at once after an outage. The
        # whole backlog then goes as one pack (split only at the size limits): a backend that
        # comes back gets a few store-and-forward packs, not one message per reading.
        if not self._client.is_connected():
            return OFFLINE_POLL_S
        with self._lock:
            if not self._buffer:
                return math.inf
            _, oldest = next(iter(self._buffer.values()))
            if now - oldest < self.ack_timeout_s and not self._unsent:
                return oldest + self.ack_timeout_s - now
            self._unsent = False
            due = [reading for reading, _ in self._buffer.values()]
            for reading in due:
                self._buffer[reading.time] = (reading, now)
        log.info("%s resends %d unacked reading(s)", self.logger_id, len(due))
        self.resends += 1
        self._publish_readings(due)
        return self.ack_timeout_s

    def _acknowledge(self, first: float, last: float) -> None:
        low, high = first - ACK_TOLERANCE_S, last + ACK_TOLERANCE_S
        with self._lock:
            acked = [t for t in self._buffer if low <= t <= high]
            for t in acked:
                del self._buffer[t]
        log.debug("%s ack covers %d buffered reading(s)", self.logger_id, len(acked))

    def _throttle(self, stop: threading.Event) -> None:
        with self._lock:
            while len(self._pending_mids) > MAX_PENDING_PUBLISHES and not stop.is_set():
                self._idle.wait(0.2)

    def _wait_published(self, stop: threading.Event) -> None:
        with self._lock:
            while self._pending_mids and not stop.is_set():
                self._idle.wait(0.2)

    def _summarise(self, seconds: float) -> None:
        with self._lock:
            published = self.messages_sent - len(self._pending_mids)
        summary = {
            "logger": self.logger_id,
            "published": published,
            "readings": self.readings_sent,
            "seconds": round(seconds, 3),
        }
        self._out(json.dumps(summary))

    def _shut_down(self) -> None:
        if self._connected.is_set():
            mid = self._publish(status_topic(self.logger_id), b"offline", retain=True)
            deadline = time.monotonic() + 5.0
            with self._lock:
                while mid in self._pending_mids and self._client.is_connected():
                    if time.monotonic() > deadline:
                        log.warning("%s: no PUBACK for its offline status", self.logger_id)
                        break
                    self._idle.wait(0.1)
        left = self.unacked
        if left:
            log.info("%s stops with %d unacked reading(s)", self.logger_id, left)
        self._client.disconnect()
        self._client.loop_stop()
