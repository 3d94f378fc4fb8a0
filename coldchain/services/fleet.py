"""Use cases of logger fleet care: calibration, battery, presence, model and firmware."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session, sessionmaker

from coldchain.domain import fleet
from coldchain.domain.errors import NotFoundError, ValidationError
from coldchain.services import audit
from coldchain.services.timefmt import rfc3339
from coldchain.store.models import Logger, Reading, utcnow

SYSTEM_CLI = "system:cli"
EDITABLE = ("model", "firmware", "calibration_due")


def policy_from_settings(values: Mapping[str, Any]) -> fleet.FleetPolicy:
    """Return the fleet policy of the [fleet] settings (defaults where a key is missing)."""
    default = fleet.FleetPolicy()
    return fleet.FleetPolicy(
        battery_low_pct=float(values.get("fleet_battery_low_pct", default.battery_low_pct)),
        require_calibration=bool(
            values.get("fleet_require_calibration", default.require_calibration)
        ),
    )


def today_utc() -> date:
    """Return today's calendar day in UTC, the day calibration is judged on."""
    return utcnow().date()


def _day(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _with_battery(session: Session, logger_ids: Sequence[str] | None) -> list[Any]:
    """Rows of (Logger, battery %, battery time in µs), the battery from the latest `batt`."""
    # One index seek per logger on the readings' primary key (logger_id, name, time_us),
    # whatever the number of readings: never a scan of every battery reading.
    latest_us = (
        select(Reading.time_us)
        .where(Reading.logger_id == Logger.id, Reading.name == "batt")
        .order_by(Reading.time_us.desc())
        .limit(1)
        .correlate(Logger)
        .scalar_subquery()
    )
    query = (
        select(Logger, Reading.value, Reading.time_us)
        .outerjoin(
            Reading,
            and_(
                Reading.logger_id == Logger.id,
                Reading.name == "batt",
                Reading.time_us == latest_us,
            ),
        )
        .order_by(Logger.id)
    )
    if logger_ids is not None:
        query = query.where(Logger.id.in_(logger_ids))
    return list(session.execute(query).all())


def logger_view(
    row: Logger,
    battery_pct: float | None,
    battery_us: int | None,
    *,
    policy: fleet.FleetPolicy,
    today: date,
) -> dict[str, Any]:
    """Return a logger object: identity, presence, battery and calibration."""
    return {
        "id": row.id,
        "model": row.model,
        "firmware": row.firmware,
        "online": row.online,
        "status_at": rfc3339(row.status_at),
        "created_at": rfc3339(row.created_at),
        "battery_pct": battery_pct,
        "battery_at": rfc3339(battery_us),
        "battery_low": fleet.battery_low(battery_pct, policy.battery_low_pct),
        "calibration_due": _day(row.calibration_due),
        "calibrated_on": _day(row.calibrated_on),
        "calibration_certificate": row.calibration_certificate,
        "calibration": str(fleet.calibration_state(row.calibration_due, today)),
    }


def list_fleet(
    *,
    sessions: sessionmaker[Session],
    policy: fleet.FleetPolicy,
    logger_ids: Sequence[str] | None = None,
    today: date | None = None,
) -> list[dict[str, Any]]:
    """Return every logger (or those named), by id, with its battery and calibration."""
    today = today or today_utc()
    with sessions() as session:
        return [
            logger_view(row, pct, at_us, policy=policy, today=today)
            for row, pct, at_us in _with_battery(session, logger_ids)
        ]


def get_logger(
    *, sessions: sessionmaker[Session], logger_id: str, policy: fleet.FleetPolicy
) -> dict[str, Any]:
    """Return one logger object, or 404."""
    rows = list_fleet(sessions=sessions, policy=policy, logger_ids=[logger_id])
    if not rows:
        raise NotFoundError(f"logger {logger_id} not found")
    return rows[0]


def _logger(session: Session, logger_id: str) -> Logger:
    row = session.get(Logger, logger_id)
    if row is None:
        raise NotFoundError(f"logger {logger_id} not found")
    return row


def _fields(row: Logger) -> dict[str, Any]:
    return {
        "model": row.model,
        "firmware": row.firmware,
        "calibration_due": _day(row.calibration_due),
    }


def update_logger(
    *,
    sessions: sessionmaker[Session],
    logger_id: str,
    changes: Mapping[str, Any],
    policy: fleet.FleetPolicy,
    actor: str = SYSTEM_CLI,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Change a logger's model, firmware or calibration due date; what changed is audited."""
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise ValidationError(f"{unknown[0]} cannot be changed", field=unknown[0])
    with sessions.begin() as session:
        row = _logger(session, logger_id)
        before = _fields(row)
        for name, value in changes.items():
            setattr(row, name, value)
        old, new = audit.changes(before, _fields(row))
        if new:
            audit.record(
                session,
                actor=actor,
                action="logger.updated",
                entity="logger",
                entity_id=logger_id,
                old=old,
                new=new,
                request_id=request_id,
            )
    return get_logger(sessions=sessions, logger_id=logger_id, policy=policy)


def record_calibration(
    *,
    sessions: sessionmaker[Session],
    logger_id: str,
    calibrated_on: date | None,
    certificate: str | None,
    next_due: date,
    policy: fleet.FleetPolicy,
    actor: str = SYSTEM_CLI,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Record a logger's calibration (done today unless said) and its next due date, audited."""
    today = today_utc()
    event = fleet.calibrate(
        logger_id,
        calibrated_on=calibrated_on or today,
        certificate=certificate,
        next_due=next_due,
        today=today,
    )
    with sessions.begin() as session:
        row = _logger(session, logger_id)
        old = {
            "calibrated_on": _day(row.calibrated_on),
            "certificate": row.calibration_certificate,
            "calibration_due": _day(row.calibration_due),
        }
        row.calibrated_on = event.calibrated_on
        row.calibration_certificate = event.certificate
        row.calibration_due = event.calibration_due
        audit.record(
            session,
            actor=actor,
            action="logger.calibrated",
            entity="logger",
            entity_id=logger_id,
            old=old,
            new={
                "calibrated_on": _day(event.calibrated_on),
                "certificate": event.certificate,
                "calibration_due": _day(event.calibration_due),
            },
            request_id=request_id,
        )
    return get_logger(sessions=sessions, logger_id=logger_id, policy=policy)


def check_assignment(
    session: Session, logger_ids: Sequence[str], *, policy: fleet.FleetPolicy, on: date
) -> list[dict[str, str]]:
    """Apply the assignment rule to registered loggers in the caller's transaction."""
    care = [
        fleet.LoggerCare(row.id, row.calibration_due, pct)
        for row, pct, _at in _with_battery(session, logger_ids)
    ]
    order = {logger_id: i for i, logger_id in enumerate(logger_ids)}
    care.sort(key=lambda c: order.get(c.logger_id, len(order)))
    return [
        {"code": w.code, "logger_id": w.logger_id, "message": w.message}
        for w in fleet.check_assignment(care, on=on, policy=policy)
    ]
