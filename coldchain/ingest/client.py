"""paho's MQTT client with less work per packet, for the worker and its ack process.

paho reads each packet with three recv() calls (its command byte, its length, its body) after a
select() of its own, and writes each packet it queues with a send() of its own, after waking
its loop through a socket pair. At one reading per message that is seven system calls per
message in the worker's one thread. Each PUBACK is decoded into a ReasonCode and a
Properties object (each a copy of a table) for an on_publish callback that may not exist.

`Client` changes how bytes move and what is built for nobody, never what paho decides:
- reads come from a buffer refilled by one recv() of up to 64 KiB; each read step handles
  every packet the buffer holds, and `drain()` goes on reading without another select();
- inside `corked()`, queued packets (PUBACKs after a commit, the ack process's QoS 1
  publishes) wait and leave in one send() when the block ends; paho still tracks each
  QoS 1 publish in flight and resends it after a reconnect as before;
- the in-flight window follows the broker's Receive Maximum (`fit_in_flight_window`), and
  paho's walk of the window after each PUBACK is skipped when nothing is queued behind it;
- with no on_publish callback, a PUBACK ends its publish without being decoded further.

These override paho's `loop_read` and internal methods (`_sock_recv`, `_sock_close`,
`_packet_queue`, `_packet_write`, `_update_inflight`, `_handle_pubackcomp`), so pyproject
pins the paho versions they were written against. tests/integration/test_mqtt_client.py runs
them against a real Mosquitto (packets split over reads, paho's own threaded loop, corked
acks and publishes, a reconnect with unread bytes); every e2e and fault test runs the worker
on them, and test_broker_security over TLS.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

# One recv() takes up to this much: about 400 one-reading messages.
RECV_BYTES = 64 * 1024
# A corked send joins at most this many packets.
MAX_JOINED = 4096
# MQTT's largest Receive Maximum.
MAX_IN_FLIGHT = 65535
PUBLISH = 0x30
PUBACK = 0x40


class Client(mqtt.Client):
    """A paho `Client` that reads in large chunks and can write many packets in one send()."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_buffer = b""
        self._read_at = 0
        self._corked = False

    def fit_in_flight_window(self, connack_properties: Any) -> None:
        """Let as many QoS 1 publishes await their PUBACK as the broker allows.

        For on_connect, with the CONNACK's properties. paho keeps 20 in flight whatever the
        broker announces, queues the rest, and sends the next as each PUBACK comes back
        (after a walk of the window, see `_update_inflight`): a batch's acks would trickle
        out one write at a time. Its own setter refuses a change once connected. MQTT 3.1.1
        announces no Receive Maximum; MQTT's largest is taken then.
        """
        receive_maximum = getattr(connack_properties, "ReceiveMaximum", None) or MAX_IN_FLIGHT
        self._max_inflight_messages = max(1, min(MAX_IN_FLIGHT, receive_maximum))

    def _update_inflight(self) -> MQTTErrorCode:
        # After each PUBACK paho walks every publish awaiting its own PUBACK, looking for
        # one queued behind the window: with a wide window that is quadratic. When every
        # stored publish is already in flight, none is queued.
        if len(self._out_messages) <= self._inflight_messages:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        return super()._update_inflight()

    def _handle_pubackcomp(self, cmd: Any) -> MQTTErrorCode:
        # paho decodes each PUBACK into a ReasonCode and a Properties object (a copy of the
        # table of reason names each) only to hand them to on_publish. With no on_publish
        # set, what remains is the bookkeeping below, which is what paho then does (paho
        # treats every PUBACK, whatever its reason code, as the end of that publish).
        packet = self._in_packet["packet"]
        if (
            cmd != "PUBACK"
            or self.on_publish is not None
            or len(packet) < 2
            or (self._protocol != mqtt.MQTTv5 and len(packet) != 2)
        ):
            return super()._handle_pubackcomp(cmd)
        mid = (packet[0] << 8) | packet[1]
        with self._out_message_mutex:
            message = self._out_messages.pop(mid, None)
            if message is None:
                return MQTTErrorCode.MQTT_ERR_SUCCESS
            message.info._set_as_published()
            if message.qos > 0:
                self._inflight_messages -= 1
                if self._max_inflight_messages > 0:
                    return self._update_inflight()
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    # Reading

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._read_at >= len(self._read_buffer):
            # paho's own recv maps TLS and closed-socket errors to what its reader expects.
            data = super()._sock_recv(max(bufsize, RECV_BYTES))
            if len(data) <= bufsize:
                return data  # also b"": the broker closed the connection
            self._read_buffer, self._read_at = data, 0
        end = self._read_at + bufsize
        chunk = self._read_buffer[self._read_at : end]
        self._read_at = min(end, len(self._read_buffer))
        return chunk

    def _sock_close(self) -> None:
        # What was read from a closed connection is not part of the next one.
        self._read_buffer, self._read_at = b"", 0
        super()._sock_close()

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        # paho reads as many packets as it has publishes in flight (at least one) after each
        # select(), and select() cannot see this buffer: packets left in it would wait for
        # the socket's next bytes or the loop's timeout (a PINGRESP left there for the
        # keepalive would even end the connection). So what is buffered is handled here.
        rc = super().loop_read(max_packets)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or not self.buffered():
            return rc
        # Every packet is at least 2 bytes; a packet's start left at the end waits for the
        # socket's next bytes, as paho's own reader does.
        return self.drain(self.buffered(), stop=lambda: not self.buffered())

    def buffered(self) -> int:
        """How many received bytes wait to be handled."""
        return len(self._read_buffer) - self._read_at

    def drain(self, max_packets: int, stop: Callable[[], bool] | None = None) -> MQTTErrorCode:
        """Handle up to `max_packets` packets that are already received, without select().

        It stops when the socket has nothing more (paho's reader returns MQTT_ERR_AGAIN),
        after `max_packets`, as soon as `stop()` is true, or on an error (the connection is
        then closed as `loop()` does).
        """
        for _ in range(max_packets):
            if stop is not None and stop():
                break
            if self._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            rc = self._packet_read()
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                break
            if rc > 0:
                return self._loop_rc_handle(rc)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    # Writing

    @contextmanager
    def corked(self) -> Iterator[None]:
        """Queue the packets made inside the block and write them in one send() after it.

        With `loop_start()`, the network thread is woken once to write them; otherwise they
        are written here.
        """
        self._corked = True
        try:
            yield
        finally:
            self._corked = False
            if self._out_packet:
                self._write_queued()

    def _write_queued(self) -> None:
        if self._thread is not None:
            # Only the network thread writes: wake it as paho's own queueing does.
            if self._sockpairW is not None:
                try:
                    self._sockpairW.send(b"0")
                except BlockingIOError:
                    pass
        elif self._sock is not None:
            self.loop_write()

    def _packet_queue(
        self,
        command: int,
        packet: bytes | bytearray,
        mid: int,
        qos: int,
        info: mqtt.MQTTMessageInfo | None = None,
    ) -> MQTTErrorCode:
        if not self._corked:
            return super()._packet_queue(command, packet, mid, qos, info)
        self._out_packet.append(
            {
                "command": command,
                "mid": mid,
                "qos": qos,
                "pos": 0,
                "to_process": len(packet),
                "packet": packet,
                "info": info,
            }
        )
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _packet_write(self) -> MQTTErrorCode:
        # Join the leading PUBACKs and QoS 1/2 PUBLISHes: paho does nothing per packet after
        # writing those. A QoS 0 PUBLISH (its on_publish) or any other packet is left to paho.
        queue = self._out_packet
        heads: list[Any] = []
        while queue and len(heads) < MAX_JOINED:
            kind = queue[0]["command"] & 0xF0
            if not (kind == PUBACK or (kind == PUBLISH and queue[0]["qos"] > 0)):
                break
            heads.append(queue.popleft())
        if len(heads) == 1:
            queue.appendleft(heads[0])
        elif heads:
            data = b"".join(head["packet"][head["pos"] :] for head in heads)
            queue.appendleft(
                {
                    "command": PUBACK,
                    "mid": 0,
                    "qos": 1,
                    "pos": 0,
                    "to_process": len(data),
                    "packet": data,
                    "info": None,
                }
            )
        return super()._packet_write()
