"""Every kind of bad payload lands in the dead-letter store and never stops the worker."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import World
from tests.e2e.test_pipeline import eventually
from tests.support.mqtt import publish_cli, publish_paho, readings_topic
from tests.support.processes import ColdchainProcess, Mosquitto

pytestmark = pytest.mark.e2e

BN = "urn:dev:logger:L-1:"


def bad_payloads(now: float) -> list[tuple[str, str, bytes]]:
    """(reason code, topic's logger, payload) for each refusal the contract lists."""

    def pack(*records: dict[str, Any]) -> bytes:
        return json.dumps(list(records)).encode()

    return [
        ("not-json", "L-1", b"this is not json"),
        ("not-senml", "L-1", b'{"n": "temp", "v": -190}'),
        (
            "non-finite-value",
            "L-1",
            f'[{{"bn":"{BN}","n":"temp","u":"Cel","t":{now},"v":NaN}}]'.encode(),
        ),
        (
            "non-finite-value",
            "L-1",
            f'[{{"bn":"{BN}","n":"temp","u":"Cel","t":{now},"v":Infinity}}]'.encode(),
        ),
        ("bad-value", "L-1", pack({"bn": BN, "n": "temp", "u": "Cel", "t": now, "vs": "-190"})),
        ("bad-value", "L-1", pack({"bn": BN, "n": "temp", "u": "Cel", "t": now, "v": True})),
        ("unknown-unit", "L-1", pack({"bn": BN, "n": "temp", "u": "degF", "t": now, "v": -300})),
        ("no-time", "L-1", pack({"bn": BN, "n": "temp", "u": "Cel", "v": -190})),
        ("relative-time", "L-1", pack({"bn": BN, "n": "temp", "u": "Cel", "t": -60, "v": -190})),
        (
            "future-time",
            "L-1",
            pack({"bn": BN, "n": "temp", "u": "Cel", "t": now + 86400, "v": -190}),
        ),
        (
            "wrong-logger",
            "L-1",
            pack({"bn": "urn:dev:logger:L-2:", "n": "temp", "u": "Cel", "t": now, "v": -190}),
        ),
        ("unknown-logger", "NOBODY", pack({"n": "temp", "u": "Cel", "t": now, "v": -190})),
        ("not-json", "L-1", b"[" * 100_000 + b"]" * 100_000),
        ("too-large", "L-1", b"[" + b" " * 300_000 + b"]"),
    ]


def dead_letters(client: FlaskClient, world: World) -> list[dict[str, Any]]:
    response = client.get("/api/v1/deadletters?limit=1000", headers=world.auth("auditor"))
    assert response.status_code == 200
    return response.get_json()  # type: ignore[no-any-return]


def test_each_bad_payload_is_kept_with_its_reason_and_the_worker_goes_on(
    broker: Mosquitto, worker: ColdchainProcess, client: FlaskClient, world: World
) -> None:
    now = round(time.time())
    cases = bad_payloads(now)
    for i, (_reason, logger_id, payload) in enumerate(cases):
        publish = publish_cli if i % 2 else publish_paho
        publish(broker, readings_topic(logger_id), payload)
    letters = eventually(
        lambda: (found := dead_letters(client, world)) and len(found) >= len(cases) and found
    )
    assert sorted(letter["reason"] for letter in letters) == sorted(r for r, _, _ in cases)
    by_payload = {(letter["reason"], letter["topic"]) for letter in letters}
    for reason, logger_id, _ in cases:
        assert (reason, readings_topic(logger_id)) in by_payload
    kept = [letter for letter in letters if letter["reason"] == "not-senml"][0]
    assert kept["payload"] == '{"n": "temp", "v": -190}' and kept["received_at"].endswith("Z")

    # The worker is alive and stores the good records of a partly bad pack.
    mixed = [
        {"bn": BN, "bu": "Cel", "bt": now - 60, "n": "temp", "t": 0, "v": -190},
        {"n": "temp", "t": 10, "v": "warm"},
        {"n": "temp", "t": 20, "v": -191},
    ]
    publish_paho(broker, readings_topic("L-1"), json.dumps(mixed))
    fresh = eventually(lambda: [x for x in dead_letters(client, world) if x["record_index"] == 1])
    assert fresh[0]["reason"] == "bad-value"
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'coldchain_dead_letters_total{reason="not-json"} 2.0' in metrics
    assert "coldchain_readings_stored_total 2.0" in metrics


def test_a_conflicting_value_for_a_stored_reading_is_dead_lettered_and_the_first_stands(
    broker: Mosquitto, worker: ColdchainProcess, client: FlaskClient, world: World
) -> None:
    t = round(time.time()) - 30
    publish_paho(
        broker,
        readings_topic("L-1"),
        json.dumps([{"bn": BN, "n": "temp", "u": "Cel", "t": t, "v": -190.5}]),
    )
    publish_cli(
        broker,
        readings_topic("L-1"),
        json.dumps([{"bn": BN, "n": "temp", "u": "Cel", "t": t, "v": -120.0}]),
    )
    conflict = eventually(
        lambda: [x for x in dead_letters(client, world) if x["reason"] == "conflict"]
    )
    assert "-190.5" in conflict[0]["detail"]
