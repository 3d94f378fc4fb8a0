"""The audit trail: appending in the transaction of each change, reading, exporting, verifying."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from coldchain.domain.audit import Checkpoint, Verdict, event_hash, verify_chain
from coldchain.domain.signatures import canonical_json
from coldchain.services import streaming
from coldchain.services.timefmt import rfc3339
from coldchain.store.models import AuditEvent, AuditHead, utcnow

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


def event_view(event: AuditEvent) -> dict[str, Any]:
    """An event as the API and the export show it: every hashed field, and the hash."""
    return {**event_body(event), "hash": event.hash}


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

    The first statement moves the one-row head forward: on SQLite that takes the database's
    write lock, on PostgreSQL the row's lock, so appends are serialised until the caller
    commits and two writers can never fork the chain.
    """
    session.execute(
        update(AuditHead)
        .where(AuditHead.id == 1)
        .values(seq=AuditHead.seq + 1)
        .execution_options(synchronize_session=False)
    )
    seq, prev_hash = session.execute(
        select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)
    ).one()
    event = AuditEvent(
        seq=seq,
        # Microseconds are what both engines keep: the hashed time reads back the same.
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
    event.hash = event_hash(event_body(event))
    session.add(event)
    session.flush()
    session.execute(
        update(AuditHead)
        .where(AuditHead.id == 1)
        .values(hash=event.hash)
        .execution_options(synchronize_session=False)
    )
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


@dataclass(frozen=True)
class AuditFilter:
    """Filters of GET /api/v1/audit."""

    entity: str | None = None
    entity_id: str | None = None
    actor: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _query(filters: AuditFilter) -> Any:
    query = select(AuditEvent)
    if filters.entity:
        query = query.where(AuditEvent.entity == filters.entity)
    if filters.entity_id:
        query = query.where(AuditEvent.entity_id == filters.entity_id)
    if filters.actor:
        query = query.where(AuditEvent.actor == filters.actor)
    if filters.action:
        # "shipment" matches every shipment.* action; "shipment.accept" just that one.
        if "." in filters.action:
            query = query.where(AuditEvent.action == filters.action)
        else:
            query = query.where(AuditEvent.action.startswith(f"{filters.action}.", autoescape=True))
    if filters.since is not None:
        query = query.where(AuditEvent.at >= filters.since)
    if filters.until is not None:
        query = query.where(AuditEvent.at <= filters.until)
    return query.order_by(AuditEvent.seq)


def list_events(
    *, sessions: sessionmaker[Session], filters: AuditFilter, limit: int | None, offset: int
) -> list[dict[str, Any]]:
    """Return the events matching the filters, oldest first."""
    query = _query(filters).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    with sessions() as session:
        return [event_view(e) for e in session.scalars(query)]


def stream_events(
    sessions: sessionmaker[Session],
    filters: AuditFilter | None = None,
    chunk: int | None = None,
    *,
    offset: int = 0,
    limit: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield events in sequence order, a chunk at a time (constant memory for any size).

    Each chunk is a short read of its own, resumed after the last sequence number: the trail
    is append-only and numbered in commit order, so the chunks join without gap or overlap,
    and no export holds a transaction open while a slow client downloads it.
    """
    size = chunk or streaming.BATCH_ROWS
    base = _query(filters or AuditFilter())
    query = base.offset(offset) if offset else base
    left = limit
    while left is None or left > 0:
        wanted = size if left is None else min(size, left)
        with sessions() as session:
            rows = [event_view(e) for e in session.scalars(query.limit(wanted))]
        yield from rows
        if len(rows) < wanted:
            return
        if left is not None:
            left -= len(rows)
        query = base.where(AuditEvent.seq > rows[-1]["seq"])


def verify_database(
    sessions: sessionmaker[Session], checkpoint: Checkpoint | None = None
) -> Verdict:
    """Re-compute the whole chain from the database, against a checkpoint if one is given."""
    return verify_chain(stream_events(sessions), checkpoint)


# Settings kept out of the trail: secrets, and URLs that may carry credentials.
UNAUDITED_SETTINGS = frozenset({"secret_key", "database_url", "mqtt_url", "alerts_smtp_password"})


def settings_snapshot(values: Mapping[str, Any], profiles: Mapping[str, Any]) -> dict[str, Any]:
    """The configuration as audited: every setting but the secret ones, and every profile."""
    snapshot = {k: v for k, v in values.items() if k not in UNAUDITED_SETTINGS}
    for name, profile in profiles.items():
        snapshot[f"profile.{name}"] = {
            "min_c": profile.min_c,
            "max_c": profile.max_c,
            "grace_s": profile.grace_s,
            "signal_loss_s": profile.signal_loss_s,
        }
    # Round-trip through the hashed form, so that a comparison sees what the trail keeps.
    return dict(json.loads(canonical_json(snapshot)))


def record_configuration(
    sessions: sessionmaker[Session], snapshot: Mapping[str, Any], actor: str = "system:config"
) -> bool:
    """Record the configuration a process starts with, if it differs from the last recorded.

    The recorded configuration is the fold of every earlier `config.changed` event, so each
    event holds only what changed: the old and new value of each setting or profile.
    """
    with sessions.begin() as session:
        current: dict[str, Any] = {}
        for row in session.scalars(
            select(AuditEvent).where(AuditEvent.action == "config.changed").order_by(AuditEvent.seq)
        ):
            current.update(json.loads(row.new_values or "{}"))
            current = {k: v for k, v in current.items() if v is not None}
        keys = sorted(set(current) | set(snapshot))
        changed = [k for k in keys if current.get(k) != snapshot.get(k)]
        if not changed:
            return False
        record(
            session,
            actor=actor,
            action="config.changed",
            entity="config",
            entity_id="settings",
            old={k: current.get(k) for k in changed} if current else None,
            new={k: snapshot.get(k) for k in changed},
        )
        return True
