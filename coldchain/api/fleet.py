"""Loggers and the dead-letter store."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from coldchain.api import responses as out
from coldchain.api.auth import current_principal, requires
from coldchain.api.common import collection, ctx, page_limit, request_id
from coldchain.api.openapi import endpoint, parse_body, parse_query
from coldchain.api.schemas import (
    CalibrationCreate,
    DeadLetterQuery,
    LoggerCreate,
    LoggerUpdate,
    Page,
)
from coldchain.domain.fleet import FleetPolicy
from coldchain.domain.roles import Role
from coldchain.services import accounts, fleet
from coldchain.services.deadletters import list_dead_letters

bp = Blueprint("fleet", __name__, url_prefix="/api/v1")

LOGGER_COLUMNS = [
    "id",
    "model",
    "firmware",
    "online",
    "status_at",
    "created_at",
    "battery_pct",
    "battery_at",
    "battery_low",
    "calibration_due",
    "calibrated_on",
    "calibration_certificate",
    "calibration",
]
DEAD_LETTER_COLUMNS = [
    "id",
    "message_id",
    "reason",
    "detail",
    "record_index",
    "topic",
    "logger_id",
    "received_at",
    "payload",
    "payload_encoding",
]
STAFF = (Role.ADMIN, Role.COORDINATOR, Role.QA, Role.AUDITOR)


def _policy() -> FleetPolicy:
    return fleet.policy_from_settings(ctx().settings.values)


@bp.get("/loggers")
@requires(*STAFF)
@endpoint(
    "List the registered loggers: presence, latest battery, calibration",
    query=Page,
    csv=True,
    returns=list[out.Logger],
)
def list_loggers() -> Response:
    q: Page = parse_query(Page)
    rows = fleet.list_fleet(sessions=ctx().sessions, policy=_policy())
    limit = page_limit(q.limit, q.format)
    rows = rows[q.offset :] if limit is None else rows[q.offset : q.offset + limit]
    return collection(rows, LOGGER_COLUMNS, q.format, "loggers")


@bp.post("/loggers")
@requires(Role.ADMIN, Role.COORDINATOR)
@endpoint(
    "Register a logger",
    body=LoggerCreate,
    status=201,
    response="the logger",
    returns=out.Logger,
)
def add_logger() -> tuple[Response, int]:
    body: LoggerCreate = parse_body(LoggerCreate)
    row = accounts.add_logger(
        sessions=ctx().sessions,
        logger_id=body.id,
        model=body.model,
        firmware=body.firmware,
        calibration_due=body.calibration_due,
        actor=current_principal().username,
        request_id=request_id(),
    )
    view = fleet.get_logger(sessions=ctx().sessions, logger_id=row.id, policy=_policy())
    return jsonify(view), 201


@bp.get("/loggers/<logger_id>")
@requires(*STAFF)
@endpoint("A logger: presence, latest battery, calibration", returns=out.Logger)
def get_logger(logger_id: str) -> Response:
    return jsonify(fleet.get_logger(sessions=ctx().sessions, logger_id=logger_id, policy=_policy()))


@bp.patch("/loggers/<logger_id>")
@requires(Role.ADMIN, Role.COORDINATOR)
@endpoint(
    "Change a logger's model, firmware or calibration due date (audited)",
    body=LoggerUpdate,
    response="the logger",
    returns=out.Logger,
)
def update_logger(logger_id: str) -> Response:
    body: LoggerUpdate = parse_body(LoggerUpdate)
    view = fleet.update_logger(
        sessions=ctx().sessions,
        logger_id=logger_id,
        changes={name: getattr(body, name) for name in body.model_fields_set},
        policy=_policy(),
        actor=current_principal().username,
        request_id=request_id(),
    )
    return jsonify(view)


@bp.post("/loggers/<logger_id>/calibration")
@requires(Role.ADMIN, Role.COORDINATOR)
@endpoint(
    "Record a calibration: the day done, the certificate, the next due date (audited)",
    body=CalibrationCreate,
    response="the logger",
    returns=out.Logger,
)
def calibrate_logger(logger_id: str) -> Response:
    body: CalibrationCreate = parse_body(CalibrationCreate)
    view = fleet.record_calibration(
        sessions=ctx().sessions,
        logger_id=logger_id,
        calibrated_on=body.calibrated_on,
        certificate=body.certificate,
        next_due=body.calibration_due,
        policy=_policy(),
        actor=current_principal().username,
        request_id=request_id(),
    )
    return jsonify(view)


@bp.get("/deadletters")
@requires(*STAFF)
@endpoint(
    "Refused MQTT payloads with their reason codes",
    query=DeadLetterQuery,
    csv=True,
    returns=list[out.DeadLetter],
)
def dead_letters() -> Response:
    q: DeadLetterQuery = parse_query(DeadLetterQuery)
    rows = list_dead_letters(
        sessions=ctx().sessions,
        reason=q.reason,
        logger_id=q.logger,
        since=q.since,
        limit=page_limit(q.limit, q.format),
        offset=q.offset,
    )
    return collection(rows, DEAD_LETTER_COLUMNS, q.format, "deadletters")
