"""The servers and databases of the benchmark suite: brokers, PostgreSQL, seeded templates, the lab.

Everything here is real: Mosquitto and PostgreSQL are started on free ports (with the helpers
of the test suite), databases are migrated with Alembic and seeded through the services.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, text

from coldchain.config import Settings, load_settings
from coldchain.services import accounts
from coldchain.store.engine import make_engine, make_sessions
from coldchain.store.migrate import upgrade
from tests.support.postgres import Postgres
from tests.support.processes import Mosquitto

PASSWORD = "bench-password-1"
ENGINES = ("sqlite", "postgresql")


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


# --------------------------------------------------------------------------------------------
# The lab


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
