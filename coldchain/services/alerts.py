"""Alerts out: subscriptions, following the audit trail into deliveries, and the delivery log.

The audit trail is the event stream: numbered in commit order with no gaps (each append
moves the one-row head under its lock), so a stored cursor finds every event once. Reading
a batch of events, creating their deliveries and moving the cursor is one transaction: an
event's deliveries exist exactly once, whatever restarts. Sending is at least once: an
attempt whose outcome was not recorded (a crash) is made again, with the same delivery id.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from coldchain.domain import alerts as rules
from coldchain.domain.errors import NotFoundError, ValidationError
from coldchain.services import audit
from coldchain.services.accounts import SYSTEM_CLI
from coldchain.services.timefmt import rfc3339
from coldchain.store.models import (
    AlertAttempt,
    AlertCursor,
    AlertDelivery,
    AlertSubscription,
    AuditEvent,
    Shipment,
    Site,
    utcnow,
)

PENDING = "pending"
CANCELLED = "cancelled"


def subscription_view(row: AlertSubscription) -> dict[str, Any]:
    """Return a subscription as lists show it (never its secret)."""
    return {
        "id": row.id,
        "channel": row.channel,
        "target": rules.shown_target(row.channel, row.target),
        "site": row.site_id,
        "min_severity": row.min_severity,
        "types": _types(row.alert_types),
        "has_secret": row.secret is not None,
        "from_seq": row.from_seq,
        "created_at": rfc3339(row.created_at),
        "created_by": row.created_by,
        "removed_at": rfc3339(row.removed_at),
    }


def _types(text: str) -> list[str]:
    return sorted(t for t in text.split(",") if t)


def add_subscription(
    *,
    sessions: sessionmaker[Session],
    channel: str,
    target: str,
    site_id: str | None,
    min_severity: str,
    alert_types: Collection[str] = (),
    secret: str | None = None,
    actor: str = SYSTEM_CLI,
    request_id: str | None = None,
) -> tuple[dict[str, Any], str | None]:
    """Subscribe a webhook or an e-mail address; return it and the webhook's secret."""
    target = rules.check_target(channel, target.strip())
    rules.severity_rank(min_severity)
    types = rules.check_alert_types(alert_types)
    if channel == rules.WEBHOOK:
        secret = secret or secrets.token_urlsafe(32)
        if not 16 <= len(secret) <= 200:
            raise ValidationError("a webhook secret must have 16 to 200 characters", field="secret")
    elif secret is not None:
        raise ValidationError("only a webhook has a secret", field="secret")
    with sessions.begin() as session:
        if site_id is not None and session.get(Site, site_id) is None:
            raise NotFoundError(f"site {site_id} does not exist", field="site")
        row = AlertSubscription(
            channel=channel,
            target=target,
            secret=secret,
            site_id=site_id,
            min_severity=min_severity,
            alert_types=",".join(sorted(types)),
            from_seq=0,
            created_by=actor,
        )
        session.add(row)
        session.flush()
        view = subscription_view(row)
        event = audit.record(
            session,
            actor=actor,
            action="alert_subscription.created",
            entity="alert_subscription",
            entity_id=row.id,
            new={k: view[k] for k in ("channel", "target", "site", "min_severity", "types")},
            request_id=request_id,
        )
        # Alerts start after the subscription's own event: no backlog of older ones.
        row.from_seq = event.seq
        return subscription_view(row), secret


def remove_subscription(
    *,
    sessions: sessionmaker[Session],
    subscription_id: int,
    reason: str | None = None,
    actor: str = SYSTEM_CLI,
    request_id: str | None = None,
) -> dict[str, Any]:
    """End a subscription; its deliveries not yet made are cancelled, its log is kept."""
    with sessions.begin() as session:
        row = session.get(AlertSubscription, subscription_id)
        if row is None or row.removed_at is not None:
            raise NotFoundError(f"no alert subscription {subscription_id}", field="id")
        now = utcnow()
        row.removed_at = now
        cancelled = session.execute(
            update(AlertDelivery)
            .where(AlertDelivery.subscription_id == row.id, AlertDelivery.status == PENDING)
            .values(status=CANCELLED, next_attempt_at=None, updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        audit.record(
            session,
            actor=actor,
            action="alert_subscription.removed",
            entity="alert_subscription",
            entity_id=row.id,
            old={"removed_at": None},
            new={"removed_at": rfc3339(now), "cancelled_deliveries": cancelled},
            reason=reason,
            request_id=request_id,
        )
        return subscription_view(row)


def list_subscriptions(
    *, sessions: sessionmaker[Session], include_removed: bool = False
) -> list[dict[str, Any]]:
    """Return the subscriptions, oldest first."""
    query = select(AlertSubscription).order_by(AlertSubscription.id)
    if not include_removed:
        query = query.where(AlertSubscription.removed_at.is_(None))
    with sessions() as session:
        return [subscription_view(row) for row in session.scalars(query)]


def _facts(event: AuditEvent) -> rules.AuditFacts:
    return rules.AuditFacts(
        seq=event.seq,
        hash=event.hash,
        at=rfc3339(event.at) or "",
        actor=event.actor,
        action=event.action,
        entity=event.entity,
        entity_id=event.entity_id,
        new_values=None if event.new_values is None else json.loads(event.new_values),
        reason=event.reason,
    )


def _subscription(row: AlertSubscription) -> rules.Subscription:
    return rules.Subscription(
        id=row.id,
        channel=row.channel,
        target=row.target,
        site_id=row.site_id,
        min_severity=row.min_severity,
        alert_types=frozenset(_types(row.alert_types)),
        from_seq=row.from_seq,
    )


@dataclass(frozen=True)
class Scanned:
    """What one look at the audit trail found."""

    events: int
    alerts: int
    deliveries: int
    cursor: int


def scan(*, sessions: sessionmaker[Session], batch_size: int) -> Scanned:
    """Read the audit events after the cursor, create their deliveries, move the cursor."""
    with sessions.begin() as session:
        # Writing the cursor first takes its lock (SQLite: the write lock), so two
        # dispatchers take turns rather than both reading the same events.
        session.execute(
            update(AlertCursor)
            .where(AlertCursor.id == 1)
            .values(updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        cursor = session.get(AlertCursor, 1)
        if cursor is None:
            cursor = AlertCursor(id=1, seq=0)
            session.add(cursor)
        events = list(
            session.scalars(
                select(AuditEvent)
                .where(AuditEvent.seq > cursor.seq)
                .order_by(AuditEvent.seq)
                .limit(batch_size)
            )
        )
        if not events:
            return Scanned(0, 0, 0, cursor.seq)
        subscriptions = [
            _subscription(row)
            for row in session.scalars(
                select(AlertSubscription).where(AlertSubscription.removed_at.is_(None))
            )
        ]
        alerts = deliveries = 0
        now = utcnow()
        for event in events:
            alert = _alert(session, _facts(event))
            if alert is None:
                continue
            alerts += 1
            for subscription in subscriptions:
                if not rules.matches(subscription, alert):
                    continue
                body = rules.payload(alert, subscription.id)
                session.add(
                    AlertDelivery(
                        subscription_id=subscription.id,
                        audit_seq=event.seq,
                        alert_type=alert.alert_type,
                        severity=alert.severity,
                        shipment_id=alert.shipment_id,
                        body=json.dumps(body, sort_keys=True, separators=(",", ":")),
                        status=PENDING,
                        attempts=0,
                        next_attempt_at=now,
                    )
                )
                deliveries += 1
        cursor.seq = events[-1].seq
        return Scanned(len(events), alerts, deliveries, cursor.seq)


def _alert(session: Session, facts: rules.AuditFacts) -> rules.Alert | None:
    source = rules.classify(facts)
    if source is None:
        return None
    shipment = session.get(Shipment, source.shipment_id)
    if shipment is None:
        return None
    sites = tuple(dict.fromkeys((shipment.origin_site_id, shipment.destination_site_id)))
    return rules.Alert(
        source=facts,
        alert_type=source.alert_type,
        severity=source.severity,
        shipment_id=shipment.id,
        coi=shipment.coi,
        sites=sites,
        details=source.details,
    )


@dataclass(frozen=True)
class Due:
    """A delivery claimed for one attempt, with what sending it needs."""

    delivery_id: int
    subscription_id: int
    channel: str
    target: str
    secret: str | None
    audit_seq: int
    alert_type: str
    severity: str
    attempt: int
    body: str

    @property
    def key(self) -> str:
        """The idempotency key the receiver sees (X-Coldchain-Delivery)."""
        return rules.delivery_id(self.audit_seq, self.subscription_id)


def claim_due(*, sessions: sessionmaker[Session], now: datetime, lease_s: float) -> Due | None:
    """Claim the delivery due first for one attempt, hiding it from others for lease_s.

    The claim is a conditional update: of two dispatchers, one wins and the other moves on.
    If this one dies before recording the attempt, the delivery is due again after the lease.
    """
    for _ in range(5):
        with sessions.begin() as session:
            row = session.execute(
                select(AlertDelivery, AlertSubscription)
                .join(AlertSubscription, AlertSubscription.id == AlertDelivery.subscription_id)
                .where(AlertDelivery.status == PENDING, AlertDelivery.next_attempt_at <= now)
                .order_by(AlertDelivery.next_attempt_at, AlertDelivery.id)
                .limit(1)
            ).first()
            if row is None:
                return None
            delivery, subscription = row
            claimed = session.execute(
                update(AlertDelivery)
                .where(
                    AlertDelivery.id == delivery.id,
                    AlertDelivery.status == PENDING,
                    AlertDelivery.next_attempt_at <= now,
                )
                .values(next_attempt_at=now + timedelta(seconds=lease_s))
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
            if claimed == 1:
                return Due(
                    delivery_id=delivery.id,
                    subscription_id=subscription.id,
                    channel=subscription.channel,
                    target=subscription.target,
                    secret=subscription.secret,
                    audit_seq=delivery.audit_seq,
                    alert_type=delivery.alert_type,
                    severity=delivery.severity,
                    attempt=delivery.attempts + 1,
                    body=delivery.body,
                )
    return None


@dataclass(frozen=True)
class Retries:
    """The retry policy ([alerts] settings)."""

    max_attempts: int
    backoff_base_s: float
    backoff_max_s: float


def record_attempt(
    *,
    sessions: sessionmaker[Session],
    due: Due,
    outcome: str,
    detail: str,
    duration_ms: int,
    at: datetime,
    retries: Retries,
) -> str:
    """Log an attempt and move its delivery on (delivered, pending again, failed); return it."""
    with sessions.begin() as session:
        delivery = session.get(AlertDelivery, due.delivery_id)
        if delivery is None:
            raise NotFoundError(f"no alert delivery {due.delivery_id}")
        attempt = delivery.attempts + 1
        state = rules.next_step(outcome, attempt, max_attempts=retries.max_attempts)
        if delivery.status == CANCELLED:
            state = CANCELLED  # removed while this attempt was on the wire
        next_at = None
        if state == PENDING:
            wait_s = rules.backoff_s(
                attempt, base_s=retries.backoff_base_s, max_s=retries.backoff_max_s
            )
            next_at = at + timedelta(seconds=wait_s)
        delivery.attempts = attempt
        delivery.status = state
        delivery.next_attempt_at = next_at
        delivery.updated_at = at
        session.add(
            AlertAttempt(
                delivery_id=delivery.id,
                attempt=attempt,
                at=at,
                outcome=outcome,
                detail=detail[:2000],
                duration_ms=duration_ms,
                next_attempt_at=next_at,
            )
        )
        return state


ATTEMPT_COLUMNS = [
    "id",
    "delivery_id",
    "subscription_id",
    "channel",
    "target",
    "audit_seq",
    "alert_type",
    "severity",
    "shipment_id",
    "attempt",
    "at",
    "outcome",
    "detail",
    "duration_ms",
    "next_attempt_at",
    "delivery_status",
]


@dataclass(frozen=True)
class AttemptFilter:
    """Filters of the delivery log."""

    subscription_id: int | None = None
    audit_seq: int | None = None
    outcome: str | None = None
    since: datetime | None = None


def list_attempts(
    *,
    sessions: sessionmaker[Session],
    filters: AttemptFilter,
    limit: int | None,
    offset: int = 0,
) -> Iterator[dict[str, Any]]:
    """Yield the delivery log's attempts, oldest first."""
    query = (
        select(AlertAttempt, AlertDelivery, AlertSubscription)
        .join(AlertDelivery, AlertDelivery.id == AlertAttempt.delivery_id)
        .join(AlertSubscription, AlertSubscription.id == AlertDelivery.subscription_id)
        .order_by(AlertAttempt.id)
        .offset(offset)
    )
    if filters.subscription_id is not None:
        query = query.where(AlertDelivery.subscription_id == filters.subscription_id)
    if filters.audit_seq is not None:
        query = query.where(AlertDelivery.audit_seq == filters.audit_seq)
    if filters.outcome is not None:
        query = query.where(AlertAttempt.outcome == filters.outcome)
    if filters.since is not None:
        query = query.where(AlertAttempt.at >= filters.since)
    if limit is not None:
        query = query.limit(limit)
    with sessions() as session:
        rows = [_attempt_view(*row) for row in session.execute(query)]
    yield from rows


def _attempt_view(
    attempt: AlertAttempt, delivery: AlertDelivery, subscription: AlertSubscription
) -> dict[str, Any]:
    return {
        "id": attempt.id,
        "delivery_id": delivery.id,
        "subscription_id": subscription.id,
        "channel": subscription.channel,
        "target": rules.shown_target(subscription.channel, subscription.target),
        "audit_seq": delivery.audit_seq,
        "alert_type": delivery.alert_type,
        "severity": delivery.severity,
        "shipment_id": delivery.shipment_id,
        "attempt": attempt.attempt,
        "at": rfc3339(attempt.at),
        "outcome": attempt.outcome,
        "detail": attempt.detail,
        "duration_ms": attempt.duration_ms,
        "next_attempt_at": rfc3339(attempt.next_attempt_at),
        "delivery_status": delivery.status,
    }
