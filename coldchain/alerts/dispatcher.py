"""The alert dispatcher: follow the audit trail, send what is due, log every attempt."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from coldchain.alerts.senders import Sent, SmtpSettings, post_webhook, send_email
from coldchain.domain import alerts as rules
from coldchain.services import alerts
from coldchain.store.models import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DispatchSettings:
    """The [alerts] settings the dispatcher runs with."""

    poll_s: float
    batch_size: int
    retries: alerts.Retries
    webhook_timeout_s: float
    smtp: SmtpSettings

    @classmethod
    def from_values(cls, values: Any) -> DispatchSettings:
        """Read them from the flattened settings."""
        return cls(
            poll_s=float(values["alerts_poll_s"]),
            batch_size=int(values["alerts_batch_size"]),
            retries=alerts.Retries(
                max_attempts=int(values["alerts_max_attempts"]),
                backoff_base_s=float(values["alerts_backoff_base_s"]),
                backoff_max_s=float(values["alerts_backoff_max_s"]),
            ),
            webhook_timeout_s=float(values["alerts_webhook_timeout_s"]),
            smtp=SmtpSettings.from_values(values),
        )

    @property
    def lease_s(self) -> float:
        """How long a claimed delivery stays hidden from other dispatchers."""
        return max(self.webhook_timeout_s, self.smtp.timeout_s) * 3 + 30


@dataclass
class PassResult:
    """What one pass did."""

    events: int = 0
    deliveries: int = 0
    attempts: int = 0


def run_once(sessions: sessionmaker[Session], config: DispatchSettings) -> PassResult:
    """Read the new audit events into deliveries, then make the attempts that are due."""
    result = PassResult()
    while True:
        scanned = alerts.scan(sessions=sessions, batch_size=config.batch_size)
        result.events += scanned.events
        result.deliveries += scanned.deliveries
        if scanned.deliveries:
            log.info(
                "audit events up to %d: %d alerts, %d deliveries",
                scanned.cursor,
                scanned.alerts,
                scanned.deliveries,
            )
        if scanned.events < config.batch_size:
            break
    while result.attempts < config.batch_size:
        due = alerts.claim_due(sessions=sessions, now=utcnow(), lease_s=config.lease_s)
        if due is None:
            break
        attempt(sessions, config, due)
        result.attempts += 1
    return result


def attempt(sessions: sessionmaker[Session], config: DispatchSettings, due: alerts.Due) -> str:
    """Make one attempt and record it; a broken subscription is an outcome, never a crash."""
    started = time.monotonic()
    try:
        sent = _send(config, due)
        outcome = (
            rules.webhook_outcome(sent.code)
            if due.channel == rules.WEBHOOK
            else rules.smtp_outcome(sent.code)
        )
    except Exception as exc:  # noqa: BLE001 - one bad subscription must not stop the rest
        log.exception("alert delivery %s to subscription %d", due.key, due.subscription_id)
        sent, outcome = Sent(None, f"{type(exc).__name__}: {exc}"), rules.RETRY
    duration_ms = int((time.monotonic() - started) * 1000)
    state = alerts.record_attempt(
        sessions=sessions,
        due=due,
        outcome=outcome,
        detail=sent.detail,
        duration_ms=duration_ms,
        at=utcnow(),
        retries=config.retries,
    )
    level = logging.INFO if outcome == rules.DELIVERED else logging.WARNING
    log.log(
        level,
        "alert %s (%s) to subscription %d, attempt %d: %s (%s), now %s",
        due.key,
        due.alert_type,
        due.subscription_id,
        due.attempt,
        outcome,
        sent.detail,
        state,
    )
    return state


def _send(config: DispatchSettings, due: alerts.Due) -> Sent:
    if due.channel == rules.WEBHOOK:
        return post_webhook(
            due.target,
            due.body.encode(),
            secret=due.secret or "",
            key=due.key,
            alert_type=due.alert_type,
            timeout_s=config.webhook_timeout_s,
            now=int(time.time()),
        )
    body = json.loads(due.body)
    return send_email(
        config.smtp,
        to=due.target,
        subject=rules.email_subject(body),
        text=rules.email_body(body),
        key=due.key,
    )


def run(sessions: sessionmaker[Session], config: DispatchSettings, stop: threading.Event) -> None:
    """Run passes every poll_s seconds until stop is set; a failing pass is logged and retried."""
    log.info("alert dispatcher polling the audit trail every %.1f s", config.poll_s)
    while not stop.is_set():
        try:
            run_once(sessions, config)
        except Exception:  # noqa: BLE001 - a database outage must not end the dispatcher
            log.exception("alert dispatcher pass failed; retrying in %.1f s", config.poll_s)
        stop.wait(config.poll_s)
    log.info("alert dispatcher stopped")
