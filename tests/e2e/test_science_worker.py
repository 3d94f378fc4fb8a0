"""Excursion science through the real worker: Mosquitto, the worker process, the API."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import World
from tests.e2e.test_pipeline import create_shipment, eventually, iso
from tests.support.mqtt import publish_paho, readings_topic
from tests.support.processes import ColdchainProcess, Mosquitto

pytestmark = pytest.mark.e2e


def shipment(client: FlaskClient, world: World, shipment_id: int) -> Any:
    response = client.get(f"/api/v1/shipments/{shipment_id}", headers=world.auth("auditor"))
    assert response.status_code == 200
    return response.get_json()


def test_the_worker_raises_rate_and_budget_alarms_from_a_backlog_sent_backwards(
    broker: Mosquitto, worker: ColdchainProcess, client: FlaskClient, world: World
) -> None:
    t0 = round(time.time()) - 3 * 3600
    shipment_id = create_shipment(client, world, "L-4", 4, t0 - 60)
    # Two hours a minute apart: -190 C, with 35 minutes at -145 C from minute 30 (LN2_VAPOR:
    # a 1800 s budget, spent at minute 60; a rise of 45 C in a minute at minute 30).
    records: list[dict[str, Any]] = [
        {"n": "temp", "u": "Cel", "t": t0 + 60 * i, "v": -145.0 if 30 <= i < 65 else -190.0}
        for i in range(120)
    ]
    # The second hour first, as a store-and-forward backlog may come.
    for part in (records[60:], records[:60]):
        part[0] = {"bn": "urn:dev:logger:L-4:", **part[0]}
        publish_paho(broker, readings_topic("L-4"), json.dumps(part))

    def alarms() -> list[tuple[str, str, str]] | None:
        found = shipment(client, world, shipment_id)["alarms"]
        shown = sorted((a["kind"], a["at"], a["status"]) for a in found)
        return shown if len(shown) == 2 else None

    assert eventually(alarms) == [
        ("BUDGET_SPENT", iso(t0 + 60 * 60), "OPEN"),
        ("RATE_OF_CHANGE", iso(t0 + 30 * 60), "OPEN"),
    ]
    shown = shipment(client, world, shipment_id)
    assert shown["stability"]["used_s"] == 35 * 60 and shown["stability"]["spent"]
    [high] = [e for e in shown["excursions"] if e["kind"] == "HIGH"]
    assert high["severity"] == "warning"
