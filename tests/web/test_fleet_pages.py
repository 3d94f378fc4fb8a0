"""The fleet page and the shipment page's logger care: presence, battery, calibration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from coldchain.config import Settings
from tests.api.test_custody_api import create
from tests.api.test_fleet_api import patch_logger, store_battery
from tests.conftest import World, make_coi
from tests.web.test_web_roles import sign_in


def day(offset: int) -> str:
    return (datetime.now(UTC) + timedelta(days=offset)).date().isoformat()


def page(app: Flask, username: str, path: str) -> str:
    user = app.test_client()
    sign_in(user, username)
    response = user.get(path)
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def test_the_fleet_page_lists_presence_battery_calibration_model_and_firmware(
    app: Flask,
    client: FlaskClient,
    world: World,
    sessions: sessionmaker[Session],
    settings: Settings,
) -> None:
    patch_logger(
        client, world, "L-1", {"model": "TL-5", "firmware": "2.4.1", "calibration_due": day(-3)}
    )
    patch_logger(client, world, "L-2", {"calibration_due": day(100)})
    store_battery(sessions, settings, "L-1", [50, 15])
    html = page(app, "coord", "/fleet")
    assert '<tr data-id="L-1" class="alarm">' in html
    row = html.split('data-id="L-1"')[1].split("</tr>")[0]
    assert "TL-5" in row and "2.4.1" in row
    assert '15 % <strong class="bad">low</strong>' in row
    assert f'{day(-3)} <strong class="bad">overdue</strong>' in row
    other = html.split('data-id="L-2"')[1].split("</tr>")[0]
    assert day(100) in other and "overdue" not in other and "unknown" in other  # presence
    assert 'href="/fleet"' in html


def test_the_fleet_page_escapes_what_loggers_were_registered_with(
    app: Flask, client: FlaskClient, world: World
) -> None:
    patch_logger(client, world, "L-1", {"model": "<script>alert(1)</script>", "firmware": '"><b>x'})
    html = page(app, "auditor", "/fleet")
    assert "<script>alert(1)</script>" not in html and '"><b>x' not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&#34;&gt;&lt;b&gt;x" in html


def test_the_shipment_page_warns_of_a_low_battery_and_unknown_calibration(
    app: Flask,
    client: FlaskClient,
    world: World,
    sessions: sessionmaker[Session],
    settings: Settings,
) -> None:
    shipment = create(client, world, loggers=["L-1", "L-2"])
    store_battery(sessions, settings, "L-1", [9])
    patch_logger(client, world, "L-2", {"calibration_due": day(10), "model": "<i>m</i>"})
    html = page(app, "clinic1", f"/shipments/{shipment['id']}")
    warning = html.split('<div class="warning"')[1].split("</div>")[0]
    assert "L-1: battery at 9 % (below 20 %)" in warning
    assert "L-1: no calibration due date on record" in warning
    assert "L-2" not in warning
    assert 'data-logger="L-2">L-2 (presence unknown' in " ".join(html.split())


def test_creating_a_shipment_on_the_page_shows_the_fleet_warnings(
    app: Flask, world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    store_battery(sessions, settings, "L-3", [5])
    user = app.test_client()
    token = sign_in(user, "coord")
    response = user.post(
        "/shipments/new",
        data={
            "csrf_token": token,
            "coi": make_coi(77),
            "profile": "LN2_VAPOR",
            "origin_site": "MFG-1",
            "destination_site": "TC-1",
            "loggers": "L-3",
            "mrn": "77",
        },
        follow_redirects=True,
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html[:500]
    assert "Warning: logger L-3 battery at 5 % (below 20 %)." in html
    assert "Warning: logger L-3 has no calibration due date on record." in html


def test_creating_a_shipment_on_the_page_with_an_overdue_logger_is_refused(
    app: Flask, client: FlaskClient, world: World
) -> None:
    patch_logger(client, world, "L-3", {"calibration_due": day(-1)})
    user = app.test_client()
    token = sign_in(user, "coord")
    response = user.post(
        "/shipments/new",
        data={
            "csrf_token": token,
            "coi": make_coi(78),
            "profile": "LN2_VAPOR",
            "origin_site": "MFG-1",
            "destination_site": "TC-1",
            "loggers": "L-3",
            "mrn": "78",
        },
    )
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert f"logger L-3 was due for calibration on {day(-1)}" in html
