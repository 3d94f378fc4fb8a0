"""Loggers to excursions on real parts: Mosquitto, the worker process, SQLite, the API."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import World, make_coi
from tests.support.mqtt import Collector, publish_cli, publish_paho, readings_topic
from tests.support.processes import ColdchainProcess, Mosquitto

pytestmark = pytest.mark.e2e


def eventually(check: Callable[[], Any], timeout_s: float = 15.0) -> Any:
    """Poll until check() returns something truthy."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met after {timeout_s}s (last: {result!r})")
        time.sleep(0.1)


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def warmup_records(logger_id: str, t0: float) -> list[dict[str, Any]]:
    """Twenty minutes at 30 s: -190 C, then a 5-minute warm-up above -150 C, then -190 C."""
    records = []
    for i in range(40):
        temp = -140.0 + (i % 3) if 10 <= i < 20 else -190.0 + (i % 2) / 10
        records.append({"n": "temp", "u": "Cel", "t": t0 + 30 * i, "v": temp})
    records[0]["bn"] = f"urn:dev:logger:{logger_id}:"
    return records


def create_shipment(
    client: FlaskClient, world: World, logger_id: str, serial: int, monitoring_from: float
) -> int:
    response = client.post(
        "/api/v1/shipments",
        headers=world.auth("coord"),
        json={
            "coi": make_coi(serial),
            "profile": "LN2_VAPOR",
            "origin_site": "MFG-1",
            "destination_site": "TC-1",
            "loggers": [logger_id],
            "patient": {"mrn": str(serial)},
            "monitoring_from": iso(monitoring_from),
        },
    )
    assert response.status_code == 201, response.get_json()
    return int(response.get_json()["id"])


def excursions(client: FlaskClient, world: World, shipment_id: int) -> list[dict[str, Any]]:
    response = client.get(
        f"/api/v1/shipments/{shipment_id}/excursions", headers=world.auth("auditor")
    )
    assert response.status_code == 200
    return response.get_json()  # type: ignore[no-any-return]


def readings_count(client: FlaskClient, world: World, shipment_id: int) -> int:
    response = client.get(
        f"/api/v1/shipments/{shipment_id}/readings", headers=world.auth("auditor")
    )
    return len(response.get_json())


def comparable(excursion: dict[str, Any]) -> tuple[Any, ...]:
    return (
        excursion["kind"],
        excursion["started_at"],
        excursion["ended_at"],
        excursion["peak_c"],
        excursion["duration_s"],
        excursion["status"],
    )


def test_a_warm_up_published_two_ways_gives_one_high_excursion_whatever_the_order(
    broker: Mosquitto, worker: ColdchainProcess, client: FlaskClient, world: World
) -> None:
    t0 = round(time.time()) - 1230
    alerts = Collector(broker, "coldchain/v1/alerts/excursions")
    acks = Collector(broker, "coldchain/v1/loggers/L-1/ack")
    first = create_shipment(client, world, "L-1", 1, t0 - 60)
    pack = warmup_records("L-1", t0)
    publish_paho(broker, readings_topic("L-1"), json.dumps(pack))
    found = eventually(lambda: excursions(client, world, first))
    assert [comparable(e) for e in found] == [
        ("HIGH", iso(t0 + 300), iso(t0 + 600), -138.0, 300.0, "CLOSED")
    ]
    assert readings_count(client, world, first) == 40
    eventually(lambda: acks.snapshot())
    assert acks.snapshot()[0][1] == {"first": t0, "last": t0 + 30 * 39, "count": 40}
    assert [a["event"] for _, a in eventually(alerts.snapshot)] == ["opened"]

    # A replay through the mosquitto_pub command changes nothing.
    version = found[0]["version"]
    publish_cli(broker, readings_topic("L-1"), json.dumps(pack))
    eventually(lambda: len(acks.snapshot()) == 2)
    assert readings_count(client, world, first) == 40
    again = excursions(client, world, first)
    assert [comparable(e) for e in again] == [comparable(found[0])]
    assert again[0]["version"] == version

    # The same readings on another logger, shuffled and split into four messages.
    second = create_shipment(client, world, "L-2", 2, t0 - 60)
    copy = warmup_records("L-2", t0)
    for record in copy:
        record.pop("bn", None)
    random.Random(7).shuffle(copy)
    for part in range(4):
        chunk = copy[part * 10 : (part + 1) * 10]
        chunk[0] = {"bn": "urn:dev:logger:L-2:", **chunk[0]}
        publish_cli(broker, readings_topic("L-2"), json.dumps(chunk))
    eventually(lambda: readings_count(client, world, second) == 40)
    eventually(
        lambda: [comparable(e) for e in excursions(client, world, second)] == [comparable(found[0])]
    )
    alerts.close()
    acks.close()


def test_an_hour_of_silence_opens_signal_loss_and_a_backfill_closes_it(
    broker: Mosquitto, worker: ColdchainProcess, client: FlaskClient, world: World
) -> None:
    now = round(time.time())
    t0 = now - 2 * 3600
    shipment = create_shipment(client, world, "L-3", 3, t0)
    head = [{"bn": "urn:dev:logger:L-3:", "bu": "Cel", "bt": t0, "n": "temp", "t": 0, "v": -190}]
    head += [{"n": "temp", "t": 60 * i, "v": -190} for i in range(1, 61)]
    publish_paho(broker, readings_topic("L-3"), json.dumps(head))
    opened = eventually(
        lambda: [e for e in excursions(client, world, shipment) if e["kind"] == "SIGNAL_LOSS"]
    )
    assert len(opened) == 1
    assert opened[0]["status"] == "OPEN" and opened[0]["ended_at"] is None
    assert opened[0]["started_at"] == iso(t0 + 3600)
    assert opened[0]["duration_s"] >= 3600 - 5

    backfill = [
        {
            "bn": "urn:dev:logger:L-3:",
            "bu": "Cel",
            "bt": t0 + 3600,
            "n": "temp",
            "t": 60 * i,
            "v": -190,
        }
        for i in range(1, 61)
    ]
    publish_cli(broker, readings_topic("L-3"), json.dumps(backfill))

    def closed() -> list[dict[str, Any]]:
        return [
            e
            for e in excursions(client, world, shipment)
            if e["kind"] == "SIGNAL_LOSS" and e["status"] == "CLOSED"
        ]

    recovered = eventually(closed)
    assert recovered[0]["id"] == opened[0]["id"]
    assert recovered[0]["resolution"] == "recovered"
    assert recovered[0]["ended_at"] == iso(t0 + 3660)
    assert all(e["status"] == "CLOSED" for e in excursions(client, world, shipment))
