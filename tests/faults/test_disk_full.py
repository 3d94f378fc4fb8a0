"""The disk of the readings full: the worker keeps them unacked and retries with backoff,
/healthz answers 503, and everything is stored once space is freed.

A real full disk: a small tmpfs mounted for the test (root only; skipped otherwise) holds
the SQLite file, or, on PostgreSQL, a tablespace that the readings table is moved to; the
test fills it with a file and deletes that file to free it.
"""

from __future__ import annotations

import errno
import os
import pwd
import shutil
import sqlite3
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import ENGINE, World
from tests.faults.harness import (
    account,
    assert_unacked_since,
    eventually,
    retry_delays,
    start_loggers,
    start_worker,
    stored_count,
    wait_all_stored,
)
from tests.support.processes import Mosquitto

pytestmark = pytest.mark.faults

LOGGERS = ["L-1", "L-2", "L-3"]


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 32 MiB tmpfs (outside pytest's folders, which the postgres user cannot enter)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    mount = Path(tempfile.mkdtemp(prefix="coldchain-small-disk-"))
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32m,mode=0755", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        mount.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        mount.rmdir()


@pytest.fixture
def sqlite_database_url(small_disk: Path, template: tuple[Path, World]) -> str:
    """This test's SQLite file, on the small disk."""
    path = small_disk / "coldchain.db"
    shutil.copy(template[0], path)
    return f"sqlite:///{path}"


@pytest.fixture
def readings_on_small_disk(database_url: str, small_disk: Path) -> Iterator[None]:
    """On PostgreSQL, move the readings table to a tablespace on the small disk."""
    if ENGINE != "postgresql":
        yield
        return
    owner = pwd.getpwnam("postgres")
    folder = small_disk / "tablespace"
    folder.mkdir()
    os.chown(folder, owner.pw_uid, owner.pw_gid)
    name = f"small_{uuid.uuid4().hex[:8]}"
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f"CREATE TABLESPACE {name} LOCATION '{folder}'")
        conn.exec_driver_sql(f"ALTER TABLE readings SET TABLESPACE {name}")
    try:
        yield
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql("ALTER TABLE readings SET TABLESPACE pg_default")
            conn.exec_driver_sql(f"DROP TABLESPACE {name}")
        engine.dispose()


def fill(disk: Path) -> Path:
    """Fill the filesystem to its last byte with one file; return it."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as handle:
        for size in (1 << 20, 1 << 12, 1 << 9, 1):
            block = b"\0" * size
            while True:
                try:
                    handle.write(block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    return filler


def test_a_full_disk_is_retried_with_backoff_unacked_reported_by_healthz_and_loses_nothing(
    fault_broker: Mosquitto,
    fault_env: dict[str, str],
    sessions: sessionmaker[Session],
    health: FlaskClient,
    database_url: str,
    small_disk: Path,
    readings_on_small_disk: None,
    tmp_path: Path,
) -> None:
    worker = start_worker(fault_env, tmp_path / "worker.log")
    loggers = start_loggers(fault_broker.url, LOGGERS, interval_s=0.05, ack_timeout_s=1.0)
    try:
        eventually(lambda: stored_count(sessions, LOGGERS) > 50)
        assert health.get("/healthz").status_code == 200
        if database_url.startswith("sqlite"):
            # An emptied WAL must grow with the next commit: it cannot reuse its old pages.
            db = sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=30)
            try:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                db.close()
        filler = fill(small_disk)
        try:
            eventually(lambda: health.get("/healthz").status_code == 503, timeout_s=30)
            body = health.get("/healthz").get_json()
            assert body["database"] == "ok" and body["ingest"].startswith("failing: ")
            # From now on nothing can be committed, so nothing may be acked.
            marks = {sim.logger_id: len(sim.generated) for sim in loggers}
            # Retried with growing pauses: 0.1 s, 0.2 s, 0.4 s... (up to 2 s in this test).
            eventually(lambda: len(retry_delays(worker.log())) >= 6, timeout_s=30)
            delays = retry_delays(worker.log())
            assert delays == sorted(delays) and delays[0] < delays[-1], delays
            assert assert_unacked_since(loggers, marks) > 10
        finally:
            filler.unlink()
        eventually(lambda: health.get("/healthz").status_code == 200, timeout_s=40)
        wait_all_stored(sessions, loggers)
    finally:
        for sim in loggers:
            sim.stop()
        code = worker.stop()
    assert code == 0, worker.log()
    account("disk of the readings full", loggers, sessions)
