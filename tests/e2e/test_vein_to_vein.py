"""Vein to vein on real parts: both legs of one patient, loggers over Mosquitto, the worker."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import PASSWORD, World, make_coi
from tests.e2e.test_pipeline import eventually, iso, warmup_records
from tests.support.mqtt import publish_cli, publish_paho, readings_topic
from tests.support.processes import ColdchainProcess, Mosquitto

pytestmark = pytest.mark.e2e

PATIENT = {"name": "Jane Doe", "mrn": "MRN-0042", "dob": "1961-04-12"}
COI = make_coi(4242)


def ok(response: Any, status: int = 201) -> Any:
    assert response.status_code == status, response.get_json()
    return response.get_json()


def shipment(client: FlaskClient, world: World, shipment_id: int, user: str) -> Any:
    return ok(client.get(f"/api/v1/shipments/{shipment_id}", headers=world.auth(user)), 200)


def hand(
    client: FlaskClient, world: World, user: str, shipment_id: int, to_party: str, meaning: str
) -> Any:
    current = shipment(client, world, shipment_id, user)
    return ok(
        client.post(
            f"/api/v1/shipments/{shipment_id}/handoffs",
            headers=world.auth(user),
            json={
                "version": current["version"],
                "from_party": current["holder"],
                "to_party": to_party,
                "location": f"dock of {current['holder']}",
                "seal_id": current["seal_id"],
                "condition": "intact, dry shipper at temperature",
                "signature": {"password": PASSWORD, "meaning": meaning},
            },
        )
    )


def receive(client: FlaskClient, world: World, user: str, shipment_id: int) -> Any:
    current = shipment(client, world, shipment_id, user)
    return ok(
        client.post(
            f"/api/v1/shipments/{shipment_id}/receipt",
            headers=world.auth(user),
            json={
                "version": current["version"],
                "coi_scan": COI[:7] + " " + COI[7:],  # as a scanner or a person types it
                "patient": PATIENT,
                "seal_id": current["seal_id"],
                "decision": "accept",
                "signature": {"password": PASSWORD, "meaning": "Received; identity verified"},
            },
        )
    )


def test_cells_travel_vein_to_vein_with_an_excursion_dispositioned_by_qa(
    broker: Mosquitto, worker: ColdchainProcess, client: FlaskClient, world: World
) -> None:
    t0 = round(time.time()) - 1300

    # Apheresis leg: collection centre to manufacturing, nominal all the way.
    apheresis = ok(
        client.post(
            "/api/v1/shipments",
            headers=world.auth("coord"),
            json={
                "coi": COI,
                "profile": "LN2_VAPOR",
                "origin_site": "COLL-1",
                "destination_site": "MFG-1",
                "loggers": ["L-1"],
                "patient": PATIENT,
                "seal_id": "SEAL-A1",
                "monitoring_from": iso(t0 - 60),
            },
        )
    )
    nominal = [{"bn": "urn:dev:logger:L-1:", "bu": "Cel", "bt": t0, "n": "temp", "t": 0, "v": -191}]
    nominal += [{"n": "temp", "t": 30 * i, "v": -190.5} for i in range(1, 40)]
    publish_cli(broker, readings_topic("L-1"), json.dumps(nominal))
    hand(client, world, "courier", apheresis["id"], "courier", "Picked up from apheresis")
    hand(client, world, "courier", apheresis["id"], "courier2", "Handed to the air courier")
    hand(client, world, "courier2", apheresis["id"], "MFG-1", "Delivered to manufacturing")
    eventually(
        lambda: (
            len(
                client.get(
                    f"/api/v1/shipments/{apheresis['id']}/readings", headers=world.auth("mfg")
                ).get_json()
            )
            == 40
        )
    )
    received = receive(client, world, "mfg", apheresis["id"])
    assert received["status"] == "received" and received["excursions"] == []

    # Final product leg: manufacturing to the treatment centre, with a 5-minute warm-up.
    final = ok(
        client.post(
            "/api/v1/shipments",
            headers=world.auth("coord"),
            json={
                "coi": COI,
                "profile": "LN2_VAPOR",
                "origin_site": "MFG-1",
                "destination_site": "TC-1",
                "loggers": ["L-2"],
                "patient": PATIENT,
                "seal_id": "SEAL-F1",
                "monitoring_from": iso(t0 - 60),
            },
        )
    )
    hand(client, world, "courier", final["id"], "courier", "Picked up final product")
    publish_paho(broker, readings_topic("L-2"), json.dumps(warmup_records("L-2", t0)))
    [excursion] = eventually(lambda: shipment(client, world, final["id"], "qa")["excursions"])
    assert (excursion["kind"], excursion["started_at"], excursion["ended_at"]) == (
        "HIGH",
        iso(t0 + 300),
        iso(t0 + 600),
    )
    excursion = eventually(
        lambda: ok(
            client.get(f"/api/v1/excursions/{excursion['id']}", headers=world.auth("qa")), 200
        )
    )
    ok(
        client.post(
            f"/api/v1/excursions/{excursion['id']}/disposition",
            headers=world.auth("qa"),
            json={
                "version": excursion["version"],
                "decision": "product_acceptable",
                "reason": "5 min at -138 C peak; within the product's stability data",
                "signature": {"password": PASSWORD, "meaning": "QA disposition"},
            },
        )
    )
    hand(client, world, "courier", final["id"], "TC-1", "Delivered to the treatment centre")

    # The wrong clinic cannot even see it; the right one receives it.
    assert (
        client.get(f"/api/v1/shipments/{final['id']}", headers=world.auth("clinic2")).status_code
        == 404
    )
    done = receive(client, world, "clinic1", final["id"])
    assert done["status"] == "received"
    assert [h["to_party"] for h in done["custody"]] == ["courier", "TC-1"]
    assert all(h["signature"]["valid"] for h in done["custody"])
    assert done["receipts"][0]["signature"]["printed_name"] == "clinic1"

    history = ok(client.get(f"/api/v1/coi/{COI}", headers=world.auth("auditor")), 200)
    assert [(leg["leg"], leg["status"]) for leg in history["legs"]] == [
        ("apheresis", "received"),
        ("final_product", "received"),
    ]
    assert history["legs"][1]["excursions"][0]["disposition"] == "product_acceptable"
