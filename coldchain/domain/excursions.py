"""Excursions: what a logger's readings say about the product's temperature (CONTRACT section 3).

Everything here is a pure function of the readings, the profile and the monitoring window, so
the same readings in any arrival order give the same excursions. Times are integer
microseconds since the Unix epoch (``*_us``); durations are float seconds (``*_s``); a reading
is a ``(time_us, temp_c)`` tuple.

Edge cases decided here (the contract is silent on them):

- A run ends at the first reading that is not on its side: an in-range reading, or a reading
  out of range on the other side (HIGH directly followed by LOW closes the HIGH at the LOW
  reading, which starts the LOW run).
- A signal loss inside a run does not end the run: both are reported, and the run's duration
  includes the gap (the contract measures a run up to the next in-range reading).
- A run with no reading after it stays open even once the monitoring window has ended; only
  the trailing signal loss is closed at the window end.
- The time from the window start to the first reading is not itself a loss: it is neither a
  gap between consecutive readings nor silence "until now" (``monitoring_from`` may be given
  in the past, before the logger was switched on, and its backlog may fill it). Silence
  before the first reading counts from ``silent_since_us`` (the caller passes the later of
  the window start and the shipment's creation; default: none). A logger with no reading is
  silent from then until now; when its first reading comes more than ``signal_loss_s``
  after ``silent_since_us``, that hole is a closed SIGNAL_LOSS (not a recovery).
- The profile's ``startup_ignore_s`` moves the judged window's start later: readings in the
  first ``startup_ignore_s`` of the monitoring window are not judged at all (while the
  shipper settles), exactly as if the window began after them. Silence counts from the
  judged start at the earliest. `detect_excursions` applies it to ``start_us`` and
  `slice_query` to ``window_from_us``; a caller passes the monitoring window as it is.
- Durations are compared with ``grace_s`` and ``signal_loss_s`` exactly as the reported
  ``duration_s`` values (``us / 1e6``), so a reported excursion always satisfies
  ``duration_s >= grace_s`` and a reported gap ``duration_s > signal_loss_s``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import islice
from typing import Literal, Protocol, TypeAlias

from coldchain.domain.profiles import Profile

__all__ = [
    "Excursion",
    "ExcursionClosed",
    "ExcursionEvent",
    "ExcursionOpened",
    "ExcursionUpdated",
    "ExcursionWithdrawn",
    "Kind",
    "ReadingSource",
    "Reevaluation",
    "Resolution",
    "StoredExcursion",
    "detect_excursions",
    "reconcile",
    "reevaluate",
]

_US_PER_S = 1_000_000
# Beyond any real shipment (about 146,000 years): a limit this long is never reached.
_NEVER_US = 2**62


class Kind(StrEnum):
    """The kind of an excursion."""

    HIGH = "HIGH"
    LOW = "LOW"
    SIGNAL_LOSS = "SIGNAL_LOSS"


@dataclass(frozen=True, slots=True)
class Excursion:
    """An excursion as the readings show it; ``ended_us`` is None while it is open."""

    kind: Kind
    started_us: int
    ended_us: int | None
    peak_c: float | None
    duration_s: float

    @property
    def is_open(self) -> bool:
        """Tell whether the excursion has no end yet."""
        return self.ended_us is None


@dataclass(frozen=True, slots=True)
class StoredExcursion:
    """An excursion as the store holds it, with its stable id."""

    id: int
    kind: Kind
    started_us: int
    ended_us: int | None
    peak_c: float | None
    duration_s: float

    @property
    def is_open(self) -> bool:
        """Tell whether the stored excursion has no end yet."""
        return self.ended_us is None

    @property
    def excursion(self) -> Excursion:
        """Return the stored values without the id, to compare with what the readings say."""
        return Excursion(self.kind, self.started_us, self.ended_us, self.peak_c, self.duration_s)


# --------------------------------------------------------------------------------------------
# Detection


def _first_us(limit_s: float, passes: Callable[[float], bool]) -> int:
    """Return the smallest whole number of microseconds whose duration passes the limit."""
    if not limit_s * _US_PER_S < _NEVER_US:
        return _NEVER_US
    # Search around the product rather than trusting it: the reported duration is us / 1e6,
    # and the threshold must agree with it to the last bit.
    us = max(0, math.floor(limit_s * _US_PER_S) - 1)
    while not passes(us / _US_PER_S):
        us += 1
    while us > 0 and passes((us - 1) / _US_PER_S):
        us -= 1
    return us


def detect_excursions(
    readings: Sequence[tuple[int, float]],
    profile: Profile,
    *,
    start_us: int | None,
    until_us: int | None = None,
    now_us: int | None = None,
    silent_since_us: int | None = None,
) -> list[Excursion]:
    """Find every excursion in one logger's readings, sorted by (started_us, kind).

    ``readings`` must be sorted by time with unique times (a violation inside the window
    raises ValueError). Only readings with ``start_us + startup_ignore <= t <= until_us``
    count (a None bound is no bound, and then nothing is ignored). The contract's signal
    losses are gaps between consecutive readings and silence "until now": the time from
    ``start_us`` to the first reading is neither, but silence from ``silent_since_us`` (when
    given) to the first reading is. The trailing loss is judged only when ``now_us`` is given,
    from the latest reading or, with none, from ``silent_since_us`` (default ``start_us``),
    and is closed at ``until_us`` once the window has ended.
    """
    return _detect(
        readings,
        profile,
        start_us=None if start_us is None else profile.judged_from_us(start_us),
        until_us=until_us,
        now_us=now_us,
        silent_since_us=silent_since_us,
    )


def _detect(
    readings: Sequence[tuple[int, float]],
    profile: Profile,
    *,
    start_us: int | None,
    until_us: int | None,
    now_us: int | None,
    silent_since_us: int | None,
) -> list[Excursion]:
    """Find the excursions of the readings from start_us (already judged: no ignore)."""
    grace_us = _first_us(profile.grace_s, lambda s: s >= profile.grace_s)
    loss_us = _first_us(profile.signal_loss_s, lambda s: s > profile.signal_loss_s)
    high_above = math.inf if profile.max_c is None else profile.max_c
    low_below = -math.inf if profile.min_c is None else profile.min_c

    # Bisect rather than filter: the window is a contiguous slice of a sorted sequence, and a
    # whole shipment may be a million readings.
    lo = 0 if start_us is None else _bisect_time(readings, start_us)
    hi = len(readings) if until_us is None else _bisect_time(readings, until_us + 1)

    found: list[Excursion] = []
    run_kind: Kind | None = None
    run_start = 0
    peak = 0.0
    prev_t: int | None = None
    # Silence before the first reading counts from silent_since (when monitoring began for
    # this logger): a logger silent from the start and then heard from left a real hole.
    silent_from = None
    if silent_since_us is not None:
        silent_from = silent_since_us if start_us is None else max(silent_since_us, start_us)
    for t, temp in islice(readings, lo, hi):
        if prev_t is None:
            if silent_from is not None and t - silent_from >= loss_us:
                found.append(_loss(silent_from, t))
        else:
            gap = t - prev_t
            if gap <= 0:
                raise ValueError(f"readings are not sorted by unique time at {t}")
            if gap >= loss_us:
                found.append(_loss(prev_t, t))
        # Inline out_of_range (limits inclusive) to learn the side in one comparison.
        side = Kind.HIGH if temp > high_above else Kind.LOW if temp < low_below else None
        if side is run_kind:
            if side is Kind.HIGH:
                if temp > peak:
                    peak = temp
            elif side is Kind.LOW and temp < peak:
                peak = temp
        else:
            if run_kind is not None and t - run_start >= grace_us:
                found.append(Excursion(run_kind, run_start, t, peak, (t - run_start) / _US_PER_S))
            run_kind, run_start, peak = side, t, temp
        prev_t = t

    if run_kind is not None and prev_t is not None and prev_t - run_start >= grace_us:
        found.append(Excursion(run_kind, run_start, None, peak, (prev_t - run_start) / _US_PER_S))

    # Nothing before the window is monitored: silence cannot count from earlier.
    last_us = prev_t if prev_t is not None else silent_from if silent_from is not None else start_us
    if now_us is not None and last_us is not None:
        if until_us is not None and until_us <= now_us:
            # The window has ended: silence up to its end is a finished fact.
            if until_us - last_us >= loss_us:
                found.append(_loss(last_us, until_us))
        elif now_us - last_us >= loss_us:
            found.append(
                Excursion(Kind.SIGNAL_LOSS, last_us, None, None, (now_us - last_us) / _US_PER_S)
            )

    found.sort(key=_order)
    return found


def _bisect_time(readings: Sequence[tuple[int, float]], t: int) -> int:
    """Return the index of the first reading at or after time t."""
    lo, hi = 0, len(readings)
    while lo < hi:
        mid = (lo + hi) // 2
        if readings[mid][0] < t:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _loss(from_us: int, to_us: int) -> Excursion:
    """Return the closed signal loss between two times."""
    return Excursion(Kind.SIGNAL_LOSS, from_us, to_us, None, (to_us - from_us) / _US_PER_S)


def _order(excursion: Excursion | StoredExcursion) -> tuple[int, str]:
    """Return the result order of an excursion."""
    return (excursion.started_us, excursion.kind)


# --------------------------------------------------------------------------------------------
# Incremental re-evaluation


class ReadingSource(Protocol):
    """The readings of one logger, as the store (SQL) or a test (a sorted list) holds them."""

    def last_in_range_before(self, before_us: int, *, not_before_us: int | None) -> int | None:
        """Return the time of the latest in-range reading with not_before_us <= t < before_us."""
        ...

    def first_in_range_after(self, after_us: int, *, not_after_us: int | None) -> int | None:
        """Return the time of the earliest in-range reading with after_us < t <= not_after_us."""
        ...

    def readings_between(self, from_us: int, until_us: int | None) -> list[tuple[int, float]]:
        """Return all readings with from_us <= t <= until_us (None: no upper bound), sorted."""
        ...


@dataclass(frozen=True, slots=True)
class Reevaluation:
    """The excursions found again over a slice of the window, and which starts they decide."""

    from_us: int
    until_us: int | None
    found: list[Excursion]

    def covers(self, started_us: int) -> bool:
        """Tell whether an excursion starting then is decided by this re-evaluation."""
        return self.from_us <= started_us and (self.until_us is None or started_us < self.until_us)


@dataclass(frozen=True, slots=True)
class SliceQuery:
    """What a re-evaluation reads: the touched span moved into the window, and the window.

    The store answers it with t0 (the last in-range reading before the span), t1 (the first
    one after it) and the readings from t0 (or the window start) to t1 (or the window end):
    see `reevaluate`, which asks a ReadingSource, and `reevaluate_slice`, which takes the
    answer from a store that fetches the slices of many loggers at once.
    """

    span_from_us: int
    span_until_us: int
    window_from_us: int
    window_until_us: int | None

    def readings_from(self, t0_us: int | None) -> int:
        """Return where the readings of the slice start, given t0."""
        return self.window_from_us if t0_us is None else t0_us

    def readings_until(self, t1_us: int | None) -> int | None:
        """Return where the readings of the slice end (None: no end), given t1."""
        return self.window_until_us if t1_us is None else t1_us


@dataclass(frozen=True, slots=True)
class Slice:
    """What the store holds for a SliceQuery: t0, t1 and the readings from t0 to t1."""

    t0_us: int | None
    t1_us: int | None
    readings: list[tuple[int, float]]


def read_slice(source: ReadingSource, query: SliceQuery) -> Slice:
    """Read a slice from a source: the last in-range reading before the span, the first
    after it, and every reading between them (or the window's edges)."""
    t0 = source.last_in_range_before(query.span_from_us, not_before_us=query.window_from_us)
    t1 = source.first_in_range_after(query.span_until_us, not_after_us=query.window_until_us)
    readings = source.readings_between(query.readings_from(t0), query.readings_until(t1))
    return Slice(t0, t1, readings)


def slice_query(
    *,
    window_from_us: int,
    window_until_us: int | None,
    touched_from_us: int,
    touched_until_us: int,
    startup_ignore_s: float = 0.0,
) -> SliceQuery:
    """Return what re-evaluating readings newly stored in [touched_from, touched_until] reads.

    The window is the monitoring window; its first ``startup_ignore_s`` (the profile's) are
    left out of the query's window, so nothing in them is read or judged.
    """
    if touched_from_us > touched_until_us:
        raise ValueError("touched span ends before it starts")
    window_from_us += round(startup_ignore_s * _US_PER_S)
    return SliceQuery(
        _clamp(touched_from_us, window_from_us, window_until_us),
        _clamp(touched_until_us, window_from_us, window_until_us),
        window_from_us,
        window_until_us,
    )


def reevaluate(
    source: ReadingSource,
    profile: Profile,
    *,
    window_from_us: int,
    window_until_us: int | None,
    touched_from_us: int,
    touched_until_us: int,
    now_us: int | None,
    silent_since_us: int | None = None,
) -> Reevaluation:
    """Re-detect the excursions that readings newly stored in [touched_from, touched_until] decide.

    An in-range reading ends every run and every gap before it and starts none, so the
    excursions starting in [t0, t1) depend only on the readings in [t0, t1], where t0 is the
    last in-range reading before the touched span and t1 the first one after it; all other
    excursions are untouched by readings inside the span. Without t0 the slice starts at the
    window start; without t1 it runs to the window end (trailing rules with ``now_us``, and
    ``silent_since_us`` for a logger with no reading yet). Reconcile the stored excursions
    that the result ``covers`` with ``found``.

    Silence changes excursions with no reading arriving, so also call this with
    ``touched_from_us = touched_until_us = now_us`` when monitoring starts and periodically:
    a touched span outside the window is moved to its nearest edge, which re-judges the
    trailing silence (and closes the trailing loss at the window end once it is over).
    """
    query = slice_query(
        window_from_us=window_from_us,
        window_until_us=window_until_us,
        touched_from_us=touched_from_us,
        touched_until_us=touched_until_us,
        startup_ignore_s=profile.startup_ignore_s,
    )
    return reevaluate_slice(
        query,
        profile,
        read_slice(source, query),
        now_us=now_us,
        silent_since_us=silent_since_us,
    )


def reevaluate_slice(
    query: SliceQuery,
    profile: Profile,
    read: Slice,
    *,
    now_us: int | None,
    silent_since_us: int | None = None,
) -> Reevaluation:
    """Re-detect the excursions of a slice the store has read (see `reevaluate`)."""
    t0_us, t1_us = read.t0_us, read.t1_us
    from_us = query.readings_from(t0_us)
    found = _detect(
        read.readings,
        profile,
        start_us=from_us,
        until_us=query.readings_until(t1_us),
        # Trailing silence is judged up to now only while the slice runs to the window end.
        now_us=now_us if t1_us is None else None,
        silent_since_us=silent_since_us if t0_us is None else None,
    )
    # The slice decides nothing outside [t0, t1); dropping such finds keeps the caller's
    # reconciliation to the rows it was asked about, whatever the slice's edges produce.
    slice_ = Reevaluation(from_us=from_us, until_us=t1_us, found=[])
    return Reevaluation(from_us, t1_us, [e for e in found if slice_.covers(e.started_us)])


def _clamp(t_us: int, low_us: int, high_us: int | None) -> int:
    """Return the time moved into [low_us, high_us]."""
    t_us = max(t_us, low_us)
    return t_us if high_us is None else min(t_us, high_us)


# --------------------------------------------------------------------------------------------
# Reconciliation with the store

Resolution: TypeAlias = Literal["recovered", "retracted"]


@dataclass(frozen=True, slots=True)
class ExcursionOpened:
    """A new excursion appeared in the readings; insert it."""

    excursion: Excursion


@dataclass(frozen=True, slots=True)
class ExcursionUpdated:
    """A stored excursion got new values (still open, still closed, or reopened)."""

    id: int
    excursion: Excursion


@dataclass(frozen=True, slots=True)
class ExcursionClosed:
    """A stored open excursion got its end."""

    id: int
    excursion: Excursion


@dataclass(frozen=True, slots=True)
class ExcursionWithdrawn:
    """The readings no longer show a stored excursion; keep it, marked with why."""

    id: int
    resolution: Resolution


ExcursionEvent: TypeAlias = (
    ExcursionOpened | ExcursionUpdated | ExcursionClosed | ExcursionWithdrawn
)


_Interval: TypeAlias = Excursion | StoredExcursion


def _meet(a: _Interval, b: _Interval) -> bool:
    """Tell whether two closed intervals share a point (an open end is +infinity)."""
    return (a.ended_us is None or b.started_us <= a.ended_us) and (
        b.ended_us is None or a.started_us <= b.ended_us
    )


def _share_time(a: _Interval, b: _Interval) -> bool:
    """Tell whether two intervals share more than a single instant."""
    start = max(a.started_us, b.started_us)
    return (a.ended_us is None or start < a.ended_us) and (b.ended_us is None or start < b.ended_us)


def _same_values(old: StoredExcursion, new: Excursion) -> bool:
    """Tell whether a stored excursion already holds exactly what was found."""
    return old.excursion == new


def _ends_before(excursion: StoredExcursion, t_us: int) -> bool:
    """Tell whether an excursion is over before a time."""
    return excursion.ended_us is not None and excursion.ended_us < t_us


def _match_greedily(
    olds: list[StoredExcursion],
    news: list[Excursion],
    old_match: list[int | None],
    new_match: list[int | None],
    fits: Callable[[StoredExcursion, Excursion], bool],
) -> None:
    """Pair each unmatched found excursion, in order of start, with the first stored that fits."""
    first = 0
    for j, new in enumerate(news):
        if new_match[j] is not None:
            continue
        # Stored ones of a kind barely overlap each other, so skipping those wholly before the
        # found one keeps this near linear for long shipments.
        while first < len(olds) and (
            old_match[first] is not None or _ends_before(olds[first], new.started_us)
        ):
            first += 1
        for i in range(first, len(olds)):
            if new.ended_us is not None and olds[i].started_us > new.ended_us:
                break
            if old_match[i] is None and fits(olds[i], news[j]):
                old_match[i], new_match[j] = j, i
                break


def reconcile(
    stored: Sequence[StoredExcursion], found: Sequence[Excursion]
) -> list[ExcursionEvent]:
    """Turn the stored excursions into the found ones with events that keep stable ids.

    A stored and a found excursion are the same one when their kinds are equal and their
    closed intervals meet (an open end is +infinity); they are matched one-to-one, greedily in
    order of start, preferring first identical values, then intervals sharing more than an
    instant, then intervals that only touch. Pass only the current (not withdrawn) stored
    excursions that the re-evaluation covers. Events come in order of start.
    """
    keyed: list[tuple[tuple[int, str], ExcursionEvent]] = []
    for kind in Kind:
        # Compare with ==, not is: a store may hand back kinds as plain strings.
        olds = sorted((s for s in stored if s.kind == kind), key=lambda s: (s.started_us, s.id))
        news = sorted((f for f in found if f.kind == kind), key=lambda f: f.started_us)
        old_match: list[int | None] = [None] * len(olds)
        new_match: list[int | None] = [None] * len(news)
        # Adjacent signal losses touch at the reading between them: matching on touching alone
        # first would hand a gap's id (and its QA disposition) to its neighbour after a backfill.
        for fits in (_same_values, _share_time, _meet):
            _match_greedily(olds, news, old_match, new_match, fits)
        for new, i in zip(news, new_match, strict=True):
            if i is None:
                keyed.append((_order(new), ExcursionOpened(new)))
                continue
            old = olds[i]
            if _same_values(old, new):
                continue
            event: ExcursionEvent
            if old.is_open and not new.is_open:
                event = ExcursionClosed(old.id, new)
            else:
                event = ExcursionUpdated(old.id, new)
            keyed.append((_order(new), event))
        for old, j in zip(olds, old_match, strict=True):
            if j is None:
                # A signal loss that readings now fill was a gap in transmission, not in care.
                resolution: Resolution = "recovered" if kind is Kind.SIGNAL_LOSS else "retracted"
                keyed.append((_order(old), ExcursionWithdrawn(old.id, resolution)))
    keyed.sort(key=lambda pair: pair[0])
    return [event for _, event in keyed]
