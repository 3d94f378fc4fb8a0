"""The shipment page shows the stability budget, the mean kinetic temperature and alarms."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from coldchain.config import Settings
from tests.api.test_custody_api import create, get, store
from tests.conftest import World
from tests.web.test_web_roles import sign_in


def test_a_refrigerated_shipment_page_shows_its_budget_mkt_and_severities(
    client: FlaskClient, world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    shipment = create(client, world, profile="REFRIGERATED", monitoring_from="2020-01-01T00:00:00Z")
    # One reading a minute: 20 minutes at 12 C between readings at 5 C (grace 900 s).
    store(sessions, settings, "L-1", [5.0] * 5 + [12.0] * 20 + [5.0] * 5)
    shown = get(client, world, shipment["id"])
    assert shown["stability"]["used_s"] == 1200 and not shown["stability"]["spent"]
    assert shown["mkt_c"] is not None
    [excursion] = shown["excursions"]

    sign_in(client, "coord")
    page = client.get(f"/shipments/{shipment['id']}").get_data(as_text=True)
    assert "Stability budget" in page and "20 of 240 min out of range used" in page
    assert f"{shown['mkt_c']:.2f} °C" in page
    assert f"HIGH ({excursion['severity']})" in page


def test_the_shipment_page_lists_its_alarms(
    client: FlaskClient, world: World, sessions: sessionmaker[Session]
) -> None:
    from coldchain.services import alarms

    shipment = create(client, world)
    with sessions.begin() as session:
        alarms.raise_alarm(
            session,
            shipment_id=shipment["id"],
            logger_id="L-1",
            kind="RATE_OF_CHANGE",
            severity="warning",
            at_us=1_780_000_000_000_000,
            detail={"rise_c_per_min": 12.5},
        )
    sign_in(client, "coord")
    page = client.get(f"/shipments/{shipment['id']}").get_data(as_text=True)
    assert '<table class="grid" id="alarms">' in page
    assert "<td>RATE OF CHANGE</td><td>warning</td><td>L-1</td>" in page
