"""Alerts out: the delivery log (admin, QA, auditors) and the subscriptions (admin)."""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, Response, jsonify
from pydantic import Field

from coldchain.api import responses as out
from coldchain.api.auth import current_principal, requires
from coldchain.api.common import collection, ctx, page_limit, request_id
from coldchain.api.openapi import endpoint, parse_body, parse_query
from coldchain.api.schemas import MAX_ID, Page, QueryInt, Rfc3339, Strict
from coldchain.domain.alerts import ALERT_TYPES
from coldchain.domain.roles import Role
from coldchain.services import alerts

bp = Blueprint("alerts", __name__, url_prefix="/api/v1")

AlertType = Literal[
    "excursion_opened",
    "signal_loss",
    "predicted_excursion",
    "identity_mismatch",
    "budget_spent",
    "rate_of_change",
]
assert set(AlertType.__args__) == set(ALERT_TYPES)  # type: ignore[attr-defined]
Severity = Literal["info", "warning", "critical"]


class DeliveryQuery(Page):
    """GET /api/v1/alerts/deliveries."""

    subscription: QueryInt | None = Field(default=None, ge=1, le=MAX_ID)
    seq: QueryInt | None = Field(default=None, ge=1, le=MAX_ID, description="audit event")
    outcome: Literal["delivered", "retry", "failed"] | None = None
    since: Rfc3339 | None = None


class SubscriptionQuery(Strict):
    """GET /api/v1/alerts/subscriptions."""

    removed: Literal["true", "false"] = Field(default="false", description="include removed")


class SubscriptionCreate(Strict):
    """POST /api/v1/alerts/subscriptions."""

    channel: Literal["webhook", "email"]
    target: str = Field(min_length=1, max_length=2000, description="webhook URL or address")
    site: str | None = Field(default=None, max_length=64, description="null: every site")
    min_severity: Severity = "warning"
    types: list[AlertType] = Field(default_factory=list, description="empty: every type")
    secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=200,
        description="webhook HMAC key; generated and answered once when not given",
    )


DELIVERY_READERS = (Role.ADMIN, Role.QA, Role.AUDITOR)


@bp.get("/alerts/deliveries")
@requires(*DELIVERY_READERS)
@endpoint(
    "The alert delivery log: every attempt (webhook or e-mail) with its outcome, oldest first",
    query=DeliveryQuery,
    csv=True,
    returns=list[out.AlertAttempt],
)
def list_deliveries() -> Response:
    q: DeliveryQuery = parse_query(DeliveryQuery)
    rows = alerts.list_attempts(
        sessions=ctx().sessions,
        filters=alerts.AttemptFilter(
            subscription_id=q.subscription, audit_seq=q.seq, outcome=q.outcome, since=q.since
        ),
        limit=page_limit(q.limit, q.format),
        offset=q.offset,
    )
    return collection(rows, alerts.ATTEMPT_COLUMNS, q.format, "alert-deliveries")


@bp.get("/alerts/subscriptions")
@requires(Role.ADMIN)
@endpoint(
    "Alert subscriptions (secrets are never shown)",
    query=SubscriptionQuery,
    returns=list[out.AlertSubscription],
)
def list_subscriptions() -> Response:
    q: SubscriptionQuery = parse_query(SubscriptionQuery)
    rows = alerts.list_subscriptions(sessions=ctx().sessions, include_removed=q.removed == "true")
    return jsonify(rows)


@bp.post("/alerts/subscriptions")
@requires(Role.ADMIN)
@endpoint(
    "Subscribe a webhook or an e-mail address to alerts (audited)",
    body=SubscriptionCreate,
    status=201,
    response="the subscription, with a webhook's secret (shown this once)",
    returns=out.AlertSubscriptionCreated,
)
def add_subscription() -> tuple[Response, int]:
    body: SubscriptionCreate = parse_body(SubscriptionCreate)
    view, secret = alerts.add_subscription(
        sessions=ctx().sessions,
        channel=body.channel,
        target=body.target,
        site_id=body.site,
        min_severity=body.min_severity,
        alert_types=body.types,
        secret=body.secret,
        actor=current_principal().username,
        request_id=request_id(),
    )
    return jsonify({**view, "secret": secret}), 201


@bp.delete("/alerts/subscriptions/<int:subscription_id>")
@requires(Role.ADMIN)
@endpoint(
    "End an alert subscription; its unsent alerts are cancelled, its log kept (audited)",
    returns=out.AlertSubscription,
)
def remove_subscription(subscription_id: int) -> Response:
    view = alerts.remove_subscription(
        sessions=ctx().sessions,
        subscription_id=subscription_id,
        actor=current_principal().username,
        request_id=request_id(),
    )
    return jsonify(view)
