"""Use cases of the ingest worker: store a batch of MQTT messages in one transaction."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, or_, select, tuple_
from sqlalchemy.orm import Session, sessionmaker

from coldchain.domain import excursions as exc
from coldchain.domain.lifecycle import FINISHED
from coldchain.domain.profiles import Profile
from coldchain.domain.science import excursion_severity
from coldchain.domain.senml import (
    PackLimits,
    Reading,
    Reason,
    Refusal,
    logger_id_from_topic,
    parse_pack,
)
from coldchain.services import audit, holdtime, science
from coldchain.services.timefmt import from_us, to_us
from coldchain.services.views import excursion_view
from coldchain.store.counters import add_counts
from coldchain.store.models import (
    DeadLetter,
    DeadLetterMessage,
    Excursion,
    Logger,
    Shipment,
    ShipmentLogger,
)
from coldchain.store.readings import (
    SliceRequest,
    SqlReadingSource,
    fetch_slices,
    insert_readings,
    lock_loggers,
    try_lock,
)

STATUS_PAYLOADS = {b"online": True, b"offline": False}


@dataclass(frozen=True, slots=True)
class Incoming:
    """One MQTT message as the broker delivered it."""

    topic: str
    payload: bytes
    received_us: int


@dataclass(slots=True)
class MessageOutcome:
    """What became of one message: the end-to-end ack figures for its logger."""

    logger_id: str | None
    accepted: int = 0
    first_us: int | None = None
    last_us: int | None = None
    refusals: list[Refusal] = field(default_factory=list)

    def accept(self, time_us: int) -> None:
        """Count one stored or duplicate reading of this message."""
        self.accepted += 1
        if self.first_us is None or time_us < self.first_us:
            self.first_us = time_us
        if self.last_us is None or time_us > self.last_us:
            self.last_us = time_us


@dataclass
class BatchOutcome:
    """The result of one committed batch."""

    messages: list[MessageOutcome]
    alerts: list[dict[str, Any]]
    counts: dict[str, int]


class KnownLoggers:
    """The registered logger ids, cached; a miss asks the database again."""

    def __init__(self) -> None:
        self._ids: set[str] = set()

    def contains(self, conn: Connection, logger_id: str) -> bool:
        """Tell whether a logger is registered."""
        if logger_id in self._ids:
            return True
        if conn.execute(select(Logger.id).where(Logger.id == logger_id)).first() is None:
            return False
        self._ids.add(logger_id)
        return True


def store_batch(
    *,
    sessions: sessionmaker[Session],
    messages: Sequence[Incoming],
    profiles: Mapping[str, Profile],
    limits: PackLimits,
    known: KnownLoggers,
    now_us: int,
) -> BatchOutcome:
    """Parse, store and dead-letter a batch, then re-evaluate excursions, in one transaction."""
    started = time.perf_counter()
    counts: dict[str, int] = {"messages": len(messages), "batches": 1}
    outcomes: list[MessageOutcome] = []
    with sessions.begin() as session:
        conn = session.connection()
        batch: list[Reading] = []
        received: list[int] = []
        source: list[MessageOutcome] = []
        for message in messages:
            outcome, parsed = _parse(session, conn, message, limits, known)
            outcomes.append(outcome)
            batch.extend(parsed)
            received.extend([message.received_us] * len(parsed))
            source.extend([outcome] * len(parsed))
        lock_loggers(conn, {reading.logger_id for reading in batch})
        stored = insert_readings(conn, batch, received)
        for index in stored.stored:
            source[index].accept(batch[index].time_us)
        for index in stored.duplicates:
            source[index].accept(batch[index].time_us)
        for index, standing in stored.conflicts:
            reading = batch[index]
            source[index].refusals.append(
                Refusal(
                    Reason.CONFLICT,
                    f"{reading.name} at {reading.time_us / 1e6} is {reading.value}, but "
                    f"{standing} is already stored for that logger and time",
                )
            )
        for message, outcome in zip(messages, outcomes, strict=True):
            if outcome.refusals:
                _dead_letter(session, message, outcome)
        counts["readings_stored"] = len(stored.stored)
        counts["readings_duplicate"] = len(stored.duplicates)
        refused: dict[str, int] = {}
        for outcome in outcomes:
            for refusal in outcome.refusals:
                refused[str(refusal.reason)] = refused.get(str(refusal.reason), 0) + 1
        for reason, n in refused.items():
            counts[f"dead_letters:{reason}"] = n
        if refused:
            # One event per batch, not per refusal: a flood of bad payloads must not flood
            # the trail, yet every dead letter is accounted for in it.
            audit.record(
                session,
                actor=audit.SYSTEM_INGEST,
                action="deadletters.stored",
                entity="deadletters",
                entity_id="batch",
                new={
                    "by_reason": dict(sorted(refused.items())),
                    "messages": sum(1 for o in outcomes if o.refusals),
                },
            )
        new_readings = [batch[i] for i in stored.stored]
        touched = _touched(new_readings)
        # One read of the shipments the batch touched, for the three rules that judge them.
        links = monitored_links(session, touched)
        alerts = reevaluate_touched(session, touched, profiles=profiles, now_us=now_us, links=links)
        science.after_batch(session, new_readings, profiles=profiles, now_us=now_us, links=links)
        # The time to parse, store and re-evaluate the batch; the commit itself is not in it.
        counts["batch_us"] = max(1, round((time.perf_counter() - started) * 1e6))
        add_counts(conn, counts)
    return BatchOutcome(outcomes, alerts, counts)


def _parse(
    session: Session,
    conn: Connection,
    message: Incoming,
    limits: PackLimits,
    known: KnownLoggers,
) -> tuple[MessageOutcome, list[Reading]]:
    if message.topic.startswith("coldchain/v1/loggers/") and message.topic.endswith("/status"):
        return _status(session, conn, message, known), []
    logger_id = logger_id_from_topic(message.topic)
    outcome = MessageOutcome(logger_id)
    if logger_id is None:
        outcome.refusals.append(
            Refusal(Reason.BAD_TOPIC, f"not a readings topic: {message.topic!r}")
        )
        return outcome, []
    if not known.contains(conn, logger_id):
        outcome.refusals.append(
            Refusal(Reason.UNKNOWN_LOGGER, f"logger {logger_id} is not registered")
        )
        return outcome, []
    pack = parse_pack(
        message.payload, logger_id=logger_id, received_us=message.received_us, limits=limits
    )
    outcome.refusals.extend(pack.refusals)
    return outcome, pack.readings


def _status(
    session: Session, conn: Connection, message: Incoming, known: KnownLoggers
) -> MessageOutcome:
    logger_id = message.topic.split("/")[3]
    outcome = MessageOutcome(logger_id)
    online = STATUS_PAYLOADS.get(message.payload.strip().lower())
    if online is None:
        outcome.refusals.append(
            Refusal(Reason.BAD_STATUS, "status payload must be 'online' or 'offline'")
        )
    elif not known.contains(conn, logger_id):
        outcome.refusals.append(
            Refusal(Reason.UNKNOWN_LOGGER, f"logger {logger_id} is not registered")
        )
    else:
        row = session.get(Logger, logger_id)
        if row is not None:
            row.online = online
            row.status_at = from_us(message.received_us)
    return outcome


def _touched(readings: Sequence[Reading]) -> dict[str, tuple[int, int]]:
    spans: dict[str, tuple[int, int]] = {}
    for reading in readings:
        if reading.name != "temp":
            continue
        span = spans.get(reading.logger_id)
        if span is None:
            spans[reading.logger_id] = (reading.time_us, reading.time_us)
        else:
            spans[reading.logger_id] = (
                min(span[0], reading.time_us),
                max(span[1], reading.time_us),
            )
    return spans


def _text(value: str) -> str:
    """Text as PostgreSQL can store it: a NUL (refused there) written as \\x00."""
    return value.replace("\x00", "\\x00")


def _dead_letter(session: Session, message: Incoming, outcome: MessageOutcome) -> None:
    letters = [
        DeadLetter(reason=str(r.reason), detail=_text(r.detail), record_index=r.record_index)
        for r in outcome.refusals
    ]
    session.add(
        DeadLetterMessage(
            topic=_text(message.topic),
            logger_id=outcome.logger_id,
            payload=message.payload,
            received_at=from_us(message.received_us),
            letters=letters,
        )
    )


def dead_letter_whole(
    *, sessions: sessionmaker[Session], message: Incoming, reason: Reason, detail: str
) -> None:
    """Keep a message that can never be stored, so that it can be acked and not lost."""
    outcome = MessageOutcome(logger_id_from_topic(message.topic))
    outcome.refusals.append(Refusal(reason, detail))
    with sessions.begin() as session:
        _dead_letter(session, message, outcome)
        add_counts(session.connection(), {f"dead_letters:{reason}": 1, "messages": 1})
        audit.record(
            session,
            actor=audit.SYSTEM_INGEST,
            action="deadletters.stored",
            entity="deadletters",
            entity_id="batch",
            new={"by_reason": {str(reason): 1}, "messages": 1},
        )


def monitored_links(
    session: Session, touched: Mapping[str, tuple[int, int]]
) -> list[tuple[Shipment, str]]:
    """Each shipment of a touched logger whose monitoring window may hold a touched reading.

    A logger serves shipment after shipment: the ones whose window ended before the
    earliest touched reading, or starts after the latest, are left in the database.
    """
    if not touched:
        return []
    earliest = from_us(min(lo for lo, _hi in touched.values()))
    latest = from_us(max(hi for _lo, hi in touched.values()))
    rows = session.execute(
        select(Shipment, ShipmentLogger.logger_id)
        .join(ShipmentLogger, ShipmentLogger.shipment_id == Shipment.id)
        .where(
            ShipmentLogger.logger_id.in_(list(touched)),
            Shipment.monitoring_from <= latest,
            or_(Shipment.monitoring_until.is_(None), Shipment.monitoring_until >= earliest),
        )
    )
    return [(shipment, logger_id) for shipment, logger_id in rows]


def reevaluate_touched(
    session: Session,
    touched: Mapping[str, tuple[int, int]],
    *,
    profiles: Mapping[str, Profile],
    now_us: int,
    links: Sequence[tuple[Shipment, str]] | None = None,
) -> list[dict[str, Any]]:
    """Re-evaluate excursions of every shipment whose window the new readings touched.

    `links` are `monitored_links(session, touched)` when the caller has them already.
    """
    if not touched:
        return []
    if links is None:
        links = monitored_links(session, touched)
    jobs: list[_Job] = []
    for shipment, logger_id in links:
        lo, hi = touched[logger_id]
        window_from = to_us(shipment.monitoring_from)
        window_until = (
            None if shipment.monitoring_until is None else to_us(shipment.monitoring_until)
        )
        # Readings in the start-up ignore period are not judged (slice_query leaves it out).
        judged_from = profiles[shipment.profile].judged_from_us(window_from)
        lo, hi = max(lo, judged_from), hi if window_until is None else min(hi, window_until)
        if lo > hi:
            continue
        jobs.append(_Job(shipment, logger_id, window_from, window_until, lo, hi))
    holdtime.update_touched(session, touched, links)
    return _reevaluate(session, jobs, profiles, now_us)


def silent_since(shipment: Shipment) -> int:
    """Return when a logger that has sent nothing yet starts to count as silent.

    A shipment created with a past monitoring_from is not in signal loss before its logger
    had the chance to deliver its store-and-forward backlog: silence counts from creation.
    """
    return max(to_us(shipment.monitoring_from), to_us(shipment.created_at))


def check_silence(
    *, sessions: sessionmaker[Session], profiles: Mapping[str, Profile], now_us: int
) -> list[dict[str, Any]]:
    """Open SIGNAL_LOSS for loggers of monitored shipments that have been silent too long."""
    alerts: list[dict[str, Any]] = []
    with sessions.begin() as session:
        conn = session.connection()
        # With several workers, one check at a time is enough: the others skip their turn.
        if not try_lock(conn, "signal-loss-check"):
            return alerts
        rows = session.execute(
            select(Shipment, ShipmentLogger.logger_id)
            .join(ShipmentLogger, ShipmentLogger.shipment_id == Shipment.id)
            .where(Shipment.status.not_in([str(s) for s in FINISHED]))
            .where(Shipment.monitoring_until.is_(None))
        ).all()
        silent = [
            (shipment, logger_id)
            for shipment, logger_id in rows
            if _silent_anchor(conn, shipment, logger_id, profiles, now_us) is not None
        ]
        # Lock only the silent loggers (ingest of the others goes on), then look again:
        # a batch may have brought their readings while we waited for the lock.
        lock_loggers(conn, {logger_id for _shipment, logger_id in silent})
        jobs = []
        for shipment, logger_id in silent:
            anchor = _silent_anchor(conn, shipment, logger_id, profiles, now_us)
            if anchor is not None:
                window_from = to_us(shipment.monitoring_from)
                jobs.append(_Job(shipment, logger_id, window_from, None, anchor, anchor))
        alerts.extend(_reevaluate(session, jobs, profiles, now_us))
    return alerts


def _silent_anchor(
    conn: Connection,
    shipment: Shipment,
    logger_id: str,
    profiles: Mapping[str, Profile],
    now_us: int,
) -> int | None:
    """Return when a monitored logger went silent, if it has been silent too long."""
    profile = profiles[shipment.profile]
    # Silence counts from the end of the start-up ignore period at the earliest.
    window_from = profile.judged_from_us(to_us(shipment.monitoring_from))
    if window_from > now_us:
        return None
    source = SqlReadingSource(conn, logger_id, profile)
    last = source.latest_time(not_before_us=window_from, not_after_us=None)
    anchor = max(silent_since(shipment), window_from) if last is None else last
    if now_us - anchor <= profile.signal_loss_s * 1_000_000:
        return None
    return anchor


@dataclass(frozen=True, slots=True)
class _Job:
    """One logger of one shipment to re-evaluate over a touched span of its window."""

    shipment: Shipment
    logger_id: str
    window_from_us: int
    window_until_us: int | None
    touched_from_us: int
    touched_until_us: int


def _reevaluate(
    session: Session,
    jobs: Sequence[_Job],
    profiles: Mapping[str, Profile],
    now_us: int,
) -> list[dict[str, Any]]:
    """Re-detect the jobs' excursions and bring the stored ones in line, with their alerts.

    The readings of every job are read in one go (`fetch_slices`), and the stored
    excursions they may change in one query: the cost of a batch does not grow with a
    round trip per logger.
    """
    if not jobs:
        return []
    conn = session.connection()
    requests = [
        SliceRequest(
            job.logger_id,
            profiles[job.shipment.profile],
            exc.slice_query(
                window_from_us=job.window_from_us,
                window_until_us=job.window_until_us,
                touched_from_us=job.touched_from_us,
                touched_until_us=job.touched_until_us,
                startup_ignore_s=profiles[job.shipment.profile].startup_ignore_s,
            ),
        )
        for job in jobs
    ]
    results = [
        exc.reevaluate_slice(
            request.query,
            request.profile,
            answer,
            now_us=now_us,
            silent_since_us=silent_since(job.shipment),
        )
        for job, request, answer in zip(jobs, requests, fetch_slices(conn, requests), strict=True)
    ]
    stored: dict[tuple[int, str], list[Excursion]] = {}
    for row in session.scalars(
        select(Excursion).where(
            tuple_(Excursion.shipment_id, Excursion.logger_id).in_(
                [(job.shipment.id, job.logger_id) for job in jobs]
            ),
            Excursion.resolution.is_(None),
            Excursion.started_us >= min(result.from_us for result in results),
        )
    ):
        stored.setdefault((row.shipment_id, row.logger_id), []).append(row)
    alerts: list[dict[str, Any]] = []
    for job, request, result in zip(jobs, requests, results, strict=True):
        rows = {
            row.id: row
            for row in stored.get((job.shipment.id, job.logger_id), [])
            if result.covers(row.started_us)
        }
        alerts.extend(_reconcile(session, job, request.profile, result, rows, now_us))
    return alerts


def _reconcile(
    session: Session,
    job: _Job,
    profile: Profile,
    result: exc.Reevaluation,
    rows: Mapping[int, Excursion],
    now_us: int,
) -> list[dict[str, Any]]:
    shipment, logger_id = job.shipment, job.logger_id
    stored = [
        exc.StoredExcursion(
            r.id, exc.Kind(r.kind), r.started_us, r.ended_us, r.peak_c, r.duration_s
        )
        for r in sorted(rows.values(), key=lambda r: r.id)
    ]
    alerts: list[dict[str, Any]] = []
    now = from_us(now_us)
    for event in exc.reconcile(stored, result.found):
        if isinstance(event, exc.ExcursionOpened):
            row = Excursion(
                shipment_id=shipment.id,
                logger_id=logger_id,
                detected_at=now,
                updated_at=now,
                version=1,
            )
            _apply(row, event.excursion, profile)
            session.add(row)
            session.flush()
            _changed(session, shipment, row, "opened")
            alerts.append({"event": "opened", "excursion": excursion_view(row)})
        elif isinstance(event, exc.ExcursionUpdated | exc.ExcursionClosed):
            row = rows[event.id]
            before = excursion_view(row)
            quiet = row.kind == "SIGNAL_LOSS" and row.ended_us is None and event.excursion.is_open
            _apply(row, event.excursion, profile)
            row.version += 1
            row.updated_at = now
            if isinstance(event, exc.ExcursionClosed):
                _changed(session, shipment, row, "closed", before)
            if not quiet:
                name = "closed" if isinstance(event, exc.ExcursionClosed) else "updated"
                alerts.append({"event": name, "excursion": excursion_view(row)})
        elif isinstance(event, exc.ExcursionWithdrawn):
            row = rows[event.id]
            row.resolution = event.resolution
            row.status = "CLOSED"
            if row.kind == "SIGNAL_LOSS":
                source = SqlReadingSource(session.connection(), logger_id, profile)
                resumed = source.first_time_after(row.started_us)
                row.ended_us = resumed if resumed is not None else row.started_us
                row.duration_s = (row.ended_us - row.started_us) / 1_000_000
            elif row.ended_us is None:
                row.ended_us = row.started_us
            before = excursion_view(row)
            row.version += 1
            row.updated_at = now
            _changed(session, shipment, row, "closed", before)
            alerts.append({"event": "closed", "excursion": excursion_view(row)})
    return alerts


def _changed(
    session: Session,
    shipment: Shipment,
    row: Excursion,
    action: str,
    before: Mapping[str, Any] | None = None,
) -> None:
    """An excursion opened or closed: audit it, and move its shipment to a new version.

    A signer who saw the shipment before the change is then refused as stale: nobody signs
    a receipt on a record without an excursion that has since appeared.
    """
    shipment.version = Shipment.version + 1
    keys = ("shipment_id", "logger_id", "kind", "started_at", "ended_at", "peak_c",
            "duration_s", "status", "resolution", "severity", "version")  # fmt: skip
    after = {key: excursion_view(row)[key] for key in keys}
    old, new = (None, after) if before is None else audit.changes(before, after)
    audit.record(
        session,
        actor=audit.SYSTEM_INGEST,
        action=f"excursion.{action}",
        entity="excursion",
        entity_id=row.id,
        old=old,
        # The kind and severity always, so that a follower of the trail can filter on them.
        new=new
        if before is None
        else {**new, "shipment_id": row.shipment_id, "kind": row.kind, "severity": row.severity},
    )


def _apply(row: Excursion, found: exc.Excursion, profile: Profile) -> None:
    row.kind = str(found.kind)
    row.started_us = found.started_us
    row.ended_us = found.ended_us
    row.peak_c = found.peak_c
    row.duration_s = found.duration_s
    row.status = "OPEN" if found.ended_us is None else "CLOSED"
    row.severity = str(excursion_severity(row.kind, found.peak_c, found.duration_s, profile))


def alert_payload(alert: Mapping[str, Any]) -> bytes:
    """Serialise an excursion event for coldchain/v1/alerts/excursions."""
    return json.dumps(alert, separators=(",", ":")).encode()
