"""Alerts out: which audit events are alerts, who gets them, how they are signed and retried.

Pure: the dispatcher (coldchain.alerts) reads the audit trail and the subscriptions, and
sends; everything it decides is decided here.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from coldchain.domain.errors import ValidationError

SEVERITIES = ("info", "warning", "critical")

EXCURSION_OPENED = "excursion_opened"
SIGNAL_LOSS = "signal_loss"
PREDICTED_EXCURSION = "predicted_excursion"
IDENTITY_MISMATCH = "identity_mismatch"
BUDGET_SPENT = "budget_spent"
RATE_OF_CHANGE = "rate_of_change"

# Used when the event carries no severity of its own. A product out of range or handed to
# the wrong patient can harm that patient; a warning is something still to act on.
DEFAULT_SEVERITY = {
    EXCURSION_OPENED: "critical",
    SIGNAL_LOSS: "warning",
    PREDICTED_EXCURSION: "warning",
    IDENTITY_MISMATCH: "critical",
    BUDGET_SPENT: "critical",
    RATE_OF_CHANGE: "warning",
}
ALERT_TYPES = tuple(DEFAULT_SEVERITY)

TITLES = {
    EXCURSION_OPENED: "Temperature excursion opened",
    SIGNAL_LOSS: "Signal lost",
    PREDICTED_EXCURSION: "Excursion predicted",
    IDENTITY_MISMATCH: "Identity mismatch at receipt",
    BUDGET_SPENT: "Stability budget spent",
    RATE_OF_CHANGE: "Temperature changing too fast",
}

_ALARM_TYPES = {
    "PREDICTED": PREDICTED_EXCURSION,
    "BUDGET_SPENT": BUDGET_SPENT,
    "RATE_OF_CHANGE": RATE_OF_CHANGE,
}
_IDENTITY_CODES = frozenset({"coi-mismatch", "patient-mismatch"})

WEBHOOK = "webhook"
EMAIL = "email"
CHANNELS = (WEBHOOK, EMAIL)


def severity_rank(severity: str) -> int:
    """Return the order of a severity (info 0, warning 1, critical 2)."""
    try:
        return SEVERITIES.index(severity)
    except ValueError:
        raise ValidationError(
            f"severity must be one of {', '.join(SEVERITIES)}", field="min_severity"
        ) from None


@dataclass(frozen=True)
class AuditFacts:
    """What the dispatcher reads of one audit event."""

    seq: int
    hash: str
    at: str
    actor: str
    action: str
    entity: str
    entity_id: str
    new_values: Mapping[str, Any] | None
    reason: str | None


@dataclass(frozen=True)
class AlertSource:
    """An audit event that is an alert, before its shipment is looked up."""

    alert_type: str
    severity: str
    shipment_id: int
    details: Mapping[str, Any]


def classify(event: AuditFacts) -> AlertSource | None:
    """Return the alert an audit event raises, or None if it raises none."""
    new = dict(event.new_values or {})
    if event.action == "excursion.opened":
        alert_type = SIGNAL_LOSS if new.get("kind") == "SIGNAL_LOSS" else EXCURSION_OPENED
        details = {"excursion_id": _int(event.entity_id), **new}
    elif event.action == "alarm.raised":
        mapped = _ALARM_TYPES.get(str(new.get("kind")))
        if mapped is None:
            return None
        alert_type = mapped
        details = {"alarm_id": _int(event.entity_id), **new}
    elif event.action == "receipt.refused" and new.get("code") in _IDENTITY_CODES:
        alert_type = IDENTITY_MISMATCH
        details = {**new, "shipment_id": _int(event.entity_id), "message": event.reason}
    else:
        return None
    shipment_id = details.get("shipment_id")
    if not isinstance(shipment_id, int) or isinstance(shipment_id, bool):
        return None
    severity = new.get("severity")
    if severity not in SEVERITIES:
        severity = DEFAULT_SEVERITY[alert_type]
    return AlertSource(alert_type, str(severity), shipment_id, details)


def _int(text: str) -> int | str:
    return int(text) if text.isdigit() else text


@dataclass(frozen=True)
class Alert:
    """An alert with its shipment's sites and COI, ready to match and render."""

    source: AuditFacts
    alert_type: str
    severity: str
    shipment_id: int
    coi: str
    sites: tuple[str, ...]
    details: Mapping[str, Any]


@dataclass(frozen=True)
class Subscription:
    """Who wants which alerts: a site (None: every site), a minimum severity, some types."""

    id: int
    channel: str
    target: str
    site_id: str | None
    min_severity: str
    alert_types: frozenset[str] = field(default_factory=frozenset)  # empty: every type
    from_seq: int = 0


def matches(subscription: Subscription, alert: Alert) -> bool:
    """Tell whether a subscription gets an alert (events before it was made are not sent)."""
    return (
        alert.source.seq > subscription.from_seq
        and (subscription.site_id is None or subscription.site_id in alert.sites)
        and severity_rank(alert.severity) >= severity_rank(subscription.min_severity)
        and (not subscription.alert_types or alert.alert_type in subscription.alert_types)
    )


def delivery_id(seq: int, subscription_id: int) -> str:
    """Return the idempotency key of one alert to one subscription ("{seq}-{subscription}")."""
    return f"{seq}-{subscription_id}"


def payload(alert: Alert, subscription_id: int) -> dict[str, Any]:
    """Return the JSON object a webhook receives (and an e-mail shows)."""
    event = alert.source
    return {
        "id": delivery_id(event.seq, subscription_id),
        "type": alert.alert_type,
        "title": TITLES[alert.alert_type],
        "severity": alert.severity,
        "sites": list(alert.sites),
        "shipment_id": alert.shipment_id,
        "coi": alert.coi,
        "details": dict(alert.details),
        "at": event.at,
        "audit": {
            "seq": event.seq,
            "hash": event.hash,
            "action": event.action,
            "entity": event.entity,
            "entity_id": event.entity_id,
            "actor": event.actor,
        },
    }


# --- webhooks: signature and outcome -------------------------------------------------------

SIGNATURE_HEADER = "X-Coldchain-Signature"
DELIVERY_HEADER = "X-Coldchain-Delivery"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Return the signature header's value: t=<unix>,v1=<HMAC-SHA256 of "t.body", hex>."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(
    secret: str, header: str, body: bytes, *, now: int, tolerance_s: int = 300
) -> bool:
    """Tell whether a signature header is good for the body and not older than tolerance_s."""
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = signature(secret, timestamp, body).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, given) for given in parts.get("v1", []))


DELIVERED = "delivered"
RETRY = "retry"
FAILED = "failed"


def webhook_outcome(status: int | None) -> str:
    """Judge an HTTP answer (None: no answer): delivered, retry later, or failed for good.

    2xx is delivered. No answer (refused, timed out, reset), 408, 429 and 5xx are passing
    troubles: retried. Any other answer (3xx, since redirects are not followed, and 4xx)
    says the receiver will not take it as configured: retrying cannot help.
    """
    if status is None or status in (408, 429) or status >= 500:
        return RETRY
    return DELIVERED if 200 <= status < 300 else FAILED


def smtp_outcome(code: int | None) -> str:
    """Judge an SMTP reply code (None: no answer): 2xx delivered, 5xx failed, else retry."""
    if code is not None and 200 <= code < 300:
        return DELIVERED
    return FAILED if code is not None and 500 <= code < 600 else RETRY


def backoff_s(attempt: int, *, base_s: float, max_s: float) -> float:
    """Return the wait after failed attempt n (1, 2, ...): base_s * 2**(n-1), at most max_s."""
    return float(min(max_s, base_s * 2 ** min(attempt - 1, 62)))


def next_step(outcome: str, attempt: int, *, max_attempts: int) -> str:
    """Return the delivery's state after an attempt: delivered, pending or failed."""
    if outcome == RETRY and attempt < max_attempts:
        return "pending"
    return DELIVERED if outcome == DELIVERED else FAILED


# --- subscriptions: targets ----------------------------------------------------------------

_EMAIL_RE = re.compile(r"^[^@\s<>,;\"]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


def check_target(channel: str, target: str) -> str:
    """Return a webhook URL or e-mail address fit to use, or refuse it."""
    if channel == WEBHOOK:
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValidationError(
                "a webhook URL must be http:// or https:// with a host", field="url"
            )
        if len(target) > 2000:
            raise ValidationError("a webhook URL may have at most 2000 characters", field="url")
        return target
    if channel == EMAIL:
        if not _EMAIL_RE.match(target):
            raise ValidationError(f"{target!r} is not an e-mail address", field="address")
        return target
    raise ValidationError(f"channel must be one of {', '.join(CHANNELS)}", field="channel")


def check_alert_types(types: Collection[str]) -> frozenset[str]:
    """Return the alert types named, or refuse an unknown one."""
    unknown = sorted(set(types) - set(ALERT_TYPES))
    if unknown:
        raise ValidationError(
            f"unknown alert types {unknown}: known are {', '.join(ALERT_TYPES)}", field="types"
        )
    return frozenset(types)


def shown_target(channel: str, target: str) -> str:
    """Return a target as lists and the audit trail show it: a URL's password hidden."""
    if channel != WEBHOOK:
        return target
    parts = urlsplit(target)
    if parts.password is None:
        return target
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


# --- e-mail --------------------------------------------------------------------------------


def email_subject(body: Mapping[str, Any]) -> str:
    """Return an alert e-mail's subject line from the webhook payload of the same alert."""
    return (
        f"[coldchain] {str(body['severity']).upper()}: {body['title']}, shipment "
        f"{body['shipment_id']} (COI {body['coi']})"
    )


def email_body(body: Mapping[str, Any]) -> str:
    """Return an alert e-mail's plain text from the webhook payload of the same alert."""
    lines = [
        f"{body['title']} ({body['severity']})",
        "",
        f"Shipment: {body['shipment_id']}",
        f"COI: {body['coi']}",
        f"Sites: {', '.join(body['sites'])}",
        f"Time: {body['at']}",
        "",
        "Details:",
    ]
    lines += [f"  {key}: {value}" for key, value in sorted(body["details"].items())]
    audit = body["audit"]
    lines += [
        "",
        f"Audit event {audit['seq']} ({audit['action']}), hash {audit['hash']}",
        f"Delivery id: {body['id']}",
    ]
    return "\n".join(lines) + "\n"
