"""Abuse limits: sign-in and signature rate limits, the body size cap, the page size cap."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from coldchain.app import create_app
from coldchain.config import Settings
from tests.conftest import PASSWORD, World, make_coi


@pytest.fixture
def make_app(settings: Settings) -> Iterator[Any]:
    """Build apps with some settings changed; dispose of their engines afterwards."""
    apps: list[Flask] = []

    def build(**overrides: Any) -> FlaskClient:
        app = create_app(settings=settings.with_overrides(overrides))
        apps.append(app)
        return app.test_client()

    yield build
    for app in apps:
        app.extensions["coldchain"].engine.dispose()


def csrf(client: FlaskClient, path: str = "/login") -> str:
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True))
    assert token
    return token[1]


def log_in(client: FlaskClient, username: str, password: str, token: str) -> Any:
    return client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )


def audit_actions(client: FlaskClient, world: World, entity_id: str) -> list[str]:
    events = client.get(f"/api/v1/audit?entity_id={entity_id}", headers=world.auth("auditor"))
    return [e["action"] for e in events.get_json()]


def test_sign_ins_over_the_limit_per_user_get_429_with_retry_after_and_are_audited_once(
    make_app: Any, world: World
) -> None:
    client = make_app(http_login_rate_per_user="3/minute")
    token = csrf(client)
    for _ in range(3):
        assert log_in(client, "qa", "wrong", token).status_code == 401
    for _ in range(2):
        refused = log_in(client, "qa", PASSWORD, token)
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert "Too many sign-in attempts" in refused.get_data(as_text=True)
        assert refused.content_type.startswith("text/html")
    actions = audit_actions(client, world, "qa")
    assert actions.count("login.failed") == 3 and actions.count("login.rate_limited") == 1
    # Another user from the same address is not held back by qa's limit.
    assert log_in(client, "coord", PASSWORD, token).status_code == 302


def test_sign_ins_over_the_limit_per_address_get_429_whatever_the_name(
    make_app: Any, world: World
) -> None:
    client = make_app(http_login_rate_per_address="4/minute")
    token = csrf(client)
    for name in ("nobody1", "nobody2", "nobody3", "nobody4"):
        assert log_in(client, name, "x", token).status_code == 401
    refused = log_in(client, "coord", PASSWORD, token)
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    # An unknown name is never audited; a known one is, once.
    assert log_in(client, "nobody5", "x", token).status_code == 429
    assert audit_actions(client, world, "nobody5") == []
    assert audit_actions(client, world, "coord") == ["user.created", "login.rate_limited"]


def shipment(client: FlaskClient, world: World) -> dict[str, Any]:
    created = client.post(
        "/api/v1/shipments",
        json={
            "coi": make_coi(1),
            "profile": "LN2_VAPOR",
            "origin_site": "MFG-1",
            "destination_site": "TC-1",
            "loggers": ["L-1"],
            "patient": {"mrn": "1"},
            "seal_id": "SEAL-1",
        },
        headers=world.auth("coord"),
    )
    assert created.status_code == 201, created.get_json()
    return created.get_json()  # type: ignore[no-any-return]


def handoff(client: FlaskClient, world: World, body: dict[str, Any], password: str) -> Any:
    return client.post(
        f"/api/v1/shipments/{body['id']}/handoffs",
        json={
            "version": body["version"],
            "from_party": "MFG-1",
            "to_party": "courier",
            "location": "bay",
            "seal_id": "SEAL-1",
            "condition": "intact",
            "signature": {"password": password, "meaning": "Released"},
        },
        headers=world.auth("courier"),
    )


def test_signatures_over_the_limit_get_429_in_the_error_shape_and_change_nothing(
    make_app: Any, world: World
) -> None:
    client = make_app(http_signature_rate_per_user="2/minute")
    created = shipment(client, world)
    for _ in range(2):
        assert handoff(client, world, created, "wrong").status_code == 401
    refused = handoff(client, world, created, PASSWORD)
    assert refused.status_code == 429
    error = refused.get_json()["error"]
    assert error["code"] == "rate-limited" and "signature" in error["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    again = client.get(f"/api/v1/shipments/{created['id']}", headers=world.auth("coord"))
    assert again.get_json()["version"] == created["version"]
    actions = audit_actions(client, world, "courier")
    assert actions.count("signature.refused") == 2
    assert actions.count("signature.rate_limited") == 1
    # Below the lockout: the account still works for what is not signed.
    assert client.get("/api/v1/shipments", headers=world.auth("courier")).status_code == 200


def test_a_signature_on_a_web_form_over_the_limit_gets_the_page_with_429(
    make_app: Any, world: World
) -> None:
    client = make_app(http_signature_rate_per_user="1/minute")
    created = shipment(client, world)
    assert log_in(client, "clinic1", PASSWORD, csrf(client)).status_code == 302
    path = f"/shipments/{created['id']}/receive"
    form = {"csrf_token": csrf(client, path), "version": "1", "decision": "accept"}
    assert client.post(path, data=form).status_code in (400, 401, 409)
    refused = client.post(path, data=form)
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    assert "Too many signature attempts" in refused.get_data(as_text=True)


def test_a_version_out_of_range_on_a_web_form_is_a_400_not_a_500(
    client: FlaskClient, world: World
) -> None:
    created = shipment(client, world)
    assert log_in(client, "clinic1", PASSWORD, csrf(client)).status_code == 302
    path = f"/shipments/{created['id']}/receive"
    form = {"csrf_token": csrf(client, path), "version": "9" * 30, "decision": "accept"}
    page = client.post(path, data=form)
    assert page.status_code == 400 and "out of date" in page.get_data(as_text=True)


def test_the_body_cap_is_a_setting_and_answers_413_in_the_error_shape(
    make_app: Any, world: World
) -> None:
    client = make_app(http_max_body_bytes=1000)
    response = client.post(
        "/api/v1/loggers", json={"id": "L-9", "model": "x" * 1000}, headers=world.auth("admin")
    )
    assert response.status_code == 413
    assert response.get_json() == {
        "error": {
            "code": "payload-too-large",
            "message": "the body is larger than the limit of 1000 bytes",
        }
    }
    small = client.post("/api/v1/loggers", json={"id": "L-9"}, headers=world.auth("admin"))
    assert small.status_code == 201
    page = client.post("/login", data={"username": "x" * 2000, "password": "y"})
    assert page.status_code == 413 and page.content_type.startswith("text/html")


def test_the_page_size_cap_is_a_setting(make_app: Any, world: World) -> None:
    client = make_app(http_max_page_size=10)
    over = client.get("/api/v1/shipments?limit=11", headers=world.auth("coord"))
    assert over.status_code == 400
    assert over.get_json()["error"] == {
        "code": "invalid",
        "message": "limit: at most 10",
        "field": "limit",
    }
    assert client.get("/api/v1/shipments?limit=10", headers=world.auth("coord")).status_code == 200


def test_limits_can_be_turned_off(make_app: Any, world: World) -> None:
    client = make_app(http_login_rate_per_user="", http_login_rate_per_address="")
    token = csrf(client)
    for _ in range(4):
        assert log_in(client, "nobody", "x", token).status_code == 401
