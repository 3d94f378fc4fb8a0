"""The EPCIS 2.0 export through the API: valid against GS1's schema, within the caller's scope."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from coldchain.config import Settings
from tests.api.test_custody_api import PATIENT, create, deliver, get, receive, sig, store
from tests.conftest import World
from tests.support.epcis import assert_valid_epcis


def epcis(client: FlaskClient, world: World, path: str, user: str = "coord") -> Any:
    response = client.get(f"/api/v1/{path}/epcis", headers=world.auth(user))
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "application/ld+json"
    document = response.get_json(force=True)
    assert_valid_epcis(document)
    return document


def test_a_received_shipment_exports_its_custody_receipt_and_temperatures(
    client: FlaskClient, world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    shipment = create(client, world, monitoring_from="2020-01-01T00:00:00Z")
    deliver(client, world, shipment)
    store(sessions, settings, "L-1", [-190, -140, -140, -190])
    [excursion] = get(client, world, shipment["id"], "clinic1")["excursions"]
    decided = client.post(
        f"/api/v1/excursions/{excursion['id']}/disposition",
        json={
            "version": excursion["version"],
            "decision": "product_acceptable",
            "reason": "within the stability data",
            "signature": sig(meaning="QA disposition"),
        },
        headers=world.auth("qa"),
    )
    assert decided.status_code == 201, decided.get_json()
    accepted = receive(client, world, get(client, world, shipment["id"], "clinic1"))
    assert accepted.status_code == 201, accepted.get_json()

    document = epcis(client, world, f"shipments/{shipment['id']}", user="clinic1")
    events = document["epcisBody"]["eventList"]
    assert [e["bizStep"] for e in events] == [
        "commissioning",
        "shipping",
        "receiving",
        "shipping",
        "receiving",
        "shipping",
        "receiving",
        "accepting",
    ]
    base = str(settings["epcis_base_uri"])
    assert {e["epcList"][0] for e in events} == {f"{base}/coi/{shipment['coi']}/final_product"}
    accepting = events[-1]
    assert (accepting["disposition"], accepting["readPoint"]["id"]) == (
        "conformant",
        f"{base}/site/TC-1",
    )
    summary, alarm = accepting["sensorElementList"]
    assert summary["sensorMetadata"]["deviceID"] == f"{base}/logger/L-1"
    assert summary["sensorReport"] == [
        {"type": "Temperature", "uom": "CEL", "minValue": -190, "maxValue": -140, "meanValue": -165}
    ]
    assert alarm["sensorReport"][0]["exception"] == "ALARM_CONDITION"
    assert alarm["sensorReport"][0]["maxValue"] == -140
    # No patient identifier travels in the export: only the COI, a donation number.
    text = client.get(
        f"/api/v1/shipments/{shipment['id']}/epcis", headers=world.auth("qa")
    ).get_data(as_text=True)
    assert all(value not in text for value in PATIENT.values())


def test_the_coi_export_holds_every_leg_the_caller_may_see(
    client: FlaskClient, world: World
) -> None:
    apheresis = create(
        client, world, origin_site="COLL-1", destination_site="MFG-1", loggers=["L-3"]
    )
    final = create(client, world, loggers=["L-4"])
    legs = {
        e["epcList"][0].rsplit("/", 1)[1]
        for e in epcis(client, world, f"coi/{final['coi']}")["epcisBody"]["eventList"]
    }
    assert legs == {"apheresis", "final_product"}
    # The treatment centre sees its own leg only; another centre sees nothing.
    clinic = epcis(client, world, f"coi/{final['coi']}", user="clinic1")
    assert {e["epcList"][0] for e in clinic["epcisBody"]["eventList"]} == {
        f"https://coldchain.example/coi/{final['coi']}/final_product"
    }
    for path, user, status in (
        (f"coi/{final['coi']}", "clinic2", 404),
        (f"shipments/{apheresis['id']}", "clinic1", 404),
        ("shipments/999999", "admin", 404),
        (f"coi/{final['coi'][:-1]}0", "admin", 400),
    ):
        response = client.get(f"/api/v1/{path}/epcis", headers=world.auth(user))
        assert response.status_code == status, (path, user, response.get_json())
        assert response.mimetype == "application/json", "errors keep the contract's shape"
