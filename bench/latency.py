"""Latency: from publishing an out-of-range reading to its excursion being visible in the API.

A publisher sends one reading per message at a steady rate (1,000 messages/s by default)
from many loggers, each on its own monitored LN2_VAPOR shipment (grace 0 s: the first reading
above -150 C opens an excursion). Now and then (10 times a second on average, at random
moments) the due message carries -120 C instead of -190 C: a probe. Its logger's next
reading, 0.1 s later, is in range again and closes the excursion.

One real `coldchain ingest` (default settings: batches of up to 500 messages or 100 ms) and
one real `coldchain serve` (waitress) run on the same broker and database. A poller asks
`GET /api/v1/excursions?since=...` over HTTP every 20 ms; a probe's latency is the time from
just before its `publish()` to the arrival of the first answer that lists its excursion (an
upper bound: the excursion became visible at some moment before that answer). The same
probes are also timed to their `opened` event on `coldchain/v1/alerts/excursions`, which the
worker publishes after commit.
"""

from __future__ import annotations

import http.client
import json
import random
import sys
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.ingest import publisher, start_workers, worker_env  # noqa: E402
from bench.processes import Counters, stop_all  # noqa: E402
from bench.results import PartResult, Row, judge, machine, percentile  # noqa: E402
from bench.seeding import create_shipments, register_loggers  # noqa: E402
from bench.servers import Lab, mosquitto  # noqa: E402
from coldchain.demo import free_port  # noqa: E402
from tests.support.processes import ColdchainProcess, process_tree, wait_for_port  # noqa: E402

ALERTS_TOPIC = "coldchain/v1/alerts/excursions"
P99_TARGET_MS = 250.0
NOMINAL_C = -190.0
PROBE_C = -120.0


def started_ms(started_at: str) -> int:
    """Milliseconds since the epoch of an RFC 3339 time from the API."""
    moment = datetime.fromisoformat(started_at.replace("Z", "+00:00"))
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return round(delta / timedelta(milliseconds=1))


@dataclass
class Probes:
    """Out-of-range readings sent, and when their excursion was first seen each way."""

    sent: dict[tuple[str, int], float] = field(default_factory=dict)
    seen_api: dict[tuple[str, int], float] = field(default_factory=dict)
    seen_alert: dict[tuple[str, int], float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Poller(threading.Thread):
    """Ask the excursion log for recent excursions every `interval_s`; note probes found."""

    def __init__(self, port: int, token: str, probes: Probes, interval_s: float):
        super().__init__(daemon=True)
        self.port = port
        self.token = token
        self.probes = probes
        self.interval_s = interval_s
        self.stopping = threading.Event()
        self.request_s: list[float] = []
        self.errors = 0

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Authorization": f"Bearer {self.token}"}
        while not self.stopping.is_set():
            sent = time.perf_counter()
            since = (datetime.now(UTC) - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
            path = "/api/v1/excursions?" + urllib.parse.urlencode({"since": since, "kind": "HIGH"})
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                body = response.read()
                if response.status != 200:
                    raise RuntimeError(f"{response.status}: {body[:300]!r}")
            except (OSError, http.client.HTTPException, RuntimeError):
                self.errors += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                time.sleep(self.interval_s)
                continue
            arrived = time.perf_counter()
            self.request_s.append(arrived - sent)
            with self.probes.lock:
                for excursion in json.loads(body):
                    key = (excursion["logger_id"], started_ms(excursion["started_at"]))
                    if key in self.probes.sent and key not in self.probes.seen_api:
                        self.probes.seen_api[key] = arrived
            self.stopping.wait(max(0.0, self.interval_s - (time.perf_counter() - sent)))
        conn.close()


def alert_listener(port: int, probes: Probes) -> mqtt.Client:
    """Subscribe to the worker's excursion alerts and note when each probe's `opened` comes."""
    ready = threading.Event()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        arrived = time.perf_counter()
        alert = json.loads(msg.payload)
        if alert.get("event") != "opened":
            return
        excursion = alert["excursion"]
        key = (excursion["logger_id"], started_ms(excursion["started_at"]))
        with probes.lock:
            if key in probes.sent and key not in probes.seen_alert:
                probes.seen_alert[key] = arrived

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"alerts-{uuid.uuid4().hex[:6]}",
        protocol=mqtt.MQTTv5,
    )
    client.on_connect = lambda c, *_: c.subscribe(ALERTS_TOPIC, qos=1)
    client.on_subscribe = lambda *_: ready.set()
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    if not ready.wait(10):
        raise TimeoutError("no SUBACK for the alerts topic")
    return client


@dataclass
class Publishing:
    """What the publisher did."""

    messages: int
    seconds: float
    late_ms_p99: float
    probes: int


def publish_steadily(
    port: int,
    loggers: list[str],
    rate: float,
    duration_s: float,
    probe_every_s: float,
    warmup_s: float,
    probes: Probes,
) -> Publishing:
    """Publish one reading per message at `rate` messages/s, round-robin over the loggers."""
    client = publisher(port, "fleet")
    chance = random.Random(20240601)
    total = int(rate * duration_s)
    late: list[float] = []
    start = time.perf_counter()
    next_probe = start + warmup_s
    last_probe = start + duration_s - 1.0  # leave time for the last probes to show
    sent_probes = 0
    probed_last: set[str] = set()
    try:
        for i in range(total):
            due = start + i / rate
            now = time.perf_counter()
            if due > now:
                time.sleep(due - now)
                now = time.perf_counter()
            late.append(now - due)
            logger_id = loggers[i % len(loggers)]
            t_ms = time.time_ns() // 1_000_000
            # Never two probes in a row from one logger: they would make one excursion, and
            # the second probe would wait forever for an excursion of its own.
            probe = next_probe <= now <= last_probe and logger_id not in probed_last
            (probed_last.add if probe else probed_last.discard)(logger_id)
            payload = json.dumps(
                [
                    {
                        "bn": f"urn:dev:logger:{logger_id}:",
                        "bt": t_ms / 1000,
                        "bu": "Cel",
                        "n": "temp",
                        "v": PROBE_C if probe else NOMINAL_C,
                    }
                ],
                separators=(",", ":"),
            )
            if probe:
                with probes.lock:
                    probes.sent[(logger_id, t_ms)] = time.perf_counter()
                sent_probes += 1
                next_probe += probe_every_s * chance.uniform(0.5, 1.5)
            client.publish(f"coldchain/v1/loggers/{logger_id}/readings", payload, qos=1)
        elapsed = time.perf_counter() - start
    finally:
        time.sleep(0.2)
        client.disconnect()
        client.loop_stop()
    return Publishing(total, elapsed, percentile(late, 99) * 1000, sent_probes)


def _ms(seen: float | None, sent: float) -> float | None:
    return None if seen is None else round((seen - sent) * 1000, 1)


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time used so far by these processes."""
    import os

    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def summarise(values_s: list[float]) -> dict[str, float | int]:
    ms = [v * 1000 for v in values_s]
    return {
        "count": len(ms),
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else float("nan"),
    }


def run_engine(
    *,
    lab_: Lab,
    engine: str,
    rate: float,
    duration_s: float,
    loggers_n: int,
    probe_every_s: float,
    poll_interval_s: float,
    log: Any = print,
) -> dict[str, Any]:
    """Measure publish-to-visible latency on one engine."""
    databases = lab_.databases(engine)
    url = databases.fresh()
    assert databases.world is not None
    loggers = [f"LAT-{n:03d}" for n in range(loggers_n)]
    register_loggers(url, loggers)
    create_shipments(
        url,
        databases.world,
        [[logger_id] for logger_id in loggers],
        datetime.now(UTC) - timedelta(seconds=60),
    )
    probes = Probes()
    processes: list[ColdchainProcess] = []
    try:
        with mosquitto(lab_.workdir) as broker:
            processes += start_workers(worker_env(broker, url, {}), 1, lab_.workdir)
            port = free_port()
            serve = ColdchainProcess(
                ["serve", "--port", str(port)],
                {
                    "COLDCHAIN_DATABASE_URL": url,
                    "COLDCHAIN_MQTT_URL": broker.url,
                    "COLDCHAIN_LOG_LEVEL": "WARNING",
                },
                lab_.workdir / f"serve-{engine}.log",
            ).start()
            processes.append(serve)
            wait_for_port(port, timeout_s=60)
            listener = alert_listener(broker.port, probes)
            poller = Poller(port, databases.world.auditor_token, probes, poll_interval_s)
            poller.start()
            watched = {
                "worker": [pid for p in processes[:-1] if p.process
                           for pid in process_tree(p.process.pid)],
                "serve": [serve.process.pid] if serve.process else [],
                "mosquitto": [broker.process.pid] if broker.process else [],
            }  # fmt: skip
            cpu_before = {name: cpu_seconds(pids) for name, pids in watched.items()}
            counters = Counters(url)
            try:
                published = publish_steadily(
                    broker.port, loggers, rate, duration_s, probe_every_s, 2.0, probes
                )
                cpu = {
                    name: (cpu_seconds(pids) - cpu_before[name]) / published.seconds
                    for name, pids in watched.items()
                }
                consumed_at_end = counters.read().get("messages", 0)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    with probes.lock:
                        if len(probes.seen_api) >= len(probes.sent) and len(
                            probes.seen_alert
                        ) >= len(probes.sent):
                            break
                    time.sleep(0.05)
            finally:
                poller.stopping.set()
                poller.join(10)
                listener.disconnect()
                listener.loop_stop()
            consumed = counters.read().get("messages", 0)
            counters.close()
            stop_all(processes)  # before the broker stops, or the worker sees it vanish
    finally:
        stop_all(processes)
        databases.drop(url)
    with probes.lock:
        api = [probes.seen_api[k] - probes.sent[k] for k in probes.seen_api]
        alert = [probes.seen_alert[k] - probes.sent[k] for k in probes.seen_alert]
        missing = len(probes.sent) - len(probes.seen_api)
        first = min(probes.sent.values(), default=0.0)
        per_probe = [
            [
                round(sent - first, 3),
                _ms(probes.seen_api.get(key), sent),
                _ms(probes.seen_alert.get(key), sent),
            ]
            for key, sent in sorted(probes.sent.items(), key=lambda item: item[1])
        ]
    thirds = [row[1] for row in per_probe if row[1] is not None]
    third = max(1, len(thirds) // 3)
    result = {
        "engine": engine,
        "target_rate_msg_per_s": rate,
        "achieved_rate_msg_per_s": published.messages / published.seconds,
        "publisher_late_p99_ms": published.late_ms_p99,
        "duration_s": duration_s,
        "loggers": loggers_n,
        "messages": published.messages,
        "messages_consumed_when_publishing_ended": consumed_at_end,
        "messages_consumed_by_worker": consumed,
        "cpu_share_of_one_core": {name: round(v, 3) for name, v in cpu.items()},
        "api_p50_ms_first_third": percentile(thirds[:third], 50),
        "api_p50_ms_last_third": percentile(thirds[-third:], 50),
        "probes": published.probes,
        "probes_not_seen_in_api": missing,
        "poll_interval_ms": poll_interval_s * 1000,
        "poll_request_ms": summarise(poller.request_s),
        "poll_errors": poller.errors,
        "publish_to_api": summarise(api),
        "publish_to_alert": summarise(alert),
        "probes_sent_s_api_ms_alert_ms": per_probe,
    }
    log(
        f"  {engine} latency: {published.messages / published.seconds:,.0f} msg/s, "
        f"{len(api)}/{published.probes} probes seen; API p50 "
        f"{result['publish_to_api']['p50_ms']:.0f} ms p99 {result['publish_to_api']['p99_ms']:.0f}"
        f" ms; alert p50 {result['publish_to_alert']['p50_ms']:.0f} ms p99 "
        f"{result['publish_to_alert']['p99_ms']:.0f} ms; "
        f"{published.messages - consumed_at_end:,} messages behind when publishing ended; "
        f"CPU {result['cpu_share_of_one_core']}"
    )
    return result


def run_part(
    *,
    lab_: Lab,
    engines: list[str],
    rate: float,
    duration_s: float,
    loggers_n: int = 100,
    probe_every_s: float = 0.1,
    poll_interval_s: float = 0.02,
    log: Any = print,
) -> PartResult:
    results = [
        run_engine(
            lab_=lab_,
            engine=engine,
            rate=rate,
            duration_s=duration_s,
            loggers_n=loggers_n,
            probe_every_s=probe_every_s,
            poll_interval_s=poll_interval_s,
            log=log,
        )
        for engine in engines
    ]
    rows = []
    notes = []
    for r in results:
        api, alert = r["publish_to_api"], r["publish_to_alert"]
        figure: float | None = api["p99_ms"] if api["count"] else None
        if r["probes_not_seen_in_api"]:
            notes.append(
                f"latency {r['engine']}: {r['probes_not_seen_in_api']} of {r['probes']} probes "
                "never showed in the API within 10 s of the end: p99 counts only those seen"
            )
        behind = r["messages"] - r["messages_consumed_when_publishing_ended"]
        if behind > r["target_rate_msg_per_s"] * 0.5:
            notes.append(
                f"latency {r['engine']}: the worker fell behind: {behind:,} of "
                f"{r['messages']:,} messages not yet stored when publishing ended (API p50 "
                f"{r['api_p50_ms_first_third']:.0f} ms in the first third of the probes, "
                f"{r['api_p50_ms_last_third']:.0f} ms in the last)"
            )
        if r["achieved_rate_msg_per_s"] < 0.95 * r["target_rate_msg_per_s"]:
            notes.append(
                f"latency {r['engine']}: the publisher reached only "
                f"{r['achieved_rate_msg_per_s']:,.0f} msg/s of {r['target_rate_msg_per_s']:,.0f}"
            )
        rows.append(
            Row(
                "latency",
                r["engine"],
                f"publish -> excursion in API at {r['achieved_rate_msg_per_s']:,.0f} msg/s",
                f"p50 {api['p50_ms']:.0f} ms, p99 {api['p99_ms']:.0f} ms ({api['count']} probes)",
                f"MQTT alert p50 {alert['p50_ms']:.0f} ms, p99 {alert['p99_ms']:.0f} ms; "
                f"poll every {r['poll_interval_ms']:.0f} ms",
                f"p99 < {P99_TARGET_MS:.0f} ms",
                judge(figure, "<", P99_TARGET_MS),
            )
        )
    data = {
        "part": "latency",
        "machine": machine(),
        "versions": lab_.versions(),
        "method": (__doc__ or "").strip(),
        "results": results,
    }
    return PartResult("latency", data, rows, notes)
