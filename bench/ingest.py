"""Ingest benchmark: the real worker against a bare paho subscriber on the same broker.

Each case pre-loads N QoS 1 messages into a persistent session on a real Mosquitto, then
measures how fast a consumer drains them:
  (a) a bare paho subscriber that only acks each message (the transport's ceiling);
  (b) the real `coldchain ingest` process, which parses, stores (SQLite file), re-evaluates
      excursions of monitored shipments and acks after commit, until the last is committed.
Each consumer runs --repeat times (alternating, each on a fresh broker); it prints the median
readings/s of each, the ratio of the medians (b)/(a), every run's ratio, and the worker's peak
memory (VmHWM).
Run: python bench/ingest.py [--messages N] [--packs N]   (results also in bench/results/)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.processes import ColdchainProcess, Mosquitto  # noqa: E402

LOGGERS = [f"BENCH-{i:02d}" for i in range(10)]
RECEIVE_MAXIMUM = 2000


def connect_properties() -> Properties:
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 3600
    properties.ReceiveMaximum = RECEIVE_MAXIMUM
    return properties


def make_payloads(messages: int, per_message: int, t0: float) -> list[tuple[str, bytes]]:
    """Nominal LN2 readings, times increasing per logger, spread over the loggers."""
    payloads = []
    for m in range(messages):
        logger_id = LOGGERS[m % len(LOGGERS)]
        base = t0 + (m // len(LOGGERS)) * per_message
        records = [
            {
                "bn": f"urn:dev:logger:{logger_id}:",
                "bt": base,
                "bu": "Cel",
                "n": "temp",
                "t": 0,
                "v": -190.0,
            }
        ]
        records += [
            {"n": "temp", "t": i, "v": -190.0 + (i % 7) / 10} for i in range(1, per_message)
        ]
        payloads.append(
            (
                f"coldchain/v1/loggers/{logger_id}/readings",
                json.dumps(records, separators=(",", ":")).encode(),
            )
        )
    return payloads


def publish_all(port: int, payloads: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"pub-{uuid.uuid4().hex[:6]}",
        protocol=mqtt.MQTTv5,
    )
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = [client.publish(topic, payload, qos=1) for topic, payload in payloads]
    for info in infos:
        info.wait_for_publish(timeout=120)
    client.disconnect()
    client.loop_stop()


def bare_subscriber(port: int, topic: str, payloads: list[tuple[str, bytes]]) -> float:
    """Drain the pre-loaded messages with a subscriber that only acks; return seconds."""
    client_id = f"bare-{uuid.uuid4().hex[:6]}"
    done = threading.Event()
    count = [0]
    subscribed = threading.Event()

    def on_message(c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        json.loads(msg.payload)  # the subscriber at least reads what it receives
        c.ack(msg.mid, msg.qos)
        count[0] += 1
        if count[0] >= len(payloads):
            done.set()

    def make() -> mqtt.Client:
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        c.on_message = on_message
        c.on_subscribe = lambda *_: subscribed.set()
        return c

    first = make()
    first.connect("127.0.0.1", port, clean_start=False, properties=connect_properties())
    first.loop_start()
    first.subscribe(topic, qos=1)
    subscribed.wait(10)
    first.disconnect()
    first.loop_stop()
    publish_all(port, payloads)
    second = make()
    start = time.perf_counter()
    second.connect("127.0.0.1", port, clean_start=False, properties=connect_properties())
    second.loop_start()
    if not done.wait(600):
        raise RuntimeError(f"bare subscriber got {count[0]} of {len(payloads)}")
    elapsed = time.perf_counter() - start
    second.disconnect()
    second.loop_stop()
    return elapsed


def prepare_database(workdir: Path, monitored_from: float) -> str:
    from datetime import UTC, datetime

    from coldchain.config import load_settings
    from coldchain.domain.identity import mod37_2_check_character
    from coldchain.services import accounts, shipments
    from coldchain.store.engine import make_engine, make_sessions
    from coldchain.store.migrate import upgrade

    url = f"sqlite:///{workdir / 'bench.db'}"
    upgrade(url)
    settings = load_settings(env={}, overrides={"database_url": url})
    engine = make_engine(url)
    sessions = make_sessions(engine)
    accounts.add_site(sessions=sessions, site_id="MFG", name="m", kind="manufacturing")
    accounts.add_site(sessions=sessions, site_id="TC", name="t", kind="treatment")
    _user, token = accounts.add_user(
        sessions=sessions, username="c", role="coordinator", site_id=None, password="password-bench"
    )
    principal = accounts.principal_for_token(sessions=sessions, token=token)
    assert principal is not None
    for n, logger_id in enumerate(LOGGERS):
        accounts.add_logger(sessions=sessions, logger_id=logger_id)
        din = f"B1234{26}{n:06d}"
        shipments.create_shipment(
            sessions=sessions,
            creator=principal,
            profiles=settings.profiles,
            secret_key=settings.secret_key,
            request=shipments.NewShipment(
                coi=din + mod37_2_check_character(din),
                profile="LN2_VAPOR",
                origin_site="MFG",
                destination_site="TC",
                loggers=[logger_id],
                patient={"id": str(n)},
                monitoring_from=datetime.fromtimestamp(monitored_from, UTC),
            ),
        )
    engine.dispose()
    return url


def counters(db_path: Path) -> dict[str, int]:
    with sqlite3.connect(db_path, timeout=30) as conn:
        return dict(conn.execute("SELECT name, value FROM ingest_counters").fetchall())


def real_worker(
    broker: Mosquitto,
    workdir: Path,
    payloads: list[tuple[str, bytes]],
    expected: int,
    monitored_from: float,
    extra_env: dict[str, str],
) -> tuple[float, int]:
    """Drain the pre-loaded messages with `coldchain ingest`; return seconds and peak KiB."""
    url = prepare_database(workdir, monitored_from)
    tag = uuid.uuid4().hex[:6]
    env = {
        "COLDCHAIN_DATABASE_URL": url,
        "COLDCHAIN_MQTT_URL": broker.url,
        "COLDCHAIN_INGEST_CLIENT_ID": f"bench-{tag}",
        "COLDCHAIN_INGEST_READINGS_TOPIC": f"$share/b{tag}/coldchain/v1/loggers/+/readings",
        "COLDCHAIN_INGEST_SIGNAL_LOSS_CHECK_S": "3600",
        "COLDCHAIN_LOG_LEVEL": "INFO",
        **extra_env,
    }
    # First run registers the worker's persistent session and subscription, then stops.
    worker = ColdchainProcess(["ingest"], env, workdir / "worker-1.log").start()
    worker.wait_for_log("connected to", timeout_s=60)
    time.sleep(0.5)
    worker.stop()
    publish_all(broker.port, payloads)
    worker = ColdchainProcess(["ingest"], env, workdir / "worker-2.log").start()
    worker.wait_for_log("connected to", timeout_s=60)
    start = time.perf_counter()
    db_path = workdir / "bench.db"
    while counters(db_path).get("messages", 0) < len(payloads):
        if worker.process is not None and worker.process.poll() is not None:
            raise RuntimeError(worker.log()[-3000:])
        if time.perf_counter() - start > 900:
            raise RuntimeError(f"worker: {counters(db_path)} after 900 s")
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    final = counters(db_path)
    if final.get("readings_stored") != expected:
        raise RuntimeError(f"expected {expected} readings stored, counters say {final}")
    assert worker.process is not None
    status = Path(f"/proc/{worker.process.pid}/status").read_text()
    peak_kib = int(
        next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))
    )
    worker.stop()
    return elapsed, peak_kib


def run_case(
    name: str, messages: int, per_message: int, extra_env: dict[str, str], repeat: int
) -> dict[str, object]:
    """Measure both consumers `repeat` times, alternating, and compare their medians.

    A single pair of runs on a 2-core machine swings by 1.5x either way (the broker, the
    consumer and the publisher share the cores), so one lucky or unlucky run decides nothing.
    """
    # Each logger's messages follow one another in time, and all lie in the past.
    t0 = time.time() - -(-messages // len(LOGGERS)) * per_message - 120
    payloads = make_payloads(messages, per_message, t0)
    readings = messages * per_message
    bare_runs: list[float] = []
    worker_runs: list[float] = []
    peaks: list[int] = []
    for _ in range(repeat):
        workdir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        broker = Mosquitto(workdir).start()
        try:
            bare_runs.append(
                bare_subscriber(broker.port, "coldchain/v1/loggers/+/readings", payloads)
            )
            worker_s, peak_kib = real_worker(
                broker, workdir, payloads, readings, t0 - 60, extra_env
            )
            worker_runs.append(worker_s)
            peaks.append(peak_kib)
        finally:
            broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    bare_s = statistics.median(bare_runs)
    worker_s = statistics.median(worker_runs)
    return {
        "case": name,
        "messages": messages,
        "readings_per_message": per_message,
        "runs": repeat,
        "bare_readings_per_s": readings / bare_s,
        "worker_readings_per_s": readings / worker_s,
        "ratio": bare_s / worker_s,
        "ratio_per_run": [round(b / w, 3) for b, w in zip(bare_runs, worker_runs, strict=True)],
        "worker_peak_mb": max(peaks) / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000, help="messages of one reading each")
    parser.add_argument("--packs", type=int, default=200, help="messages of 1,000 readings each")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each consumer; medians are compared"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra COLDCHAIN_* setting for the worker, e.g. INGEST_PUBLISH_ACKS=false",
    )
    args = parser.parse_args()
    extra = {f"COLDCHAIN_{k.upper()}": v for k, _, v in (item.partition("=") for item in args.set)}
    cases = [("one-reading-per-message", args.messages, 1), ("packs-of-1000", args.packs, 1000)]
    # A count of 0 skips that case.
    results = [run_case(name, n, size, extra, args.repeat) for name, n, size in cases if n > 0]
    print(f"{'case':<26}{'bare r/s':>12}{'worker r/s':>12}{'ratio':>8}{'peak MB':>9}  per run")
    for r in results:
        print(
            f"{r['case']:<26}{r['bare_readings_per_s']:>12,.0f}{r['worker_readings_per_s']:>12,.0f}"
            f"{r['ratio']:>8.2f}{r['worker_peak_mb']:>9.0f}  {r['ratio_per_run']}"
        )
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "ingest.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()
