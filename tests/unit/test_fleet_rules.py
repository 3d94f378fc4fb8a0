"""The fleet care rules: calibration due dates, the battery threshold, assignment."""

from __future__ import annotations

from datetime import date

import pytest

from coldchain.domain.errors import ValidationError
from coldchain.domain.fleet import (
    Calibration,
    CalibrationOverdueError,
    CalibrationUnknownError,
    FleetPolicy,
    LoggerCare,
    battery_low,
    calibrate,
    calibration_state,
    check_assignment,
)

TODAY = date(2026, 11, 29)


def care(due: date | None = date(2027, 1, 1), battery: float | None = 90.0) -> LoggerCare:
    return LoggerCare("L-1", due, battery)


def test_a_logger_due_today_is_still_valid() -> None:
    assert calibration_state(TODAY, TODAY) is Calibration.VALID


def test_a_logger_due_yesterday_is_overdue() -> None:
    assert calibration_state(date(2026, 11, 28), TODAY) is Calibration.OVERDUE


def test_a_logger_due_tomorrow_is_valid() -> None:
    assert calibration_state(date(2026, 11, 30), TODAY) is Calibration.VALID


def test_a_logger_without_a_due_date_is_unknown() -> None:
    assert calibration_state(None, TODAY) is Calibration.UNKNOWN


def test_a_battery_strictly_below_the_threshold_is_low() -> None:
    assert battery_low(19.9, 20)
    assert not battery_low(20, 20)
    assert not battery_low(85, 20)


def test_an_unknown_battery_level_is_not_low() -> None:
    assert not battery_low(None, 20)


def test_an_overdue_logger_is_refused_with_its_code_and_field() -> None:
    with pytest.raises(CalibrationOverdueError) as refused:
        check_assignment([care(due=date(2026, 11, 28))], on=TODAY, policy=FleetPolicy())
    assert refused.value.code == "logger-calibration-overdue"
    assert refused.value.field == "loggers"
    assert "L-1" in refused.value.message and "2026-11-28" in refused.value.message


def test_a_logger_due_on_the_day_of_assignment_is_accepted_without_warning() -> None:
    assert check_assignment([care(due=TODAY)], on=TODAY, policy=FleetPolicy()) == []


def test_a_logger_of_unknown_calibration_is_accepted_with_a_warning() -> None:
    warnings = check_assignment([care(due=None)], on=TODAY, policy=FleetPolicy())
    assert [(w.code, w.logger_id) for w in warnings] == [("logger-calibration-unknown", "L-1")]


def test_a_logger_of_unknown_calibration_is_refused_when_calibration_is_required() -> None:
    with pytest.raises(CalibrationUnknownError) as refused:
        check_assignment([care(due=None)], on=TODAY, policy=FleetPolicy(require_calibration=True))
    assert (refused.value.code, refused.value.field) == ("logger-calibration-unknown", "loggers")


def test_a_low_battery_is_a_warning_not_a_refusal() -> None:
    warnings = check_assignment([care(battery=12.5)], on=TODAY, policy=FleetPolicy())
    assert [w.code for w in warnings] == ["logger-battery-low"]
    assert "12.5 %" in warnings[0].message


def test_the_battery_threshold_comes_from_the_policy() -> None:
    policy = FleetPolicy(battery_low_pct=50)
    assert [w.code for w in check_assignment([care(battery=45)], on=TODAY, policy=policy)] == [
        "logger-battery-low"
    ]


def test_one_overdue_logger_refuses_the_whole_assignment() -> None:
    loggers = [care(), LoggerCare("L-2", date(2020, 1, 1), 90.0)]
    with pytest.raises(CalibrationOverdueError, match="L-2"):
        check_assignment(loggers, on=TODAY, policy=FleetPolicy())


def test_a_calibration_sets_the_next_due_date_and_certificate() -> None:
    event = calibrate(
        "L-1",
        calibrated_on=TODAY,
        certificate=" CERT-42 ",
        next_due=date(2027, 11, 29),
        today=TODAY,
    )
    assert (event.calibrated_on, event.certificate, event.calibration_due) == (
        TODAY,
        "CERT-42",
        date(2027, 11, 29),
    )


def test_a_calibration_dated_in_the_future_is_refused() -> None:
    with pytest.raises(ValidationError) as refused:
        calibrate(
            "L-1",
            calibrated_on=date(2026, 11, 30),
            certificate=None,
            next_due=date(2027, 1, 1),
            today=TODAY,
        )
    assert refused.value.field == "calibrated_on"


def test_a_next_due_date_before_the_calibration_is_refused() -> None:
    with pytest.raises(ValidationError) as refused:
        calibrate(
            "L-1", calibrated_on=TODAY, certificate=None, next_due=date(2026, 11, 1), today=TODAY
        )
    assert refused.value.field == "calibration_due"
