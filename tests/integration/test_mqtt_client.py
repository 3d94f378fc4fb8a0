"""coldchain.ingest.client.Client against a real Mosquitto: what its overrides of paho change.

Each test drives the client as the worker does (its loop in the test's thread: `loop()`,
then `drain()`), and checks bytes and packets end to end: messages read in 64 KiB chunks
arrive whole and in order, corked PUBACKs and publishes all reach the broker, a PUBACK
handled on the short path completes its publish, and a broken connection leaves nothing
half-read behind for the next one.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from coldchain.ingest.client import RECV_BYTES, Client
from tests.support.processes import Mosquitto


def pump(client: Client, until: Callable[[], bool], timeout_s: float = 15.0) -> None:
    """Run the client's loop in this thread, as the worker does, until `until()` holds."""
    deadline = time.monotonic() + timeout_s
    while not until():
        assert time.monotonic() < deadline, "condition not met in time"
        rc = client.loop(timeout=0.05)
        if rc == mqtt.MQTT_ERR_SUCCESS:
            rc = client.drain(1000)
        assert rc == mqtt.MQTT_ERR_SUCCESS, mqtt.error_string(rc)


def connect(
    broker: Mosquitto,
    client_id: str,
    *,
    manual_ack: bool = False,
    keep_session: bool = False,
    protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5,
) -> Client:
    client = Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=protocol,
        manual_ack=manual_ack,
        clean_session=None if protocol == MQTTProtocolVersion.MQTTv5 else not keep_session,
    )
    connected: list[bool] = []
    client.on_connect = lambda c, _u, _f, rc, props: (
        c.fit_in_flight_window(props),
        connected.append(not rc.is_failure),
    )
    if protocol == MQTTProtocolVersion.MQTTv5:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = 3600 if keep_session else 0
        client.connect(
            "127.0.0.1", broker.port, clean_start=not keep_session, properties=properties
        )
    else:
        client.connect("127.0.0.1", broker.port)
    pump(client, lambda: bool(connected))
    assert connected == [True]
    return client


def subscribe(client: Client, topic: str) -> None:
    done: list[int] = []
    client.on_subscribe = lambda *_args: done.append(1)
    client.subscribe(topic, qos=1)
    pump(client, lambda: bool(done))


@pytest.fixture
def topic() -> str:
    return f"test/client/{uuid.uuid4().hex[:8]}"


@pytest.fixture
def plain_publisher(broker: Mosquitto) -> Iterator[mqtt.Client]:
    """A plain paho client in its own thread: the other side, not under test."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    yield client
    client.disconnect()
    client.loop_stop()


@pytest.mark.parametrize("protocol", [MQTTProtocolVersion.MQTTv5, MQTTProtocolVersion.MQTTv311])
def test_messages_read_in_chunks_arrive_whole_and_in_order(
    broker: Mosquitto, plain_publisher: mqtt.Client, topic: str, protocol: MQTTProtocolVersion
) -> None:
    # Sizes around the chunk: tiny ones many to a read, one spanning several reads, one
    # whose length field itself may be split across two reads.
    sizes = [1, 7, 126, 127, 128, 16_383, 16_384, RECV_BYTES - 3, RECV_BYTES + 5]
    sizes += [3 * RECV_BYTES + 11] + [40] * 500
    payloads = [bytes([i % 251]) * size for i, size in enumerate(sizes)]
    client = connect(broker, f"chunks-{uuid.uuid4().hex[:6]}", protocol=protocol)
    subscribe(client, topic)
    received: list[bytes] = []
    client.on_message = lambda _c, _u, msg: received.append(bytes(msg.payload))
    infos = [plain_publisher.publish(topic, payload, qos=1) for payload in payloads]
    for info in infos:
        info.wait_for_publish(10)
    pump(client, lambda: len(received) >= len(payloads))
    assert received == payloads
    client.disconnect()


def test_corked_manual_acks_all_reach_the_broker(
    broker: Mosquitto, plain_publisher: mqtt.Client, topic: str
) -> None:
    client_id = f"acks-{uuid.uuid4().hex[:6]}"
    client = connect(broker, client_id, manual_ack=True, keep_session=True)
    subscribe(client, topic)
    got: list[mqtt.MQTTMessage] = []
    client.on_message = lambda _c, _u, msg: got.append(msg)
    for i in range(300):
        plain_publisher.publish(topic, f"m{i}", qos=1).wait_for_publish(10)
    pump(client, lambda: len(got) == 300)
    with client.corked():
        for message in got:
            client.ack(message.mid, message.qos)
    # Written on leaving the block: nothing waits in paho's queue.
    assert not client._out_packet
    client.disconnect()
    # Anything the broker had not seen acked it would send again to the kept session.
    again = connect(broker, client_id, manual_ack=True, keep_session=True)
    redelivered: list[mqtt.MQTTMessage] = []
    again.on_message = lambda _c, _u, msg: redelivered.append(msg)
    plain_publisher.publish(topic, "marker", qos=1).wait_for_publish(10)
    pump(again, lambda: bool(redelivered))
    assert [bytes(m.payload) for m in redelivered] == [b"marker"]
    again.disconnect()


@pytest.mark.parametrize("subscribed", [True, False], ids=["subscriber", "no-subscriber"])
def test_corked_publishes_complete_through_the_short_puback_path(
    broker: Mosquitto, topic: str, subscribed: bool
) -> None:
    # With no subscriber Mosquitto answers MQTT 5 publishes with reason 0x10 "no matching
    # subscribers": still the end of the publish.
    listener = connect(broker, f"listen-{uuid.uuid4().hex[:6]}")
    heard: list[bytes] = []
    listener.on_message = lambda _c, _u, msg: heard.append(bytes(msg.payload))
    if subscribed:
        subscribe(listener, topic)
    sender = connect(broker, f"send-{uuid.uuid4().hex[:6]}")
    assert sender.on_publish is None
    with sender.corked():
        infos = [sender.publish(topic, f"ack {i}", qos=1) for i in range(2000)]
        assert not any(info.is_published() for info in infos)
    pump(sender, lambda: all(info.is_published() for info in infos))
    assert sender._inflight_messages == 0
    assert not sender._out_messages
    if subscribed:
        pump(listener, lambda: len(heard) == 2000)
        assert heard == [f"ack {i}".encode() for i in range(2000)]
    else:
        pump(listener, lambda: True)
        assert heard == []
    sender.disconnect()
    listener.disconnect()


def test_on_publish_callbacks_still_get_paho_s_decoded_puback(
    broker: Mosquitto, topic: str
) -> None:
    sender = connect(broker, f"cb-{uuid.uuid4().hex[:6]}")
    seen: list[tuple[int, str]] = []
    sender.on_publish = lambda _c, _u, mid, reason, _props: seen.append((mid, str(reason)))
    info = sender.publish(topic, "x", qos=1)
    pump(sender, lambda: bool(seen))
    assert seen == [(info.mid, "No matching subscribers")]
    sender.disconnect()


def test_a_window_wider_than_paho_s_default_follows_the_broker(broker: Mosquitto) -> None:
    client = connect(broker, f"window-{uuid.uuid4().hex[:6]}")
    # The shipped Mosquitto config sets no in-flight limit: it announces 65535.
    assert client._max_inflight_messages == 65535
    client.disconnect()
    client.fit_in_flight_window(Properties(PacketTypes.CONNACK))  # type: ignore[no-untyped-call]
    assert client._max_inflight_messages == 65535
    announced = Properties(PacketTypes.CONNACK)  # type: ignore[no-untyped-call]
    announced.ReceiveMaximum = 20
    client.fit_in_flight_window(announced)
    assert client._max_inflight_messages == 20


def test_a_broken_connection_leaves_nothing_half_read(tmp_path: Path, topic: str) -> None:
    own = Mosquitto(tmp_path).start()
    try:
        client = connect(own, f"broken-{uuid.uuid4().hex[:6]}")
        subscribe(client, topic)
        received: list[bytes] = []
        client.on_message = lambda _c, _u, msg: received.append(bytes(msg.payload))
        publisher = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        publisher.connect("127.0.0.1", own.port)
        publisher.loop_start()
        for i in range(200):
            publisher.publish(topic, f"before {i}", qos=1).wait_for_publish(10)
        publisher.disconnect()
        publisher.loop_stop()
        pump(client, lambda: len(received) == 200)
        # As if the connection broke with bytes read but not yet handled (a packet's start).
        client._read_buffer, client._read_at = b"\x30\x0f\x00\x0dstale", 0
        assert client.buffered() > 0
        own.restart(graceful=False)
        received.clear()
        deadline = time.monotonic() + 15
        while True:
            assert time.monotonic() < deadline, "no reconnect"
            try:
                client.reconnect()
                break
            except OSError:
                time.sleep(0.1)
        # The old connection's bytes would be read as the start of the new one's CONNACK.
        assert client.buffered() == 0
        pump(client, client.is_connected)
        subscribe(client, topic)
        publisher = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        publisher.connect("127.0.0.1", own.port)
        publisher.loop_start()
        publisher.publish(topic, b"after", qos=1).wait_for_publish(10)
        publisher.disconnect()
        publisher.loop_stop()
        pump(client, lambda: bool(received))
        assert received == [b"after"]
        client.disconnect()
    finally:
        own.stop()


def test_paho_s_own_threaded_loop_handles_every_buffered_packet_at_once(
    broker: Mosquitto, plain_publisher: mqtt.Client, topic: str
) -> None:
    # paho reads one packet per select() when it has nothing in flight; the rest of a chunk
    # must not wait for the socket's next bytes (here: none) or the loop's 1 s timeout.
    client_id = f"threaded-{uuid.uuid4().hex[:6]}"
    first = connect(broker, client_id, keep_session=True)
    subscribe(first, topic)
    first.disconnect()
    for i in range(50):
        plain_publisher.publish(topic, f"queued {i}", qos=1).wait_for_publish(10)
    received: list[bytes] = []
    arrived = threading.Event()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        received.append(bytes(msg.payload))
        if len(received) == 50:
            arrived.set()

    client = Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
    )
    client.on_message = on_message
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 3600
    client.connect("127.0.0.1", broker.port, clean_start=False, properties=properties)
    client.loop_start()
    try:
        assert arrived.wait(3), f"{len(received)} of 50 after 3 s"
        assert received == [f"queued {i}".encode() for i in range(50)]
    finally:
        client.disconnect()
        client.loop_stop()
