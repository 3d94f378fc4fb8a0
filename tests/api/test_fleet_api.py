"""Logger fleet care through the API: calibration, battery, model and firmware, audited."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from coldchain.app import create_app
from coldchain.config import Settings
from coldchain.domain.senml import PackLimits
from coldchain.services import ingest
from coldchain.services.timefmt import now_us
from tests.conftest import World, make_coi


def today() -> datetime:
    return datetime.now(UTC)


def day(offset: int) -> str:
    return (today() + timedelta(days=offset)).date().isoformat()


def store_battery(
    sessions: sessionmaker[Session], settings: Settings, logger_id: str, levels: list[float]
) -> float:
    """Store one battery reading a minute for the logger, ending now; return the last time."""
    t0 = round(time.time()) - 60 * len(levels)
    pack: list[dict[str, Any]] = [
        {"bn": f"urn:dev:logger:{logger_id}:", "n": "batt", "u": "%EL", "t": t0 + 60 * i, "v": v}
        if i == 0
        else {"n": "batt", "u": "%EL", "t": t0 + 60 * i, "v": v}
        for i, v in enumerate(levels)
    ]
    pack.append({"n": "temp", "u": "Cel", "t": t0, "v": -190.0})
    ingest.store_batch(
        sessions=sessions,
        messages=[
            ingest.Incoming(
                f"coldchain/v1/loggers/{logger_id}/readings", json.dumps(pack).encode(), now_us()
            )
        ],
        profiles=settings.profiles,
        limits=PackLimits(),
        known=ingest.KnownLoggers(),
        now_us=now_us(),
    )
    return float(t0 + 60 * (len(levels) - 1))


def shipment_body(serial: int, loggers: list[str]) -> dict[str, Any]:
    return {
        "coi": make_coi(serial),
        "profile": "LN2_VAPOR",
        "origin_site": "MFG-1",
        "destination_site": "TC-1",
        "loggers": loggers,
        "patient": {"mrn": str(serial)},
    }


def loggers(client: FlaskClient, world: World, user: str = "qa") -> dict[str, Any]:
    response = client.get("/api/v1/loggers", headers=world.auth(user))
    assert response.status_code == 200, response.get_json()
    return {row["id"]: row for row in response.get_json()}


def audit(client: FlaskClient, world: World, action: str, logger_id: str) -> list[Any]:
    response = client.get(
        f"/api/v1/audit?action={action}&entity_id={logger_id}", headers=world.auth("auditor")
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def patch_logger(
    client: FlaskClient, world: World, logger_id: str, body: Any, user: str = "coord"
) -> Any:
    return client.patch(f"/api/v1/loggers/{logger_id}", json=body, headers=world.auth(user))


def test_a_logger_past_its_calibration_due_date_cannot_be_put_on_a_shipment(
    client: FlaskClient, world: World
) -> None:
    assert patch_logger(client, world, "L-1", {"calibration_due": day(-1)}).status_code == 200
    response = client.post(
        "/api/v1/shipments", json=shipment_body(1, ["L-2", "L-1"]), headers=world.auth("coord")
    )
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert (error["code"], error["field"]) == ("logger-calibration-overdue", "loggers")
    assert "L-1" in error["message"] and day(-1) in error["message"]
    assert client.get("/api/v1/shipments", headers=world.auth("coord")).get_json() == []


def test_a_logger_due_for_calibration_today_may_still_go_out(
    client: FlaskClient, world: World
) -> None:
    patch_logger(client, world, "L-1", {"calibration_due": day(0)})
    response = client.post(
        "/api/v1/shipments", json=shipment_body(1, ["L-1"]), headers=world.auth("coord")
    )
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["warnings"] == []


def test_a_logger_without_a_calibration_date_goes_out_with_a_warning(
    client: FlaskClient, world: World
) -> None:
    response = client.post(
        "/api/v1/shipments", json=shipment_body(1, ["L-1"]), headers=world.auth("coord")
    )
    assert response.status_code == 201, response.get_json()
    assert [(w["code"], w["logger_id"]) for w in response.get_json()["warnings"]] == [
        ("logger-calibration-unknown", "L-1")
    ]


def test_a_logger_without_a_calibration_date_is_refused_when_the_setting_requires_one(
    settings: Settings, world: World
) -> None:
    app = create_app(settings=settings.with_overrides({"fleet_require_calibration": True}))
    try:
        response = app.test_client().post(
            "/api/v1/shipments", json=shipment_body(1, ["L-1"]), headers=world.auth("coord")
        )
    finally:
        app.extensions["coldchain"].engine.dispose()
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert (error["code"], error["field"]) == ("logger-calibration-unknown", "loggers")


def test_the_latest_battery_reading_is_listed_and_flagged_low_below_the_threshold(
    client: FlaskClient,
    world: World,
    sessions: sessionmaker[Session],
    settings: Settings,
) -> None:
    last = store_battery(sessions, settings, "L-1", [80, 40, 19.5])
    store_battery(sessions, settings, "L-2", [20])
    listed = loggers(client, world)
    assert listed["L-1"]["battery_pct"] == 19.5 and listed["L-1"]["battery_low"] is True
    assert listed["L-1"]["battery_at"] == datetime.fromtimestamp(last, UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    assert listed["L-2"]["battery_pct"] == 20 and listed["L-2"]["battery_low"] is False
    assert listed["L-3"]["battery_pct"] is None and listed["L-3"]["battery_at"] is None
    assert listed["L-3"]["battery_low"] is False


def test_a_low_battery_is_a_warning_in_the_created_shipment_not_a_refusal(
    client: FlaskClient,
    world: World,
    sessions: sessionmaker[Session],
    settings: Settings,
) -> None:
    store_battery(sessions, settings, "L-1", [12])
    patch_logger(client, world, "L-1", {"calibration_due": day(30)})
    response = client.post(
        "/api/v1/shipments", json=shipment_body(1, ["L-1"]), headers=world.auth("coord")
    )
    assert response.status_code == 201, response.get_json()
    warnings = response.get_json()["warnings"]
    assert [(w["code"], w["logger_id"]) for w in warnings] == [("logger-battery-low", "L-1")]
    assert "12 %" in warnings[0]["message"]


def test_the_battery_threshold_is_a_setting(
    settings: Settings, world: World, sessions: sessionmaker[Session]
) -> None:
    store_battery(sessions, settings, "L-1", [45])
    app = create_app(settings=settings.with_overrides({"fleet_battery_low_pct": 50}))
    try:
        listed = app.test_client().get("/api/v1/loggers", headers=world.auth("admin")).get_json()
    finally:
        app.extensions["coldchain"].engine.dispose()
    assert next(r for r in listed if r["id"] == "L-1")["battery_low"] is True


def test_recording_a_calibration_makes_an_overdue_logger_usable_and_is_audited(
    client: FlaskClient, world: World
) -> None:
    patch_logger(client, world, "L-1", {"calibration_due": day(-10)})
    response = client.post(
        "/api/v1/loggers/L-1/calibration",
        json={"calibrated_on": day(0), "certificate": "CAL-2026-0042", "calibration_due": day(365)},
        headers=world.auth("admin"),
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["calibration_due"], body["calibrated_on"], body["calibration"]) == (
        day(365),
        day(0),
        "valid",
    )
    assert body["calibration_certificate"] == "CAL-2026-0042"
    (event,) = audit(client, world, "logger.calibrated", "L-1")
    assert event["actor"] == "admin" and event["request_id"]
    assert event["old_values"]["calibration_due"] == day(-10)
    assert event["new_values"] == {
        "calibrated_on": day(0),
        "certificate": "CAL-2026-0042",
        "calibration_due": day(365),
    }
    created = client.post(
        "/api/v1/shipments", json=shipment_body(1, ["L-1"]), headers=world.auth("coord")
    )
    assert created.status_code == 201, created.get_json()


def test_a_calibration_without_a_day_is_dated_today(client: FlaskClient, world: World) -> None:
    response = client.post(
        "/api/v1/loggers/L-1/calibration",
        json={"calibration_due": day(180)},
        headers=world.auth("coord"),
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["calibrated_on"] == day(0)


def test_a_calibration_due_before_it_was_done_is_refused(client: FlaskClient, world: World) -> None:
    response = client.post(
        "/api/v1/loggers/L-1/calibration",
        json={"calibrated_on": day(-1), "calibration_due": day(-2)},
        headers=world.auth("coord"),
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "calibration_due"
    assert audit(client, world, "logger.calibrated", "L-1") == []


def test_a_calibration_dated_tomorrow_is_refused(client: FlaskClient, world: World) -> None:
    response = client.post(
        "/api/v1/loggers/L-1/calibration",
        json={"calibrated_on": day(1), "calibration_due": day(400)},
        headers=world.auth("coord"),
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "calibrated_on"


def test_dates_must_be_written_as_calendar_days(client: FlaskClient, world: World) -> None:
    for bad in (1764000000, "2027-01-01T00:00:00Z", "01/02/2027", "2027-02-30"):
        response = patch_logger(client, world, "L-1", {"calibration_due": bad})
        assert response.status_code == 400, bad
        assert response.get_json()["error"]["field"] == "calibration_due"


def test_model_firmware_and_due_date_are_set_at_registration(
    client: FlaskClient, world: World
) -> None:
    response = client.post(
        "/api/v1/loggers",
        json={"id": "L-9", "model": "TL-5", "firmware": "2.4.1", "calibration_due": day(90)},
        headers=world.auth("admin"),
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["model"], body["firmware"], body["calibration_due"]) == ("TL-5", "2.4.1", day(90))
    assert body["calibration"] == "valid" and body["battery_low"] is False
    (event,) = audit(client, world, "logger.registered", "L-9")
    assert event["new_values"]["calibration_due"] == day(90)


def test_patch_changes_only_the_fields_given_and_audits_them(
    client: FlaskClient, world: World
) -> None:
    patch_logger(client, world, "L-1", {"model": "TL-5", "firmware": "1.0"})
    response = patch_logger(client, world, "L-1", {"firmware": "1.1"})
    assert response.status_code == 200, response.get_json()
    assert (response.get_json()["model"], response.get_json()["firmware"]) == ("TL-5", "1.1")
    events = audit(client, world, "logger.updated", "L-1")
    assert [(e["old_values"], e["new_values"]) for e in events] == [
        ({"model": None, "firmware": None}, {"model": "TL-5", "firmware": "1.0"}),
        ({"firmware": "1.0"}, {"firmware": "1.1"}),
    ]
    assert patch_logger(client, world, "L-1", {"firmware": "1.1"}).status_code == 200
    assert len(audit(client, world, "logger.updated", "L-1")) == 2


def test_patching_an_unknown_logger_is_not_found(client: FlaskClient, world: World) -> None:
    response = patch_logger(client, world, "NOPE", {"model": "x"})
    assert response.status_code == 404
    assert client.get("/api/v1/loggers/NOPE", headers=world.auth("qa")).status_code == 404


def test_only_admins_and_coordinators_change_loggers(client: FlaskClient, world: World) -> None:
    for user in ("qa", "auditor", "courier", "clinic1"):
        assert patch_logger(client, world, "L-1", {"model": "x"}, user=user).status_code == 403, (
            user
        )
        response = client.post(
            "/api/v1/loggers/L-1/calibration",
            json={"calibration_due": day(30)},
            headers=world.auth(user),
        )
        assert response.status_code == 403, user


def test_presence_and_calibration_are_in_the_csv_export(client: FlaskClient, world: World) -> None:
    patch_logger(client, world, "L-1", {"calibration_due": day(-1)})
    response = client.get("/api/v1/loggers?format=csv", headers=world.auth("auditor"))
    assert response.status_code == 200
    header, first = response.get_data(as_text=True).splitlines()[:2]
    assert header.split(",")[-7:] == [
        "battery_pct",
        "battery_at",
        "battery_low",
        "calibration_due",
        "calibrated_on",
        "calibration_certificate",
        "calibration",
    ]
    assert first.startswith("L-1,") and first.endswith(f",{day(-1)},,,overdue")
