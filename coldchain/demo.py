"""`coldchain demo`: broker, database, worker, API and a simulated fleet on one machine."""

from __future__ import annotations

import getpass
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from coldchain.config import CONFIG_DIR, Settings
from coldchain.demo_data import FLEET, seed
from coldchain.store.engine import make_engine, make_sessions
from coldchain.store.migrate import upgrade


@dataclass
class Children:
    """The processes the demo started, stopped in reverse order."""

    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        with log.open("ab") as out:
            process = subprocess.Popen(
                args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.processes.append((name, process))

    def dead(self) -> list[str]:
        return [name for name, p in self.processes if p.poll() is not None]

    def stop(self) -> None:
        for _name, process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for _name, process in reversed(self.processes):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def free_port() -> int:
    """Return a TCP port that is free on the loopback interface now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout_s: float = 15.0) -> bool:
    """Wait until something listens on the port; tell whether it did."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def _mosquitto_conf(workdir: Path, port: int) -> Path:
    """Write the demo broker's config: the shipped one plus a listener and a data folder."""
    shipped = (CONFIG_DIR / "mosquitto.conf").read_text()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"{shipped}\n# --- added by coldchain demo ---\nlistener {port} 127.0.0.1\n"
        f"allow_anonymous true\npersistence_location {workdir}/\n"
        # Run as root, Mosquitto switches to its own user, which cannot write the demo folder.
        f"user {getpass.getuser()}\n"
        f"log_dest file {workdir / 'mosquitto.log'}\n"
    )
    return conf


@dataclass(frozen=True)
class DemoBroker:
    """The broker the demo runs: Mosquitto, or the embedded amqtt on MQTT 3.1.1."""

    name: str
    mqtt_version: str
    executable: str | None = None

    def command(self, workdir: Path, port: int) -> list[str]:
        if self.executable is not None:
            return [self.executable, "-c", str(_mosquitto_conf(workdir, port))]
        return [sys.executable, "-m", "coldchain.embedded_broker", "--port", str(port)]


def choose_broker(choice: str) -> DemoBroker | str:
    """Pick the demo's broker by the demo.broker setting; a string is why none can run."""
    if choice not in ("auto", "mosquitto", "embedded"):
        return f"demo.broker must be auto, mosquitto or embedded, not {choice!r}"
    mosquitto = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if mosquitto is not None and choice != "embedded":
        return DemoBroker("mosquitto", "5", mosquitto)
    if choice == "mosquitto":
        return "demo.broker is mosquitto but Mosquitto is not installed: apt-get install mosquitto"
    if importlib.util.find_spec("amqtt") is None:
        return (
            "coldchain demo needs a broker: apt-get install mosquitto (`make demo` does), "
            "or pip install 'coldchain[demo]' for the embedded amqtt broker"
        )
    return DemoBroker("amqtt (embedded)", "3.1.1")


def run_demo(settings: Settings, *, http_port: int | None, duration_s: float | None) -> int:
    """Run the demo until Ctrl-C (or for duration_s); return the exit code."""
    from waitress import create_server

    from coldchain.app import create_app

    broker = choose_broker(str(settings["demo_broker"]))
    if isinstance(broker, str):
        print(broker, file=sys.stderr)
        return 2
    workdir = Path(str(settings["demo_database_path"])).resolve().parent / "demo"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    database_url = f"sqlite:///{workdir / 'demo.db'}"
    mqtt_port = int(settings["demo_mqtt_port"]) or free_port()
    http_port = http_port or int(settings["demo_http_port"])
    settings = settings.with_overrides(
        {
            "database_url": database_url,
            "mqtt_url": f"mqtt://127.0.0.1:{mqtt_port}",
            "mqtt_protocol": broker.mqtt_version,
            "ingest_signal_loss_check_s": 10,
            # The worker's state for /healthz, in the demo's folder (cleared on each run).
            "ingest_status_dir": str(workdir / "run"),
        }
    )
    upgrade(database_url)
    engine = make_engine(database_url)
    logins = seed(make_sessions(engine), settings)

    children = Children()
    env = {
        **os.environ,
        "COLDCHAIN_DATABASE_URL": database_url,
        "COLDCHAIN_MQTT_URL": settings["mqtt_url"],
        "COLDCHAIN_MQTT_PROTOCOL": broker.mqtt_version,
        "COLDCHAIN_INGEST_SIGNAL_LOSS_CHECK_S": "10",
        "COLDCHAIN_INGEST_STATUS_DIR": str(settings["ingest_status_dir"]),
        "COLDCHAIN_SECRET_KEY": str(settings["secret_key"]),
    }
    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    server = None
    try:
        children.start(broker.name, broker.command(workdir, mqtt_port), env, workdir / "broker.log")
        if not wait_for_port(mqtt_port):
            print(f"{broker.name} did not start; see {workdir}/broker.log", file=sys.stderr)
            return 1
        children.start(
            "worker", [sys.executable, "-m", "coldchain", "ingest"], env, workdir / "worker.log"
        )
        # Alerts out: idle until a subscription is added (coldchain alerts add-webhook ...).
        children.start(
            "alerts",
            [sys.executable, "-m", "coldchain", "alerts", "run"],
            env,
            workdir / "alerts.log",
        )
        for scenario, logger_ids, ago_s in FLEET:
            extra = (
                ["--silence-s", "30", "--backfill-s", str(ago_s)]
                if scenario == "signal-loss"
                else []
            )
            if scenario == "excursion":
                extra = ["--warmup-after-s", "30", "--warmup-s", "180"]
            children.start(
                f"devices-{scenario}",
                [
                    sys.executable,
                    "-m",
                    "devices",
                    "--broker",
                    settings["mqtt_url"],
                    "--mqtt-version",
                    broker.mqtt_version,
                    "--loggers",
                    ",".join(logger_ids),
                    "--interval",
                    "5",
                    "--scenario",
                    scenario,
                    *extra,
                ],
                env,
                workdir / f"devices-{scenario}.log",
            )
        app = create_app(settings=settings)
        server = create_server(app, host="127.0.0.1", port=http_port, threads=8)
        threading.Thread(target=server.run, daemon=True).start()
        _banner(http_port, broker, mqtt_port, workdir, logins)
        deadline = None if duration_s is None else time.monotonic() + duration_s
        while not stop.wait(1.0):
            if deadline is not None and time.monotonic() >= deadline:
                break
            dead = children.dead()
            if dead:
                print(f"stopping: {', '.join(dead)} exited; logs in {workdir}", file=sys.stderr)
                return 1
        return 0
    finally:
        print("stopping the demo...", flush=True)
        if server is not None:
            server.close()
        children.stop()
        engine.dispose()
        print("demo stopped", flush=True)


def _banner(
    http_port: int,
    broker: DemoBroker,
    mqtt_port: int,
    workdir: Path,
    logins: dict[str, tuple[str, str]],
) -> None:
    print(f"""
coldchain demo is running.
  web:      http://127.0.0.1:{http_port}/   (sign in with a demo user and password below)
  API:      http://127.0.0.1:{http_port}/api/v1/shipments   (OpenAPI: /api/v1/openapi.json)
  health:   http://127.0.0.1:{http_port}/healthz    metrics: /metrics
  broker:   mqtt://127.0.0.1:{mqtt_port}   {broker.name}, MQTT {broker.mqtt_version}
  alerts:   coldchain/v1/alerts/excursions (MQTT); webhooks, e-mail: coldchain alerts
            add-webhook URL, with COLDCHAIN_DATABASE_URL=sqlite:///{workdir}/demo.db
  logs, db: {workdir}
Demo logins (user / password / API token):""")
    for username, (password, token) in logins.items():
        print(f"  {username:<12} {password:<18} {token}")
    print(
        f"""Try:
  curl -H 'Authorization: Bearer {logins["coordinator"][1]}' \\
       http://127.0.0.1:{http_port}/api/v1/excursions
Demo patients: shipment with COI ...0001NN has MRN "MRN-1NN", name "Patient 1NN",
  born 1970-01-01 (the web pages' receipt form asks for them).
Press Ctrl-C to stop.""",
        flush=True,
    )
