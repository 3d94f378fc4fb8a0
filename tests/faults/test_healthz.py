"""/healthz reports the ingest workers' own state, which its database check cannot see."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from coldchain.app import create_app
from coldchain.config import Settings
from coldchain.ingest.status import WorkerStatus, read_ingest_health, status_path
from tests.support.processes import Mosquitto

pytestmark = pytest.mark.faults


@pytest.fixture
def client(settings: Settings, broker: Mosquitto) -> Iterator[FlaskClient]:
    """The web app with a reachable broker: only the ingest state can make it 503."""
    app = create_app(settings=settings.with_overrides({"mqtt_url": broker.url}))
    yield app.test_client()
    app.extensions["coldchain"].engine.dispose()


def test_a_worker_that_cannot_commit_makes_healthz_503_until_it_stores_again(
    client: FlaskClient, status_dir: Path
) -> None:
    status = WorkerStatus(status_dir, "w-1", stale_s=30)
    status.start()
    assert client.get("/healthz").status_code == 200
    try:
        status.stored()
        body = client.get("/healthz").get_json()
        assert body["ingest"] == "ok"
        assert body["ingest_workers"]["w-1"]["state"] == "ok"

        status.failed("OperationalError: database is locked")
        response = client.get("/healthz")
        assert response.status_code == 503
        body = response.get_json()
        assert body["status"] == "degraded" and body["database"] == "ok"
        assert body["ingest"] == "failing: w-1"
        worker = body["ingest_workers"]["w-1"]
        assert worker["error"] == "OperationalError: database is locked"
        assert worker["last_failure_at"].endswith("Z")

        status.stored()
        response = client.get("/healthz")
        assert response.status_code == 200
        assert response.get_json()["ingest"] == "ok"
    finally:
        status.stop()
    # A worker stopped cleanly leaves no file behind.
    assert not status_path(status_dir, "w-1").exists()
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["ingest"] == "no worker reporting"


def test_a_dead_workers_stale_file_is_shown_but_does_not_keep_healthz_at_503(
    client: FlaskClient, status_dir: Path
) -> None:
    status = WorkerStatus(status_dir, "w-dead", stale_s=30)
    status.path.parent.mkdir(parents=True)
    status.failed("OperationalError: disk full")
    # Killed with -9 while failing: its file was last written a minute ago.
    past = time.time() - 60
    body = status.snapshot(now=past)
    status.path.write_text(json.dumps(body))
    response = client.get("/healthz")
    assert response.get_json()["ingest_workers"]["w-dead"]["state"] == "stale"
    assert response.get_json()["ingest"] == "no worker reporting"
    assert response.status_code == 200


def test_a_batch_storing_for_longer_than_the_stale_time_counts_as_failing(
    tmp_path: Path,
) -> None:
    status = WorkerStatus(tmp_path, "w-stuck", stale_s=5)
    status.storing()
    assert status.snapshot()["state"] == "ok"
    later = status.snapshot(now=time.time() + 6)
    assert later["state"] == "failing"
    assert later["error"].startswith("a batch has been storing for")
    status.path.write_text(json.dumps(later))
    health = read_ingest_health(tmp_path, stale_s=5, now=time.time() + 6)
    assert health.failing and health.summary == "failing: w-stuck"
