"""Appending to the hash-chained audit trail, in the transaction of the change it records."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from coldchain.domain.signatures import canonical_json, record_hash
from coldchain.services.timefmt import rfc3339
from coldchain.store.models import AuditEvent, utcnow

GENESIS_HASH = "0" * 64
SYSTEM_INGEST = "system:ingest"


def event_body(event: AuditEvent) -> dict[str, Any]:
    """Return the fields of an event that its hash covers (all but the hash itself)."""
    return {
        "seq": event.seq,
        "at": rfc3339(event.at),
        "actor": event.actor,
        "action": event.action,
        "entity": event.entity,
        "entity_id": event.entity_id,
        "old_values": None if event.old_values is None else json.loads(event.old_values),
        "new_values": None if event.new_values is None else json.loads(event.new_values),
        "reason": event.reason,
        "request_id": event.request_id,
        "prev_hash": event.prev_hash,
    }


def _encode(values: Mapping[str, Any] | None) -> str | None:
    return None if values is None else canonical_json(values)


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    entity: str,
    entity_id: str | int,
    old: Mapping[str, Any] | None = None,
    new: Mapping[str, Any] | None = None,
    reason: str | None = None,
    request_id: str | None = None,
    at: datetime | None = None,
) -> AuditEvent:
    """Append one event after the current head, in the caller's transaction.

    The sequence number is the primary key, so two transactions that read the same head
    cannot both append after it: the second fails and is retried by its caller, and the chain
    never forks.
    """
    head = session.execute(
        select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    seq, prev_hash = (1, GENESIS_HASH) if head is None else (head[0] + 1, head[1])
    event = AuditEvent(
        seq=seq,
        at=at or utcnow(),
        actor=actor,
        action=action,
        entity=entity,
        entity_id=str(entity_id),
        old_values=_encode(old),
        new_values=_encode(new),
        reason=reason,
        request_id=request_id,
        prev_hash=prev_hash,
        hash="",
    )
    event.hash = record_hash(event_body(event))
    session.add(event)
    session.flush()
    return event


def record_alone(sessions: sessionmaker[Session], **fields: Any) -> None:
    """Record an event in a transaction of its own (a refusal whose change was rolled back)."""
    with sessions.begin() as session:
        record(session, **fields)


def changes(
    before: Mapping[str, Any], after: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return (old, new) holding only the fields that differ."""
    keys = [k for k in after if before.get(k) != after[k]]
    return {k: before.get(k) for k in keys}, {k: after[k] for k in keys}
