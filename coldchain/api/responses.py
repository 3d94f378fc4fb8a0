"""The JSON shapes the API answers with, for the OpenAPI document.

They describe what `coldchain.services.views` and the services return; nothing builds a
response through them. The fuzz test (tests/api/test_fuzz_openapi.py) checks every answer
against them, so a field that changes type or disappears fails it. Objects may gain fields
(extra keys are allowed); a client must ignore what it does not know.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# RFC 3339 strings ending in Z (CONTRACT: times are UTC); a string of format date-time.
Time = datetime


class Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class Reading(Out):
    logger_id: str
    time: Time
    received_at: Time
    temp_c: float | None


class Excursion(Out):
    id: int
    shipment_id: int
    logger_id: str
    kind: Literal["HIGH", "LOW", "SIGNAL_LOSS"]
    started_at: Time
    ended_at: Time | None
    peak_c: float | None
    duration_s: float
    status: Literal["OPEN", "CLOSED"]
    resolution: str | None
    severity: Literal["info", "warning", "critical"]
    version: int
    disposition: str | None
    disposition_current: bool
    detected_at: Time
    updated_at: Time


class Signature(Out):
    printed_name: str
    username: str
    meaning: str
    signed_at: Time
    record_hash: str
    valid: bool


class ExcursionDetail(Excursion):
    dispositions: list[dict[str, Any]]


class Handoff(Out):
    seq: int
    transition: str
    from_party: str
    to_party: str
    location: str
    seal_id: str
    seal_changed_from: str | None
    seal_change_reason: str | None
    condition: str
    notes: str | None
    at: Time
    signature: Signature


class Receipt(Out):
    decision: Literal["accept", "reject", "quarantine"]
    reason: str | None
    at: Time
    signature: Signature


class ShipmentSummary(Out):
    id: int
    coi: str
    profile: str
    origin_site: str
    destination_site: str
    status: str
    version: int
    loggers: list[str]
    seal_id: str | None
    packing_seal_id: str | None
    leg: str | None
    holder: str | None
    monitoring_from: Time
    monitoring_until: Time | None
    created_at: Time


class Alarm(Out):
    id: int
    shipment_id: int
    logger_id: str | None
    kind: Literal["BUDGET_SPENT", "RATE_OF_CHANGE", "PREDICTED"]
    severity: Literal["info", "warning", "critical"]
    at: Time
    status: Literal["OPEN", "CLEARED"]
    cleared_at: Time | None
    detail: dict[str, Any]


class Shipper(Out):
    rated_hold_h: float
    charged_at: Time


class Prediction(Out):
    crossing_at: Time
    method: Literal["prior", "trend", "observed"]
    earliest_at: Time
    latest_at: Time
    as_of: Time | None
    logger_id: str | None
    limit_c: float


class Stability(Out):
    budget_s: float
    used_s: float
    remaining_s: float
    spent: bool
    logger_id: str


class Shipment(ShipmentSummary):
    alarms: list[Alarm]
    stability: Stability | None
    mkt_c: float | None
    planned_arrival: Time | None
    shipper: Shipper | None
    prediction: Prediction | None
    custody: list[Handoff]
    receipts: list[Receipt]
    excursions: list[Excursion]
    latest_reading: Reading | None
    linked_legs: list[dict[str, Any]]


class CoiHistory(Out):
    coi: str
    legs: list[Shipment]


class HistoryStep(Out):
    at: Time
    type: str


class AuditEvent(Out):
    seq: int
    at: Time
    actor: str
    action: str
    entity: str
    entity_id: str
    old_values: dict[str, Any] | None
    new_values: dict[str, Any] | None
    reason: str | None
    request_id: str | None
    prev_hash: str
    hash: str


class AuditVerification(Out):
    ok: bool
    events: int
    head_seq: int | None
    head_hash: str | None
    first_bad_seq: int | None
    problem: str | None


class Checkpoint(Out):
    seq: int
    hash: str
    at: str
    public_key: str
    signature: str


class DeadLetter(Out):
    id: int
    message_id: int
    reason: str
    detail: str | None
    record_index: int | None
    topic: str
    logger_id: str | None
    received_at: Time
    payload: str
    payload_encoding: Literal["utf-8", "base64"]


class Logger(Out):
    id: str
    model: str | None
    firmware: str | None
    online: bool | None
    status_at: Time | None
    created_at: Time
    battery_pct: float | None
    battery_at: Time | None
    battery_low: bool
    calibration_due: date | None
    calibrated_on: date | None
    calibration_certificate: str | None
    calibration: Literal["valid", "overdue", "unknown"]


class FleetWarning(Out):
    code: Literal["logger-battery-low", "logger-calibration-unknown"]
    logger_id: str
    message: str


class CreatedShipment(Shipment):
    warnings: list[FleetWarning]


class Scorecard(Out):
    party: str
    party_type: Literal["site", "courier"]
    site_kind: str | None
    name: str
    shipments: int
    high_excursions: int
    low_excursions: int
    signal_loss_excursions: int
    high_per_100: float | None
    low_per_100: float | None
    signal_loss_per_100: float | None
    minutes_out_of_range: float
    custody_hours: float
    signal_lost_fraction: float | None
    seal_changes: int
    custody_gaps: int
    rejections_received: int
    quarantines_received: int
    rejections_shipped: int
    quarantines_shipped: int
    median_door_to_door_h: float | None


class Health(Out):
    status: Literal["ok", "degraded"]
    database: str
    broker: str


class EpcisBody(Out):
    eventList: list[dict[str, Any]]


class EpcisDocument(Out):
    """A GS1 EPCIS 2.0 JSON-LD document; its events are checked against GS1's schema in tests."""

    context: list[Any] = Field(alias="@context")
    type: Literal["EPCISDocument"]
    schemaVersion: Literal["2.0"]
    creationDate: Time
    epcisBody: EpcisBody


class AlertSubscription(Out):
    id: int
    channel: Literal["webhook", "email"]
    target: str
    site: str | None
    min_severity: Literal["info", "warning", "critical"]
    types: list[str]
    has_secret: bool
    from_seq: int
    created_at: Time
    created_by: str
    removed_at: Time | None


class AlertSubscriptionCreated(AlertSubscription):
    secret: str | None


class AlertAttempt(Out):
    id: int
    delivery_id: int
    subscription_id: int
    channel: Literal["webhook", "email"]
    target: str
    audit_seq: int
    alert_type: str
    severity: Literal["info", "warning", "critical"]
    shipment_id: int
    attempt: int
    at: Time
    outcome: Literal["delivered", "retry", "failed"]
    detail: str
    duration_ms: int
    next_attempt_at: Time | None
    delivery_status: Literal["pending", "delivered", "failed", "cancelled"]
