"""Alarms about a shipment that are not contract excursions: raise, clear, show.

Raising is idempotent on (shipment_id, logger_id, kind, at_us), and each change is an audit
event in the caller's transaction (`alarm.raised`, `alarm.cleared`, entity `alarm`), which
is what the alert dispatchers follow. The caller owns the transaction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from coldchain.services import audit
from coldchain.services.timefmt import rfc3339
from coldchain.store.models import Alarm, Shipment, utcnow

KINDS = ("BUDGET_SPENT", "RATE_OF_CHANGE", "PREDICTED")
SEVERITIES = ("info", "warning", "critical")


def raise_alarm(
    session: Session,
    *,
    shipment_id: int,
    kind: str,
    severity: str,
    at_us: int,
    detail: Mapping[str, Any],
    logger_id: str = "",
    actor: str = audit.SYSTEM_INGEST,
) -> Alarm | None:
    """Record an alarm and audit it; return None if this very alarm is already recorded."""
    if kind not in KINDS:
        raise ValueError(f"unknown alarm kind {kind!r}")
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r}")
    existing = session.scalar(
        select(Alarm).where(
            Alarm.shipment_id == shipment_id,
            Alarm.logger_id == logger_id,
            Alarm.kind == kind,
            Alarm.at_us == at_us,
        )
    )
    if existing is not None:
        return None
    row = Alarm(
        shipment_id=shipment_id,
        logger_id=logger_id,
        kind=kind,
        severity=severity,
        at_us=at_us,
        status="OPEN",
        detail_json=json.dumps(dict(detail), sort_keys=True),
    )
    session.add(row)
    session.flush()
    _touch(session, shipment_id)
    audit.record(
        session,
        actor=actor,
        action="alarm.raised",
        entity="alarm",
        entity_id=row.id,
        new=alarm_view(row),
    )
    return row


def clear_alarm(
    session: Session, row: Alarm, *, cleared_us: int, actor: str = audit.SYSTEM_INGEST
) -> None:
    """Mark an open alarm cleared (its condition no longer holds) and audit it."""
    if row.status == "CLEARED":
        return
    before = alarm_view(row)
    row.status = "CLEARED"
    row.cleared_us = cleared_us
    row.updated_at = utcnow()
    _touch(session, row.shipment_id)
    old, new = audit.changes(before, alarm_view(row))
    audit.record(
        session, actor=actor, action="alarm.cleared", entity="alarm", entity_id=row.id,
        old=old, new={**new, "shipment_id": row.shipment_id, "kind": row.kind},
    )  # fmt: skip


def shipment_alarms(session: Session, shipment_id: int) -> list[dict[str, Any]]:
    """Return a shipment's alarms, oldest first."""
    rows = session.scalars(
        select(Alarm).where(Alarm.shipment_id == shipment_id).order_by(Alarm.at_us, Alarm.id)
    )
    return [alarm_view(row) for row in rows]


def alarm_view(row: Alarm) -> dict[str, Any]:
    """Return an alarm object."""
    return {
        "id": row.id,
        "shipment_id": row.shipment_id,
        "logger_id": row.logger_id or None,
        "kind": row.kind,
        "severity": row.severity,
        "at": rfc3339(row.at_us),
        "status": row.status,
        "cleared_at": rfc3339(row.cleared_us),
        "detail": json.loads(row.detail_json),
    }


def _touch(session: Session, shipment_id: int) -> None:
    # A signer who saw the shipment before the alarm is refused as stale, as for excursions.
    shipment = session.get(Shipment, shipment_id)
    if shipment is not None:
        shipment.version = Shipment.version + 1
