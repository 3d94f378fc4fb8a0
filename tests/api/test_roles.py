"""Who may call what: every route of the app, with every role, against one table.

The table below is the authorization contract of the API. Test A fails when a route is added
(or removed) without a matching row, so a new route cannot ship without a decision about who
may call it. Test B makes a real request per route and role: a refused role gets 403, an
allowed one gets anything but 401/403 (a 400, 404 or 409 still proves it got past the check).
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from coldchain.config import Settings
from coldchain.domain.roles import Role
from coldchain.domain.senml import PackLimits
from coldchain.services import ingest
from coldchain.services.timefmt import now_us
from tests.conftest import PASSWORD, World, make_coi

ADMIN, COORDINATOR, COURIER = Role.ADMIN.value, Role.COORDINATOR.value, Role.COURIER.value
CLINIC, QA, AUDITOR = Role.CLINIC.value, Role.QA.value, Role.AUDITOR.value

EVERYONE = frozenset(role.value for role in Role)
STAFF = frozenset({ADMIN, COORDINATOR, QA, AUDITOR})


def only(*roles: str) -> frozenset[str]:
    return frozenset(roles)


SHIPMENT = "/api/v1/shipments/<int:shipment_id>"
EXCURSION = "/api/v1/excursions/<int:excursion_id>"

# (method, rule as in app.url_map) -> the roles allowed to call it.
EXPECTED: dict[tuple[str, str], frozenset[str]] = {
    # Public: no token needed (checked separately, see PUBLIC).
    ("GET", "/healthz"): EVERYONE,
    ("GET", "/metrics"): EVERYONE,
    ("GET", "/api/v1/openapi.json"): EVERYONE,
    # Shipments.
    ("POST", "/api/v1/shipments"): only(ADMIN, COORDINATOR),
    ("GET", "/api/v1/shipments"): EVERYONE,
    ("GET", SHIPMENT): EVERYONE,
    ("GET", f"{SHIPMENT}/readings"): EVERYONE,
    ("GET", f"{SHIPMENT}/excursions"): EVERYONE,
    ("POST", f"{SHIPMENT}/handoffs"): only(ADMIN, COORDINATOR, COURIER, CLINIC),
    ("POST", f"{SHIPMENT}/receipt"): only(CLINIC),
    ("POST", f"{SHIPMENT}/cancel"): only(ADMIN, COORDINATOR),
    ("GET", "/api/v1/coi/<string:coi>"): EVERYONE,
    ("GET", f"{SHIPMENT}/epcis"): EVERYONE,
    ("GET", "/api/v1/coi/<string:coi>/epcis"): EVERYONE,
    # Excursions.
    ("GET", "/api/v1/excursions"): EVERYONE,
    ("GET", EXCURSION): EVERYONE,
    ("POST", f"{EXCURSION}/disposition"): only(QA),
    # Fleet.
    ("GET", "/api/v1/loggers"): STAFF,
    ("POST", "/api/v1/loggers"): only(ADMIN, COORDINATOR),
    ("GET", "/api/v1/loggers/<logger_id>"): STAFF,
    ("PATCH", "/api/v1/loggers/<logger_id>"): only(ADMIN, COORDINATOR),
    ("POST", "/api/v1/loggers/<logger_id>/calibration"): only(ADMIN, COORDINATOR),
    ("GET", "/api/v1/deadletters"): STAFF,
    # Audit trail: people who review it; a shipment's timeline follows shipment visibility.
    ("GET", "/api/v1/audit"): only(ADMIN, QA, AUDITOR),
    ("GET", "/api/v1/audit/checkpoint"): only(ADMIN, QA, AUDITOR),
    ("GET", "/api/v1/audit/verify"): only(ADMIN, QA, AUDITOR),
    ("GET", f"{SHIPMENT}/history"): EVERYONE,
    # Alerts out: the delivery log for reviewers, the subscriptions for administrators.
    ("GET", "/api/v1/alerts/deliveries"): only(ADMIN, QA, AUDITOR),
    # Scorecards compare partners: not for a site's staff or couriers.
    ("GET", "/api/v1/scorecards"): STAFF,
    ("GET", "/api/v1/alerts/subscriptions"): only(ADMIN),
    ("POST", "/api/v1/alerts/subscriptions"): only(ADMIN),
    ("DELETE", "/api/v1/alerts/subscriptions/<int:subscription_id>"): only(ADMIN),
}

# Routes answered without a token.
PUBLIC = frozenset({"/healthz", "/metrics", "/api/v1/openapi.json"})

# One user per role; clinic1's site TC-1 is the destination of the shipment under test.
USER_OF_ROLE = {
    ADMIN: "admin",
    COORDINATOR: "coord",
    COURIER: "courier",
    CLINIC: "clinic1",
    QA: "qa",
    AUDITOR: "auditor",
}

COI = make_coi(1)
PATIENT = {"mrn": "12345", "dob": "1970-01-01"}
SIGNATURE = {"password": PASSWORD, "meaning": "authorization test"}

# Schema-valid bodies, so that an allowed role reaches the service (and its own checks); a
# "version" is replaced by the current one (see body_for).
# The handoff names both the courier and TC-1, so neither party check refuses it.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/shipments"): {
        "coi": make_coi(2),
        "profile": "LN2_VAPOR",
        "origin_site": "MFG-1",
        "destination_site": "TC-2",
        "loggers": ["L-2"],
        "patient": PATIENT,
    },
    ("POST", f"{SHIPMENT}/handoffs"): {
        "version": 1,
        "from_party": "courier",
        "to_party": "TC-1",
        "location": "dock",
        "seal_id": "S-1",
        "condition": "intact",
        "signature": SIGNATURE,
    },
    ("POST", f"{SHIPMENT}/receipt"): {
        "version": 1,
        "coi_scan": COI,
        "patient": PATIENT,
        "seal_id": "S-1",
        "decision": "accept",
        "signature": SIGNATURE,
    },
    ("POST", f"{SHIPMENT}/cancel"): {"version": 1, "reason": "authorization test"},
    ("POST", f"{EXCURSION}/disposition"): {
        "version": 1,
        "decision": "needs_investigation",
        "reason": "authorization test",
        "signature": SIGNATURE,
    },
    ("POST", "/api/v1/loggers"): {"id": "L-NEW"},
    ("PATCH", "/api/v1/loggers/<logger_id>"): {"firmware": "2.0"},
    ("POST", "/api/v1/loggers/<logger_id>/calibration"): {"calibration_due": "2099-01-01"},
    ("POST", "/api/v1/alerts/subscriptions"): {"channel": "email", "target": "qa@example.org"},
}

PARAM = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def short(rule: str) -> str:
    """`/x/<int:shipment_id>` -> `/x/<shipment_id>`, for readable test ids."""
    return PARAM.sub(r"<\1>", rule)


def route_id(route: tuple[str, str]) -> str:
    return f"{route[0]} {short(route[1])}"


def app_routes(app: Flask) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("web."):
            continue  # the web pages have their own table: tests/web/test_web_roles.py
        for method in rule.methods or ():
            if method not in {"HEAD", "OPTIONS"}:
                routes.add((method, rule.rule))
    return routes


def fill(rule: str, params: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in params, f"no test value for path parameter {name!r} of {rule}"
        return params[name]

    return PARAM.sub(value, rule)


def body_for(route: tuple[str, str], params: dict[str, str]) -> dict[str, Any]:
    """The route's body, signed at the current version of the object it changes."""
    body = dict(BODIES.get(route, {}))
    if "version" in body:
        body["version"] = int(
            params["excursion_version" if EXCURSION in route[1] else "shipment_version"]
        )
    return body


def call(client: FlaskClient, route: tuple[str, str], params: dict[str, str], **kwargs: Any) -> Any:
    method, rule = route
    if method in ("POST", "PATCH"):
        kwargs.setdefault("json", body_for(route, params))
    return client.open(fill(rule, params), method=method, **kwargs)


@pytest.fixture
def params(
    client: FlaskClient, world: World, sessions: sessionmaker[Session], settings: Settings
) -> dict[str, str]:
    """Path parameters and versions of a shipment MFG-1 -> TC-1 (L-1) with one HIGH excursion."""
    start = datetime.now(UTC) - timedelta(hours=1)
    response = client.post(
        "/api/v1/shipments",
        json={
            "coi": COI,
            "profile": "LN2_VAPOR",
            "origin_site": "MFG-1",
            "destination_site": "TC-1",
            "loggers": ["L-1"],
            "patient": PATIENT,
            "monitoring_from": start.isoformat(),
            "seal_id": "S-1",
        },
        headers=world.auth("coord"),
    )
    assert response.status_code == 201, response.get_json()
    shipment_id = response.get_json()["id"]
    # Ten minutes of readings well above LN2_VAPOR's -150 C (no grace): a HIGH excursion.
    t = round(time.time()) - 1200
    pack = [
        {"bn": "urn:dev:logger:L-1:", "bu": "Cel", "bt": t, "n": "temp", "t": i * 60, "v": -100}
        for i in range(11)
    ]
    ingest.store_batch(
        sessions=sessions,
        messages=[
            ingest.Incoming(
                "coldchain/v1/loggers/L-1/readings", json.dumps(pack).encode(), now_us()
            )
        ],
        profiles=settings.profiles,
        limits=PackLimits(),
        known=ingest.KnownLoggers(),
        now_us=now_us(),
    )
    shipment = client.get(f"/api/v1/shipments/{shipment_id}", headers=world.auth("coord"))
    excursions = shipment.get_json()["excursions"]
    assert len(excursions) == 1, "the readings should have opened one excursion"
    return {
        "shipment_id": str(shipment_id),
        "shipment_version": str(shipment.get_json()["version"]),
        "excursion_id": str(excursions[0]["id"]),
        "excursion_version": str(excursions[0]["version"]),
        "coi": COI,
        "subscription_id": "1",
        "logger_id": "L-2",
    }


# --- Test A: the table covers exactly the app's routes ---------------------------------------


def test_every_route_of_the_app_has_a_rule_in_the_table(app: Flask) -> None:
    routes = app_routes(app)
    missing = sorted(routes - EXPECTED.keys())
    stale = sorted(EXPECTED.keys() - routes)
    assert not missing, f"routes without a rule in EXPECTED (add one): {missing}"
    assert not stale, f"rules in EXPECTED for routes the app does not have: {stale}"


def test_the_table_agrees_with_the_roles_the_views_declare(app: Flask) -> None:
    declared = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("web."):
            continue  # the web pages have their own table: tests/web/test_web_roles.py
        roles = getattr(app.view_functions[rule.endpoint], "__openapi_roles__", None)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            declared[(method, rule.rule)] = None if roles is None else frozenset(roles)
    for route, roles in sorted(declared.items()):
        if route[1] in PUBLIC:
            assert roles is None, f"{route_id(route)} is public in the table but requires a token"
        else:
            assert roles == EXPECTED.get(route), route_id(route)


# --- Test B: a real request per route and role -----------------------------------------------

CASES = [(route, role) for route in EXPECTED for role in USER_OF_ROLE]


@pytest.mark.parametrize(
    ("route", "role"), CASES, ids=[f"{route_id(route)} as {role}" for route, role in CASES]
)
def test_each_role_is_allowed_or_refused_as_the_table_says(
    client: FlaskClient, world: World, params: dict[str, str], route: tuple[str, str], role: str
) -> None:
    response = call(client, route, params, headers=world.auth(USER_OF_ROLE[role]))
    body = response.get_json(silent=True)
    if role in EXPECTED[route]:
        assert response.status_code not in (401, 403), body
        assert response.status_code != 500, body  # a crash proves nothing (503 is healthz's)
    else:
        assert response.status_code == 403, body
        assert body["error"]["code"] == "forbidden"


@pytest.mark.parametrize("route", list(EXPECTED), ids=route_id)
def test_a_request_without_a_token_is_refused_unless_the_route_is_public(
    client: FlaskClient, params: dict[str, str], route: tuple[str, str]
) -> None:
    response = call(client, route, params)
    if route[1] in PUBLIC:
        assert response.status_code not in (401, 403)
    else:
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "unauthenticated"


# --- Test C: a clinic does not see another site's shipment -----------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/shipments/{shipment_id}",
        "/api/v1/shipments/{shipment_id}/readings",
        "/api/v1/shipments/{shipment_id}/excursions",
        "/api/v1/excursions/{excursion_id}",
        "/api/v1/coi/{coi}",
        "/api/v1/shipments/{shipment_id}/epcis",
        "/api/v1/coi/{coi}/epcis",
    ],
)
def test_another_sites_clinic_gets_404_for_the_shipment(
    client: FlaskClient, world: World, params: dict[str, str], path: str
) -> None:
    url = path.format(**params)
    assert client.get(url, headers=world.auth("clinic1")).status_code == 200
    response = client.get(url, headers=world.auth("clinic2"))
    assert response.status_code == 404, response.get_json()


def test_another_sites_clinic_does_not_list_the_shipment_or_its_excursions(
    client: FlaskClient, world: World, params: dict[str, str]
) -> None:
    def ids(user: str, path: str) -> set[int]:
        response = client.get(path, headers=world.auth(user))
        assert response.status_code == 200, response.get_json()
        return {row["id"] for row in response.get_json()}

    shipment_id, excursion_id = int(params["shipment_id"]), int(params["excursion_id"])
    assert shipment_id in ids("clinic1", "/api/v1/shipments")
    assert shipment_id not in ids("clinic2", "/api/v1/shipments")
    assert excursion_id in ids("clinic1", "/api/v1/excursions")
    assert excursion_id not in ids("clinic2", "/api/v1/excursions")
