"""Hold-time prediction of dry shippers: the PREDICTED alarm as the worker stores readings."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from coldchain.config import Settings
from coldchain.domain.senml import PackLimits
from coldchain.services import ingest
from coldchain.services.timefmt import now_us, parse_rfc3339, rfc3339, to_us
from coldchain.store.models import Alarm, AuditEvent
from devices.scenarios import Reading, Scenario, plan
from devices.senml import encode_packs
from tests.api.test_custody_api import create, get
from tests.conftest import World, make_coi

H_US = 3_600_000_000
# A fixed past start: the simulated noise, and so every estimate, is the same on every run.
START = 1_795_000_000.0


def packs(readings: list[Reading], size: int, logger_id: str = "L-1") -> list[ingest.Incoming]:
    """Return the readings as SenML messages of a logger, `size` readings each, in time order."""
    return [
        ingest.Incoming(f"coldchain/v1/loggers/{logger_id}/readings", payload, now_us())
        for at in range(0, len(readings), size)
        for payload in encode_packs(logger_id, readings[at : at + size])
    ]


def store(
    sessions: sessionmaker[Session], settings: Settings, messages: list[ingest.Incoming]
) -> None:
    for message in messages:
        ingest.store_batch(
            sessions=sessions,
            messages=[message],
            profiles=settings.profiles,
            limits=PackLimits(),
            known=ingest.KnownLoggers(),
            now_us=now_us(),
        )


def backlog(scenario: Scenario, start: float) -> list[Reading]:
    """Return the dry-shipper scenario's backlog: the readings it sends first, all past."""
    sends = plan(scenario, start)
    readings = [r for send in (next(sends), next(sends)) for r in send.readings if r.time < start]
    assert len(readings) == scenario.backfill_s // scenario.interval_s
    return sorted(readings, key=lambda r: r.time)


def alarms(sessions: sessionmaker[Session]) -> list[Alarm]:
    """Return the PREDICTED alarms (other rules may raise alarms of their own kinds)."""
    with sessions() as session:
        return list(
            session.scalars(select(Alarm).where(Alarm.kind == "PREDICTED").order_by(Alarm.id))
        )


def trail(sessions: sessionmaker[Session]) -> list[tuple[str, str]]:
    """Return the audit trail of the PREDICTED alarms: (action, alarm id)."""
    ids = [str(a.id) for a in alarms(sessions)]
    with sessions() as session:
        rows = session.execute(
            select(AuditEvent.action, AuditEvent.entity_id)
            .where(AuditEvent.entity == "alarm", AuditEvent.entity_id.in_(ids))
            .order_by(AuditEvent.seq)
        )
        return [(action, entity_id) for action, entity_id in rows]


def shipper_shipment(
    client: FlaskClient,
    world: World,
    *,
    start: float,
    scenario: Scenario,
    arrival_h: float,
    serial: int = 1,
    logger_id: str = "L-1",
) -> dict[str, Any]:
    return create(
        client,
        world,
        serial,
        loggers=[logger_id],
        monitoring_from=rfc3339(round((start - scenario.backfill_s - 60) * 1e6)),
        planned_arrival=rfc3339(round((start + arrival_h * 3600) * 1e6)),
        shipper={
            "rated_hold_h": scenario.rated_hold_h,
            "charged_at": rfc3339(round((start - scenario.charged_h_ago * 3600) * 1e6)),
        },
    )


def test_an_under_charged_shipper_alarms_hours_before_its_simulated_crossing_and_once(
    client: FlaskClient, world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    # 60 % charged: dry after 144 h instead of the 192 h the derated rating promises, so the
    # prior is content and only the warm-up can give the alarm.
    scenario = Scenario(
        name="dry-shipper",
        interval_s=120,
        backfill_s=14 * 3600,
        charge_fraction=0.6,
        charged_h_ago=153.0,
    )
    start = START
    crossing_us = round((start - scenario.charged_h_ago * 3600) * 1e6) + round(
        scenario.shipper().crossing_h(-150.0) * H_US
    )
    assert start * 1e6 - 3 * H_US < crossing_us < start * 1e6
    shipment = shipper_shipment(client, world, start=start, scenario=scenario, arrival_h=1.0)
    assert shipment["prediction"]["method"] == "prior"
    messages = packs(backlog(scenario, start), 15)
    store(sessions, settings, messages)

    [alarm] = alarms(sessions)
    assert (alarm.kind, alarm.logger_id, alarm.status) == ("PREDICTED", "L-1", "OPEN")
    # The acceptance point: at least 2 hours before the crossing, on the logger's clock.
    assert alarm.at_us <= crossing_us - 2 * H_US
    shown = get(client, world, shipment["id"])
    [view] = [a for a in shown["alarms"] if a["kind"] == "PREDICTED"]
    assert view["detail"]["method"] == "trend"
    predicted_us = to_us(parse_rfc3339(view["detail"]["crossing_at"]))
    arrival_us = to_us(parse_rfc3339(shown["planned_arrival"]))
    assert view["severity"] == ("critical" if predicted_us < arrival_us else "warning")
    assert view["detail"]["planned_arrival"] == shown["planned_arrival"]
    assert abs(predicted_us - crossing_us) < 2 * H_US
    assert shown["prediction"]["method"] == "observed"
    assert abs(to_us(parse_rfc3339(shown["prediction"]["crossing_at"])) - crossing_us) < H_US / 2
    assert trail(sessions) == [("alarm.raised", str(alarm.id))]

    # A replay (the logger resends it all) and a backfill of what was there change nothing.
    store(sessions, settings, messages)
    store(sessions, settings, packs(backlog(scenario, start), 400))
    assert [(a.id, a.at_us, a.status) for a in alarms(sessions)] == [
        (alarm.id, alarm.at_us, "OPEN")
    ]
    assert trail(sessions) == [("alarm.raised", str(alarm.id))]
    assert get(client, world, shipment["id"])["version"] == shown["version"]


def test_the_same_readings_in_one_backlog_raise_the_alarm_at_the_same_reading_as_in_many(
    client: FlaskClient, world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    scenario = Scenario(
        name="dry-shipper",
        interval_s=120,
        backfill_s=14 * 3600,
        charge_fraction=0.6,
        charged_h_ago=153.0,
    )
    start = START
    readings = backlog(scenario, start)
    for serial, logger_id in ((1, "L-1"), (2, "L-2")):
        shipper_shipment(
            client, world, start=start, scenario=scenario, arrival_h=1.0, serial=serial,
            logger_id=logger_id,
        )  # fmt: skip
    store(sessions, settings, packs(readings, 7, "L-1"))
    store(sessions, settings, packs(readings, 10_000, "L-2"))
    by_logger = {a.logger_id: a.at_us for a in alarms(sessions)}
    assert by_logger["L-1"] == by_logger["L-2"]
    # An evaluation point is the first reading of its 10-minute bucket.
    assert by_logger["L-1"] % 600_000_000 < scenario.interval_s * 1_000_000


def test_a_shipper_still_cold_near_arrival_clears_the_alarm_its_rating_raised(
    client: FlaskClient, world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    # Fully charged, rated 100 h (derated 80 h), arriving 85 h after charging: the prior
    # alarms at once; the shipper really holds 100 h, and an hour before arrival even a dry-out
    # then would leave the 4 h warm-up: the estimate passes arrival + 3 h and it clears.
    scenario = Scenario(
        name="dry-shipper",
        interval_s=300,
        backfill_s=10 * 3600,
        rated_hold_h=100.0,
        charged_h_ago=85.5,
    )
    start = START
    arrival_us = round(start * 1e6) - round(0.5 * H_US)
    shipment = shipper_shipment(client, world, start=start, scenario=scenario, arrival_h=-0.5)
    store(sessions, settings, packs(backlog(scenario, start), 12))
    [alarm] = alarms(sessions)
    assert alarm.status == "CLEARED"
    assert alarm.at_us < round((start - 9.5 * 3600) * 1e6)
    assert alarm.cleared_us is not None
    assert arrival_us - H_US <= alarm.cleared_us <= arrival_us - H_US + 900_000_000
    assert [action for action, _ in trail(sessions)] == ["alarm.raised", "alarm.cleared"]
    shown = get(client, world, shipment["id"])
    assert shown["prediction"]["method"] == "prior"
    assert shown["shipper"] == {
        "rated_hold_h": 100.0,
        "charged_at": rfc3339(round((start - 85.5 * 3600) * 1e6)),
    }


def test_a_shipper_charged_in_the_future_is_refused(client: FlaskClient, world: World) -> None:
    body = {
        "coi": make_coi(1),
        "profile": "LN2_VAPOR",
        "origin_site": "MFG-1",
        "destination_site": "TC-1",
        "loggers": ["L-1"],
        "patient": {"mrn": "1"},
        "shipper": {"rated_hold_h": 240, "charged_at": rfc3339(now_us() + 2 * H_US)},
    }
    response = client.post("/api/v1/shipments", json=body, headers=world.auth("coord"))
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "shipper.charged_at"
