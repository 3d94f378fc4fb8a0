"""Every web page: sign-in required, the same role and site rules as the API, CSRF on forms."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from coldchain.domain.roles import Role
from tests.api.test_custody_api import create
from tests.conftest import PASSWORD, World

A, CO, CU, CL, Q, AU = (r.value for r in Role)
EVERYONE = frozenset(r.value for r in Role)
REVIEWERS = frozenset({A, CO, Q, AU})

# (method, rule) -> roles allowed. Rules as in app.url_map.
PAGES: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/"): EVERYONE,
    ("GET", "/board"): EVERYONE - {CL},
    ("GET", "/board.json"): EVERYONE,
    ("GET", "/shipments/new"): frozenset({A, CO}),
    ("POST", "/shipments/new"): frozenset({A, CO}),
    ("GET", "/shipments/<int:shipment_id>"): EVERYONE,
    ("GET", "/shipments/<int:shipment_id>/chart.json"): EVERYONE,
    ("GET", "/shipments/<int:shipment_id>/report.pdf"): REVIEWERS,
    ("GET", "/incoming"): frozenset({CL}),
    ("GET", "/shipments/<int:shipment_id>/receive"): frozenset({CL}),
    ("POST", "/shipments/<int:shipment_id>/receive"): frozenset({CL}),
    ("GET", "/qa"): frozenset({Q, A}),
    ("GET", "/excursions/<int:excursion_id>/disposition"): frozenset({Q}),
    ("POST", "/excursions/<int:excursion_id>/disposition"): frozenset({Q}),
    ("GET", "/excursions"): REVIEWERS,
    ("GET", "/excursions/export.<fmt>"): REVIEWERS,
    ("GET", "/scorecards"): REVIEWERS,
    ("GET", "/scorecards/export.<fmt>"): REVIEWERS,
    ("GET", "/audit"): frozenset({A, Q, AU}),
    ("GET", "/fleet"): REVIEWERS,
    ("POST", "/logout"): EVERYONE,
}
PUBLIC = {("GET", "/login"), ("POST", "/login"), ("GET", "/assets/<path:filename>")}
USER_OF = {A: "admin", CO: "coord", CU: "courier", CL: "clinic1", Q: "qa", AU: "auditor"}


def web_routes(app: Flask) -> set[tuple[str, str]]:
    return {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("web.")
        for method in rule.methods or ()
        if method not in {"HEAD", "OPTIONS"}
    }


def test_every_page_has_a_rule(app: Flask) -> None:
    assert web_routes(app) == set(PAGES) | PUBLIC


def sign_in(client: FlaskClient, username: str) -> str:
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    response = client.post(
        "/login", data={"username": username, "password": PASSWORD, "csrf_token": token[1]}
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    # Signing in starts a new session, and with it a new CSRF token: take it from a page.
    home = client.get("/", follow_redirects=True).get_data(as_text=True)
    fresh = re.search(r'name="csrf_token" value="([^"]+)"', home)
    assert fresh
    return fresh[1]


def fill(rule: str, ids: dict[str, Any]) -> str:
    return (
        rule.replace("<int:shipment_id>", str(ids["shipment"]))
        .replace("<int:excursion_id>", "999999")
        .replace("<fmt>", "csv")
    )


@pytest.mark.parametrize("route", sorted(PAGES), ids=" ".join)
def test_a_page_needs_a_signed_in_user_of_an_allowed_role(
    app: Flask, client: FlaskClient, world: World, route: tuple[str, str]
) -> None:
    ids = {"shipment": create(client, world)["id"]}
    method, rule = route
    anonymous = app.test_client().open(fill(rule, ids), method=method)
    if method == "GET":
        assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    else:
        assert anonymous.status_code in (302, 400)  # no session, and no CSRF token either
    for role, username in USER_OF.items():
        user = app.test_client()
        token = sign_in(user, username)
        data = {"csrf_token": token} if method == "POST" else None
        # Buffered: a streamed answer (the CSV export) is read whole and closed right here,
        # as a server would, before the next request runs.
        response = user.open(fill(rule, ids), method=method, data=data, buffered=True)
        if role in PAGES[route]:
            assert response.status_code not in (401, 403), (role, response.status_code)
            assert response.status_code < 500, (role, response.get_data(as_text=True)[:300])
        else:
            assert response.status_code == 403, (role, response.status_code)


def test_a_form_without_its_csrf_token_is_refused(app: Flask, world: World) -> None:
    user = app.test_client()
    sign_in(user, "coord")
    response = user.post("/shipments/new", data={"coi": "x"})
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)


def test_the_session_cookie_is_http_only_and_same_site(app: Flask) -> None:
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    response = client.post(
        "/login", data={"username": "coord", "password": PASSWORD, "csrf_token": token[1]}
    )
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_wrong_passwords_at_sign_in_are_audited_and_lock_the_account(
    app: Flask, client: FlaskClient, world: World
) -> None:
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    for _ in range(5):
        refused = client.post(
            "/login", data={"username": "qa", "password": "nope", "csrf_token": token[1]}
        )
        assert refused.status_code == 401
        assert "wrong user name or password" in refused.get_data(as_text=True)
    locked = client.post(
        "/login", data={"username": "qa", "password": PASSWORD, "csrf_token": token[1]}
    )
    assert locked.status_code == 401 and "locked" in locked.get_data(as_text=True)
    events = client.get("/api/v1/audit?entity_id=qa", headers=world.auth("auditor")).get_json()
    assert [e["action"] for e in events].count("login.failed") == 5
    assert "user.locked" in [e["action"] for e in events]


def test_a_clinic_cannot_open_another_sites_shipment_page(
    app: Flask, client: FlaskClient, world: World
) -> None:
    shipment = create(client, world)
    other = app.test_client()
    sign_in(other, "clinic2")
    assert other.get(f"/shipments/{shipment['id']}").status_code == 404
    assert other.get(f"/shipments/{shipment['id']}/chart.json").status_code == 404
    mine = app.test_client()
    sign_in(mine, "clinic1")
    assert mine.get(f"/shipments/{shipment['id']}").status_code == 200
