"""The ingest worker: MQTT in, batched commits, acks only after commit, alerts out."""

from __future__ import annotations

import gc
import logging
import signal
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from coldchain.config import Settings
from coldchain.domain.senml import PackLimits, Reason
from coldchain.ingest.acks import AckSender
from coldchain.ingest.client import Client
from coldchain.ingest.mqtturl import parse_mqtt_url
from coldchain.ingest.status import WorkerStatus
from coldchain.services import ingest as service
from coldchain.services.timefmt import now_us
from coldchain.store.readings import ConcurrentInsertError

log = logging.getLogger(__name__)

ALERTS_TOPIC = "coldchain/v1/alerts/excursions"
# A retiring worker ends its session after this long without a queued message.
RETIRE_IDLE_S = 2.0
PROTOCOLS = {"5": MQTTProtocolVersion.MQTTv5, "3.1.1": MQTTProtocolVersion.MQTTv311}


def protocol_version(value: object) -> MQTTProtocolVersion:
    """Map the `mqtt_protocol` setting ("5" or "3.1.1") to paho's constant."""
    try:
        return PROTOCOLS[str(value)]
    except KeyError:
        choices = ", ".join(PROTOCOLS)
        raise ValueError(f"mqtt_protocol must be one of {choices}, not {value!r}") from None


def unshared(topic: str) -> str:
    """Drop a `$share/GROUP/` prefix: MQTT 3.1.1 has no shared subscriptions."""
    if topic.startswith("$share/"):
        return topic.split("/", 2)[2]
    return topic


@dataclass(frozen=True, slots=True)
class Delivery:
    """A received message with what is needed to ack it later."""

    incoming: service.Incoming
    mid: int
    qos: int


def worker_client_id(settings: Settings, index: int) -> str:
    """The MQTT client id of worker `index` (from 1): stable, so its session survives."""
    return f"{settings['ingest_client_id']}-{index}"


class Worker:
    """Consume readings, commit them in batches, and ack each message after its commit.

    A `retiring` worker takes over the persistent session of a worker that is no longer
    run (after `--workers` was lowered): it leaves the shared subscription, stores what the
    broker had queued for that session, and ends the session when nothing more comes.
    """

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        *,
        client_id: str | None = None,
        retiring: bool = False,
    ):
        self.settings = settings
        self.sessions = sessions
        self.client_id = client_id or worker_client_id(settings, 1)
        self.retiring = retiring
        self.last_message = time.monotonic()
        self.pending: list[Delivery] = []
        self.pending_bytes = 0
        self.batch_deadline = 0.0
        self.ever_connected = False
        self.stopping = threading.Event()
        self.known = service.KnownLoggers()
        self.limits = PackLimits(
            max_bytes=int(settings["ingest_max_payload_bytes"]),
            max_records=int(settings["ingest_max_records"]),
            max_clock_skew_s=float(settings["ingest_max_clock_skew_s"]),
        )
        self.batch_max = int(settings["ingest_batch_max_messages"])
        self.batch_max_bytes = int(settings["ingest_batch_max_bytes"])
        self.batch_wait_s = float(settings["ingest_batch_max_ms"]) / 1000
        self.publish_acks = bool(settings["ingest_publish_acks"])
        self.client = self._make_client()
        # A retiring worker drains a few queued messages: its acks go out inline.
        self.ack_sender = (
            AckSender(
                str(settings["mqtt_url"]),
                self.protocol,
                self.client_id,
                ca_file=str(settings["mqtt_ca_file"]) or None,
            )
            if self.publish_acks and bool(settings["ingest_ack_process"]) and not retiring
            else None
        )
        # What /healthz reads: a failing commit is invisible to the web app's own SELECT 1.
        status_dir = str(settings["ingest_status_dir"])
        self.status = (
            WorkerStatus(
                Path(status_dir), self.client_id, stale_s=float(settings["ingest_status_stale_s"])
            )
            if status_dir and not retiring
            else None
        )

    def _make_client(self) -> Client:
        address = parse_mqtt_url(str(self.settings["mqtt_url"]))
        self.protocol = protocol_version(self.settings["mqtt_protocol"])
        client = Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=self.protocol,
            # MQTT 3.1.1 keeps the session by clean_session; MQTT 5 by clean_start at connect.
            clean_session=False if self.protocol == MQTTProtocolVersion.MQTTv311 else None,
            manual_ack=True,
        )
        if address.username:
            client.username_pw_set(address.username, address.password)
        if address.tls:
            # The broker's certificate and name are always checked; mqtt_ca_file names a
            # private CA (empty: the system's CAs).
            ca_file = str(self.settings["mqtt_ca_file"]) or None
            client.tls_set(ca_certs=ca_file, cert_reqs=ssl.CERT_REQUIRED)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self.address = address
        return client

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, flags: Any, reason_code: Any, _properties: Any
    ) -> None:
        if reason_code.is_failure:
            log.error("broker refused the connection: %s", reason_code)
            return
        # Acks (of a retiring worker, or without an ack process) and alerts published here.
        self.client.fit_in_flight_window(_properties)
        if self.retiring:
            self._retire(client, bool(flags.session_present))
            return
        # Subscribing in on_connect renews the subscription after every reconnect.
        readings, status = (
            str(self.settings["ingest_readings_topic"]),
            str(self.settings["ingest_status_topic"]),
        )
        if self.protocol == MQTTProtocolVersion.MQTTv311:
            client.subscribe([(unshared(readings), 1), (status, 1)])
            log.info("connected to %s:%s (MQTT 3.1.1)", self.address.host, self.address.port)
            return
        # Retained statuses are wanted once, when the subscription is new, not on every
        # reconnect of the persistent session (retain handling 1).
        client.subscribe(
            [
                (readings, SubscribeOptions(qos=1)),
                (
                    status,
                    SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB),
                ),
            ]
        )
        log.info("connected to %s:%s", self.address.host, self.address.port)

    def _retire(self, client: mqtt.Client, session_present: bool) -> None:
        if not session_present:
            # Nothing was kept under this id (the connect made an empty session): end it.
            self.stop()
            return
        log.info("draining the session of retired worker %s", self.client_id)
        readings, status = (
            str(self.settings["ingest_readings_topic"]),
            str(self.settings["ingest_status_topic"]),
        )
        # No new messages for this session; what the broker queued for it still comes.
        client.unsubscribe([readings, status])
        self.last_message = time.monotonic()

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any, _properties: Any
    ) -> None:
        if not self.stopping.is_set():
            log.warning("disconnected from broker (%s); reconnecting", reason_code)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # Only collect here: parsing and storing happen in the batch step, and the ack is sent
        # after the commit, so a crash before it makes the broker deliver the message again.
        if not self.pending:
            self.batch_deadline = time.monotonic() + self.batch_wait_s
        self.last_message = time.monotonic()
        incoming = service.Incoming(msg.topic, bytes(msg.payload), now_us())
        self.pending.append(Delivery(incoming, msg.mid, msg.qos))
        self.pending_bytes += len(incoming.payload)

    def _connect(self) -> bool:
        """Connect or reconnect, retrying with backoff until the broker answers or we stop."""
        backoff_s = 1.0
        while not self.stopping.is_set():
            try:
                if self.ever_connected:
                    self.client.reconnect()
                elif self.protocol == MQTTProtocolVersion.MQTTv311:
                    self.client.connect(self.address.host, self.address.port, keepalive=30)
                    self.ever_connected = True
                else:
                    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
                    properties.SessionExpiryInterval = int(self.settings["ingest_session_expiry_s"])
                    properties.ReceiveMaximum = int(self.settings["ingest_receive_maximum"])
                    self.client.connect(
                        self.address.host,
                        self.address.port,
                        keepalive=30,
                        clean_start=False,
                        properties=properties,
                    )
                    self.ever_connected = True
                return True
            except OSError as exc:
                if self.retiring:
                    log.warning("cannot reach the broker to retire %s: %s", self.client_id, exc)
                    return False
                log.warning(
                    "cannot reach broker %s:%s (%s); retrying in %.0fs",
                    self.address.host,
                    self.address.port,
                    exc,
                    backoff_s,
                )
                self.stopping.wait(backoff_s)
                backoff_s = min(backoff_s * 2, 30.0)
        return False

    def stop(self, *_args: Any) -> None:
        """Ask the loop to finish its current batch and exit."""
        self.stopping.set()

    def run(self) -> None:
        """Receive and commit batches until stopped; then disconnect cleanly.

        The MQTT network loop runs in this same thread: acks and publishes made after a commit
        go straight to the socket instead of waking a network thread, and no second Python
        thread competes for the interpreter on the hot path.
        """
        check_every_s = float(self.settings["ingest_signal_loss_check_s"])
        next_check = time.monotonic() + min(check_every_s, 5.0)
        if self.status is not None:
            self.status.start()
        if self.ack_sender is not None:
            # Started now, not at the first batch: a fresh interpreter takes a while to load.
            self.ack_sender.start()
        try:
            if not self._connect():
                return
            while not self.stopping.is_set():
                now = time.monotonic()
                if self.pending and (self._batch_full() or now >= self.batch_deadline):
                    batch = self._take_batch()
                    if self.pending:
                        self.batch_deadline = now + self.batch_wait_s
                    self._process(batch)
                    continue
                if self.retiring and now - self.last_message > RETIRE_IDLE_S:
                    break
                if now >= next_check and not self.retiring:
                    self._check_silence()
                    next_check = time.monotonic() + check_every_s
                wait_s = self.batch_deadline - now if self.pending else next_check - now
                rc = self.client.loop(timeout=max(0.0, min(wait_s, 0.5)))
                if rc == mqtt.MQTT_ERR_SUCCESS:
                    # What that read brought beyond its one packet, without another select().
                    rc = self.client.drain(self.batch_max, stop=self._batch_full)
                if rc != mqtt.MQTT_ERR_SUCCESS:
                    # Messages received but not committed are redelivered by the broker on
                    # reconnect (the session persists), so they are dropped here, not acked.
                    self.pending.clear()
                    self.pending_bytes = 0
                    log.warning("connection lost (%s); reconnecting", mqtt.error_string(rc))
                    if not self._connect():
                        break
        finally:
            if self.ack_sender is not None:
                self.ack_sender.stop()
            if self.client.is_connected():
                self._disconnect()
            if self.status is not None:
                self.status.stop()
            log.info("ingest worker %s stopped", self.client_id)

    def _batch_full(self) -> bool:
        return len(self.pending) >= self.batch_max or self.pending_bytes >= self.batch_max_bytes

    def _take_batch(self) -> list[Delivery]:
        """The oldest pending messages, up to batch_max of them and batch_max_bytes in all."""
        count, size = 0, 0
        for delivery in self.pending[: self.batch_max]:
            if count and size + len(delivery.incoming.payload) > self.batch_max_bytes:
                break
            count += 1
            size += len(delivery.incoming.payload)
        batch = self.pending[:count]
        del self.pending[:count]
        self.pending_bytes -= size
        return batch

    def _disconnect(self) -> None:
        properties = None
        if self.retiring and self.protocol == MQTTProtocolVersion.MQTTv5:
            # A session expiry of 0 at disconnect makes the broker drop the session now.
            properties = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = 0
        self.client.disconnect(properties=properties)
        self.client.loop(timeout=0.1)

    def _process(self, batch: Sequence[Delivery]) -> None:
        backoff_s = 0.1
        while True:
            if self.status is not None:
                self.status.storing()
            try:
                outcome = service.store_batch(
                    sessions=self.sessions,
                    messages=[d.incoming for d in batch],
                    profiles=self.settings.profiles,
                    limits=self.limits,
                    known=self.known,
                    now_us=now_us(),
                )
            except ConcurrentInsertError:
                continue
            except OperationalError as exc:
                # The database is locked, full or away: keep the messages unacked and retry,
                # so that nothing is lost and nothing is acknowledged before it is stored.
                if self.status is not None:
                    self.status.failed(f"{type(exc.orig).__name__}: {exc.orig}")
                log.warning(
                    "batch of %d not stored (%s); retrying in %.1fs",
                    len(batch),
                    exc.orig,
                    backoff_s,
                )
                if self._idle(backoff_s):
                    return
                backoff_s = min(backoff_s * 2, float(self.settings["ingest_retry_max_backoff_s"]))
                continue
            except Exception:
                log.exception("batch of %d failed; storing its messages one by one", len(batch))
                if len(batch) == 1:
                    self._dead_letter_unstorable(batch[0])
                else:
                    for delivery in batch:
                        self._process([delivery])
                return
            self._finish(batch, outcome)
            return

    def _idle(self, seconds: float) -> bool:
        """Wait while keeping the MQTT connection alive; return True if asked to stop."""
        deadline = time.monotonic() + seconds
        while not self.stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if self.client.is_connected():
                self.client.loop(timeout=min(remaining, 0.5))
            else:
                self.stopping.wait(min(remaining, 0.5))
        return True

    def _dead_letter_unstorable(self, delivery: Delivery) -> None:
        backoff_s = 0.1
        while not self.stopping.is_set():
            try:
                service.dead_letter_whole(
                    sessions=self.sessions,
                    message=delivery.incoming,
                    reason=Reason.STORE_ERROR,
                    detail="the database refused this message; see the worker log",
                )
            except DBAPIError as exc:
                if self.status is not None:
                    self.status.failed(f"{type(exc.orig).__name__}: {exc.orig}")
                log.warning("cannot dead-letter message (%s); retrying", exc.orig)
                self._idle(backoff_s)
                backoff_s = min(backoff_s * 2, 30.0)
                continue
            if self.status is not None:
                self.status.stored()
            self.client.ack(delivery.mid, delivery.qos)
            return

    def _finish(self, batch: Sequence[Delivery], outcome: service.BatchOutcome) -> None:
        if self.status is not None:
            self.status.stored()
        with self.client.corked():
            for delivery in batch:
                self.client.ack(delivery.mid, delivery.qos)
            self._publish_after_commit(outcome)
        log.debug("batch of %d committed: %s", len(batch), outcome.counts)

    def _publish_after_commit(self, outcome: service.BatchOutcome) -> None:
        if self.publish_acks:
            acks = [
                (
                    f"coldchain/v1/loggers/{result.logger_id}/ack",
                    # repr of a float is its shortest exact form, as json.dumps would write it.
                    f'{{"first": {result.first_us / 1e6!r}, '
                    f'"last": {(result.last_us or result.first_us) / 1e6!r}, '
                    f'"count": {result.accepted}}}',
                )
                for result in outcome.messages
                if result.accepted and result.logger_id and result.first_us is not None
            ]
            if self.ack_sender is not None:
                self.ack_sender.send(acks)
            else:
                for topic, body in acks:
                    self.client.publish(topic, body, qos=1)
        for alert in outcome.alerts:
            self.client.publish(ALERTS_TOPIC, service.alert_payload(alert), qos=1)

    def _check_silence(self) -> None:
        try:
            alerts = service.check_silence(
                sessions=self.sessions, profiles=self.settings.profiles, now_us=now_us()
            )
        except Exception:
            log.exception("signal-loss check failed; will try again")
            return
        for alert in alerts:
            self.client.publish(ALERTS_TOPIC, service.alert_payload(alert), qos=1)


def retire_workers(settings: Settings, sessions: sessionmaker[Session], workers: int) -> None:
    """Drain and end the sessions of workers numbered above `workers`.

    A broker keeps sending a shared subscription's messages to a disconnected member whose
    session has not expired (Mosquitto 2.0 queues them round robin), so a worker that is no
    longer run would hold back its share of readings for a day. The ids checked are the
    `ingest.retire_scan` numbers above the ones in use.
    """
    if protocol_version(settings["mqtt_protocol"]) != MQTTProtocolVersion.MQTTv5:
        return
    for index in range(workers + 1, workers + 1 + int(settings["ingest_retire_scan"])):
        Worker(settings, sessions, client_id=worker_client_id(settings, index), retiring=True).run()


def run_worker(settings: Settings, sessions: sessionmaker[Session], index: int = 1) -> None:
    """Run worker number `index` in the foreground until SIGTERM or SIGINT."""
    worker = Worker(settings, sessions, client_id=worker_client_id(settings, index))

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping after the current batch", signum)
        worker.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    quiet_garbage_collector()
    worker.run()


def quiet_garbage_collector() -> None:
    """Keep the cyclic garbage collector off the per-message path.

    Every message allocates a few objects (paho's message, its info and their lock, our
    delivery), so with the default thresholds a collection ran every few hundred messages
    and a full one often enough to walk every object the process holds (SQLAlchemy's
    mappers, the modules): profiles put a quarter of the worker's time in it. What the worker
    loaded to start is frozen out of the collector's view and young collections run less
    often: what a batch leaves is still freed, by reference counting at once and, for its
    few cycles (a session and its objects), by the collector in larger steps.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
