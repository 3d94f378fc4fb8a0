"""Fleet care rules: calibration due dates, battery levels, who may be put on a shipment."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from coldchain.domain.errors import ConflictError, ValidationError


class Calibration(StrEnum):
    """Where a logger stands against its calibration due date on a given day."""

    VALID = "valid"
    OVERDUE = "overdue"
    UNKNOWN = "unknown"


class CalibrationOverdueError(ConflictError):
    """A logger past its calibration due date was put on a shipment."""

    code = "logger-calibration-overdue"


class CalibrationUnknownError(ConflictError):
    """A logger with no calibration date was put on a shipment while one is required."""

    code = "logger-calibration-unknown"


@dataclass(frozen=True)
class FleetPolicy:
    """The fleet settings ([fleet] in config/default.toml)."""

    battery_low_pct: float = 20.0
    require_calibration: bool = False


@dataclass(frozen=True)
class LoggerCare:
    """What the assignment rule needs to know of one logger."""

    logger_id: str
    calibration_due: date | None
    battery_pct: float | None


@dataclass(frozen=True)
class FleetWarning:
    """Something a coordinator should know about a logger, which does not refuse it."""

    code: str
    logger_id: str
    message: str


@dataclass(frozen=True)
class LoggerCalibrated:
    """A calibration recorded: when it was done, its certificate and the next due date."""

    logger_id: str
    calibrated_on: date
    certificate: str | None
    calibration_due: date


def calibration_state(due: date | None, on: date) -> Calibration:
    """Judge a due date on a day: valid through the due date itself, overdue from the day after."""
    # A certificate "due 2026-12-01" asks for recalibration by that day, so the logger may
    # still go out on it; the same reading as an expiry date on a reagent label.
    if due is None:
        return Calibration.UNKNOWN
    return Calibration.OVERDUE if due < on else Calibration.VALID


def battery_low(battery_pct: float | None, threshold_pct: float) -> bool:
    """Say whether a battery level is strictly below the threshold; an unknown level is not low."""
    return battery_pct is not None and battery_pct < threshold_pct


def check_assignment(
    loggers: Sequence[LoggerCare], *, on: date, policy: FleetPolicy
) -> list[FleetWarning]:
    """Refuse an overdue logger (or an uncalibrated one when required); return the warnings."""
    warnings: list[FleetWarning] = []
    for logger in loggers:
        state = calibration_state(logger.calibration_due, on)
        if state is Calibration.OVERDUE:
            raise CalibrationOverdueError(
                f"logger {logger.logger_id} was due for calibration on "
                f"{logger.calibration_due}: calibrate it or choose another",
                field="loggers",
            )
        if state is Calibration.UNKNOWN:
            if policy.require_calibration:
                raise CalibrationUnknownError(
                    f"logger {logger.logger_id} has no calibration due date "
                    "(fleet.require_calibration is on): record its calibration first",
                    field="loggers",
                )
            warnings.append(
                FleetWarning(
                    "logger-calibration-unknown",
                    logger.logger_id,
                    f"logger {logger.logger_id} has no calibration due date on record",
                )
            )
        if battery_low(logger.battery_pct, policy.battery_low_pct):
            warnings.append(
                FleetWarning(
                    "logger-battery-low",
                    logger.logger_id,
                    f"logger {logger.logger_id} battery at {logger.battery_pct:g} % "
                    f"(below {policy.battery_low_pct:g} %)",
                )
            )
    return warnings


def calibrate(
    logger_id: str, *, calibrated_on: date, certificate: str | None, next_due: date, today: date
) -> LoggerCalibrated:
    """Record a calibration: done no later than today, next due no earlier than it was done."""
    if calibrated_on > today:
        raise ValidationError(
            f"a calibration cannot be recorded ahead of time ({calibrated_on} is after {today})",
            field="calibrated_on",
        )
    if next_due < calibrated_on:
        raise ValidationError(
            f"the next due date {next_due} is before the calibration ({calibrated_on})",
            field="calibration_due",
        )
    if certificate is not None and not certificate.strip():
        raise ValidationError("the certificate reference is empty", field="certificate")
    return LoggerCalibrated(
        logger_id,
        calibrated_on,
        None if certificate is None else certificate.strip(),
        next_due,
    )
