"""The database locked by another writer: the worker keeps the readings unacked, retries,
/healthz answers 503, and everything is stored once the lock goes."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from tests.faults.harness import (
    account,
    assert_unacked_since,
    eventually,
    start_loggers,
    start_worker,
    stored_count,
    wait_all_stored,
)
from tests.support.processes import Mosquitto

pytestmark = pytest.mark.faults

LOGGERS = ["L-1", "L-2", "L-3"]


@contextmanager
def locked(database_url: str) -> Iterator[None]:
    """Hold the readings table as another writer would: SQLite's BEGIN EXCLUSIVE on the file,
    PostgreSQL's ACCESS EXCLUSIVE lock on the table, in an open transaction."""
    if database_url.startswith("sqlite"):
        connection = sqlite3.connect(
            database_url.removeprefix("sqlite:///"), timeout=30, isolation_level=None
        )
        connection.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            connection.execute("ROLLBACK")
            connection.close()
        return
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection, connection.begin() as transaction:
            connection.exec_driver_sql("LOCK TABLE readings IN ACCESS EXCLUSIVE MODE")
            try:
                yield
            finally:
                transaction.rollback()
    finally:
        engine.dispose()


def test_a_locked_database_is_retried_unacked_reported_by_healthz_and_loses_nothing(
    fault_broker: Mosquitto,
    fault_env: dict[str, str],
    sessions: sessionmaker[Session],
    health: FlaskClient,
    database_url: str,
    tmp_path: Path,
) -> None:
    worker = start_worker(fault_env, tmp_path / "worker.log")
    loggers = start_loggers(fault_broker.url, LOGGERS, interval_s=0.05, ack_timeout_s=1.0)
    try:
        eventually(lambda: stored_count(sessions, LOGGERS) > 50)
        assert health.get("/healthz").status_code == 200
        with locked(database_url):
            marks = {sim.logger_id: len(sim.generated) for sim in loggers}
            # A statement waits 10 s for a lock (busy_timeout, lock_timeout), then fails.
            failing = eventually(lambda: health.get("/healthz").status_code == 503, timeout_s=30)
            assert failing
            body = health.get("/healthz").get_json()
            assert body["database"] == "ok" and body["ingest"].startswith("failing: ")
            [state] = body["ingest_workers"].values()
            assert state["state"] == "failing" and state["error"]
            held = assert_unacked_since(loggers, marks)
            assert held > 20
        eventually(lambda: health.get("/healthz").status_code == 200, timeout_s=30)
        wait_all_stored(sessions, loggers)
    finally:
        for sim in loggers:
            sim.stop()
        code = worker.stop()
    assert code == 0, worker.log()
    assert "not stored" in worker.log()
    account("database locked by another writer", loggers, sessions)
