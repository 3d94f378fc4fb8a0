"""The simulated loggers: pure scenario curves, and `python -m devices` against real Mosquitto."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from devices.fleet import logger_ids
from devices.logger import Broker, parse_ack
from devices.scenarios import (
    LIMIT_C,
    Reading,
    Scenario,
    battery_pct,
    excursion_temp_c,
    nominal_temp_c,
    plan,
)
from devices.senml import encode_packs

ROOT = Path(__file__).resolve().parents[2]
MOSQUITTO = "/usr/sbin/mosquitto"
START = 1_764_000_000.0


# Pure: curves, plans and packs, no broker.


def test_nominal_temperature_stays_near_minus_190_and_below_the_ln2_limit() -> None:
    temps = [nominal_temp_c(t / 10, seed) for seed in (0, 7, 2**32 - 1) for t in range(0, 72000, 7)]
    assert all(-191.5 <= temp <= -188.5 for temp in temps)
    assert max(temps) < LIMIT_C
    assert len(set(temps)) > 100


def test_excursion_warms_above_the_limit_for_the_window_then_recovers_every_hour() -> None:
    def temp(elapsed_s: float) -> float:
        return excursion_temp_c(elapsed_s, 3, warmup_after_s=60, warmup_s=300)

    for hour in (0, 3600, 7200):
        assert all(temp(hour + t) < -185 for t in range(0, 60))
        window = [temp(hour + t) for t in range(60, 360)]
        assert all(t > LIMIT_C for t in window)
        assert -132 <= max(window) <= -128
        assert all(temp(hour + t) < -185 for t in range(360, 3600, 10))


def test_signal_loss_plan_is_silent_then_one_backfill_then_live() -> None:
    scenario = Scenario("signal-loss", interval_s=10, silence_s=60, backfill_s=1200)
    sends = plan(scenario, START)
    backfill = next(sends)
    assert backfill.at_s == 60
    times = [r.time for r in backfill.readings]
    assert times == [START + 10 * i for i in range(-120, 7)]
    assert all(r.temp_c < LIMIT_C for r in backfill.readings)
    live = [next(sends) for _ in range(3)]
    assert [s.at_s for s in live] == [70, 80, 90]
    assert [s.readings[0].time for s in live] == [START + 70, START + 80, START + 90]


def test_load_plan_spaces_times_by_interval_and_keeps_them_all_in_the_past() -> None:
    scenario = Scenario("load", interval_s=2, count=5, pack_size=3, rate=10)
    sends = list(plan(scenario, START))
    assert [s.at_s for s in sends] == [0, 0.1, 0.2, 0.3, 0.4]
    times = [r.time for s in sends for r in s.readings]
    assert times == [START - 30 + 2 * k for k in range(15)]
    assert max(times) < START
    assert all(r.batt_pct is None for s in sends for r in s.readings)


def test_battery_comes_with_every_tenth_reading_and_slowly_drains() -> None:
    readings = [r for s in _take(plan(Scenario("nominal", interval_s=1), START), 25) for r in s]
    assert [i for i, r in enumerate(readings) if r.batt_pct is not None] == [0, 10, 20]
    assert battery_pct(0) == 100
    assert battery_pct(-500) == 100
    assert 0 <= battery_pct(10**6) < battery_pct(1000) < 100


def test_a_pack_is_senml_with_base_fields_on_the_first_record() -> None:
    readings = next(plan(Scenario("nominal"), START)).readings
    (payload,) = encode_packs("SIM-001", readings)
    base = {"bn": "urn:dev:logger:SIM-001:", "bt": START, "bu": "Cel"}
    assert json.loads(payload) == [
        {**base, "n": "temp", "t": 0, "v": readings[0].temp_c},
        {"n": "batt", "u": "%EL", "t": 0, "v": 100},
    ]


def test_packs_are_split_at_the_record_and_byte_limits() -> None:
    readings = [Reading(START + i * 0.5, -190.25) for i in range(10_005)]
    by_records = encode_packs("SIM-001", readings, max_bytes=10**9)
    assert [len(json.loads(p)) for p in by_records] == [10_000, 5]
    by_bytes = encode_packs("SIM-001", readings)
    assert all(len(p) <= 256 * 1024 for p in by_bytes)
    records = [json.loads(p) for p in by_bytes]
    assert sum(len(r) for r in records) == 10_005
    assert all(pack[0]["bn"] == "urn:dev:logger:SIM-001:" for pack in records)
    assert all(rec["t"] >= 0 for pack in records for rec in pack)


def test_ack_payloads_take_unix_seconds_or_rfc3339_and_refuse_garbage() -> None:
    assert parse_ack(b'{"first": 1764000000.5, "last": 1764000001, "count": 2}') == (
        1764000000.5,
        1764000001.0,
    )
    assert parse_ack(b'{"first": "2025-11-24T16:00:00Z", "last": "2025-11-24T16:00:00.5Z"}') == (
        1764000000.0,
        1764000000.5,
    )
    for bad in (b"nope", b"[]", b'{"first": 2}', b'{"first": 2, "last": 1}', b'{"first": 1e999}'):
        assert parse_ack(bad) is None


def test_logger_ids_come_from_a_count_or_an_explicit_valid_list() -> None:
    assert logger_ids("3", "SIM") == ["SIM-001", "SIM-002", "SIM-003"]
    assert logger_ids("a1, B_2,c-3") == ["a1", "B_2", "c-3"]
    for bad in ("0", "-x", "a,a", "a/b", "x" * 65):
        with pytest.raises(ValueError):
            logger_ids(bad)


def test_broker_url_gives_host_port_and_optional_credentials() -> None:
    assert Broker.from_url("mqtt://10.0.0.1:1884") == Broker("10.0.0.1", 1884)
    assert Broker.from_url("mqtts://u%40x:p@h") == Broker("h", 8883, "u@x", "p", tls=True)
    with pytest.raises(ValueError):
        Broker.from_url("http://h:1883")


def _take(sends: Iterator, n: int) -> list:
    return [next(sends).readings for _ in range(n)]


# Against a real Mosquitto.


@pytest.fixture(scope="module")
def broker_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """Run Mosquitto on a free loopback port for this module."""
    # A missing broker fails the run: a skipped check would hide an untested simulator.
    assert os.access(MOSQUITTO, os.X_OK), "Mosquitto is not installed (make setup installs it)"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path_factory.mktemp("mosquitto") / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        "max_queued_messages 0\n"
        "persistence false\n"
        "log_dest none\n"
    )
    with subprocess.Popen(
        [MOSQUITTO, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ) as proc:
        try:
            _wait_for_port(port, proc)
            yield port
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()


def _wait_for_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mosquitto exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail("mosquitto did not start listening")


@dataclass
class Message:
    """A message as a subscriber saw it."""

    topic: str
    payload: bytes
    retain: bool
    arrived: float

    def records(self) -> list[dict]:
        """Return the SenML records of a readings payload."""
        return json.loads(self.payload)

    def times(self, name: str = "temp") -> list[float]:
        """Return the absolute times of the records named `name`."""
        records = self.records()
        bt = records[0].get("bt", 0)
        return [round(bt + r.get("t", 0), 3) for r in records if r["n"] == name]

    def temps(self) -> list[float]:
        """Return the temperature values of a readings payload."""
        return [r["v"] for r in self.records() if r["n"] == "temp"]


class Subscriber:
    """A paho client that records what it receives on one topic filter."""

    def __init__(self, port: int, topic: str) -> None:
        self.messages: list[Message] = []
        self._changed = threading.Condition()
        self._subscribed = threading.Event()
        self._topic = topic
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-{uuid.uuid4().hex[:12]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self._subscribed.wait(5), "no SUBACK"

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        client.subscribe(self._topic, qos=1)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        self._subscribed.set()

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        with self._changed:
            self.messages.append(
                Message(message.topic, message.payload, message.retain, time.time())
            )
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[list[Message]], bool], timeout: float) -> bool:
        """Wait until `predicate(messages)` holds; return whether it did in time."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(list(self.messages)), timeout)

    def snapshot(self) -> list[Message]:
        """Return the messages received so far."""
        with self._changed:
            return list(self.messages)

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscribe(broker_port: int) -> Iterator[Callable[[str], Subscriber]]:
    """Make subscribers on the test broker, closed after the test."""
    made: list[Subscriber] = []

    def make(topic: str) -> Subscriber:
        made.append(Subscriber(broker_port, topic))
        return made[-1]

    yield make
    for subscriber in made:
        subscriber.close()


@contextmanager
def devices(port: int, *args: str) -> Iterator[subprocess.Popen[str]]:
    """Run `python -m devices` against the test broker; kill it if the test leaves it running."""
    command = [sys.executable, "-W", "error", "-m", "devices"]
    command += ["--broker", f"mqtt://127.0.0.1:{port}", *args]
    with subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """Stop the devices process with SIGTERM and return its output."""
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    return out, err


def readings_of(messages: list[Message]) -> list[Message]:
    """Keep the messages on readings topics."""
    return [m for m in messages if m.topic.endswith("/readings")]


def test_load_publishes_every_pack_with_its_topic_and_base_name(broker_port, subscribe) -> None:
    sub = subscribe("coldchain/v1/loggers/+/readings")
    args = ("--loggers", "1", "--prefix", "LD", "--scenario", "load")
    with devices(broker_port, *args, "--count", "50", "--pack-size", "10") as proc:
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert sub.wait_for(lambda ms: len(ms) >= 50, 5)
    time.sleep(0.2)
    messages = sub.snapshot()
    assert len(messages) == 50
    assert {m.topic for m in messages} == {"coldchain/v1/loggers/LD-001/readings"}
    assert all(m.records()[0]["bn"] == "urn:dev:logger:LD-001:" for m in messages)
    times = [t for m in messages for t in m.times()]
    assert sum(len(m.records()) for m in messages) == len(set(times)) == 500
    assert max(times) <= time.time()
    lines = out.splitlines()
    assert lines[0] == f"LD-001 connected to 127.0.0.1:{broker_port}, scenario load"
    summary = json.loads(lines[-1])
    assert summary["logger"] == "LD-001"
    assert (summary["published"], summary["readings"]) == (50, 500)
    assert summary["seconds"] >= 0


def test_status_goes_online_then_offline_retained_on_sigterm(broker_port, subscribe) -> None:
    topic = "coldchain/v1/loggers/ST-001/status"
    sub = subscribe(topic)
    with devices(broker_port, "--loggers", "ST-001", "--interval", "0.2") as proc:
        assert sub.wait_for(lambda ms: [m.payload for m in ms] == [b"online"], 10)
        stop(proc)
    assert sub.wait_for(lambda ms: [m.payload for m in ms] == [b"online", b"offline"], 5)
    late = subscribe(topic)
    assert late.wait_for(lambda ms: len(ms) == 1, 5)
    assert (late.messages[0].payload, late.messages[0].retain) == (b"offline", True)


def test_excursion_scenario_rises_above_the_limit_then_back_below(broker_port, subscribe) -> None:
    sub = subscribe("coldchain/v1/loggers/EX-001/readings")

    def temps() -> list[float]:
        return [t for m in sub.snapshot() for t in m.temps()]

    def recovered(messages: list[Message]) -> bool:
        seen = [t for m in messages for t in m.temps()]
        warm = [i for i, t in enumerate(seen) if t > LIMIT_C]
        return bool(warm) and any(t < LIMIT_C for t in seen[warm[-1] + 1 :])

    args = ("--loggers", "EX-001", "--scenario", "excursion", "--interval", "0.5")
    with devices(broker_port, *args, "--warmup-after-s", "1", "--warmup-s", "3") as proc:
        assert sub.wait_for(recovered, 10), temps()
        stop(proc)
    seen = temps()
    above = [t > LIMIT_C for t in seen]
    assert above[:2] == [False, False]
    first, last = above.index(True), len(above) - above[::-1].index(True)
    assert all(above[first:last]) and 5 <= last - first <= 7
    assert -133 <= max(seen) <= -127
    assert all(t < -185 for t in seen[last:])


def test_signal_loss_is_a_silence_then_one_backfill_pack_then_live(broker_port, subscribe) -> None:
    sub = subscribe("coldchain/v1/loggers/SL-001/#")
    args = ("--loggers", "SL-001", "--scenario", "signal-loss", "--interval", "1")
    with devices(broker_port, *args, "--silence-s", "2", "--backfill-s", "30") as proc:
        assert sub.wait_for(lambda ms: len(readings_of(ms)) >= 2, 10)
        stop(proc)
    online = next(m for m in sub.messages if m.payload == b"online")
    backfill, live = readings_of(sub.messages)[:2]
    assert 1.8 <= backfill.arrived - online.arrived <= 3.5
    times = backfill.times()
    assert 30 <= len(times) <= 34
    steps = {round(b - a, 3) for a, b in zip(times, times[1:], strict=False)}
    assert steps == {1.0}
    assert 30 <= backfill.arrived - times[0] <= 34
    assert times[-1] <= backfill.arrived + 0.05
    assert len(live.times()) == 1 and live.times()[0] == pytest.approx(times[-1] + 1)


def test_unacked_readings_are_resent_until_an_ack_covers_them(broker_port, subscribe) -> None:
    sub = subscribe("coldchain/v1/loggers/RS-001/readings")
    args = ("--loggers", "RS-001", "--interval", "60", "--ack-timeout-s", "1")
    with devices(broker_port, *args) as proc:
        assert sub.wait_for(lambda ms: len(ms) >= 2, 5)
        first, again = sub.messages[:2]
        assert again.payload == first.payload
        assert 0.8 <= again.arrived - first.arrived <= 2
        (sent,) = first.times()
        ack = json.dumps({"first": sent, "last": sent, "count": 1})
        sub.client.publish("coldchain/v1/loggers/RS-001/ack", ack, qos=1).wait_for_publish(5)
        time.sleep(1.2)
        settled = len(sub.snapshot())
        time.sleep(2.0)
        assert len(sub.snapshot()) == settled
        stop(proc)
    assert all(m.payload == first.payload for m in sub.messages)
