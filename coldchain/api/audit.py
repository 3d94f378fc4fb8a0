"""The audit trail for people and for auditors' tools: events, export, checkpoint, verify."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify, stream_with_context

from coldchain.api import responses as out
from coldchain.api.auth import current_principal, requires
from coldchain.api.common import collection, csv_download, ctx, page_limit
from coldchain.api.errors import ApiError
from coldchain.api.openapi import endpoint, parse_query
from coldchain.api.schemas import AuditQuery
from coldchain.domain.audit import HASHED_FIELDS
from coldchain.domain.errors import NotFoundError
from coldchain.domain.roles import Role
from coldchain.domain.signatures import canonical_json
from coldchain.services import audit, checkpoints, history

bp = Blueprint("audit", __name__, url_prefix="/api/v1")

AUDITORS = (Role.ADMIN, Role.QA, Role.AUDITOR)
AUDIT_COLUMNS = [*HASHED_FIELDS, "hash"]


@bp.get("/audit")
@requires(*AUDITORS)
@endpoint(
    "The audit trail: filters entity, entity_id, actor, action (or its prefix), since, until;"
    " ?format=jsonl or csv exports every matching event with what verification needs",
    query=AuditQuery,
    csv=True,
    returns=list[out.AuditEvent],
)
def list_audit() -> Response:
    q: AuditQuery = parse_query(AuditQuery)
    filters = audit.AuditFilter(
        entity=q.entity,
        entity_id=q.entity_id,
        actor=q.actor,
        action=q.action,
        since=q.since,
        until=q.until,
    )
    sessions = ctx().sessions
    if q.format == "jsonl":
        # An export: everything unless a limit is given, and a given one is capped as a page.
        exported = page_limit(q.limit, "csv")
        return Response(
            stream_with_context(
                _jsonl(audit.stream_events(sessions, filters, offset=q.offset, limit=exported))
            ),
            mimetype="application/x-ndjson",
            headers={"Content-Disposition": 'attachment; filename="audit.jsonl"'},
        )
    limit = page_limit(q.limit, q.format)
    if q.format == "csv":
        events = audit.stream_events(sessions, filters, offset=q.offset, limit=limit)
        return csv_download(map(_flat, events), AUDIT_COLUMNS, "audit")
    rows = audit.list_events(sessions=sessions, filters=filters, limit=limit, offset=q.offset)
    return collection(rows, AUDIT_COLUMNS, q.format, "audit")


def _jsonl(events: Iterator[dict[str, object]]) -> Iterator[str]:
    for event in events:
        yield json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n"


def _flat(event: dict[str, Any]) -> dict[str, Any]:
    # A CSV cell holds the changed values as the canonical JSON that their hash covers.
    for name in ("old_values", "new_values"):
        event[name] = None if event[name] is None else canonical_json(event[name])
    return event


@bp.get("/audit/checkpoint")
@requires(*AUDITORS)
@endpoint("The newest signed checkpoint of the chain's head (Ed25519)", returns=out.Checkpoint)
def latest_checkpoint() -> Response:
    return jsonify(checkpoints.latest(sessions=ctx().sessions).as_dict())


@bp.get("/audit/verify")
@requires(*AUDITORS)
@endpoint(
    "Re-compute the chain and check it against the newest checkpoint",
    returns=out.AuditVerification,
)
def verify() -> Response:
    app = ctx()
    configured = str(app.settings["audit_public_key_file"] or "")
    try:
        signed = checkpoints.latest(sessions=app.sessions)
    except NotFoundError:
        signed = None
    problem = None
    if signed is not None:
        try:
            pinned = checkpoints.load_public_key(Path(configured)) if configured else None
            checkpoints.check_signature(signed, pinned)
        except (checkpoints.CheckpointError, OSError) as exc:
            problem = str(exc)
    if problem is not None:
        raise ApiError(409, "checkpoint-invalid", problem)
    verdict = audit.verify_database(app.sessions, None if signed is None else signed.checkpoint)
    body = verdict.as_dict()
    body["checkpoint"] = None if signed is None else signed.as_dict()
    return jsonify(body)


@bp.get("/shipments/<int:shipment_id>/history")
@requires()
@endpoint(
    "A shipment's timeline: creation, excursions at their reading times, handoffs, receipts,"
    " dispositions, with signatures",
    returns=list[out.HistoryStep],
)
def shipment_history(shipment_id: int) -> Response:
    return jsonify(
        history.shipment_history(
            sessions=ctx().sessions, shipment_id=shipment_id, principal=current_principal()
        )
    )
