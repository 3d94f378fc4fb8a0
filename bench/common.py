"""Shared pieces of the benchmark suite: servers, seeded databases, processes, targets, results.

Everything here is real: Mosquitto and PostgreSQL are started on free ports (with the helpers
of the test suite), databases are migrated with Alembic and seeded through the services.
"""

from __future__ import annotations

import itertools
import json
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text

from coldchain.config import Settings, load_settings
from coldchain.domain.identity import mod37_2_check_character
from coldchain.services import accounts, custody, shipments
from coldchain.services.accounts import Principal
from coldchain.store.engine import make_engine, make_sessions
from coldchain.store.migrate import upgrade
from tests.support.postgres import Postgres
from tests.support.processes import ColdchainProcess, Mosquitto, process_tree

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PASSWORD = "bench-password-1"
ENGINES = ("sqlite", "postgresql")

__all__ = [
    "ColdchainProcess",
    "Mosquitto",
    "process_tree",
    "ROOT",
    "RESULTS",
]


# --------------------------------------------------------------------------------------------
# Servers


class BenchPostgres(Postgres):
    """The test suite's PostgreSQL cluster, but durable: fsync and synchronous commit on.

    The tests turn durability off for speed; a benchmark measures what production runs, so
    only the WAL size is raised (bulk loads of 10M readings would checkpoint every few s).
    """

    SETTINGS = {
        "fsync": "on",
        "synchronous_commit": "on",
        "full_page_writes": "on",
        "max_connections": "200",
        "max_wal_size": "4GB",
    }

    def version(self) -> str:
        engine = create_engine(self.admin_url)
        try:
            with engine.connect() as conn:
                return str(conn.exec_driver_sql("SHOW server_version").scalar())
        finally:
            engine.dispose()


@contextmanager
def mosquitto(workdir: Path) -> Iterator[Mosquitto]:
    """A fresh Mosquitto for one measurement, always stopped."""
    folder = workdir / f"mosquitto-{uuid.uuid4().hex[:6]}"
    folder.mkdir(parents=True)
    broker = Mosquitto(folder).start()
    try:
        yield broker
    finally:
        broker.stop()


def mosquitto_version() -> str:
    out = subprocess.run(
        [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-h"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    first = (out.stdout or out.stderr).splitlines()
    return first[0].removeprefix("mosquitto version ").strip() if first else "unknown"


# --------------------------------------------------------------------------------------------
# Databases


@dataclass
class World:
    """The seeded users of a benchmark database (tokens work in every copy of the template)."""

    coordinator_token: str
    auditor_token: str
    auditor_id: int


def settings_for(url: str) -> Settings:
    """Settings of the bench process itself: defaults with this database, no environment."""
    return load_settings(env={}, overrides={"database_url": url})


class Databases:
    """Fresh, migrated and seeded databases of one engine, copied from a template made once."""

    def __init__(self, engine: str, workdir: Path, postgres: BenchPostgres | None):
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}")
        if engine == "postgresql" and postgres is None:
            raise ValueError("PostgreSQL databases need a running cluster")
        self.engine = engine
        self.workdir = workdir
        self.postgres = postgres
        self._template: str | None = None
        self.world: World | None = None

    def _admin(self) -> Engine:
        assert self.postgres is not None
        return create_engine(self.postgres.admin_url, isolation_level="AUTOCOMMIT")

    def _make_template(self) -> World:
        if self.engine == "sqlite":
            path = self.workdir / "template.db"
            url = f"sqlite:///{path}"
        else:
            admin = self._admin()
            with admin.connect() as conn:
                conn.exec_driver_sql("CREATE DATABASE bench_template")
            admin.dispose()
            assert self.postgres is not None
            url = self.postgres.url("bench_template")
        upgrade(url)
        engine = make_engine(url)
        sessions = make_sessions(engine)
        accounts.add_site(sessions=sessions, site_id="MFG", name="Plant", kind="manufacturing")
        accounts.add_site(sessions=sessions, site_id="TC", name="Clinic", kind="treatment")
        _user, coordinator = accounts.add_user(
            sessions=sessions, username="coord", role="coordinator", site_id=None, password=PASSWORD
        )
        auditor, auditor_token = accounts.add_user(
            sessions=sessions, username="auditor", role="auditor", site_id=None, password=PASSWORD
        )
        if self.engine == "sqlite":
            with engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        engine.dispose()
        self._template = url
        return World(coordinator, auditor_token, auditor.id)

    def fresh(self, name: str | None = None) -> str:
        """Return the URL of a new database: migrated, with two sites, a coordinator, an auditor."""
        if self.world is None:
            self.world = self._make_template()
        tag = name or f"b{uuid.uuid4().hex[:10]}"
        if self.engine == "sqlite":
            assert self._template is not None
            path = self.workdir / f"{tag}.db"
            shutil.copy(self._template.removeprefix("sqlite:///"), path)
            return f"sqlite:///{path}"
        admin = self._admin()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {tag} TEMPLATE bench_template")
        admin.dispose()
        assert self.postgres is not None
        return self.postgres.url(tag)

    def drop(self, url: str) -> None:
        """Remove a database made by `fresh`."""
        if self.engine == "sqlite":
            path = Path(url.removeprefix("sqlite:///"))
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            return
        name = url.rsplit("/", 1)[1]
        admin = self._admin()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


def file_of(url: str) -> Path | None:
    """The file of a SQLite URL (None for other engines)."""
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def database_size_mb(url: str) -> float:
    """The size of the database on disk, in MB."""
    path = file_of(url)
    if path is not None:
        return sum(
            Path(f"{path}{s}").stat().st_size for s in ("", "-wal") if Path(f"{path}{s}").exists()
        ) / (1024 * 1024)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            size = conn.execute(text("SELECT pg_database_size(current_database())")).scalar()
    finally:
        engine.dispose()
    return float(size or 0) / (1024 * 1024)


_serials = itertools.count(1)


def make_coi() -> str:
    """A valid COI not used before in this run."""
    din = f"B1234{26}{next(_serials):06d}"
    return din + mod37_2_check_character(din)


def coordinator(url: str, world: World) -> Principal:
    engine = make_engine(url)
    try:
        principal = accounts.principal_for_token(
            sessions=make_sessions(engine), token=world.coordinator_token
        )
    finally:
        engine.dispose()
    assert principal is not None
    return principal


def register_loggers(url: str, logger_ids: Sequence[str]) -> None:
    """Register loggers through the service (each audited)."""
    engine = make_engine(url)
    sessions = make_sessions(engine)
    try:
        for logger_id in logger_ids:
            accounts.add_logger(sessions=sessions, logger_id=logger_id)
    finally:
        engine.dispose()


def create_shipments(
    url: str, world: World, groups: Sequence[Sequence[str]], monitoring_from: datetime
) -> list[int]:
    """Create one LN2_VAPOR shipment per group of loggers through the service; return ids.

    The service re-evaluates the readings already in the window: that is how bulk-loaded
    readings get their excursions, by the code the worker runs.
    """
    settings = settings_for(url)
    creator = coordinator(url, world)
    engine = make_engine(url)
    sessions = make_sessions(engine)
    ids = []
    try:
        for n, group in enumerate(groups):
            created = shipments.create_shipment(
                sessions=sessions,
                creator=creator,
                profiles=settings.profiles,
                secret_key=settings.secret_key,
                request=shipments.NewShipment(
                    coi=make_coi(),
                    profile="LN2_VAPOR",
                    origin_site="MFG",
                    destination_site="TC",
                    loggers=list(group),
                    patient={"id": f"bench-{n}"},
                    monitoring_from=monitoring_from,
                ),
            )
            ids.append(int(created["id"]))
    finally:
        engine.dispose()
    return ids


def cancel_shipments(url: str, world: World, shipment_ids: Sequence[int]) -> None:
    """Cancel shipments through the service: their loggers stop being monitored."""
    creator = coordinator(url, world)
    engine = make_engine(url)
    sessions = make_sessions(engine)
    try:
        for shipment_id in shipment_ids:
            detail = shipments.get_shipment(
                sessions=sessions, shipment_id=shipment_id, principal=creator
            )
            custody.cancel_shipment(
                sessions=sessions,
                shipment_id=shipment_id,
                principal=creator,
                version=int(detail["version"]),
                reason="benchmark shipment: monitoring ends here",
            )
    finally:
        engine.dispose()


class Counters:
    """Read the worker's ingest counters (exact across workers: kept in the database)."""

    def __init__(self, url: str):
        self.url = url
        path = file_of(url)
        self._sqlite = sqlite3.connect(path, timeout=30) if path is not None else None
        self._engine = None if path is not None else create_engine(url, pool_size=1)

    def read(self) -> dict[str, int]:
        query = "SELECT name, value FROM ingest_counters"
        if self._sqlite is not None:
            return dict(self._sqlite.execute(query).fetchall())
        assert self._engine is not None
        with self._engine.connect() as conn:
            return {str(k): int(v) for k, v in conn.exec_driver_sql(query).fetchall()}

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
        if self._engine is not None:
            self._engine.dispose()


# --------------------------------------------------------------------------------------------
# Processes


def signal_tree(pids: Sequence[int], signum: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def peak_rss_mb(pid: int) -> float:
    """The peak resident set size of a live process (VmHWM), in MB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return float("nan")
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def stop_all(processes: Sequence[ColdchainProcess]) -> None:
    """Stop processes we started (SIGTERM, then SIGKILL), never raising."""
    for process in processes:
        if process.process is None or process.process.poll() is not None:
            process.stop() if process.process is not None else None
            continue
        try:
            for pid in process_tree(process.process.pid):
                os.kill(pid, signal.SIGCONT)  # a stopped process cannot handle SIGTERM
        except OSError:
            pass
        try:
            process.stop()
        except Exception:  # noqa: BLE001 - cleanup must go on
            process.process.kill()


# --------------------------------------------------------------------------------------------
# Targets and results


@dataclass
class Row:
    """One line of the summary: a figure, its baseline, and the target it answers."""

    part: str
    engine: str
    measure: str
    figure: str
    baseline: str = ""
    target: str = ""
    status: str = ""  # pass | FAIL | not measured | "" (no target)
    note: str = ""


def judge(value: float | None, op: str, threshold: float) -> str:
    """Compare a figure with its target: 'pass', 'FAIL' or 'not measured'."""
    if value is None or value != value:  # None or NaN
        return "not measured"
    ok = value >= threshold if op == ">=" else value < threshold
    return "pass" if ok else "FAIL"


@dataclass
class PartResult:
    """What a part hands back: its JSON document and its summary rows."""

    name: str
    data: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def machine() -> dict[str, Any]:
    """Describe where the figures were taken."""
    return {
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_json(folder: Path, name: str, data: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return float("nan")
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by the nearest-rank method."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def wait_until(predicate: Any, timeout_s: float, interval_s: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return False


class Lab:
    """The servers and template databases of one benchmark run; `close` stops what it started."""

    def __init__(self) -> None:
        import tempfile

        self.workdir = Path(tempfile.mkdtemp(prefix="coldchain-bench-"))
        self.postgres: BenchPostgres | None = None
        self._databases: dict[str, Databases] = {}

    def databases(self, engine: str) -> Databases:
        """The database factory of an engine (PostgreSQL is started on first use)."""
        if engine not in self._databases:
            if engine == "postgresql" and self.postgres is None:
                import tempfile

                # Not under self.workdir: the server runs as the `postgres` user, and the
                # folders above its own must let it through.
                self.postgres = BenchPostgres(Path(tempfile.mkdtemp(prefix="coldchain-bench-pg-")))
                try:
                    self.postgres.start()
                except BaseException:
                    self.postgres.stop()
                    raise
            folder = self.workdir / engine
            folder.mkdir(exist_ok=True)
            self._databases[engine] = Databases(engine, folder, self.postgres)
        return self._databases[engine]

    def versions(self) -> dict[str, str]:
        found = {"mosquitto": mosquitto_version()}
        if self.postgres is not None:
            found["postgresql"] = self.postgres.version()
        found["sqlite"] = sqlite3.sqlite_version
        return found

    def close(self) -> None:
        if self.postgres is not None:
            self.postgres.stop()
            shutil.rmtree(self.postgres.workdir, ignore_errors=True)
            self.postgres = None
        shutil.rmtree(self.workdir, ignore_errors=True)


@contextmanager
def lab() -> Iterator[Lab]:
    """A Lab that is always closed, whatever happens inside."""
    opened = Lab()
    try:
        yield opened
    finally:
        opened.close()
