"""The shipment API on a real SQLite file through Flask's test client."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient

from tests.conftest import World, make_coi


def shipment_body(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "coi": make_coi(1),
        "profile": "LN2_VAPOR",
        "origin_site": "MFG-1",
        "destination_site": "TC-1",
        "loggers": ["L-1"],
        "patient": {"mrn": "12345", "dob": "1970-01-01"},
    }
    body.update(changes)
    return body


def create(client: FlaskClient, world: World, **changes: object) -> dict[str, object]:
    response = client.post(
        "/api/v1/shipments", json=shipment_body(**changes), headers=world.auth("coord")
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def test_a_coordinator_creates_a_shipment_and_gets_its_id_and_version(
    client: FlaskClient, world: World
) -> None:
    shipment = create(client, world, coi=make_coi(7)[:7] + " " + make_coi(7)[7:], seal_id="S-1")
    assert shipment["id"] and shipment["version"] == 1
    assert shipment["coi"] == make_coi(7)
    assert shipment["status"] == "created"
    assert shipment["loggers"] == ["L-1"]
    assert "patient" not in shipment and "patient_hash" not in shipment
    fetched = client.get(f"/api/v1/shipments/{shipment['id']}", headers=world.auth("coord"))
    assert fetched.status_code == 200
    assert fetched.get_json()["excursions"] == [] and fetched.get_json()["latest_reading"] is None


def test_a_wrong_check_character_is_refused_with_its_code(
    client: FlaskClient, world: World
) -> None:
    good = make_coi(1)
    bad = good[:-1] + ("A" if good[-1] != "A" else "B")
    response = client.post(
        "/api/v1/shipments", json=shipment_body(coi=bad), headers=world.auth("coord")
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "coi-check-character"
    assert response.get_json()["error"]["field"] == "coi"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"profile": "WARM"}, "profile"),
        ({"loggers": ["NOPE"]}, "loggers"),
        ({"loggers": []}, "loggers"),
        ({"origin_site": "NOWHERE"}, "origin_site"),
        ({"patient": {}}, "patient"),
        ({"patient": "Jane"}, "patient"),
        ({"monitoring_from": "2026-01-01T00:00:00"}, "monitoring_from"),
        ({"monitoring_form": "2026-01-01T00:00:00Z"}, "monitoring_form"),
        ({"coi": 12}, "coi"),
    ],
)
def test_a_bad_field_is_refused_with_a_400_naming_it(
    client: FlaskClient, world: World, changes: dict[str, object], field: str
) -> None:
    response = client.post(
        "/api/v1/shipments", json=shipment_body(**changes), headers=world.auth("coord")
    )
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["field"] == field


def test_a_missing_field_is_named(client: FlaskClient, world: World) -> None:
    body = shipment_body()
    del body["destination_site"]
    response = client.post("/api/v1/shipments", json=body, headers=world.auth("coord"))
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "destination_site"


def test_a_body_that_is_not_json_is_a_400_not_a_500(client: FlaskClient, world: World) -> None:
    response = client.post(
        "/api/v1/shipments",
        data=b"{not json",
        headers={**world.auth("coord"), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert set(response.get_json()["error"]) >= {"code", "message"}


def test_a_logger_on_an_active_shipment_cannot_be_assigned_again(
    client: FlaskClient, world: World
) -> None:
    create(client, world)
    response = client.post(
        "/api/v1/shipments", json=shipment_body(coi=make_coi(2)), headers=world.auth("coord")
    )
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "logger-in-use"


def test_requests_without_a_valid_token_are_refused(client: FlaskClient, world: World) -> None:
    assert client.get("/api/v1/shipments").status_code == 401
    bad = client.get("/api/v1/shipments", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.get_json()["error"]["code"] == "unauthenticated"


@pytest.mark.parametrize("user", ["clinic1", "courier", "qa", "auditor"])
def test_only_coordinators_and_admins_create_shipments(
    client: FlaskClient, world: World, user: str
) -> None:
    response = client.post("/api/v1/shipments", json=shipment_body(), headers=world.auth(user))
    assert response.status_code == 403


def test_a_clinic_sees_only_shipments_to_its_own_site(client: FlaskClient, world: World) -> None:
    mine = create(client, world, destination_site="TC-1", loggers=["L-1"])
    theirs = create(client, world, coi=make_coi(3), destination_site="TC-2", loggers=["L-2"])
    listed = client.get("/api/v1/shipments", headers=world.auth("clinic1")).get_json()
    assert [s["id"] for s in listed] == [mine["id"]]
    for path in ("", "/readings", "/excursions"):
        response = client.get(
            f"/api/v1/shipments/{theirs['id']}{path}", headers=world.auth("clinic1")
        )
        assert response.status_code == 404, path
    assert (
        client.get(f"/api/v1/shipments/{mine['id']}", headers=world.auth("clinic1")).status_code
        == 200
    )
    all_ids = {
        s["id"] for s in client.get("/api/v1/shipments", headers=world.auth("auditor")).get_json()
    }
    assert all_ids == {mine["id"], theirs["id"]}


def test_collections_answer_csv_for_auditors(client: FlaskClient, world: World) -> None:
    create(client, world, monitoring_from=(datetime.now(UTC) - timedelta(hours=1)).isoformat())
    for path in (
        "/api/v1/shipments",
        "/api/v1/excursions",
        "/api/v1/loggers",
        "/api/v1/deadletters",
        "/api/v1/shipments/1/readings",
    ):
        response = client.get(f"{path}?format=csv", headers=world.auth("auditor"))
        assert response.status_code == 200, path
        assert response.mimetype == "text/csv"
        assert response.get_data(as_text=True).count("\n") >= 1


def test_loggers_are_registered_and_listed(client: FlaskClient, world: World) -> None:
    response = client.post(
        "/api/v1/loggers", json={"id": "NEW-9", "model": "X1"}, headers=world.auth("coord")
    )
    assert response.status_code == 201
    again = client.post("/api/v1/loggers", json={"id": "NEW-9"}, headers=world.auth("coord"))
    assert again.status_code == 409
    bad = client.post("/api/v1/loggers", json={"id": "no/slash"}, headers=world.auth("coord"))
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "id"
    ids = [
        row["id"] for row in client.get("/api/v1/loggers", headers=world.auth("coord")).get_json()
    ]
    assert "NEW-9" in ids and "L-1" in ids


def test_the_openapi_document_lists_every_contract_path(client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    for path, method in (
        ("/api/v1/shipments", "post"),
        ("/api/v1/shipments", "get"),
        ("/api/v1/shipments/{shipment_id}", "get"),
        ("/api/v1/shipments/{shipment_id}/readings", "get"),
        ("/api/v1/shipments/{shipment_id}/excursions", "get"),
        ("/api/v1/excursions", "get"),
        ("/api/v1/deadletters", "get"),
        ("/api/v1/loggers", "get"),
        ("/api/v1/loggers", "post"),
        ("/healthz", "get"),
        ("/metrics", "get"),
    ):
        assert method in paths[path], (path, method)
    body = document["components"]["schemas"]["ShipmentCreate"]
    assert set(body["required"]) == {
        "coi",
        "profile",
        "origin_site",
        "destination_site",
        "loggers",
        "patient",
    }


def test_unknown_paths_and_methods_answer_json_errors(client: FlaskClient) -> None:
    missing = client.get("/api/v1/nothing")
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not-found"
    wrong = client.delete("/api/v1/shipments")
    assert wrong.status_code == 405 and "error" in wrong.get_json()


def test_metrics_are_prometheus_text(client: FlaskClient, world: World) -> None:
    text = client.get("/metrics").get_data(as_text=True)
    assert "coldchain_readings_stored_total" in text
    assert "coldchain_batch_seconds_total" in text
    assert 'coldchain_excursions_open{kind="HIGH"} 0.0' in text


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("/api/v1/excursions?since=0.5", "since"),
        ("/api/v1/excursions?until=1780000000", "until"),
        ("/api/v1/audit?since=2026-01-01", "since"),
        ("/api/v1/deadletters?offset=0.0", "offset"),
        ("/api/v1/shipments?limit=1e3", "limit"),
        ("/api/v1/shipments?status=created&status=delivered", "status"),
        ("/api/v1/audit?offset=99999999999999999999", "offset"),
    ],
)
def test_a_query_parameter_that_only_looks_valid_is_refused_naming_it(
    client: FlaskClient, world: World, query: str, field: str
) -> None:
    # Found by the schemathesis fuzz test: each of these was read as something else.
    response = client.get(query, headers=world.auth("admin"))
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == field


def test_ids_and_versions_past_what_the_tables_hold_are_not_found_or_refused(
    client: FlaskClient, world: World
) -> None:
    # Found by the schemathesis fuzz test: both were 500s from the database driver.
    for path in ("/api/v1/shipments/2147483648", "/api/v1/excursions/9223372036854775806"):
        assert client.get(path, headers=world.auth("admin")).status_code == 404
    shipment = create(client, world)
    response = client.post(
        f"/api/v1/shipments/{shipment['id']}/cancel",
        json={"version": 2**31, "reason": "test"},
        headers=world.auth("coord"),
    )
    assert response.status_code == 400 and response.get_json()["error"]["field"] == "version"
