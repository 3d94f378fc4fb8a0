"""`coldchain demo` brings up broker, worker, API and loggers, and stops cleanly."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import requests

from coldchain.demo import free_port
from tests.e2e.test_pipeline import eventually
from tests.support.processes import ColdchainProcess

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("broker", "banner"),
    [("mosquitto", "mosquitto, MQTT 5"), ("embedded", "amqtt (embedded), MQTT 3.1.1")],
)
def test_the_demo_runs_every_scenario_through_its_broker_and_stops_on_a_signal(
    broker: str, banner: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        "COLDCHAIN_DEMO_BROKER": broker,
        "COLDCHAIN_DEMO_DATABASE_PATH": str(tmp_path / "var" / "demo.db"),
    }
    demo = ColdchainProcess(["demo", "--port", str(port)], env, tmp_path / "demo.log").start()
    try:
        demo.wait_for_log("Press Ctrl-C to stop.", timeout_s=60)
        assert banner in demo.log()
        match = re.search(r"^  coordinator +\S+ +(\S+)$", demo.log(), re.MULTILINE)
        assert match, demo.log()
        headers = {"Authorization": f"Bearer {match.group(1)}"}
        base = f"http://127.0.0.1:{port}/api/v1"

        def get(path: str) -> Any:
            response = requests.get(base + path, headers=headers, timeout=10)
            assert response.status_code == 200, response.text
            return response.json()

        listed = get("/shipments")
        by_logger = {s["loggers"][0]: s["id"] for s in listed}
        assert {"SIM-NOM-1", "SIM-NOM-2", "SIM-EXC-1", "SIM-LOSS-1"} <= set(by_logger)
        # Every state of the life cycle is on show.
        assert {s["status"] for s in listed} == {
            "created",
            "picked_up",
            "in_transit",
            "delivered",
            "received",
            "rejected",
            "quarantined",
            "cancelled",
        }
        for logger_id in ("SIM-NOM-1", "SIM-NOM-2", "SIM-EXC-1"):
            eventually(lambda lid=logger_id: get(f"/shipments/{by_logger[lid]}/readings"), 30)
        # The signal-loss logger reported once, long ago: its loss shows at once, and its
        # store-and-forward backfill arrives after 30 s of silence and closes it.
        loss = eventually(lambda: get(f"/shipments/{by_logger['SIM-LOSS-1']}/excursions"), 30)
        assert [e["kind"] for e in loss] == ["SIGNAL_LOSS"]
        closed = eventually(
            lambda: [
                e
                for e in get(f"/shipments/{by_logger['SIM-LOSS-1']}/excursions")
                if e["status"] == "CLOSED"
            ],
            60,
        )
        assert closed[0]["resolution"] == "recovered"
    finally:
        code = demo.stop(timeout_s=40)
    assert code == 0, demo.log()
    assert "demo stopped" in demo.log()
