"""Alarms: raised once per identity, audited, shown on the shipment, cleared once."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from coldchain.services import alarms
from coldchain.store.models import Alarm, AuditEvent
from tests.api.test_custody_api import create, get
from tests.conftest import World

T0_US = 1_780_000_000_000_000


def test_an_alarm_is_raised_once_audited_shown_and_cleared(
    client: FlaskClient, world: World, sessions: sessionmaker[Session]
) -> None:
    shipment = create(client, world)
    for _ in range(2):
        with sessions.begin() as session:
            alarms.raise_alarm(
                session,
                shipment_id=shipment["id"],
                logger_id="L-1",
                kind="RATE_OF_CHANGE",
                severity="warning",
                at_us=T0_US,
                detail={"rise_c_per_min": 3.5},
            )
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Alarm)) == 1
        actions = list(
            session.scalars(select(AuditEvent.action).where(AuditEvent.entity == "alarm"))
        )
    assert actions == ["alarm.raised"]
    shown = get(client, world, shipment["id"])
    assert shown["version"] == shipment["version"] + 1
    [alarm] = shown["alarms"]
    assert alarm["kind"] == "RATE_OF_CHANGE" and alarm["status"] == "OPEN"
    assert alarm["at"] == "2026-05-28T20:26:40Z" and alarm["detail"] == {"rise_c_per_min": 3.5}

    with sessions.begin() as session:
        row = session.scalars(select(Alarm)).one()
        alarms.clear_alarm(session, row, cleared_us=T0_US + 60_000_000)
        alarms.clear_alarm(session, row, cleared_us=T0_US + 120_000_000)
    [alarm] = get(client, world, shipment["id"])["alarms"]
    assert alarm["status"] == "CLEARED" and alarm["cleared_at"] == "2026-05-28T20:27:40Z"
    with sessions() as session:
        actions = list(
            session.scalars(select(AuditEvent.action).where(AuditEvent.entity == "alarm"))
        )
    assert actions == ["alarm.raised", "alarm.cleared"]
