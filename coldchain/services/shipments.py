"""Use cases for shipments: create, list and show them within the caller's scope."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Select, and_, exists, func, or_, select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from coldchain.domain.errors import ConflictError, NotFoundError, ValidationError
from coldchain.domain.fleet import FleetPolicy
from coldchain.domain.holdtime import HoldSettings
from coldchain.domain.identity import parse_coi, patient_hash
from coldchain.domain.lifecycle import FINISHED, Status
from coldchain.domain.profiles import Profile
from coldchain.domain.roles import Role
from coldchain.services import audit, fleet, holdtime, science, streaming
from coldchain.services.accounts import Principal
from coldchain.services.ingest import reevaluate_touched
from coldchain.services.timefmt import now_us, rfc3339, to_us
from coldchain.services.views import excursion_view, shipment_summary
from coldchain.store.models import (
    Excursion,
    Logger,
    Reading,
    Shipment,
    ShipmentLogger,
    Site,
    utcnow,
)


@dataclass(frozen=True)
class NewShipment:
    """A validated request to create a shipment."""

    coi: str
    profile: str
    origin_site: str
    destination_site: str
    loggers: Sequence[str]
    patient: Mapping[str, str]
    monitoring_from: datetime | None = None
    seal_id: str | None = None
    planned_arrival: datetime | None = None
    # The LN2 dry shipper: {"rated_hold_h": float, "charged_at": datetime}.
    shipper: Mapping[str, Any] | None = None


def visible_shipments(principal: Principal) -> Select[Shipment]:
    """Return the query of shipments a caller may see.

    A site user (role clinic) sees the shipments to its site, which it receives, and those
    from it, which it packs and hands over; no other site's. Every other role sees all.
    """
    query = select(Shipment)
    if principal.role is Role.CLINIC:
        query = query.where(
            or_(
                Shipment.destination_site_id == principal.site_id,
                Shipment.origin_site_id == principal.site_id,
            )
        )
    return query


def create_shipment(
    *,
    sessions: sessionmaker[Session],
    request: NewShipment,
    creator: Principal,
    profiles: Mapping[str, Profile],
    secret_key: bytes,
    request_id: str | None = None,
    fleet_policy: FleetPolicy | None = None,
    prediction: HoldSettings | None = None,
) -> dict[str, Any]:
    """Create a shipment, assign its loggers and evaluate readings already in its window.

    The answer carries `warnings` (battery low, calibration unknown) that do not refuse it.
    """
    coi = str(parse_coi(request.coi))
    if request.profile not in profiles:
        raise ValidationError(
            f"unknown profile {request.profile!r}; known: {', '.join(sorted(profiles))}",
            field="profile",
        )
    if not request.loggers:
        raise ValidationError("a shipment needs at least one logger", field="loggers")
    if len(set(request.loggers)) != len(request.loggers):
        raise ValidationError("a logger is listed twice", field="loggers")
    hashed = patient_hash(request.patient, secret_key=secret_key)
    created = utcnow()
    hold = holdtime.shipper_columns(
        shipper=request.shipper,
        planned_arrival=request.planned_arrival,
        profile=profiles[request.profile],
        settings=prediction,
        now=created,
    )
    monitoring_from = request.monitoring_from or created
    with sessions.begin() as session:
        for field, site_id in (
            ("origin_site", request.origin_site),
            ("destination_site", request.destination_site),
        ):
            if session.get(Site, site_id) is None:
                raise ValidationError(f"unknown site {site_id!r}", field=field)
        if request.origin_site == request.destination_site:
            raise ValidationError(
                "origin and destination are the same site", field="destination_site"
            )
        leg = leg_of(session, request.origin_site, request.destination_site)
        _check_coi_link(session, coi, leg, hashed)
        for logger_id in request.loggers:
            if session.get(Logger, logger_id) is None:
                raise ValidationError(f"unknown logger {logger_id!r}", field="loggers")
        busy = session.execute(
            select(ShipmentLogger.logger_id, Shipment.id)
            .join(Shipment, Shipment.id == ShipmentLogger.shipment_id)
            .where(ShipmentLogger.logger_id.in_(request.loggers))
            .where(Shipment.status.not_in([str(s) for s in FINISHED]))
        ).first()
        if busy is not None:
            # One logger on two active shipments would report one box's temperature for both.
            raise ConflictError(
                f"logger {busy[0]} is already on active shipment {busy[1]}",
                field="loggers",
                code="logger-in-use",
            )
        # Judged on the day of assignment (UTC): a logger due today may still go out.
        warnings = fleet.check_assignment(
            session, request.loggers, policy=fleet_policy or FleetPolicy(), on=created.date()
        )
        shipment = Shipment(
            coi=coi,
            profile=request.profile,
            origin_site_id=request.origin_site,
            destination_site_id=request.destination_site,
            status=Status.CREATED.value,
            version=1,
            patient_hash=hashed,
            seal_id=request.seal_id,
            leg=leg,
            holder=request.origin_site,
            current_seal=request.seal_id,
            monitoring_from=monitoring_from,
            created_at=created,
            created_by=creator.user_id,
            loggers=[ShipmentLogger(logger_id=logger_id) for logger_id in request.loggers],
            **hold,
        )
        session.add(shipment)
        session.flush()
        audit.record(
            session,
            actor=creator.username,
            action="shipment.create",
            entity="shipment",
            entity_id=shipment.id,
            new={
                "coi": coi,
                "leg": leg,
                "profile": request.profile,
                "origin_site": request.origin_site,
                "destination_site": request.destination_site,
                "loggers": list(request.loggers),
                "seal_id": request.seal_id,
                "monitoring_from": rfc3339(monitoring_from),
                "status": Status.CREATED.value,
                "version": 1,
                **holdtime.audit_fields(hold),
            },
            request_id=request_id,
        )
        now = now_us()
        start = to_us(monitoring_from)
        if start <= now:
            reevaluate_touched(
                session,
                {logger_id: (start, now) for logger_id in request.loggers},
                profiles=profiles,
                now_us=now,
            )
        science.evaluate_shipment(session, shipment, profiles=profiles, now_us=now)
        body = detail(session, shipment, now)
        body["warnings"] = warnings
        return body


# Excursions that late readings showed were none: nothing for QA to decide.
WITHDRAWN = ("recovered", "retracted")

LEGS = {
    ("apheresis", "manufacturing"): "apheresis",
    ("manufacturing", "treatment"): "final_product",
}


def leg_of(session: Session, origin: str, destination: str) -> str:
    """Name the leg by the kinds of its sites: apheresis, final_product, or other."""
    kinds = tuple(
        session.scalar(select(Site.kind).where(Site.id == s)) for s in (origin, destination)
    )
    return LEGS.get(kinds, "other")  # type: ignore[arg-type]


def _check_coi_link(session: Session, coi: str, leg: str, hashed: str) -> None:
    """A COI is used once per leg, and every leg of one COI carries the same patient."""
    live = select(Shipment).where(Shipment.coi == coi, Shipment.status != Status.CANCELLED.value)
    if session.scalars(live.where(Shipment.leg == leg)).first() is not None:
        raise ConflictError(
            f"COI {coi} already has a live {leg} shipment", field="coi", code="coi-in-use"
        )
    other = session.scalars(live.where(Shipment.patient_hash != hashed)).first()
    if other is not None:
        raise ConflictError(
            f"COI {coi} belongs to another patient (shipment {other.id}): the patient "
            "identifiers must be those of its other legs",
            field="patient",
            code="coi-patient-mismatch",
        )


def visible_legs(session: Session, coi: str, principal: Principal) -> tuple[str, list[Shipment]]:
    """Return the canonical COI and every leg of it the caller may see, oldest first."""
    canonical = str(parse_coi(coi))
    legs = list(
        session.scalars(
            visible_shipments(principal)
            .where(Shipment.coi == canonical)
            .order_by(Shipment.created_at, Shipment.id)
        )
    )
    if not legs:
        raise NotFoundError(f"no shipment with COI {canonical}", field="coi")
    return canonical, legs


def coi_history(
    *, sessions: sessionmaker[Session], coi: str, principal: Principal
) -> dict[str, Any]:
    """The vein-to-vein history of one COI: every leg the caller may see, oldest first."""
    with sessions() as session:
        canonical, legs = visible_legs(session, coi, principal)
        now = now_us()
        return {"coi": canonical, "legs": [detail(session, leg, now) for leg in legs]}


def get_shipment(
    *, sessions: sessionmaker[Session], shipment_id: int, principal: Principal
) -> dict[str, Any]:
    """Return a shipment with its excursions and latest reading, if the caller may see it."""
    with sessions() as session:
        return detail(session, visible(session, shipment_id, principal), now_us())


def list_shipments(
    *,
    sessions: sessionmaker[Session],
    principal: Principal,
    status: str | None,
    limit: int | None,
    offset: int,
) -> list[dict[str, Any]]:
    """Return the shipments the caller may see, newest first."""
    query = streaming.paged(_shipments_query(principal, status), limit, offset)
    with sessions() as session:
        return [shipment_summary(s) for s in session.scalars(query)]


def stream_shipments(
    *,
    sessions: sessionmaker[Session],
    principal: Principal,
    status: str | None,
    limit: int | None = None,
    offset: int = 0,
) -> Iterator[dict[str, Any]]:
    """Yield the shipments the caller may see, newest first, read in batches (an export)."""
    return streaming.stream_scalars(
        sessions,
        streaming.paged(_shipments_query(principal, status), limit, offset),
        shipment_summary,
    )


def _shipments_query(principal: Principal, status: str | None) -> Select[Shipment]:
    # selectin, not joined, loading: it runs once per batch, so it works with yield_per.
    query = visible_shipments(principal).options(selectinload(Shipment.loggers))
    if status:
        query = query.where(Shipment.status == status)
    return query.order_by(Shipment.id.desc())


def visible(session: Session, shipment_id: int, principal: Principal) -> Shipment:
    """Return a shipment the caller may see, or 404: another site's shipment does not exist."""
    shipment = session.scalars(
        visible_shipments(principal).where(Shipment.id == shipment_id)
    ).first()
    if shipment is None:
        raise NotFoundError(f"shipment {shipment_id} not found")
    return shipment


def _window(shipment: Shipment) -> Any:
    clause = and_(
        Reading.logger_id.in_(
            select(ShipmentLogger.logger_id).where(ShipmentLogger.shipment_id == shipment.id)
        ),
        Reading.time_us >= to_us(shipment.monitoring_from),
    )
    if shipment.monitoring_until is not None:
        clause = and_(clause, Reading.time_us <= to_us(shipment.monitoring_until))
    return clause


def detail(session: Session, shipment: Shipment, now: int | None = None) -> dict[str, Any]:
    """The shipment as GET shows it: custody chain, receipts, excursions, latest reading."""
    from coldchain.services.alarms import shipment_alarms
    from coldchain.services.custody import custody_view

    now = now_us() if now is None else now
    body = shipment_summary(shipment)
    latest = session.execute(
        select(Reading)
        .where(_window(shipment), Reading.name == "temp")
        .order_by(Reading.time_us.desc())
        .limit(1)
    ).scalar_one_or_none()
    excursions = session.scalars(
        select(Excursion)
        .where(Excursion.shipment_id == shipment.id)
        .order_by(Excursion.started_us, Excursion.id)
    )
    body["latest_reading"] = None if latest is None else reading_view(latest)
    body["excursions"] = [excursion_view(e, now_us=now) for e in excursions]
    body.update(custody_view(session, shipment))
    body["alarms"] = shipment_alarms(session, shipment.id)
    body.update(science.shipment_science(session, shipment))
    body.update(holdtime.shipment_fields(session, shipment))
    body["linked_legs"] = [
        {"id": other.id, "leg": other.leg, "status": other.status}
        for other in session.scalars(
            select(Shipment)
            .where(Shipment.coi == shipment.coi, Shipment.id != shipment.id)
            .order_by(Shipment.id)
        )
    ]
    return body


class ReadingRow(Protocol):
    """What a reading object is made of: a stored Reading, or a row of its columns."""

    logger_id: str
    time_us: int
    received_us: int
    value: float


def reading_view(row: ReadingRow) -> dict[str, Any]:
    """Return a reading object as the contract names its fields."""
    return {
        "logger_id": row.logger_id,
        "time": rfc3339(row.time_us),
        "received_at": rfc3339(row.received_us),
        "temp_c": row.value,
    }


def shipment_readings(
    *,
    sessions: sessionmaker[Session],
    shipment_id: int,
    principal: Principal,
    since: datetime | None,
    until: datetime | None,
    logger_id: str | None,
    limit: int | None,
    offset: int,
) -> list[dict[str, Any]]:
    """Return a shipment's temperature readings in its monitoring window, oldest first."""
    with sessions() as session:
        shipment = visible(session, shipment_id, principal)
        query = _readings_query(shipment, since, until, logger_id)
        return [reading_view(r) for r in session.execute(streaming.paged(query, limit, offset))]


def stream_shipment_readings(
    *,
    sessions: sessionmaker[Session],
    shipment_id: int,
    principal: Principal,
    since: datetime | None,
    until: datetime | None,
    logger_id: str | None,
    limit: int | None = None,
    offset: int = 0,
) -> Iterator[dict[str, Any]]:
    """Yield a shipment's temperature readings, oldest first, read in batches (an export).

    The caller's right to see the shipment is checked here, before the first row is read:
    another site's shipment is a NotFoundError, not an empty export.
    """
    with sessions() as session:
        shipment = visible(session, shipment_id, principal)
        query = _readings_query(shipment, since, until, logger_id)
    return streaming.stream_rows(sessions, streaming.paged(query, limit, offset), reading_view)


def _readings_query(
    shipment: Shipment, since: datetime | None, until: datetime | None, logger_id: str | None
) -> Select[str, int, int, float]:
    # The columns, not Reading objects: a million ORM objects cost more than the rows.
    query = select(Reading.logger_id, Reading.time_us, Reading.received_us, Reading.value).where(
        _window(shipment), Reading.name == "temp"
    )
    if since is not None:
        query = query.where(Reading.time_us >= to_us(since))
    if until is not None:
        query = query.where(Reading.time_us <= to_us(until))
    if logger_id is not None:
        query = query.where(Reading.logger_id == logger_id)
    return query.order_by(Reading.time_us, Reading.logger_id)


@dataclass(frozen=True)
class ExcursionFilter:
    """Filters of the excursion log; times select excursions overlapping [since, until]."""

    since: datetime | None = None
    until: datetime | None = None
    site: str | None = None
    kind: str | None = None
    status: str | None = None
    shipment_id: int | None = None
    # A QA decision, "none" (never dispositioned) or "undecided" (none on the excursion as
    # it now stands; withdrawn ones excluded): QA's work list.
    disposition: str | None = None


def list_excursions(
    *,
    sessions: sessionmaker[Session],
    principal: Principal,
    filters: ExcursionFilter,
    limit: int | None,
    offset: int,
) -> list[dict[str, Any]]:
    """Return the excursions the caller may see, oldest first."""
    query = streaming.paged(_excursions_query(principal, filters), limit, offset)
    now = now_us()
    with sessions() as session:
        if filters.shipment_id is not None:
            visible(session, filters.shipment_id, principal)
        return [excursion_view(e, now_us=now) for e in session.scalars(query)]


def stream_excursions(
    *,
    sessions: sessionmaker[Session],
    principal: Principal,
    filters: ExcursionFilter,
    limit: int | None = None,
    offset: int = 0,
) -> Iterator[dict[str, Any]]:
    """Yield the excursions the caller may see, oldest first, read in batches (an export).

    A shipment filter is checked here, before the first row is read: another site's
    shipment is a NotFoundError, not an empty export.
    """
    if filters.shipment_id is not None:
        with sessions() as session:
            visible(session, filters.shipment_id, principal)
    now = now_us()
    return streaming.stream_scalars(
        sessions,
        streaming.paged(_excursions_query(principal, filters), limit, offset),
        lambda e: excursion_view(e, now_us=now),
    )


def _excursions_query(principal: Principal, filters: ExcursionFilter) -> Select[Excursion]:
    query = select(Excursion)
    visible_to = visible_shipments(principal)
    if visible_to.whereclause is not None:
        # Only for a caller who sees some shipments: "IN (every shipment)" filters nothing,
        # but it makes SQLite read the whole log shipment by shipment, then sort it.
        query = query.where(Excursion.shipment_id.in_(visible_to.with_only_columns(Shipment.id)))
    if filters.shipment_id is not None:
        query = query.where(Excursion.shipment_id == filters.shipment_id)
    if filters.kind:
        query = query.where(Excursion.kind == filters.kind.upper())
    if filters.status:
        query = query.where(Excursion.status == filters.status.upper())
    if filters.site:
        query = query.where(
            exists().where(
                Shipment.id == Excursion.shipment_id,
                or_(
                    Shipment.origin_site_id == filters.site,
                    Shipment.destination_site_id == filters.site,
                ),
            )
        )
    if filters.disposition == "none":
        query = query.where(Excursion.disposition.is_(None))
    elif filters.disposition == "undecided":
        query = query.where(
            or_(
                Excursion.disposition.is_(None),
                Excursion.disposition_version != Excursion.version,
            ),
            or_(Excursion.resolution.is_(None), Excursion.resolution.not_in(WITHDRAWN)),
        )
    elif filters.disposition:
        query = query.where(Excursion.disposition == filters.disposition)
    if filters.until is not None:
        query = query.where(Excursion.started_us <= to_us(filters.until))
    if filters.since is not None:
        query = query.where(
            or_(Excursion.ended_us.is_(None), Excursion.ended_us >= to_us(filters.since))
        )
    return query.order_by(Excursion.started_us, Excursion.id)


def count_open_excursions(*, sessions: sessionmaker[Session]) -> dict[str, int]:
    """Return how many excursions are open, by kind (for /metrics)."""
    with sessions() as session:
        rows = session.execute(
            select(Excursion.kind, func.count())
            .where(Excursion.status == "OPEN")
            .group_by(Excursion.kind)
        )
        return {kind: n for kind, n in rows}
