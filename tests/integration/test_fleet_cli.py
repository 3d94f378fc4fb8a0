"""`coldchain loggers add` and `coldchain loggers calibrate` as real processes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask.testing import FlaskClient

from tests.conftest import World
from tests.integration.test_cli import coldchain


def day(offset: int) -> str:
    return (datetime.now(UTC) + timedelta(days=offset)).date().isoformat()


def logger(client: FlaskClient, world: World, logger_id: str) -> dict[str, object]:
    response = client.get(f"/api/v1/loggers/{logger_id}", headers=world.auth("qa"))
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def test_a_logger_is_added_with_model_firmware_and_calibration_due_or_without_them(
    database_url: str, client: FlaskClient, world: World
) -> None:
    done = coldchain(database_url, "loggers", "add", "LOG-0001", "--model", "TL-5",
                     "--firmware", "2.4.1", "--calibration-due", day(200))  # fmt: skip
    assert done.returncode == 0, done.stderr
    plain = coldchain(database_url, "loggers", "add", "LOG-0002")
    assert plain.returncode == 0 and plain.stdout.strip() == "logger LOG-0002 added"
    first = logger(client, world, "LOG-0001")
    assert (first["model"], first["firmware"], first["calibration_due"]) == (
        "TL-5",
        "2.4.1",
        day(200),
    )
    assert logger(client, world, "LOG-0002")["calibration"] == "unknown"


def test_a_calibration_is_recorded_from_the_command_line_and_audited(
    database_url: str, client: FlaskClient, world: World
) -> None:
    done = coldchain(database_url, "loggers", "calibrate", "L-1", "--due", day(365),
                     "--certificate", "CAL-7")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"logger L-1 calibrated on {day(0)}, next due {day(365)}"
    row = logger(client, world, "L-1")
    assert (row["calibration"], row["calibration_certificate"]) == ("valid", "CAL-7")
    events = client.get(
        "/api/v1/audit?action=logger.calibrated&entity_id=L-1", headers=world.auth("auditor")
    ).get_json()
    assert [(e["actor"], e["new_values"]["certificate"]) for e in events] == [
        ("system:cli", "CAL-7")
    ]


def test_a_bad_calibration_is_refused_by_the_command_line(database_url: str) -> None:
    unknown = coldchain(database_url, "loggers", "calibrate", "NOPE", "--due", day(30))
    assert unknown.returncode == 1 and "logger NOPE not found" in unknown.stderr
    backwards = coldchain(database_url, "loggers", "calibrate", "L-1", "--due", day(-5),
                          "--on", day(-1))  # fmt: skip
    assert backwards.returncode == 1 and "(calibration_due)" in backwards.stderr
    malformed = coldchain(database_url, "loggers", "calibrate", "L-1", "--due", "31/12/2027")
    assert malformed.returncode == 2 and "--due" in malformed.stderr
