"""Excursion science after each batch: stability budget and rate-of-change alarms (issue 9).

The rules are pure (domain/science.py); this keeps each shipment logger's time out of range
(`StabilityBudget`) and its alarms in line with the stored readings, in the caller's
transaction. A batch reads only the pairs of readings around its new ones (a segment per
touched logger, one statement on PostgreSQL), never a shipment's whole series, except the
first time a shipment logger is judged and, rarely, to find again where a spent budget ran out.

The alarms are a pure function of the readings: the same readings in any arrival order leave
the same OPEN alarms. A backfill that changes a pair (a reading landing between two others)
re-decides the alarms it may change: one the readings no longer show is cleared
(`alarm.cleared`, kept as a historical fact), one they show again is raised again
(`alarm.raised` on the same row), and one whose figures changed is updated (`alarm.updated`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select, tuple_
from sqlalchemy.orm import Session

from coldchain.domain import science
from coldchain.domain.mkt import time_weighted_mkt
from coldchain.domain.profiles import Profile
from coldchain.domain.senml import Reading
from coldchain.services import audit
from coldchain.services.alarms import alarm_view, clear_alarm, raise_alarm
from coldchain.services.timefmt import rfc3339, to_us
from coldchain.store.models import Alarm, Shipment, StabilityBudget, utcnow
from coldchain.store.readings import lock_loggers
from coldchain.store.science import SegmentRequest, fetch_segments, window_readings

BUDGET = "BUDGET_SPENT"
RATE = "RATE_OF_CHANGE"
_EVERYTHING = (0, 2**62)


@dataclass(frozen=True, slots=True)
class _Link:
    """One logger of one shipment, with its profile and judged window."""

    shipment: Shipment
    logger_id: str
    profile: Profile
    from_us: int
    until_us: int | None


def after_batch(
    session: Session,
    readings: Sequence[Reading],
    *,
    profiles: Mapping[str, Profile],
    now_us: int,
    links: Iterable[tuple[Shipment, str]],
) -> None:
    """Bring budgets and alarms in line with a batch's newly stored readings.

    `links` are the shipments of the loggers with new temperatures
    (`ingest.monitored_links`).
    """
    new: dict[str, set[int]] = {}
    values: dict[str, dict[int, float]] = {}
    for reading in readings:
        if reading.name == "temp":
            new.setdefault(reading.logger_id, set()).add(reading.time_us)
            values.setdefault(reading.logger_id, {})[reading.time_us] = reading.value
    if not new:
        return
    judged: list[tuple[_Link, set[int]]] = []
    for shipment, logger_id in links:
        if logger_id not in new:
            continue
        link = _link(shipment, logger_id, profiles)
        inside = {
            t
            for t in new[logger_id]
            if t >= link.from_us and (link.until_us is None or t <= link.until_us)
        }
        if inside:
            judged.append((link, inside))
    _evaluate(session, judged, now_us, values)


def evaluate_shipment(
    session: Session, shipment: Shipment, *, profiles: Mapping[str, Profile], now_us: int
) -> None:
    """Judge a new shipment's loggers over the readings already in its window."""
    logger_ids = [link.logger_id for link in shipment.loggers]
    # As a batch does: a worker storing readings of these loggers meanwhile waits, then
    # sees the shipment and adds its readings to the totals made here.
    lock_loggers(session.connection(), logger_ids)
    links = [(_link(shipment, logger_id, profiles), None) for logger_id in logger_ids]
    _evaluate(session, links, now_us)


def _link(shipment: Shipment, logger_id: str, profiles: Mapping[str, Profile]) -> _Link:
    profile = profiles[shipment.profile]
    until = None if shipment.monitoring_until is None else to_us(shipment.monitoring_until)
    from_us = profile.judged_from_us(to_us(shipment.monitoring_from))
    return _Link(shipment, logger_id, profile, from_us, until)


def _evaluate(
    session: Session,
    links: Sequence[tuple[_Link, set[int] | None]],
    now_us: int,
    values: Mapping[str, Mapping[int, float]] | None = None,
) -> None:
    """Update each link's total from its segment (or its whole window), then its alarms."""
    if not links:
        return
    conn = session.connection()
    keys = [(link.shipment.id, link.logger_id) for link, _new in links]
    totals = {
        (row.shipment_id, row.logger_id): row
        for row in session.scalars(
            select(StabilityBudget).where(
                tuple_(StabilityBudget.shipment_id, StabilityBudget.logger_id).in_(keys)
            )
        )
    }
    incremental: list[tuple[_Link, set[int], StabilityBudget]] = []
    whole: list[_Link] = []
    for link, new in links:
        row = totals.get((link.shipment.id, link.logger_id))
        stale = row is not None and (
            row.judged_from_us != link.from_us
            or (
                link.until_us is not None
                and row.counted_until_us is not None
                and row.counted_until_us > link.until_us
            )
        )
        if row is None or new is None or stale:
            whole.append(link)
        else:
            incremental.append((link, new, row))
    segments = fetch_segments(
        conn,
        [
            SegmentRequest(
                link.logger_id,
                min(new),
                max(new),
                link.from_us,
                link.until_us,
                # The batch's own readings, so that a span holding nothing else is not
                # read back from the database (a pack of 1,000 is 1,000 rows again).
                None if values is None else {t: values[link.logger_id][t] for t in new},
            )
            for link, new, _row in incremental
        ],
    )
    changes: list[tuple[_Link, StabilityBudget, science.SegmentChange, int]] = []
    for (link, new, row), segment in zip(incremental, segments, strict=True):
        change = science.segment_change(segment, new, link.profile)
        if change is None:
            continue
        row.used_us += change.used_delta_us
        row.counted_until_us = max(row.counted_until_us or 0, segment[-1][0])
        row.updated_at = utcnow()
        changes.append((link, row, change, segment[0][0]))
    fulls: list[tuple[_Link, StabilityBudget, list[tuple[int, float]]]] = []
    for link in whole:
        series = window_readings(conn, link.logger_id, link.from_us, link.until_us)
        row = totals.get((link.shipment.id, link.logger_id)) or StabilityBudget(
            shipment_id=link.shipment.id, logger_id=link.logger_id
        )
        _recount(row, link, series)
        session.add(row)
        fulls.append((link, row, series))
    if not changes and not fulls:
        return
    session.flush()
    alarms = _alarms(session, [(c[0], c[2].decided_from_us) for c in changes] + [
        (f[0], _EVERYTHING[0]) for f in fulls
    ])  # fmt: skip
    for link, row, change, segment_from in changes:
        mine = alarms.get((link.shipment.id, link.logger_id), [])
        _sync_rises(
            session, link, change.rises, (change.decided_from_us, change.decided_until_us),
            mine, now_us,
        )  # fmt: skip
        _sync_budget(session, link, row, mine, now_us, changed_from_us=segment_from)
    for link, row, series in fulls:
        mine = alarms.get((link.shipment.id, link.logger_id), [])
        _sync_rises(session, link, science.rises(series, link.profile), _EVERYTHING, mine, now_us)
        _sync_budget(session, link, row, mine, now_us, series=series)


def _recount(row: StabilityBudget, link: _Link, series: Sequence[tuple[int, float]]) -> None:
    profile = link.profile
    row.used_us = science.out_of_range_us(series, profile)
    row.budget_us = (
        None if profile.stability_budget_s is None else round(profile.stability_budget_s * 1e6)
    )
    row.judged_from_us = link.from_us
    row.mkt = profile.mkt
    row.counted_until_us = series[-1][0] if series else None
    row.updated_at = utcnow()


def _alarms(
    session: Session, wanted: Sequence[tuple[_Link, int]]
) -> dict[tuple[int, str], list[Alarm]]:
    """Load the budget alarms of the links, and their rise alarms from the earliest decided."""
    if not wanted:
        return {}
    keys = [(link.shipment.id, link.logger_id) for link, _ in wanted]
    since = min(from_us for _, from_us in wanted)
    found: dict[tuple[int, str], list[Alarm]] = {}
    for row in session.scalars(
        select(Alarm).where(
            tuple_(Alarm.shipment_id, Alarm.logger_id).in_(keys),
            or_(Alarm.kind == BUDGET, and_(Alarm.kind == RATE, Alarm.at_us >= since)),
        )
    ):
        found.setdefault((row.shipment_id, row.logger_id), []).append(row)
    return found


def _rise_detail(link: _Link, rise: science.Rise) -> dict[str, Any]:
    return {
        "from": rfc3339(rise.from_us),
        "from_c": rise.from_c,
        "to_c": rise.to_c,
        "rise_c_per_min": round(rise.rise_c_per_min, 6),
        "max_rise_c_per_min": link.profile.max_rise_c_per_min,
        "profile": link.profile.name,
    }


def _sync_rises(
    session: Session,
    link: _Link,
    rises: Iterable[science.Rise],
    decided: tuple[int, int],
    existing: Sequence[Alarm],
    now_us: int,
) -> None:
    """Make the rise alarms dated within `decided` exactly the rises found there."""
    wanted = {
        rise.at_us: _rise_detail(link, rise)
        for rise in rises
        if decided[0] <= rise.at_us <= decided[1]
    }
    rows = {r.at_us: r for r in existing if r.kind == RATE and decided[0] <= r.at_us <= decided[1]}
    _sync(session, link, RATE, science.Severity.WARNING, wanted, rows, now_us)


def _sync_budget(
    session: Session,
    link: _Link,
    row: StabilityBudget,
    existing: Sequence[Alarm],
    now_us: int,
    *,
    changed_from_us: int | None = None,
    series: Sequence[tuple[int, float]] | None = None,
) -> None:
    """Keep one open BUDGET_SPENT alarm, at the reading where the budget ran out, if it did."""
    rows = {r.at_us: r for r in existing if r.kind == BUDGET}
    use = science.budget_use(row.used_us, link.profile)
    wanted: dict[int, dict[str, Any]] = {}
    if use is not None and use.spent:
        standing = [r for r in rows.values() if r.status == "OPEN"]
        if (
            series is None
            and changed_from_us is not None
            and len(standing) == 1
            and changed_from_us >= standing[0].at_us
        ):
            # Only pairs from the one that ran it out onwards changed: it still ran out there.
            return
        if series is None:
            # Rare: a backfill before the point where the budget ran out. Read it all again.
            series = window_readings(
                session.connection(), link.logger_id, link.from_us, link.until_us
            )
            _recount(row, link, series)
        at_us = science.budget_spent_at_us(series, link.profile)
        if at_us is not None:
            wanted[at_us] = {"budget_s": use.budget_s, "profile": link.profile.name}
    _sync(session, link, BUDGET, science.Severity.CRITICAL, wanted, rows, now_us)


def _sync(
    session: Session,
    link: _Link,
    kind: str,
    severity: science.Severity,
    wanted: Mapping[int, Mapping[str, Any]],
    rows: Mapping[int, Alarm],
    now_us: int,
) -> None:
    """Raise, raise again, update or clear alarms so that the open ones are those wanted."""
    for at_us, detail in sorted(wanted.items()):
        row = rows.get(at_us)
        if row is None:
            raise_alarm(
                session,
                shipment_id=link.shipment.id,
                logger_id=link.logger_id,
                kind=kind,
                severity=str(severity),
                at_us=at_us,
                detail=detail,
            )
        elif row.status != "OPEN" or json.loads(row.detail_json) != detail:
            _restate(session, row, detail)
    for at_us, row in sorted(rows.items()):
        if at_us not in wanted and row.status == "OPEN":
            clear_alarm(session, row, cleared_us=now_us)


def _restate(session: Session, row: Alarm, detail: Mapping[str, Any]) -> None:
    """Open a cleared alarm the readings show again, or give an open one its new figures."""
    before = alarm_view(row)
    action = "alarm.raised" if row.status != "OPEN" else "alarm.updated"
    row.status = "OPEN"
    row.cleared_us = None
    row.detail_json = json.dumps(dict(detail), sort_keys=True)
    row.updated_at = utcnow()
    # A signer who saw the shipment before is refused as stale, as for a new alarm.
    shipment = session.get(Shipment, row.shipment_id)
    if shipment is not None:
        shipment.version = Shipment.version + 1
    if action == "alarm.raised":
        old, new = None, alarm_view(row)
    else:
        old, new = audit.changes(before, alarm_view(row))
        new = {**new, "shipment_id": row.shipment_id, "kind": row.kind}
    audit.record(
        session, actor=audit.SYSTEM_INGEST, action=action, entity="alarm", entity_id=row.id,
        old=old, new=new,
    )  # fmt: skip


def shipment_science(session: Session, shipment: Shipment) -> dict[str, Any]:
    """Return a shipment's `stability` (its worst logger's budget use) and `mkt_c`."""
    rows = list(
        session.scalars(
            select(StabilityBudget)
            .where(StabilityBudget.shipment_id == shipment.id)
            .order_by(StabilityBudget.logger_id)
        )
    )
    stability = None
    budgeted = [row for row in rows if row.budget_us is not None]
    if budgeted:
        worst = max(budgeted, key=lambda row: row.used_us)
        budget_us = worst.budget_us or 0
        stability = {
            "budget_s": budget_us / 1e6,
            "used_s": worst.used_us / 1e6,
            "remaining_s": max(0, budget_us - worst.used_us) / 1e6,
            "spent": worst.used_us >= budget_us,
            "logger_id": worst.logger_id,
        }
    until = None if shipment.monitoring_until is None else to_us(shipment.monitoring_until)
    mkts = [
        time_weighted_mkt(
            window_readings(session.connection(), row.logger_id, row.judged_from_us, until)
        )
        for row in rows
        if row.mkt
    ]
    # The warmest logger's: MKT weighs heat, and the product saw at least that much.
    known = [m for m in mkts if m is not None]
    return {"stability": stability, "mkt_c": round(max(known), 3) if known else None}
