"""Excursion science through a real ingest (store_batch on SQLite or PostgreSQL) and the API."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from coldchain.config import Settings
from coldchain.domain.mkt import time_weighted_mkt
from coldchain.domain.profiles import Profile
from coldchain.domain.senml import PackLimits
from coldchain.services import ingest
from coldchain.services.timefmt import now_us
from coldchain.store.models import AuditEvent
from tests.api.test_custody_api import create, get
from tests.conftest import World

MIN = 60


def push(
    sessions: sessionmaker[Session],
    profiles: Mapping[str, Profile],
    logger_id: str,
    readings: Sequence[tuple[float, float]],
) -> None:
    """Store (unix seconds, temp_c) readings of one logger as one message, as the worker does."""
    pack: list[dict[str, Any]] = [{"n": "temp", "u": "Cel", "t": t, "v": v} for t, v in readings]
    pack[0]["bn"] = f"urn:dev:logger:{logger_id}:"
    ingest.store_batch(
        sessions=sessions,
        messages=[
            ingest.Incoming(
                f"coldchain/v1/loggers/{logger_id}/readings", json.dumps(pack).encode(), now_us()
            )
        ],
        profiles=profiles,
        limits=PackLimits(),
        known=ingest.KnownLoggers(),
        now_us=now_us(),
    )


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def open_alarms(shipment: Mapping[str, Any], kind: str) -> list[tuple[str, str]]:
    return [
        (a["at"], a["severity"])
        for a in shipment["alarms"]
        if a["kind"] == kind and a["status"] == "OPEN"
    ]


def ln2_excursions(t0: float) -> list[tuple[float, float]]:
    """Three 10-minute warm-ups to -145 C an hour apart, and a 5-minute one, minute readings."""
    readings = []
    for minute in range(4 * 60):
        hour, into = divmod(minute, 60)
        warm = into < (5 if hour == 3 else 10)
        readings.append((t0 + minute * MIN, -145.0 if warm else -190.0))
    return readings


def test_the_budget_adds_up_across_excursions_in_any_order_and_is_spent_once(
    client: FlaskClient, world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    t0 = round(time.time()) - 5 * 3600
    readings = ln2_excursions(t0)
    # LN2_VAPOR: 1800 s of budget. 10 + 10 + 10 minutes run it out at the reading that ends
    # the third warm-up (minute 130); the fourth adds five minutes more.
    first = create(client, world, 1, monitoring_from=iso(t0 - 60), loggers=["L-1"])
    push(sessions, settings.profiles, "L-1", readings)
    second = create(client, world, 2, monitoring_from=iso(t0 - 60), loggers=["L-2"])
    # The same readings backwards, in four messages, the last hour first.
    for part in reversed(range(4)):
        push(sessions, settings.profiles, "L-2", readings[part * 60 : (part + 1) * 60])

    for shipment, logger in ((first, "L-1"), (second, "L-2")):
        shown = get(client, world, shipment["id"])
        assert shown["stability"] == {
            "budget_s": 1800.0,
            "used_s": 2100.0,
            "remaining_s": 0.0,
            "spent": True,
            "logger_id": logger,
        }
        assert open_alarms(shown, "BUDGET_SPENT") == [(iso(t0 + 130 * MIN), "critical")]
        # Each warm-up after the first reading rose 45 C in a minute, far past the 10 C/min
        # of LN2_VAPOR (the very first reading has no reading before it to rise from).
        assert open_alarms(shown, "RATE_OF_CHANGE") == [
            (iso(t0 + (60 * hour) * MIN), "warning") for hour in range(1, 4)
        ]
        # LN2 is not a profile with an MKT.
        assert shown["mkt_c"] is None
        # Each excursion is a warning: -145 C is above -150 C but not above -130 C.
        assert {e["severity"] for e in shown["excursions"] if e["kind"] == "HIGH"} == {"warning"}
    # Arrival order changed what was raised on the way, not what stands.
    with sessions() as session:
        raised = session.scalars(
            select(AuditEvent.new_values).where(AuditEvent.action == "alarm.raised")
        ).all()
    budget = [json.loads(v) for v in raised if '"BUDGET_SPENT"' in v]
    assert {(b["shipment_id"], b["at"]) for b in budget} >= {
        (first["id"], iso(t0 + 130 * MIN)),
        (second["id"], iso(t0 + 130 * MIN)),
    }


def test_a_backfill_before_the_point_the_budget_ran_out_moves_its_alarm(
    client: FlaskClient, world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    t0 = round(time.time()) - 5 * 3600
    readings = ln2_excursions(t0)
    shipment = create(client, world, 3, monitoring_from=iso(t0 - 60), loggers=["L-3"])
    # The last three hours first: runs out at the end of the fourth warm-up? 10 + 10 + 5 is
    # 25 minutes: not yet. Then the first hour: the budget ran out in the third.
    push(sessions, settings.profiles, "L-3", readings[60:])
    shown = get(client, world, shipment["id"])
    assert shown["stability"]["used_s"] == 1500.0 and not shown["stability"]["spent"]
    assert open_alarms(shown, "BUDGET_SPENT") == []
    push(sessions, settings.profiles, "L-3", readings[:60])
    shown = get(client, world, shipment["id"])
    assert open_alarms(shown, "BUDGET_SPENT") == [(iso(t0 + 130 * MIN), "critical")]

    # A budget spent late, then a backfill earlier: the first alarm is cleared, a new one
    # stands where the readings now say it ran out.
    late = create(client, world, 4, monitoring_from=iso(t0 - 60), loggers=["L-4"])
    push(sessions, settings.profiles, "L-4", [(t0, -190.0)] + readings[60:])
    # One reading at t0, in range, then the rest from minute 60: 10 + 10 + 5 = 25 min used.
    push(sessions, settings.profiles, "L-4", [(t0 + 241 * MIN, -145.0), (t0 + 250 * MIN, -190.0)])
    # 9 more minutes: 34 min, out at minute 250.
    shown = get(client, world, late["id"])
    assert open_alarms(shown, "BUDGET_SPENT") == [(iso(t0 + 250 * MIN), "critical")]
    # The first hour now: 9 minutes warm (its first reading is in range). 9 + 10 + 10 is 29
    # minutes by minute 130; the reading at minute 181, a minute into the fourth warm-up,
    # shows 30.
    push(sessions, settings.profiles, "L-4", readings[1:60])
    shown = get(client, world, late["id"])
    assert open_alarms(shown, "BUDGET_SPENT") == [(iso(t0 + 181 * MIN), "critical")]
    cleared = [a for a in shown["alarms"] if a["kind"] == "BUDGET_SPENT" and a["status"] != "OPEN"]
    assert [a["at"] for a in cleared] == [iso(t0 + 250 * MIN)]
    assert shown["stability"]["used_s"] == (9 + 10 + 10 + 5 + 9) * MIN


def test_a_backfill_between_two_readings_clears_the_rise_it_no_longer_shows(
    client: FlaskClient, world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    t0 = round(time.time()) - 3600
    shipment = create(client, world, 5, monitoring_from=iso(t0 - 60), loggers=["L-5"])
    # -190 to -170 C in two minutes: 10 C/min, exactly the limit: no alarm.
    push(sessions, settings.profiles, "L-5", [(t0, -190.0), (t0 + 2 * MIN, -170.0)])
    assert get(client, world, shipment["id"])["alarms"] == []
    # A reading between them at -189: the second minute rose 19 C, an alarm dated at the later.
    push(sessions, settings.profiles, "L-5", [(t0 + MIN, -189.0)])
    shown = get(client, world, shipment["id"])
    assert open_alarms(shown, "RATE_OF_CHANGE") == [(iso(t0 + 2 * MIN), "warning")]
    [alarm] = shown["alarms"]
    assert alarm["detail"]["from"] == iso(t0 + MIN) and alarm["detail"]["rise_c_per_min"] == 19.0
    # Another at 90 s, -171 C: the rise is now into that one; the alarm at 2 min is cleared.
    push(sessions, settings.profiles, "L-5", [(t0 + 90, -171.0)])
    shown = get(client, world, shipment["id"])
    assert open_alarms(shown, "RATE_OF_CHANGE") == [(iso(t0 + 90), "warning")]
    assert [(a["at"], a["status"]) for a in shown["alarms"]] == [
        (iso(t0 + 90), "OPEN"),
        (iso(t0 + 2 * MIN), "CLEARED"),
    ]
    with sessions() as session:
        actions = session.scalars(
            select(AuditEvent.action).where(AuditEvent.entity == "alarm").order_by(AuditEvent.seq)
        ).all()
    assert actions == ["alarm.raised", "alarm.raised", "alarm.cleared"]


def test_a_refrigerated_shipment_shows_its_time_weighted_mkt_and_excursion_severities(
    client: FlaskClient, world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    t0 = round(time.time()) - 4 * 3600
    shipment = create(
        client, world, 6, profile="REFRIGERATED", monitoring_from=iso(t0 - 60), loggers=["L-1"]
    )
    # 5 C, then 20 minutes at 9 C (an excursion: grace is 15), then 5 C, irregularly spaced.
    readings = [(t0, 5.0), (t0 + 10 * MIN, 5.5), (t0 + 60 * MIN, 9.0), (t0 + 70 * MIN, 9.0)]
    readings += [(t0 + 80 * MIN, 5.0), (t0 + 200 * MIN, 4.0)]
    push(sessions, settings.profiles, "L-1", readings)
    shown = get(client, world, shipment["id"])
    expected = time_weighted_mkt([(round(t * 1e6), v) for t, v in readings])
    assert expected is not None and shown["mkt_c"] == round(expected, 3)
    # The hours between readings are signal losses; the 20 minutes at 9 C an excursion.
    [excursion] = [e for e in shown["excursions"] if e["kind"] == "HIGH"]
    assert excursion["severity"] == "warning"
    assert {e["severity"] for e in shown["excursions"]} == {"warning"}
    assert shown["stability"]["used_s"] == 1200.0
    # The audit event of the excursion carries its severity, for the alert dispatchers.
    with sessions() as session:
        opened = session.scalars(
            select(AuditEvent.new_values).where(AuditEvent.action == "excursion.opened")
        ).all()
    assert {(json.loads(v)["kind"], json.loads(v)["severity"]) for v in opened} == {
        ("HIGH", "warning"),
        ("SIGNAL_LOSS", "warning"),
    }

    # Far above 10 C: the open excursion becomes critical, and its update says so.
    push(sessions, settings.profiles, "L-1", [(t0 + 75 * MIN, 10.5)])
    shown = get(client, world, shipment["id"])
    [excursion] = [e for e in shown["excursions"] if e["kind"] == "HIGH"]
    assert excursion["severity"] == "critical"
    with sessions() as session:
        closed = session.scalars(
            select(AuditEvent.new_values)
            .where(AuditEvent.entity == "excursion", AuditEvent.entity_id == str(excursion["id"]))
            .order_by(AuditEvent.seq)
        ).all()
    response = client.get(
        f"/api/v1/shipments/{shipment['id']}/excursions?format=csv", headers=world.auth("auditor")
    )
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [r["severity"] for r in rows if r["kind"] == "HIGH"] == ["critical"]
    assert len(closed) >= 1


def test_readings_in_the_start_up_period_are_not_judged(
    client: FlaskClient, world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    t0 = round(time.time()) - 3600
    profiles = {
        **settings.profiles,
        "LN2_VAPOR": replace(settings.profiles["LN2_VAPOR"], startup_ignore_s=600.0),
    }
    shipment = create(client, world, 7, monitoring_from=iso(t0), loggers=["L-2"])
    # The shipper settles: -20 C at packing, down to -190 C over the first ten minutes.
    settling = [(t0 + i * MIN, -20.0 - 17 * i) for i in range(10)]
    steady = [(t0 + i * MIN, -190.0) for i in range(10, 30)]
    # A warm-up after the settling period is judged as usual.
    steady[5] = (steady[5][0], -100.0)
    push(sessions, profiles, "L-2", steady + settling)
    shown = get(client, world, shipment["id"])
    assert [
        (e["kind"], e["started_at"]) for e in shown["excursions"] if e["kind"] != "SIGNAL_LOSS"
    ] == [("HIGH", iso(t0 + 15 * MIN))]
    assert shown["stability"]["used_s"] == 60.0
    assert open_alarms(shown, "RATE_OF_CHANGE") == [(iso(t0 + 15 * MIN), "warning")]
    # -100 C is more than 20 C above -150 C: critical.
    assert [e["severity"] for e in shown["excursions"] if e["kind"] == "HIGH"] == ["critical"]
