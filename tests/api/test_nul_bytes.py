"""A NUL byte, which SQLite stores but PostgreSQL refuses in text, is a 400 naming the field."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from tests.conftest import PASSWORD, World, make_coi


def shipment_body(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "coi": make_coi(1),
        "profile": "LN2_VAPOR",
        "origin_site": "MFG-1",
        "destination_site": "TC-1",
        "loggers": ["L-1"],
        "patient": {"mrn": "12345"},
    }
    body.update(changes)
    return body


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"coi": make_coi(1) + "\x00"}, "coi"),
        ({"profile": "LN2\x00"}, "profile"),
        ({"origin_site": "MFG-1\x00"}, "origin_site"),
        ({"loggers": ["L-1", "L-\x002"]}, "loggers.1"),
        ({"patient": {"mrn": "12\x0045"}}, "patient.mrn"),
        ({"patient": {"m\x00rn": "12345"}}, "patient"),
        ({"seal_id": "\x00"}, "seal_id"),
    ],
)
def test_a_nul_byte_in_a_body_is_a_400_naming_the_field(
    client: FlaskClient, world: World, changes: dict[str, object], field: str
) -> None:
    response = client.post(
        "/api/v1/shipments", json=shipment_body(**changes), headers=world.auth("coord")
    )
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "nul-byte" and error["field"] == field
    # Nothing was stored, and the server is still fine.
    listed = client.get("/api/v1/shipments", headers=world.auth("coord"))
    assert listed.status_code == 200 and listed.get_json() == []


def test_a_nul_byte_in_a_query_or_a_path_is_a_400(client: FlaskClient, world: World) -> None:
    response = client.get("/api/v1/excursions?site=TC-1%00", headers=world.auth("qa"))
    assert response.status_code == 400
    assert response.get_json()["error"] == {
        "code": "nul-byte",
        "message": "site: text must not contain a NUL character",
        "field": "site",
    }
    response = client.get(f"/api/v1/coi/{make_coi(1)}%00", headers=world.auth("coord"))
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "path"


def test_a_nul_byte_in_a_signature_or_a_sign_in_is_a_400(client: FlaskClient, world: World) -> None:
    created = client.post("/api/v1/shipments", json=shipment_body(), headers=world.auth("coord"))
    shipment = created.get_json()
    response = client.post(
        f"/api/v1/shipments/{shipment['id']}/handoffs",
        json={
            "from_party": "MFG-1",
            "to_party": "courier",
            "version": shipment["version"],
            "signature": {"password": PASSWORD + "\x00", "meaning": "handed over"},
        },
        headers=world.auth("mfg"),
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "signature.password"
    page = client.post("/login", data={"username": "coord\x00", "password": PASSWORD})
    assert page.status_code == 400
    assert b"NUL" in page.data


def test_a_nul_byte_in_a_logger_registration_is_a_400(client: FlaskClient, world: World) -> None:
    response = client.post(
        "/api/v1/loggers", json={"id": "L-9", "model": "x\x00"}, headers=world.auth("admin")
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "model"
