"""Fixtures: a real Mosquitto per test session, a real SQLite file per test."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from coldchain.app import create_app
from coldchain.config import Settings, load_settings
from coldchain.domain.identity import mod37_2_check_character
from coldchain.services import accounts
from coldchain.store.engine import make_engine, make_sessions
from coldchain.store.migrate import upgrade
from tests.support.postgres import Postgres
from tests.support.processes import ColdchainProcess, Mosquitto

PASSWORD = "correct horse battery"


def make_coi(serial: int, facility: str = "G1234", year: str = "26") -> str:
    """Return a valid 14-character COI for a serial number."""
    din = f"{facility}{year}{serial:06d}"
    return din + mod37_2_check_character(din)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    mosquitto = Mosquitto(tmp_path_factory.mktemp("mosquitto")).start()
    yield mosquitto
    mosquitto.stop()


@dataclass
class World:
    """Seeded sites, users (with tokens) and loggers."""

    tokens: dict[str, str]

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}


def seed_world(sessions: sessionmaker[Session]) -> World:
    """Create four sites, users of each role (site users at MFG-1, TC-1, TC-2), five loggers."""
    for site_id, kind in (
        ("COLL-1", "apheresis"),
        ("MFG-1", "manufacturing"),
        ("TC-1", "treatment"),
        ("TC-2", "treatment"),
    ):
        accounts.add_site(sessions=sessions, site_id=site_id, name=f"Site {site_id}", kind=kind)
    tokens = {}
    for name, role, site in (
        ("admin", "admin", None),
        ("coord", "coordinator", None),
        ("courier", "courier", None),
        ("courier2", "courier", None),
        ("mfg", "clinic", "MFG-1"),
        ("clinic1", "clinic", "TC-1"),
        ("clinic2", "clinic", "TC-2"),
        ("qa", "qa", None),
        ("auditor", "auditor", None),
    ):
        _user, tokens[name] = accounts.add_user(
            sessions=sessions, username=name, role=role, site_id=site, password=PASSWORD
        )
    for n in range(1, 6):
        accounts.add_logger(sessions=sessions, logger_id=f"L-{n}")
    return World(tokens)


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, World]:
    """A migrated and seeded database, made once and copied for each test (argon2 is slow)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    world = seed_world(make_sessions(engine))
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path, world


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL cluster of the test session, on a free port (not a mock: the real server)."""
    # Not under pytest's temporary folder: its parents are private to root, and the server
    # runs as the unprivileged `postgres` user.
    server = Postgres(Path(tempfile.mkdtemp(prefix="coldchain-pg-"))).start()
    yield server
    server.stop()
    shutil.rmtree(server.workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_template(postgres: Postgres) -> World:
    """A migrated and seeded PostgreSQL database that each test's database is copied from."""
    admin = create_engine(postgres.admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql("CREATE DATABASE coldchain_template")
    admin.dispose()
    url = postgres.url("coldchain_template")
    upgrade(url)
    engine = make_engine(url)
    world = seed_world(make_sessions(engine))
    engine.dispose()
    return world


@pytest.fixture
def pg_database_url(postgres: Postgres, pg_template: World) -> Iterator[str]:
    """A fresh PostgreSQL database for one test, copied from the seeded template."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres.admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name} TEMPLATE coldchain_template")
    yield postgres.url(name)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.dispose()


# COLDCHAIN_TEST_ENGINE=postgresql runs the suite on PostgreSQL instead of SQLite files.
ENGINE = os.environ.get("COLDCHAIN_TEST_ENGINE", "sqlite")


@pytest.fixture
def sqlite_database_url(tmp_path: Path, template: tuple[Path, World]) -> str:
    """A SQLite file for one test, copied from the seeded template."""
    path = tmp_path / "coldchain.db"
    shutil.copy(template[0], path)
    return f"sqlite:///{path}"


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> str:
    """This test's database on the engine under test (COLDCHAIN_TEST_ENGINE)."""
    name = "pg_database_url" if ENGINE == "postgresql" else "sqlite_database_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def status_dir(tmp_path: Path) -> Path:
    """Where this test's workers write their state and its web app reads it (/healthz)."""
    return tmp_path / "run"


@pytest.fixture
def settings(database_url: str, status_dir: Path) -> Settings:
    return load_settings(
        env={}, overrides={"database_url": database_url, "ingest_status_dir": str(status_dir)}
    )


@pytest.fixture
def sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(settings.database_url)
    yield make_sessions(engine)
    engine.dispose()


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    application = create_app(settings=settings)
    yield application
    application.extensions["coldchain"].engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def world(request: pytest.FixtureRequest, database_url: str) -> World:
    """The seeded sites, users and loggers of this test's database."""
    if ENGINE == "postgresql":
        return request.getfixturevalue("pg_template")  # type: ignore[no-any-return]
    return request.getfixturevalue("template")[1]  # type: ignore[no-any-return]


@pytest.fixture
def worker_env(broker: Mosquitto, database_url: str, status_dir: Path) -> dict[str, str]:
    """Environment of a worker process isolated from other tests' sessions on the broker."""
    tag = uuid.uuid4().hex[:8]
    return {
        "COLDCHAIN_DATABASE_URL": database_url,
        "COLDCHAIN_MQTT_URL": broker.url,
        "COLDCHAIN_INGEST_CLIENT_ID": f"test-ingest-{tag}",
        # Each test gets its own share group, so no earlier test's session takes messages.
        "COLDCHAIN_INGEST_READINGS_TOPIC": f"$share/t{tag}/coldchain/v1/loggers/+/readings",
        "COLDCHAIN_INGEST_SESSION_EXPIRY_S": "60",
        "COLDCHAIN_INGEST_BATCH_MAX_MS": "20",
        "COLDCHAIN_INGEST_SIGNAL_LOSS_CHECK_S": "1",
        "COLDCHAIN_INGEST_STATUS_DIR": str(status_dir),
    }


@pytest.fixture
def worker(worker_env: dict[str, str], tmp_path: Path) -> Iterator[ColdchainProcess]:
    process = ColdchainProcess(["ingest"], worker_env, tmp_path / "worker.log").start()
    process.wait_for_log("connected to", timeout_s=20)
    yield process
    code = process.stop()
    assert code == 0, process.log()
