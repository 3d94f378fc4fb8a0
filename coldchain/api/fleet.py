"""Loggers and the dead-letter store."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from coldchain.api import responses as out
from coldchain.api.auth import current_principal, requires
from coldchain.api.common import collection, ctx, page_limit, request_id
from coldchain.api.openapi import endpoint, parse_body, parse_query
from coldchain.api.schemas import DeadLetterQuery, LoggerCreate, Page
from coldchain.domain.roles import Role
from coldchain.services import accounts
from coldchain.services.deadletters import list_dead_letters
from coldchain.services.views import logger_view

bp = Blueprint("fleet", __name__, url_prefix="/api/v1")

LOGGER_COLUMNS = ["id", "model", "firmware", "online", "status_at", "created_at"]
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


@bp.get("/loggers")
@requires(*STAFF)
@endpoint("List the registered loggers", query=Page, csv=True, returns=list[out.Logger])
def list_loggers() -> Response:
    q: Page = parse_query(Page)
    rows = [logger_view(r) for r in accounts.list_loggers(sessions=ctx().sessions)]
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
        actor=current_principal().username,
        request_id=request_id(),
    )
    return jsonify(logger_view(row)), 201


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
