"""The audit views: filters, paging, exports, checkpoint and verification, shipment history."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from coldchain.config import Settings
from coldchain.domain.audit import GENESIS_HASH, event_hash
from coldchain.services import checkpoints
from tests.api.test_custody_api import create, deliver, handoff, receive, store
from tests.conftest import World


def audit(client: FlaskClient, world: World, **query: str) -> Any:
    response = client.get("/api/v1/audit", query_string=query, headers=world.auth("auditor"))
    assert response.status_code == 200, response.get_json()
    return response


def test_events_filter_by_entity_actor_action_and_time_and_page(
    client: FlaskClient, world: World
) -> None:
    shipment = create(client, world)
    handoff(client, world, shipment, "MFG-1", "courier")
    everything = audit(client, world, limit="100000").get_json()
    assert [e["seq"] for e in everything] == list(range(1, len(everything) + 1))
    mine = audit(client, world, entity="shipment", entity_id=str(shipment["id"])).get_json()
    assert [e["action"] for e in mine] == ["shipment.create", "shipment.pick_up"]
    assert [e["action"] for e in audit(client, world, actor="courier").get_json()] == [
        "signature.signed",
        "shipment.pick_up",
    ]
    prefix = audit(client, world, action="shipment").get_json()
    assert {e["action"] for e in prefix} == {"shipment.create", "shipment.pick_up"}
    page = audit(client, world, limit="2", offset="1").get_json()
    assert [e["seq"] for e in page] == [2, 3]
    future = audit(client, world, since="2999-01-01T00:00:00Z").get_json()
    assert future == []
    span = audit(client, world, until=everything[0]["at"]).get_json()
    assert span and all(e["at"] <= everything[0]["at"] for e in span)
    bad = client.get("/api/v1/audit?since=yesterday", headers=world.auth("auditor"))
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "since"


def test_the_exports_carry_what_verification_needs(client: FlaskClient, world: World) -> None:
    create(client, world)
    lines = audit(client, world, format="jsonl").get_data(as_text=True).splitlines()
    events = [json.loads(line) for line in lines]
    prev = GENESIS_HASH
    for event in events:
        assert event["prev_hash"] == prev and event_hash(event) == event["hash"]
        prev = event["hash"]
    table = audit(client, world, format="csv")
    assert table.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(table.get_data(as_text=True))))
    assert [int(r["seq"]) for r in rows] == [e["seq"] for e in events]
    assert json.loads(rows[-1]["new_values"]) == events[-1]["new_values"]


def test_checkpoint_and_verify_through_the_api(
    client: FlaskClient, world: World, sessions: sessionmaker[Session]
) -> None:
    missing = client.get("/api/v1/audit/checkpoint", headers=world.auth("auditor"))
    assert missing.status_code == 404
    unchecked = client.get("/api/v1/audit/verify", headers=world.auth("auditor")).get_json()
    assert unchecked["ok"] and unchecked["checkpoint"] is None
    signed = checkpoints.make_checkpoint(sessions=sessions, key=Ed25519PrivateKey.generate())
    served = client.get("/api/v1/audit/checkpoint", headers=world.auth("qa")).get_json()
    assert served == signed.as_dict()
    verdict = client.get("/api/v1/audit/verify", headers=world.auth("admin")).get_json()
    assert verdict["ok"] and verdict["checkpoint_seq"] == signed.checkpoint.seq
    assert verdict["events"] == signed.checkpoint.seq + 1  # the checkpoint is itself an event
    assert client.get("/api/v1/audit", headers=world.auth("coord")).status_code == 403


def test_the_shipment_history_is_in_time_order_with_excursions_at_reading_times(
    client: FlaskClient, world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    shipment = create(client, world, monitoring_from="2020-01-01T00:00:00Z")
    delivered = deliver(client, world, shipment)
    store(sessions, settings, "L-1", [-190, -140, -140, -190])
    current = client.get(f"/api/v1/shipments/{shipment['id']}", headers=world.auth("clinic1"))
    receive(client, world, current.get_json(), decision="quarantine", reason="excursion")
    steps = client.get(
        f"/api/v1/shipments/{delivered['id']}/history", headers=world.auth("clinic1")
    ).get_json()
    kinds = [s["type"] for s in steps]
    # The readings were taken in the minutes before: the excursion is placed there, by the
    # loggers' clocks, not when the server learnt of it.
    assert kinds[:2] == ["excursion.started", "excursion.ended"] and kinds[-1] == "receipt"
    assert kinds[2] == "created"
    assert kinds.count("handoff") == 3
    assert {"excursion.started", "excursion.ended"} <= set(kinds)
    assert [s["at"] for s in steps] == sorted(s["at"] for s in steps)
    assert all(s["signature"]["valid"] for s in steps if "signature" in s)
    started = next(s for s in steps if s["type"] == "excursion.started")
    excursion = current.get_json()["excursions"][0]
    assert started["at"] == excursion["started_at"]  # the reading's time, not detection time
    hidden = client.get(
        f"/api/v1/shipments/{delivered['id']}/history", headers=world.auth("clinic2")
    )
    assert hidden.status_code == 404
