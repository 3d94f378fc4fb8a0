"""Fixtures of the fault tests: a broker of each test's own, and the figures they print."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from coldchain.app import create_app
from coldchain.config import Settings
from tests.faults.harness import REPORTS
from tests.support.processes import Mosquitto


@pytest.fixture
def fault_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A Mosquitto of this test's own (shipped config, persistence in its folder)."""
    folder = tmp_path / "mosquitto"
    folder.mkdir()
    broker = Mosquitto(folder).start()
    yield broker
    broker.stop()


@pytest.fixture
def fault_env(worker_env: dict[str, str], fault_broker: Mosquitto) -> dict[str, str]:
    """The worker's environment on this test's broker, with the shipped batch timing."""
    return {
        **worker_env,
        "COLDCHAIN_MQTT_URL": fault_broker.url,
        "COLDCHAIN_INGEST_BATCH_MAX_MS": "100",
        "COLDCHAIN_INGEST_RETIRE_SCAN": "2",
        # A database that comes back is used again within 2 s, not 30 (the default).
        "COLDCHAIN_INGEST_RETRY_MAX_BACKOFF_S": "2",
    }


@pytest.fixture
def health(settings: Settings, fault_broker: Mosquitto) -> Iterator[FlaskClient]:
    """The web app of this test's database and broker, for /healthz."""
    app = create_app(settings=settings.with_overrides({"mqtt_url": fault_broker.url}))
    yield app.test_client()
    app.extensions["coldchain"].engine.dispose()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print each fault test's published/stored/dead-lettered figures, for the CI log."""
    if not REPORTS:
        return
    terminalreporter.section("fault tests: published = stored + dead-lettered")
    for line in REPORTS:
        terminalreporter.write_line(line)
