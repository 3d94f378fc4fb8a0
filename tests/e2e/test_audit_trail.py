"""Every kind of change, made through the API, the CLI's services and the worker, is one event."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from coldchain.config import Settings
from coldchain.services import accounts, audit, checkpoints
from tests.conftest import PASSWORD, World, make_coi
from tests.e2e.test_pipeline import eventually, iso, warmup_records
from tests.support.mqtt import publish_paho, readings_topic
from tests.support.processes import ColdchainProcess, Mosquitto

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def events(client: FlaskClient, world: World, **filters: str) -> list[dict[str, Any]]:
    response = client.get("/api/v1/audit", query_string=filters, headers=world.auth("auditor"))
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def one(client: FlaskClient, world: World, action: str, **filters: str) -> dict[str, Any]:
    found = events(client, world, action=action, **filters)
    assert len(found) == 1, (action, found)
    return found[0]


def post(client: FlaskClient, world: World, user: str, url: str, body: dict[str, Any]) -> Any:
    response = client.post(url, json=body, headers=world.auth(user))
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()


def signed(**fields: Any) -> dict[str, Any]:
    return {**fields, "signature": {"password": PASSWORD, "meaning": "test"}}


def test_every_kind_of_change_is_one_audit_event_with_old_and_new_values(
    broker: Mosquitto,
    worker: ColdchainProcess,
    client: FlaskClient,
    world: World,
    sessions: sessionmaker[Session],
    settings: Settings,
) -> None:
    # Configuration: the worker recorded what it started with.
    config = one(client, world, "config.changed")
    assert config["old_values"] is None
    assert config["new_values"]["profile.LN2_VAPOR"]["max_c"] == "-150.0"
    assert "secret_key" not in config["new_values"]

    # Registry changes (the CLI's services, and the API for loggers).
    accounts.add_site(sessions=sessions, site_id="HUB-1", name="Hub", kind="manufacturing")
    assert one(client, world, "site.created", entity_id="HUB-1")["new_values"]["kind"] == (
        "manufacturing"
    )
    accounts.add_user(
        sessions=sessions, username="temp", role="courier", site_id=None, password=PASSWORD
    )
    assert one(client, world, "user.created", entity_id="temp")["new_values"]["role"] == "courier"
    accounts.set_role(
        sessions=sessions, username="temp", role="qa", site_id=None, reason="moved to QA"
    )
    role = one(client, world, "user.role_changed", entity_id="temp")
    assert (role["old_values"], role["new_values"], role["reason"]) == (
        {"role": "courier"},
        {"role": "qa"},
        "moved to QA",
    )
    post(client, world, "coord", "/api/v1/loggers", {"id": "L-9", "model": "X1"})
    logger = one(client, world, "logger.registered", entity_id="L-9")
    assert logger["actor"] == "coord" and logger["new_values"]["model"] == "X1"
    assert logger["request_id"]

    # A shipment, its excursion from the worker, QA's disposition, custody and receipt.
    t0 = round(time.time()) - 1300
    shipment = post(
        client,
        world,
        "coord",
        "/api/v1/shipments",
        {
            "coi": make_coi(77),
            "profile": "LN2_VAPOR",
            "origin_site": "MFG-1",
            "destination_site": "TC-1",
            "loggers": ["L-1"],
            "patient": {"mrn": "77"},
            "seal_id": "S-77",
            "monitoring_from": iso(t0 - 60),
        },
    )
    sid = str(shipment["id"])
    created = one(client, world, "shipment.create", entity_id=sid)
    assert created["new_values"]["status"] == "created" and created["old_values"] is None
    records = warmup_records("L-1", t0)
    publish_paho(broker, readings_topic("L-1"), json.dumps(records[:15]))  # warm, still open
    opened = eventually(lambda: events(client, world, action="excursion.opened"))
    assert opened[0]["new_values"]["status"] == "OPEN"
    rest = [{"bn": "urn:dev:logger:L-1:", **records[15]}, *records[16:]]
    publish_paho(broker, readings_topic("L-1"), json.dumps(rest))
    closed = eventually(lambda: events(client, world, action="excursion.closed"))
    assert opened[0]["actor"] == closed[0]["actor"] == "system:ingest"
    assert closed[0]["old_values"]["status"] == "OPEN" and closed[0]["new_values"]["status"] == (
        "CLOSED"
    )
    excursion = client.get(
        f"/api/v1/excursions/{opened[0]['entity_id']}", headers=world.auth("qa")
    ).get_json()
    post(
        client,
        world,
        "qa",
        f"/api/v1/excursions/{excursion['id']}/disposition",
        signed(version=excursion["version"], decision="product_acceptable", reason="ok"),
    )
    disposition = one(client, world, "excursion.disposition")
    assert disposition["old_values"] == {"disposition": None}
    assert disposition["new_values"]["disposition"] == "product_acceptable"

    def current() -> Any:
        return client.get(f"/api/v1/shipments/{sid}", headers=world.auth("coord")).get_json()

    post(
        client,
        world,
        "courier",
        f"/api/v1/shipments/{sid}/handoffs",
        signed(version=current()["version"], from_party="MFG-1", to_party="courier",
               location="dock", seal_id="S-77", condition="intact"),
    )  # fmt: skip
    pickup = one(client, world, "shipment.pick_up", entity_id=sid)
    assert pickup["old_values"]["status"] == "created"
    assert pickup["new_values"]["status"] == "picked_up"
    assert pickup["new_values"]["holder"] == "courier"
    signature = events(client, world, action="signature.signed", actor="courier")[0]
    assert signature["new_values"]["record_type"] == "handoff"
    post(
        client,
        world,
        "courier",
        f"/api/v1/shipments/{sid}/handoffs",
        signed(version=current()["version"], from_party="courier", to_party="TC-1",
               location="ward", seal_id="S-77", condition="intact"),
    )  # fmt: skip
    one(client, world, "shipment.deliver", entity_id=sid)
    post(
        client,
        world,
        "clinic1",
        f"/api/v1/shipments/{sid}/receipt",
        signed(version=current()["version"], coi_scan=make_coi(77), patient={"mrn": "77"},
               seal_id="S-77", decision="accept"),
    )  # fmt: skip
    accepted = one(client, world, "shipment.accept", entity_id=sid)
    assert accepted["old_values"]["status"] == "delivered"
    assert accepted["new_values"]["monitoring_until"] is not None

    # Refusals that are kept: a wrong password, five of them lock the user.
    other = post(
        client,
        world,
        "coord",
        "/api/v1/shipments",
        {"coi": make_coi(78), "profile": "LN2_VAPOR", "origin_site": "MFG-1",
         "destination_site": "TC-2", "loggers": ["L-2"], "patient": {"mrn": "78"}},
    )  # fmt: skip
    for _ in range(5):
        client.post(
            f"/api/v1/shipments/{other['id']}/handoffs",
            json={"version": other["version"], "from_party": "MFG-1", "to_party": "courier2",
                  "location": "dock", "seal_id": "S", "condition": "intact",
                  "signature": {"password": "wrong", "meaning": "x"}},
            headers=world.auth("courier2"),
        )  # fmt: skip
    assert len(events(client, world, action="signature.refused", actor="courier2")) == 5
    locked = one(client, world, "user.locked", entity_id="courier2")
    assert (locked["old_values"], locked["new_values"]) == ({"locked": False}, {"locked": True})
    post(
        client,
        world,
        "coord",
        f"/api/v1/shipments/{other['id']}/cancel",
        {"version": other["version"], "reason": "duplicate order"},
    )
    cancel = one(client, world, "shipment.cancel", entity_id=str(other["id"]))
    assert cancel["new_values"]["status"] == "cancelled" and cancel["reason"] == "duplicate order"

    # Dead letters: one event per batch, with counts by reason.
    publish_paho(broker, readings_topic("L-3"), "not json")
    dead = eventually(lambda: events(client, world, action="deadletters.stored"))
    assert dead[0]["new_values"] == {"by_reason": {"not-json": 1}, "messages": 1}

    # A process starting with one setting changed records just that change.
    changed = {**config["new_values"], "ingest_batch_max_messages": 250}
    assert audit.record_configuration(sessions, changed)
    change = events(client, world, action="config.changed")[-1]
    assert change["old_values"] == {"ingest_batch_max_messages": 2000}
    assert change["new_values"] == {"ingest_batch_max_messages": 250}
    assert not audit.record_configuration(sessions, changed)

    # And the whole trail verifies, from the API and offline from its export.
    verdict = client.get("/api/v1/audit/verify", headers=world.auth("auditor")).get_json()
    assert verdict["ok"] and verdict["events"] == len(events(client, world, limit="100000"))


def test_the_readme_offline_script_verifies_an_export_and_catches_an_edit(
    client: FlaskClient, world: World, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    for n in range(5):
        accounts.add_logger(sessions=sessions, logger_id=f"R-{n}")
    script = ROOT / "tools" / "verify_audit_export.py"
    readme = (ROOT / "README.md").read_text()
    assert script.read_text().strip() in readme, "the README must show the script as it is"
    export = client.get("/api/v1/audit?format=jsonl", headers=world.auth("auditor"))
    assert export.status_code == 200 and export.mimetype == "application/x-ndjson"
    path = tmp_path / "audit.jsonl"
    path.write_bytes(export.data)
    done = subprocess.run([sys.executable, str(script), str(path)], capture_output=True, text=True)
    lines = path.read_text().splitlines()
    assert done.returncode == 0 and f"intact: {len(lines)} events" in done.stdout, done.stderr
    signed = checkpoints.make_checkpoint(sessions=sessions, key=Ed25519PrivateKey.generate())
    (tmp_path / "cp.json").write_text(json.dumps(signed.as_dict()))
    with_cp = [sys.executable, str(script), str(path), str(tmp_path / "cp.json")]
    done = subprocess.run(with_cp, capture_output=True, text=True)
    assert done.returncode == 0 and f"event {len(lines)} holds" in done.stdout, done.stderr
    short = tmp_path / "short.jsonl"
    short.write_text("\n".join(lines[:-1]) + "\n")
    done = subprocess.run([*with_cp[:2], str(short), with_cp[3]], capture_output=True, text=True)
    assert done.returncode == 1 and "cut off or rewritten" in done.stderr
    edited = json.loads(lines[2])
    edited["actor"] = "mallory"
    lines[2] = json.dumps(edited)
    path.write_text("\n".join(lines) + "\n")
    done = subprocess.run([sys.executable, str(script), str(path)], capture_output=True, text=True)
    assert done.returncode == 1 and "BROKEN at event 3" in done.stderr
