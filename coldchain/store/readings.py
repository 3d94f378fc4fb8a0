"""Readings: idempotent bulk insert and the series queries that excursion detection needs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, and_, select
from sqlalchemy.dialects import postgresql, sqlite

from coldchain.domain.profiles import Profile
from coldchain.domain.senml import Reading
from coldchain.store.models import Reading as ReadingRow

readings = ReadingRow.__table__


class ConcurrentInsertError(Exception):
    """Another writer stored some of the same readings meanwhile: retry the batch."""


@dataclass
class InsertOutcome:
    """What became of each reading handed to `insert_readings`."""

    stored: list[Reading] = field(default_factory=list)
    duplicates: list[Reading] = field(default_factory=list)
    # (the refused reading, the value that stands)
    conflicts: list[tuple[Reading, float]] = field(default_factory=list)


def _insert_statement(conn: Connection):  # type: ignore[no-untyped-def]
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(readings).on_conflict_do_nothing()


def _existing(
    conn: Connection, logger_id: str, name: str, times: Sequence[int]
) -> dict[int, float]:
    rows = conn.execute(
        select(readings.c.time_us, readings.c.value).where(
            readings.c.logger_id == logger_id,
            readings.c.name == name,
            readings.c.time_us.between(min(times), max(times)),
        )
    )
    return {time_us: value for time_us, value in rows}


def insert_readings(conn: Connection, batch: Iterable[tuple[Reading, int]]) -> InsertOutcome:
    """Store new readings once; classify the rest as duplicates or conflicts (first stands).

    `batch` pairs each reading with its message's arrival time, in arrival order.
    """
    outcome = InsertOutcome()
    first: dict[tuple[str, str, int], tuple[Reading, int]] = {}
    for reading, received_us in batch:
        key = (reading.logger_id, reading.name, reading.time_us)
        seen = first.get(key)
        if seen is None:
            first[key] = (reading, received_us)
        elif seen[0].value == reading.value:
            outcome.duplicates.append(reading)
        else:
            outcome.conflicts.append((reading, seen[0].value))
    if not first:
        return outcome
    by_series: dict[tuple[str, str], list[int]] = defaultdict(list)
    for logger_id, name, time_us in first:
        by_series[(logger_id, name)].append(time_us)
    rows: list[dict[str, object]] = []
    for (logger_id, name), times in by_series.items():
        stored = _existing(conn, logger_id, name, times)
        for time_us in times:
            reading, received_us = first[(logger_id, name, time_us)]
            value = stored.get(time_us)
            if value is None:
                outcome.stored.append(reading)
                rows.append(
                    {
                        "logger_id": logger_id,
                        "name": name,
                        "time_us": time_us,
                        "value": reading.value,
                        "received_us": received_us,
                    }
                )
            elif value == reading.value:
                outcome.duplicates.append(reading)
            else:
                outcome.conflicts.append((reading, value))
    if rows:
        result = conn.execute(_insert_statement(conn), rows)
        if result.rowcount not in (-1, len(rows)):
            raise ConcurrentInsertError(f"{len(rows) - result.rowcount} readings appeared meanwhile")
    return outcome


class SqlReadingSource:
    """One logger's temperature series, for `excursions.reevaluate`."""

    def __init__(self, conn: Connection, logger_id: str, profile: Profile):
        self._conn = conn
        self._series = and_(readings.c.logger_id == logger_id, readings.c.name == "temp")
        in_range = []
        if profile.max_c is not None:
            in_range.append(readings.c.value <= profile.max_c)
        if profile.min_c is not None:
            in_range.append(readings.c.value >= profile.min_c)
        self._in_range = and_(*in_range) if in_range else None

    def _in_range_where(self):  # type: ignore[no-untyped-def]
        return self._series if self._in_range is None else and_(self._series, self._in_range)

    def last_in_range_before(self, before_us: int, *, not_before_us: int | None) -> int | None:
        """Return the time of the latest in-range reading before `before_us`."""
        query = select(readings.c.time_us).where(
            self._in_range_where(), readings.c.time_us < before_us
        )
        if not_before_us is not None:
            query = query.where(readings.c.time_us >= not_before_us)
        return self._conn.execute(  # type: ignore[no-any-return]
            query.order_by(readings.c.time_us.desc()).limit(1)
        ).scalar()

    def first_in_range_after(self, after_us: int, *, not_after_us: int | None) -> int | None:
        """Return the time of the earliest in-range reading after `after_us`."""
        query = select(readings.c.time_us).where(
            self._in_range_where(), readings.c.time_us > after_us
        )
        if not_after_us is not None:
            query = query.where(readings.c.time_us <= not_after_us)
        return self._conn.execute(  # type: ignore[no-any-return]
            query.order_by(readings.c.time_us.asc()).limit(1)
        ).scalar()

    def readings_between(self, from_us: int, until_us: int | None) -> list[tuple[int, float]]:
        """Return the readings in [from_us, until_us], sorted by time."""
        query = select(readings.c.time_us, readings.c.value).where(
            self._series, readings.c.time_us >= from_us
        )
        if until_us is not None:
            query = query.where(readings.c.time_us <= until_us)
        return [(t, v) for t, v in self._conn.execute(query.order_by(readings.c.time_us))]

    def latest_time(self, *, not_before_us: int, not_after_us: int | None) -> int | None:
        """Return the time of the latest reading inside the window."""
        query = select(readings.c.time_us).where(
            self._series, readings.c.time_us >= not_before_us
        )
        if not_after_us is not None:
            query = query.where(readings.c.time_us <= not_after_us)
        return self._conn.execute(  # type: ignore[no-any-return]
            query.order_by(readings.c.time_us.desc()).limit(1)
        ).scalar()

    def first_time_after(self, after_us: int) -> int | None:
        """Return the time of the earliest reading after `after_us` (in range or not)."""
        query = select(readings.c.time_us).where(self._series, readings.c.time_us > after_us)
        return self._conn.execute(  # type: ignore[no-any-return]
            query.order_by(readings.c.time_us.asc()).limit(1)
        ).scalar()
