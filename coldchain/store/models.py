"""SQLAlchemy 2.x models: the database schema of coldchain."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always tz-aware UTC in Python, whatever the engine keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        # SQLite keeps no zone: store naive UTC so that text comparison orders correctly.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


def utcnow() -> datetime:
    """Return the current time, tz-aware UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Site(Base):
    __tablename__ = "sites"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))  # apheresis | manufacturing | treatment
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    site_id: Mapped[str | None] = mapped_column(ForeignKey("sites.id"))
    password_hash: Mapped[str] = mapped_column(String(200))
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user")


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    # SHA-256 of the token: the token itself is shown once and never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(back_populates="tokens")


class Logger(Base):
    __tablename__ = "loggers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str | None] = mapped_column(String(100))
    firmware: Mapped[str | None] = mapped_column(String(100))
    online: Mapped[bool | None] = mapped_column(Boolean)
    status_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Calibration (a UTC calendar day): valid through calibration_due; None is unknown
    # (loggers registered before fleet care, or without a date).
    calibration_due: Mapped[date | None] = mapped_column(Date)
    calibrated_on: Mapped[date | None] = mapped_column(Date)
    calibration_certificate: Mapped[str | None] = mapped_column(String(100))


class Shipment(Base):
    __tablename__ = "shipments"
    __table_args__ = (
        # A COI is used once per leg; a cancelled shipment frees it for its replacement.
        Index(
            "uq_shipments_coi_leg_live",
            "coi",
            "leg",
            unique=True,
            sqlite_where=text("status <> 'cancelled'"),
            postgresql_where=text("status <> 'cancelled'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    coi: Mapped[str] = mapped_column(String(14), index=True)
    profile: Mapped[str] = mapped_column(String(50))
    origin_site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"))
    destination_site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    status: Mapped[str] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(Integer, default=1)
    patient_hash: Mapped[str] = mapped_column(String(64))
    seal_id: Mapped[str | None] = mapped_column(String(100))
    # apheresis (collection to manufacturing), final_product (manufacturing to treatment)
    # or other.
    leg: Mapped[str] = mapped_column(String(20))
    # Who holds it now (a site id or a courier's user name) and the seal it must carry.
    holder: Mapped[str] = mapped_column(String(100))
    current_seal: Mapped[str | None] = mapped_column(String(100))
    monitoring_from: Mapped[datetime] = mapped_column(UTCDateTime)
    monitoring_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # LN2 dry shipper hold-time prediction (optional): when the product should arrive, the
    # shipper's rated static hold and when it was charged, and the [prediction] settings as
    # they were at creation (JSON), so that later readings are judged by the same rule.
    planned_arrival: Mapped[datetime | None] = mapped_column(UTCDateTime)
    shipper_rated_hold_h: Mapped[float | None] = mapped_column(Float)
    shipper_charged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    prediction_settings: Mapped[str | None] = mapped_column(Text)

    loggers: Mapped[list[ShipmentLogger]] = relationship(
        back_populates="shipment", order_by="ShipmentLogger.logger_id"
    )


class Signature(Base):
    """An electronic signature, bound to the record it signs by that record's hash."""

    __tablename__ = "signatures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    username: Mapped[str] = mapped_column(String(100))
    printed_name: Mapped[str] = mapped_column(String(200))
    meaning: Mapped[str] = mapped_column(String(200))
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    record_type: Mapped[str] = mapped_column(String(30))  # handoff | receipt | disposition
    record_hash: Mapped[str] = mapped_column(String(64))


class Handoff(Base):
    """One link of the custody chain."""

    __tablename__ = "handoffs"
    __table_args__ = (
        # Two concurrent handoffs cannot both become link n of one chain.
        Index("uq_handoffs_shipment_seq", "shipment_id", "seq", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id"))
    # The shipment version this handoff made (the one its signature covers).
    shipment_version: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(Integer)
    transition: Mapped[str] = mapped_column(String(20))
    from_party: Mapped[str] = mapped_column(String(100))
    to_party: Mapped[str] = mapped_column(String(100))
    location: Mapped[str] = mapped_column(String(200))
    seal_id: Mapped[str] = mapped_column(String(100))
    seal_changed_from: Mapped[str | None] = mapped_column(String(100))
    seal_change_reason: Mapped[str | None] = mapped_column(Text)
    condition: Mapped[str] = mapped_column(String(200))
    notes: Mapped[str | None] = mapped_column(Text)
    recorded_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    signature_id: Mapped[int] = mapped_column(ForeignKey("signatures.id"))

    signature: Mapped[Signature] = relationship()


class Receipt(Base):
    """A clinic's decision on a delivered shipment (a quarantine may be followed by another)."""

    __tablename__ = "receipts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id"), index=True)
    shipment_version: Mapped[int] = mapped_column(Integer)
    decision: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    coi_scan: Mapped[str] = mapped_column(String(40))
    seal_id: Mapped[str] = mapped_column(String(100))
    seal_matches: Mapped[bool] = mapped_column(Boolean)
    received_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    signature_id: Mapped[int] = mapped_column(ForeignKey("signatures.id"))

    signature: Mapped[Signature] = relationship()


class ExcursionDisposition(Base):
    """QA's decision on an excursion, with the profile that judged it as it was then."""

    __tablename__ = "excursion_dispositions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    excursion_id: Mapped[int] = mapped_column(ForeignKey("excursions.id"), index=True)
    decision: Mapped[str] = mapped_column(String(30))
    reason: Mapped[str] = mapped_column(Text)
    excursion_version: Mapped[int] = mapped_column(Integer)
    profile_name: Mapped[str] = mapped_column(String(50))
    profile_json: Mapped[str] = mapped_column(Text)
    decided_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    signature_id: Mapped[int] = mapped_column(ForeignKey("signatures.id"))

    signature: Mapped[Signature] = relationship()


class ShipmentLogger(Base):
    __tablename__ = "shipment_loggers"

    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id"), primary_key=True)
    logger_id: Mapped[str] = mapped_column(ForeignKey("loggers.id"), primary_key=True, index=True)

    shipment: Mapped[Shipment] = relationship(back_populates="loggers")


class Reading(Base):
    """One measurement; its identity is (logger_id, name, time_us)."""

    __tablename__ = "readings"
    # No rowid: the primary key is the clustered order, which is also the only access path
    # (one logger's series by time), and it halves the write cost of the hot path.
    # On PostgreSQL also a BRIN index on time: readings arrive in about time order, so a
    # block range's min/max bounds it tightly; it serves the scans across loggers by time
    # (retention, a fleet-wide hour) for a few hundred kB. bench/readings_layout.py chose it
    # over monthly partitions, which made the worker's per-logger look-ups 2-4x slower.
    __table_args__ = (
        Index("ix_readings_time_brin", "time_us", postgresql_using="brin").ddl_if(
            dialect="postgresql"
        ),
        {"sqlite_with_rowid": False},
    )

    logger_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(8), primary_key=True)
    # Integer microseconds of the logger's clock: exact identity, no float or zone ambiguity.
    time_us: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    value: Mapped[float] = mapped_column(Float)
    received_us: Mapped[int] = mapped_column(BigInteger)


class Excursion(Base):
    __tablename__ = "excursions"
    __table_args__ = (Index("ix_excursions_span", "shipment_id", "logger_id", "started_us"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id"))
    logger_id: Mapped[str] = mapped_column(ForeignKey("loggers.id"))
    kind: Mapped[str] = mapped_column(String(20))  # HIGH | LOW | SIGNAL_LOSS
    started_us: Mapped[int] = mapped_column(BigInteger)
    ended_us: Mapped[int | None] = mapped_column(BigInteger)
    peak_c: Mapped[float | None] = mapped_column(Float)
    duration_s: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(10), index=True)  # OPEN | CLOSED
    # Why it closed without the readings showing an end: "recovered" (a backfill filled a
    # signal loss) or "retracted" (late readings split the run below the grace period).
    resolution: Mapped[str | None] = mapped_column(String(20))
    # info | warning | critical (domain/science.py), judged with the profile of the time:
    # the profile lives in config, and editing it must not rewrite a recorded judgement.
    severity: Mapped[str] = mapped_column(String(10), default="warning", server_default="warning")
    version: Mapped[int] = mapped_column(Integer, default=1)
    # The latest QA disposition and the excursion version it was made on.
    disposition: Mapped[str | None] = mapped_column(String(30))
    disposition_version: Mapped[int | None] = mapped_column(Integer)
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StabilityBudget(Base):
    """The time out of range that one logger of a shipment has shown so far (issue 9).

    A running total kept exact by the worker (services/science.py: each batch adds what its
    readings changed in the pairs around them), so that a batch does not read a shipment's
    whole series. With it, what the profile said when it was judged: the budget, the first
    judged time (after the start-up ignore) and whether the shipment shows an MKT, so that
    reading a shipment needs no profile. `counted_until_us` is the latest reading counted:
    past the window's end (a logger clock running fast before receipt) it is counted again.
    """

    __tablename__ = "stability_budgets"

    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id"), primary_key=True)
    logger_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    used_us: Mapped[int] = mapped_column(BigInteger)
    budget_us: Mapped[int | None] = mapped_column(BigInteger)
    judged_from_us: Mapped[int] = mapped_column(BigInteger)
    mkt: Mapped[bool] = mapped_column(Boolean)
    counted_until_us: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Alarm(Base):
    """A warning about a shipment that is not a temperature excursion of the contract's kinds.

    Kinds (issue 9): BUDGET_SPENT (the profile's stability budget of time out of range is
    used up), RATE_OF_CHANGE (a reading rose faster than the profile allows), PREDICTED (the
    product is estimated to cross its limit before the planned arrival). An alarm is
    identified by (shipment_id, logger_id, kind, at_us): raising the same one again changes
    nothing. `at_us` is a reading's time (or the estimate's), never the wall clock's.
    """

    __tablename__ = "alarms"
    __table_args__ = (
        Index("uq_alarms_identity", "shipment_id", "logger_id", "kind", "at_us", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id"))
    # Empty string, not NULL, for an alarm about the whole shipment: NULLs would escape
    # the unique index on both engines.
    logger_id: Mapped[str] = mapped_column(String(64), default="")
    kind: Mapped[str] = mapped_column(String(30))
    severity: Mapped[str] = mapped_column(String(20))
    at_us: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(10), default="OPEN")  # OPEN | CLEARED
    cleared_us: Mapped[int | None] = mapped_column(BigInteger)
    # JSON object: what the alarm is about (figures, limits, the estimate...).
    detail_json: Mapped[str] = mapped_column(Text, default="{}")
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AlertSubscription(Base):
    """Who gets alerts out (issue 9): a webhook or an e-mail address, per site and severity."""

    __tablename__ = "alert_subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(10))  # webhook | email
    target: Mapped[str] = mapped_column(Text)  # URL or e-mail address
    # The webhook's HMAC key: needed in clear to sign, so never shown after creation.
    secret: Mapped[str | None] = mapped_column(String(200))
    site_id: Mapped[str | None] = mapped_column(ForeignKey("sites.id"))  # null: every site
    min_severity: Mapped[str] = mapped_column(String(20))
    alert_types: Mapped[str] = mapped_column(Text, default="")  # comma-separated; "": all
    # The audit seq of its creation: only later events are sent to it.
    from_seq: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100))
    # Kept when removed, so that its delivery log still names it.
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AlertDelivery(Base):
    """One alert (an audit event) to one subscription; its body is fixed at creation."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        # The idempotency key: an event reaches a subscription once, whatever restarts.
        Index("uq_alert_deliveries_event", "subscription_id", "audit_seq", unique=True),
        Index("ix_alert_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("alert_subscriptions.id"))
    audit_seq: Mapped[int] = mapped_column(Integer)
    alert_type: Mapped[str] = mapped_column(String(30))
    severity: Mapped[str] = mapped_column(String(20))
    shipment_id: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)  # the JSON sent, the same on every attempt
    status: Mapped[str] = mapped_column(String(10))  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AlertAttempt(Base):
    """The delivery log: one row per attempt to send an alert, with what came back."""

    __tablename__ = "alert_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("alert_deliveries.id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    outcome: Mapped[str] = mapped_column(String(10))  # delivered | retry | failed
    detail: Mapped[str] = mapped_column(Text)  # HTTP status, SMTP reply or the error
    duration_ms: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AlertCursor(Base):
    """How far the alert dispatcher has read the audit trail (one row)."""

    __tablename__ = "alert_cursor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeadLetterMessage(Base):
    """A message with at least one refused part, kept whole and unchanged."""

    __tablename__ = "dead_letter_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    topic: Mapped[str] = mapped_column(Text)
    logger_id: Mapped[str | None] = mapped_column(String(64), index=True)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)

    letters: Mapped[list[DeadLetter]] = relationship(back_populates="message")


class DeadLetter(Base):
    """One refusal: a whole message (record_index null) or one record of it."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("dead_letter_messages.id"), index=True)
    reason: Mapped[str] = mapped_column(String(40), index=True)
    detail: Mapped[str] = mapped_column(Text)
    record_index: Mapped[int | None] = mapped_column(Integer)

    message: Mapped[DeadLetterMessage] = relationship(back_populates="letters")


class IngestCounter(Base):
    """Cumulative ingest counters, updated in each batch's transaction (exact across workers)."""

    __tablename__ = "ingest_counters"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class AuditEvent(Base):
    """One entry of the append-only, hash-chained audit trail."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_entity", "entity", "entity_id", "seq"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(100), index=True)  # user name or system:...
    action: Mapped[str] = mapped_column(String(60), index=True)
    entity: Mapped[str] = mapped_column(String(30))
    entity_id: Mapped[str] = mapped_column(String(64))
    # JSON objects of the changed fields before and after (null for a creation or a refusal).
    old_values: Mapped[str | None] = mapped_column(Text)
    new_values: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(Base):
    """The chain's head, one row: appends update it first, which serialises them."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """A signed head of the chain, also written to a file kept away from the server."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[str] = mapped_column(String(40))  # RFC 3339, as signed
    public_key: Mapped[str] = mapped_column(String(100))  # raw Ed25519 key, hex
    signature: Mapped[str] = mapped_column(String(200))  # hex


def for_dialect(dialect_name: str) -> Any:
    """Return an Alembic `include_object` hook that skips what `ddl_if` keeps off this dialect.

    Alembic's autogenerate does not read `ddl_if`, so without this it would offer to create
    the PostgreSQL-only BRIN index on SQLite.
    """

    def include(obj: Any, _name: str | None, _type: str, _reflected: bool, _other: Any) -> bool:
        ddl_if = getattr(obj, "_ddl_if", None)
        return ddl_if is None or ddl_if.dialect in (None, dialect_name)

    return include
