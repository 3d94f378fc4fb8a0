"""Ingest benchmark: the real worker against a bare paho subscriber on the same broker.

Each case pre-loads N QoS 1 messages on a real Mosquitto, then measures how fast a consumer
drains them:
  (a) a bare paho subscriber that only reads and acks each message (the transport's ceiling):
      its persistent session is filled while it is away, then it reconnects;
  (b) the real `coldchain ingest` process(es), which parse, store, re-evaluate excursions of
      monitored shipments and ack after commit, until the last message is committed: the
      workers connect and subscribe, are frozen (SIGSTOP) while the messages are published,
      and the clock starts when they are let go (SIGCONT), so that 1, 2 or 4 workers start
      draining at the same instant.
Each consumer runs --repeat times (alternating, each on a fresh broker and a fresh database);
it prints the median readings/s of each, the ratio of the medians (b)/(a), every run's ratio,
and the workers' peak memory (VmHWM of the largest worker process).
Run: python bench/ingest.py [--messages N] [--packs N] [--engine sqlite|postgresql]
     [--workers 1,2,4]   (results in bench/results/ingest.json)
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.processes import Counters, peak_rss_mb, signal_tree, stop_all  # noqa: E402
from bench.results import PartResult, Row, judge, machine, median, write_json  # noqa: E402
from bench.seeding import cancel_shipments, create_shipments, register_loggers  # noqa: E402
from bench.servers import Databases, Lab, lab, mosquitto  # noqa: E402
from tests.support.processes import ColdchainProcess, Mosquitto, process_tree  # noqa: E402

LOGGERS = [f"BENCH-{i:02d}" for i in range(10)]
# The bare subscriber's window: the worker's, ingest.receive_maximum in config/default.toml.
RECEIVE_MAXIMUM = 5000
BARE_TOPIC = "coldchain/v1/loggers/+/readings"


@dataclass(frozen=True)
class Case:
    """One kind of traffic: `messages` messages of `per_message` readings each."""

    name: str
    messages: int
    per_message: int

    @property
    def readings(self) -> int:
        return self.messages * self.per_message


def connect_properties() -> Properties:
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 3600
    properties.ReceiveMaximum = RECEIVE_MAXIMUM
    return properties


def first_time(case: Case, loggers: list[str]) -> float:
    """A start time such that each logger's messages follow one another and all lie in the past."""
    return time.time() - -(-case.messages // len(loggers)) * case.per_message - 120


def make_payloads(
    messages: int, per_message: int, t0: float, loggers: list[str] | None = None
) -> list[tuple[str, bytes]]:
    """Nominal LN2 readings, times increasing per logger, spread over the loggers."""
    loggers = loggers or LOGGERS
    payloads = []
    for m in range(messages):
        logger_id = loggers[m % len(loggers)]
        base = t0 + (m // len(loggers)) * per_message
        records: list[dict[str, Any]] = [
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


def publisher(port: int, prefix: str) -> mqtt.Client:
    """A connected MQTT 5 publisher with a wide in-flight window, its network loop started."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"{prefix}-{uuid.uuid4().hex[:6]}",
        protocol=mqtt.MQTTv5,
    )
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def publish_all(port: int, payloads: list[tuple[str, bytes]]) -> None:
    """Publish every message at QoS 1 and wait for all the broker's PUBACKs."""
    client = publisher(port, "pub")
    try:
        infos = [client.publish(topic, payload, qos=1) for topic, payload in payloads]
        for info in infos:
            info.wait_for_publish(timeout=120)
    finally:
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
    try:
        if not done.wait(600):
            raise RuntimeError(f"bare subscriber got {count[0]} of {len(payloads)}")
        return time.perf_counter() - start
    finally:
        second.disconnect()
        second.loop_stop()


def monitor(url: str, databases: Databases, loggers: list[str], monitored_from: float) -> list[int]:
    """Register the loggers and put each on its own monitored LN2_VAPOR shipment."""
    assert databases.world is not None
    register_loggers(url, loggers)
    return create_shipments(
        url,
        databases.world,
        [[logger_id] for logger_id in loggers],
        datetime.fromtimestamp(monitored_from, UTC),
    )


@dataclass
class WorkerRun:
    """One drain by the worker(s): seconds from release to the last commit, peak memory."""

    seconds: float
    peak_mb: float
    workers: int
    counters: dict[str, int]


def worker_env(broker: Mosquitto, url: str, extra_env: dict[str, str]) -> dict[str, str]:
    """The environment of a benchmark worker, with its own client id and share group."""
    tag = uuid.uuid4().hex[:6]
    return {
        "COLDCHAIN_DATABASE_URL": url,
        "COLDCHAIN_MQTT_URL": broker.url,
        "COLDCHAIN_INGEST_CLIENT_ID": f"bench-{tag}",
        "COLDCHAIN_INGEST_READINGS_TOPIC": f"$share/b{tag}/coldchain/v1/loggers/+/readings",
        "COLDCHAIN_LOG_LEVEL": "INFO",
        **extra_env,
    }


def start_workers(env: dict[str, str], workers: int, workdir: Path) -> list[ColdchainProcess]:
    """Start `workers` ingest processes sharing one subscription, and wait until all connect.

    Several are started by one `coldchain ingest --workers N` (client ids `{id}-1..N`).
    """
    tag = uuid.uuid4().hex[:6]
    processes: list[ColdchainProcess] = []
    try:
        args = ["ingest", "--workers", str(workers)] if workers > 1 else ["ingest"]
        processes.append(ColdchainProcess(args, env, workdir / f"workers-{tag}.log").start())
        deadline = time.monotonic() + 120
        while sum(p.log().count("connected to") for p in processes) < workers:
            for p in processes:
                if p.process is not None and p.process.poll() is not None:
                    raise RuntimeError(f"worker exited early:\n{p.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError("workers did not connect in 120 s")
            time.sleep(0.05)
        time.sleep(0.5)  # the subscription is sent on connect; let its SUBACK come back
    except BaseException:
        stop_all(processes)
        raise
    return processes


def run_workers(
    *,
    broker: Mosquitto,
    url: str,
    payloads: list[tuple[str, bytes]],
    expected_readings: int,
    workers: int,
    extra_env: dict[str, str],
    workdir: Path,
) -> WorkerRun:
    """Drain the messages with `coldchain ingest`; return the time from release to last commit."""
    env = worker_env(broker, url, extra_env)
    processes = start_workers(env, workers, workdir)
    counters = Counters(url)
    try:
        pids = [pid for p in processes if p.process for pid in process_tree(p.process.pid)]
        before = counters.read().get("messages", 0)
        signal_tree(pids, signal.SIGSTOP)
        publish_all(broker.port, payloads)
        start = time.perf_counter()
        signal_tree(pids, signal.SIGCONT)
        target = before + len(payloads)
        while counters.read().get("messages", 0) < target:
            for p in processes:
                if p.process is not None and p.process.poll() is not None:
                    raise RuntimeError(f"worker exited:\n{p.log()[-3000:]}")
            if time.perf_counter() - start > 900:
                raise RuntimeError(f"workers: {counters.read()} after 900 s")
            time.sleep(0.02)
        elapsed = time.perf_counter() - start
        final = counters.read()
        peak = max(peak_rss_mb(pid) for pid in pids)
    finally:
        counters.close()
        stop_all(processes)
    return WorkerRun(elapsed, peak, workers, final)


def check_stored(run: WorkerRun, before: dict[str, int], expected: int) -> None:
    stored = run.counters.get("readings_stored", 0) - before.get("readings_stored", 0)
    if stored != expected:
        raise RuntimeError(f"expected {expected} readings stored, counters say {run.counters}")


def measure_worker_once(
    *,
    databases: Databases,
    workdir: Path,
    case: Case,
    workers: int,
    extra_env: dict[str, str],
    url: str | None = None,
    loggers: list[str] | None = None,
) -> WorkerRun:
    """One worker measurement on a fresh broker, in a fresh database unless `url` is given.

    Given a database (the growth part's large one), new loggers are monitored there for this
    run and their shipments are cancelled afterwards, so that no later run sees them.
    """
    loggers = loggers or LOGGERS
    t0 = first_time(case, loggers)
    payloads = make_payloads(case.messages, case.per_message, t0, loggers)
    own = url is None
    url = url or databases.fresh()
    try:
        shipment_ids = monitor(url, databases, loggers, t0 - 60)
        counters = Counters(url)
        before = counters.read()
        counters.close()
        with mosquitto(workdir) as broker:
            run = run_workers(
                broker=broker,
                url=url,
                payloads=payloads,
                expected_readings=case.readings,
                workers=workers,
                extra_env=extra_env,
                workdir=workdir,
            )
        check_stored(run, before, case.readings)
        if not own:
            assert databases.world is not None
            cancel_shipments(url, databases.world, shipment_ids)
        return run
    finally:
        if own:
            databases.drop(url)


def measure_bare_once(workdir: Path, case: Case) -> float:
    payloads = make_payloads(case.messages, case.per_message, first_time(case, LOGGERS))
    with mosquitto(workdir) as broker:
        return bare_subscriber(broker.port, BARE_TOPIC, payloads)


def run_case(
    *,
    databases: Databases,
    workdir: Path,
    case: Case,
    worker_counts: list[int],
    repeat: int,
    extra_env: dict[str, str],
    log: Any = print,
) -> dict[str, Any]:
    """Measure the bare subscriber and each worker count `repeat` times, alternating.

    A single pair of runs on a 2-core machine swings by 1.5x either way (the broker, the
    consumer and the publisher share the cores), so one lucky or unlucky run decides nothing.
    """
    bare_runs: list[float] = []
    worker_runs: dict[int, list[WorkerRun]] = {n: [] for n in worker_counts}
    for r in range(repeat):
        bare_runs.append(measure_bare_once(workdir, case))
        for n in worker_counts:
            run = measure_worker_once(
                databases=databases,
                workdir=workdir,
                case=case,
                workers=n,
                extra_env=extra_env,
            )
            worker_runs[n].append(run)
        log(
            f"  {databases.engine} {case.name} run {r + 1}/{repeat}: bare "
            f"{case.readings / bare_runs[-1]:,.0f} r/s; "
            + ", ".join(
                f"{n} worker{'s' if n > 1 else ''} "
                f"{case.readings / worker_runs[n][-1].seconds:,.0f} r/s"
                for n in worker_counts
            )
        )
    bare_s = median(bare_runs)
    workers: dict[str, Any] = {}
    for n, runs in worker_runs.items():
        seconds = [run.seconds for run in runs]
        worker_s = median(seconds)
        workers[str(n)] = {
            "readings_per_s": case.readings / worker_s,
            "readings_per_s_per_run": [round(case.readings / s) for s in seconds],
            "ratio_to_bare": bare_s / worker_s,
            "ratio_to_bare_per_run": [
                round(b / w, 3) for b, w in zip(bare_runs, seconds, strict=True)
            ],
            "peak_mb": max(run.peak_mb for run in runs),
        }
    return {
        "engine": databases.engine,
        "case": case.name,
        "messages": case.messages,
        "readings_per_message": case.per_message,
        "readings": case.readings,
        "runs": repeat,
        "bare_readings_per_s": case.readings / bare_s,
        "bare_readings_per_s_per_run": [round(case.readings / s) for s in bare_runs],
        "workers": workers,
    }


PACK_TARGETS = {"sqlite": 150_000, "postgresql": 100_000}
RATIO_TARGET = 0.8


def summary_rows(results: list[dict[str, Any]]) -> list[Row]:
    """The summary lines of the ingest cases, with their targets."""
    rows = []
    for r in results:
        engine, one = r["engine"], r["workers"].get("1")
        bare = f"bare subscriber {r['bare_readings_per_s']:,.0f} r/s"
        if one is not None and r["readings_per_message"] == 1:
            rows.append(
                Row(
                    "ingest",
                    engine,
                    f"1 reading/msg, {r['messages']:,} msgs: worker / bare subscriber",
                    f"{one['ratio_to_bare']:.2f} (worker {one['readings_per_s']:,.0f} r/s;"
                    f" runs {one['ratio_to_bare_per_run']})",
                    bare,
                    f">= {RATIO_TARGET}",
                    judge(one["ratio_to_bare"], ">=", RATIO_TARGET),
                )
            )
        elif one is not None:
            target = PACK_TARGETS[engine]
            rows.append(
                Row(
                    "ingest",
                    engine,
                    f"packs of {r['readings_per_message']:,}, {r['messages']:,} msgs: worker r/s",
                    f"{one['readings_per_s']:,.0f} r/s (ratio {one['ratio_to_bare']:.2f};"
                    f" runs {one['readings_per_s_per_run']})",
                    bare,
                    f">= {target:,} r/s",
                    judge(one["readings_per_s"], ">=", target),
                )
            )
        if one is None:
            continue
        for n, figures in r["workers"].items():
            if n == "1":
                continue
            speedup = figures["readings_per_s"] / one["readings_per_s"]
            rows.append(
                Row(
                    "ingest",
                    engine,
                    f"{r['case']}: {n} workers / 1 worker",
                    f"{speedup:.2f}x ({figures['readings_per_s']:,.0f} r/s;"
                    f" runs {figures['readings_per_s_per_run']})",
                    f"1 worker {one['readings_per_s']:,.0f} r/s",
                    "> 1.0x (several beat one)",
                    judge(speedup, ">=", 1.0 + 1e-9),
                )
            )
    return rows


def run_part(
    *,
    lab_: Lab,
    engines: list[str],
    cases: list[Case],
    repeat: int,
    pg_worker_counts: list[int],
    extra_env: dict[str, str] | None = None,
    log: Any = print,
) -> PartResult:
    """The suite's ingest part: every case on every engine, several workers on PostgreSQL."""
    results = []
    for engine in engines:
        databases = lab_.databases(engine)
        counts = pg_worker_counts if engine == "postgresql" else [1]
        for case in cases:
            if case.messages <= 0:
                continue
            results.append(
                run_case(
                    databases=databases,
                    workdir=lab_.workdir,
                    case=case,
                    worker_counts=counts,
                    repeat=repeat,
                    extra_env=extra_env or {},
                    log=log,
                )
            )
    data = {
        "part": "ingest",
        "machine": machine(),
        "versions": lab_.versions(),
        "method": (
            "messages pre-loaded on a fresh Mosquitto; bare paho subscriber (reads, acks) vs "
            "coldchain ingest process(es) frozen while messages are published, timed from "
            "release to the last commit (ingest_counters); medians of the runs; QoS 1"
        ),
        "workers_started_with": "coldchain ingest --workers N",
        "extra_env": extra_env or {},
        "cases": results,
    }
    return PartResult("ingest", data, summary_rows(results))


def print_table(results: list[dict[str, Any]]) -> None:
    print(
        f"{'engine':<11}{'case':<26}{'workers':>8}{'bare r/s':>12}{'worker r/s':>12}"
        f"{'ratio':>7}{'peak MB':>9}  per run"
    )
    for r in results:
        for n, w in r["workers"].items():
            print(
                f"{r['engine']:<11}{r['case']:<26}{n:>8}{r['bare_readings_per_s']:>12,.0f}"
                f"{w['readings_per_s']:>12,.0f}{w['ratio_to_bare']:>7.2f}{w['peak_mb']:>9.0f}"
                f"  {w['ratio_to_bare_per_run']}"
            )


def main() -> None:
    from bench.results import RESULTS

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000, help="messages of one reading each")
    parser.add_argument("--packs", type=int, default=200, help="messages of 1,000 readings each")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each consumer; medians are compared"
    )
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--workers", default="1", help="worker counts to measure, e.g. 1,2,4 (default 1)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra COLDCHAIN_* setting for the worker, e.g. INGEST_PUBLISH_ACKS=false",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of ingest.json")
    args = parser.parse_args()
    extra = {f"COLDCHAIN_{k.upper()}": v for k, _, v in (item.partition("=") for item in args.set)}
    counts = sorted({int(n) for n in args.workers.split(",")})
    cases = [
        Case("one-reading-per-message", args.messages, 1),
        Case("packs-of-1000", args.packs, 1000),
    ]
    with lab() as opened:
        databases = opened.databases(args.engine)
        results = [
            run_case(
                databases=databases,
                workdir=opened.workdir,
                case=case,
                worker_counts=counts,
                repeat=args.repeat,
                extra_env=extra,
            )
            for case in cases
            if case.messages > 0  # a count of 0 skips that case
        ]
        versions = opened.versions()
    print_table(results)
    write_json(
        args.out,
        "ingest",
        {"part": "ingest", "machine": machine(), "versions": versions, "extra_env": extra,
         "cases": results},
    )  # fmt: skip


if __name__ == "__main__":
    main()

__all__ = ["Case", "WorkerRun", "asdict", "run_part", "measure_worker_once", "make_payloads"]
