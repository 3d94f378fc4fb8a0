"""Property tests: excursions depend on the readings only, never on how or when they arrived."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from hypothesis import given, settings
from hypothesis import strategies as st

from coldchain.domain.excursions import (
    Excursion,
    ExcursionClosed,
    ExcursionEvent,
    ExcursionOpened,
    ExcursionUpdated,
    ExcursionWithdrawn,
    Kind,
    StoredExcursion,
    detect_excursions,
    reconcile,
    reevaluate,
)
from coldchain.domain.profiles import Profile
from tests.unit.excursion_support import ListSource

PROFILES = [
    Profile("LN2_VAPOR", None, -150.0, 0.0, 900.0),
    Profile("DRY_ICE", None, -60.0, 0.0, 900.0),
    Profile("REFRIGERATED", 2.0, 8.0, 900.0, 900.0),
    Profile("CRT", 15.0, 25.0, 1800.0, 900.0),
    # Both limits with no grace, and odd fractional periods, to reach the corners.
    Profile("TIGHT", 2.0, 8.0, 0.0, 900.0),
    Profile("ODD", -1.5, 1.5, 120.5, 300.000001),
    # A start-up ignore period (issue 9): on the signal-loss limit, and an odd fraction.
    Profile("SETTLING", 2.0, 8.0, 0.0, 900.0, startup_ignore_s=900.0),
    Profile("SETTLING_LN2", None, -150.0, 120.5, 900.0, startup_ignore_s=450.000001),
]
T0 = 1_700_000_000_000_000
US = 1_000_000
FAST = settings(max_examples=200, deadline=None)

Readings = list[tuple[int, float]]


@dataclass(frozen=True)
class Case:
    """A logger's readings with the monitoring window and the clock they are judged by."""

    profile: Profile
    readings: Readings  # sorted, unique times
    window_from_us: int
    window_until_us: int | None
    now_us: int | None
    silent_since_us: int | None = None  # when a logger with no reading starts to be silent

    def detect(self, readings: Sequence[tuple[int, float]]) -> list[Excursion]:
        """Detect over the given readings with this case's window and clock."""
        return detect_excursions(
            readings,
            self.profile,
            start_us=self.window_from_us,
            until_us=self.window_until_us,
            now_us=self.now_us,
            silent_since_us=self.silent_since_us,
        )


def temps_for(profile: Profile) -> st.SearchStrategy[float]:
    """Return temperatures at, around and far from the profile's limits."""
    limits = [x for x in (profile.min_c, profile.max_c) if x is not None]
    near = [x + d for x in limits for d in (-30.0, -0.5, -0.01, 0.0, 0.01, 0.5, 30.0)]
    # Plainly in range as often as near a limit, so that runs end and restart.
    inside = [t for t in near if not profile.out_of_range(t)]
    return st.one_of(
        st.sampled_from(near),
        st.sampled_from(inside),
        st.floats(min(near), max(near), allow_nan=False),
    )


# Gaps on the grace and signal-loss limits (and a microsecond either side) twice as often as
# arbitrary ones, since the limits are where the rules are easiest to get wrong.
_LIMIT_GAPS_US = st.sampled_from(
    [1, US, 60 * US, 899_999_999, 900 * US, 900 * US + 1, 1800 * US, 3600 * US]
    # Fractions of 900 s, so that runs of several readings also last exactly grace.
    + [300 * US, 450 * US]
    # The ODD profile's limits: grace 120.5 s, signal loss 300.000001 s.
    + [120_499_999, 120_500_000, 300_000_001, 300_000_002]
)
GAPS_US = st.one_of(_LIMIT_GAPS_US, _LIMIT_GAPS_US, st.integers(1, 4000 * US))


# Offsets exactly on and one microsecond either side of the 900 s signal-loss limit, and well
# past it: bounded integers alone mostly come out small.
OFFSETS_US = st.sampled_from(
    [0, 1, 899_999_999, 900 * US, 900 * US + 1, 1800 * US, 3600 * US, -600 * US]
) | st.integers(-3000 * US, 6000 * US)


# Silence from the last reading until now: mostly around or well past the 900 s limit.
SILENCES_US = st.sampled_from(
    [-600 * US, 0, 899_999_999, 900 * US, 900 * US + 1, 1800 * US, 3600 * US]
)
TEMPS = {profile.name: temps_for(profile) for profile in PROFILES}


@st.composite
def cases(draw: st.DrawFn, max_readings: int = 60) -> Case:
    """Draw a random series with a window that may cut it and a clock that may lag it."""
    profile = draw(st.sampled_from(PROFILES))
    # Draw the length first: left to itself Hypothesis keeps lists short, and long series
    # are where runs outlast grace and gaps pile up.
    size = draw(st.integers(0, max_readings))
    gaps = draw(st.lists(GAPS_US, min_size=size, max_size=size))
    # Temperatures hold for a while, as they do in a shipper, so runs span several readings.
    steps = draw(
        st.lists(st.tuples(st.integers(0, 2), TEMPS[profile.name]), min_size=size, max_size=size)
    )
    times: list[int] = []
    temps: list[float] = []
    t = T0
    for gap, (hold, fresh) in zip(gaps, steps, strict=True):
        t += gap
        times.append(t)
        temps.append(temps[-1] if temps and hold else fresh)
    first, last = (times[0], times[-1]) if times else (T0, T0)
    window_from = first - draw(OFFSETS_US)
    # Weighted so that an open window with silence until now (an open loss) is common.
    until_how = draw(st.sampled_from(["open", "open", "after_last", "at_reading"]))
    window_until: int | None = None
    if until_how == "after_last":
        window_until = max(window_from, last + draw(OFFSETS_US))
    elif until_how == "at_reading":
        window_until = draw(
            st.sampled_from([t for t in times if t >= window_from] or [window_from])
        )
    now_how = draw(st.sampled_from(["none", "after_last", "after_start", "at_end"]))
    now: int | None = None
    if now_how == "after_last":
        now = last + draw(SILENCES_US)
    elif now_how == "after_start":
        now = window_from + draw(OFFSETS_US)
    elif now_how == "at_end":
        now = window_until if window_until is not None else last
    # Shipment creation, at or after the window start in practice; before it, to check that
    # silence never counts from outside the window.
    silent_since = draw(st.none() | OFFSETS_US.map(lambda d: window_from + d))
    readings = list(zip(times, temps, strict=True))
    return Case(profile, readings, window_from, window_until, now, silent_since)


@dataclass
class Store:
    """The excursion table of one logger: current rows by id, withdrawn ones kept aside."""

    current: dict[int, StoredExcursion] = field(default_factory=dict)
    withdrawn: dict[int, tuple[StoredExcursion, str]] = field(default_factory=dict)
    next_id: int = 1

    def apply(self, events: list[ExcursionEvent], covered: Sequence[StoredExcursion]) -> None:
        """Apply reconcile's events, checking each one is legal for the row it names."""
        check_matching(covered, events)
        for event in events:
            if isinstance(event, ExcursionOpened):
                self.current[self.next_id] = as_stored(self.next_id, event.excursion)
                self.next_id += 1
                continue
            assert event.id in {s.id for s in covered}, "an event names a row it was not given"
            old = self.current[event.id]
            if isinstance(event, ExcursionWithdrawn):
                expected = "recovered" if old.kind is Kind.SIGNAL_LOSS else "retracted"
                assert event.resolution == expected
                self.withdrawn[event.id] = (self.current.pop(event.id), event.resolution)
                continue
            new = event.excursion
            assert new.kind == old.kind
            assert new != old.excursion, "an event for a row that did not change"
            if isinstance(event, ExcursionClosed):
                assert old.is_open and not new.is_open
            else:
                assert isinstance(event, ExcursionUpdated)
                assert not (old.is_open and not new.is_open), "a close sent as an update"
            self.current[event.id] = as_stored(event.id, new)

    def excursions(self) -> list[Excursion]:
        """Return the current excursions in result order."""
        return sorted(
            (s.excursion for s in self.current.values()), key=lambda e: (e.started_us, e.kind)
        )


def overlap(a: Excursion, b: Excursion) -> bool:
    """Tell whether two excursions' closed intervals meet (an open end is +infinity)."""
    a_end = a.ended_us if a.ended_us is not None else float("inf")
    b_end = b.ended_us if b.ended_us is not None else float("inf")
    return a.started_us <= b_end and b.started_us <= a_end


def check_matching(stored: Sequence[StoredExcursion], events: list[ExcursionEvent]) -> None:
    """Check events name each stored row at most once and leave no missed match behind."""
    ids = [e.id for e in events if not isinstance(e, ExcursionOpened)]
    assert len(ids) == len(set(ids)), "a row got two events"
    by_id = {s.id: s for s in stored}
    withdrawn = [by_id[e.id].excursion for e in events if isinstance(e, ExcursionWithdrawn)]
    opened = [e.excursion for e in events if isinstance(e, ExcursionOpened)]
    # Greedy matching is maximal: a row withdrawn beside a new one that it overlaps would
    # have been the same excursion, and its id (and its disposition) would be lost.
    assert not any(w.kind == o.kind and overlap(w, o) for w in withdrawn for o in opened)
    # A row already holding what was found keeps its id: it is not renamed onto a neighbour.
    changed = [by_id[e.id].excursion for e in events if not isinstance(e, ExcursionOpened)]
    assert not any(c == o for c in changed for o in opened)


def as_stored(id_: int, e: Excursion) -> StoredExcursion:
    """Return an excursion as the store would hold it."""
    return StoredExcursion(id_, e.kind, e.started_us, e.ended_us, e.peak_c, e.duration_s)


def rejudge(case: Case, source: ListSource, store: Store, from_us: int, until_us: int) -> None:
    """Re-evaluate a touched span and apply the reconciled events to the store."""
    result = reevaluate(
        source,
        case.profile,
        window_from_us=case.window_from_us,
        window_until_us=case.window_until_us,
        touched_from_us=from_us,
        touched_until_us=until_us,
        now_us=case.now_us,
        silent_since_us=case.silent_since_us,
    )
    covered = [s for s in store.current.values() if result.covers(s.started_us)]
    store.apply(reconcile(covered, result.found), covered)


def rejudge_at_now(case: Case, source: ListSource, store: Store) -> None:
    """Judge silence as the worker does with no message: when monitoring starts, and on a timer."""
    at = case.window_from_us if case.now_us is None else case.now_us
    rejudge(case, source, store, at, at)


def ingest(case: Case, source: ListSource, store: Store, message: Readings) -> None:
    """Do what the worker does with one message: store, re-evaluate its span, reconcile."""
    source.add(message)
    rejudge(case, source, store, min(t for t, _ in message), max(t for t, _ in message))


def reference(case: Case, readings: Readings) -> list[Excursion]:
    """Detect excursions the slow, obvious way, straight from CONTRACT section 3."""
    p, hi = case.profile, case.window_until_us
    # Readings in the first startup_ignore_s of the window are not judged (issue 9).
    lo = case.window_from_us + round(p.startup_ignore_s * US)
    rs = sorted(r for r in readings if lo <= r[0] and (hi is None or r[0] <= hi))

    def side(temp: float) -> Kind | None:
        if p.max_c is not None and temp > p.max_c:
            return Kind.HIGH
        if p.min_c is not None and temp < p.min_c:
            return Kind.LOW
        return None

    out: list[Excursion] = []
    i = 0
    while i < len(rs):
        kind = side(rs[i][1])
        j = i
        while j + 1 < len(rs) and side(rs[j + 1][1]) == kind:
            j += 1
        if kind is not None:
            run = [temp for _, temp in rs[i : j + 1]]
            peak = max(run) if kind is Kind.HIGH else min(run)
            end = rs[j + 1][0] if j + 1 < len(rs) else None
            duration = ((end if end is not None else rs[-1][0]) - rs[i][0]) / US
            if duration >= p.grace_s:
                out.append(Excursion(kind, rs[i][0], end, peak, duration))
        i = j + 1
    # Gaps between consecutive readings (the window start to the first one is none).
    for (a, _), (b, _) in zip(rs, rs[1:], strict=False):
        if (b - a) / US > p.signal_loss_s:
            out.append(Excursion(Kind.SIGNAL_LOSS, a, b, None, (b - a) / US))
    silent_since = lo if case.silent_since_us is None else max(lo, case.silent_since_us)
    # Silence from silent_since (when monitoring began for the logger) to its first reading.
    if case.silent_since_us is not None and rs and (rs[0][0] - silent_since) / US > p.signal_loss_s:
        first = rs[0][0]
        out.append(
            Excursion(Kind.SIGNAL_LOSS, silent_since, first, None, (first - silent_since) / US)
        )
    last = rs[-1][0] if rs else silent_since
    if case.now_us is not None:
        if hi is not None and hi <= case.now_us:
            if (hi - last) / US > p.signal_loss_s:
                out.append(Excursion(Kind.SIGNAL_LOSS, last, hi, None, (hi - last) / US))
        elif (case.now_us - last) / US > p.signal_loss_s:
            duration = (case.now_us - last) / US
            out.append(Excursion(Kind.SIGNAL_LOSS, last, None, None, duration))
    return sorted(out, key=lambda e: (e.started_us, e.kind))


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[Case, list[Readings]]:
    """Draw a case and its readings shuffled, cut into messages, with some sent twice."""
    case = draw(cases())
    shuffled = draw(st.permutations(case.readings))
    messages: list[Readings] = []
    while shuffled:
        size = draw(st.integers(1, max(1, len(shuffled))))
        messages.append(list(shuffled[:size]))
        shuffled = shuffled[size:]
    # Store-and-forward loggers resend what was not acked: duplicates must change nothing.
    for _ in range(draw(st.integers(0, 2))):
        if messages:
            again = draw(st.sampled_from(messages))
            messages.insert(draw(st.integers(0, len(messages))), again)
    return case, messages


@FAST
@given(deliveries())
def test_incremental_ingest_in_any_order_ends_where_detection_over_all_readings_does(
    delivery: tuple[Case, list[Readings]],
) -> None:
    case, messages = delivery
    source, store = ListSource(case.profile), Store()
    rejudge_at_now(case, source, store)
    seen: set[tuple[int, float]] = set()
    assert store.excursions() == case.detect([])
    for message in messages:
        ingest(case, source, store, message)
        seen.update(message)
        # Not only at the end: after every message the store says what the readings say.
        assert store.excursions() == case.detect(sorted(seen))
    assert store.excursions() == case.detect(case.readings)


@FAST
@given(deliveries(), st.lists(st.integers(0, 8000 * US), max_size=4))
def test_rejudging_at_now_as_the_clock_advances_keeps_the_store_equal_to_detection(
    delivery: tuple[Case, list[Readings]], advances_us: list[int]
) -> None:
    case, messages = delivery
    source, store = ListSource(case.profile), Store()
    rejudge_at_now(case, source, store)
    for message in messages:
        ingest(case, source, store, message)
    now = case.now_us if case.now_us is not None else case.window_from_us
    for advance in advances_us:
        # No reading arrives: only the clock moves, past the window end at times.
        now += advance
        case = replace(case, now_us=now)
        rejudge_at_now(case, source, store)
        assert store.excursions() == case.detect(case.readings)


@FAST
@given(cases(), st.data())
def test_a_reevaluation_finds_exactly_what_full_detection_finds_where_it_covers(
    case: Case, data: st.DataObject
) -> None:
    source = ListSource(case.profile)
    source.add(case.readings)
    times = [t for t, _ in case.readings] or [T0]
    bound = st.sampled_from(times) | st.integers(times[0] - 2000 * US, times[-1] + 2000 * US)
    a, b = sorted((data.draw(bound), data.draw(bound)))
    result = reevaluate(
        source,
        case.profile,
        window_from_us=case.window_from_us,
        window_until_us=case.window_until_us,
        touched_from_us=a,
        touched_until_us=b,
        now_us=case.now_us,
        silent_since_us=case.silent_since_us,
    )
    full = case.detect(case.readings)
    assert result.found == [e for e in full if result.covers(e.started_us)]
    # Whatever the touched span decides must include every excursion starting inside it.
    assert all(result.covers(e.started_us) for e in full if a <= e.started_us <= b)


@FAST
@given(cases(), st.data())
def test_detection_depends_only_on_the_set_of_readings_and_keeps_its_invariants(
    case: Case, data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(case.readings))
    found = case.detect(sorted(shuffled))
    assert found == case.detect(case.readings)
    assert found == reference(case, case.readings)

    p = case.profile
    assert found == sorted(found, key=lambda e: (e.started_us, e.kind))
    for e in found:
        assert e.started_us >= p.judged_from_us(case.window_from_us)
        if e.ended_us is not None:
            assert e.ended_us > e.started_us
            assert e.duration_s == (e.ended_us - e.started_us) / US
            if case.window_until_us is not None:
                assert e.ended_us <= case.window_until_us
        if e.kind is Kind.HIGH:
            assert p.max_c is not None and e.peak_c is not None and e.peak_c > p.max_c
            assert e.duration_s >= p.grace_s
        elif e.kind is Kind.LOW:
            assert p.min_c is not None and e.peak_c is not None and e.peak_c < p.min_c
            assert e.duration_s >= p.grace_s
        else:
            assert e.peak_c is None
            assert e.duration_s > p.signal_loss_s
    assert sum(e.is_open and e.kind is Kind.SIGNAL_LOSS for e in found) <= 1
    assert sum(e.is_open and e.kind is not Kind.SIGNAL_LOSS for e in found) <= 1
    if case.now_us is None:
        assert not any(e.is_open and e.kind is Kind.SIGNAL_LOSS for e in found)


def by_value(e: Excursion) -> tuple[int, str, bool, int, bool, float, float]:
    """Return a total order on excursions, None included, to compare them as multisets."""
    return (
        e.started_us,
        e.kind,
        e.ended_us is None,
        e.ended_us or 0,
        e.peak_c is None,
        e.peak_c or 0.0,
        e.duration_s,
    )


def intervals() -> st.SearchStrategy[Excursion]:
    """Draw arbitrary excursions on a small time line, overlapping freely, to stress matching."""
    return st.builds(
        lambda k, start, length, peak: Excursion(
            k,
            T0 + start * US,
            None if length is None else T0 + (start + length) * US,
            None if k is Kind.SIGNAL_LOSS else peak,
            float(length or 0),
        ),
        st.sampled_from(Kind),
        st.integers(0, 50),
        st.none() | st.integers(0, 20),
        st.sampled_from([9.0, 9.5, 1.0]),
    )


@FAST
@given(st.lists(intervals(), max_size=8), st.lists(intervals(), max_size=8))
def test_reconcile_events_turn_the_stored_excursions_into_the_found_ones(
    olds: list[Excursion], news: list[Excursion]
) -> None:
    stored = [as_stored(i, e) for i, e in enumerate(olds, start=1)]
    store = Store(current={s.id: s for s in stored}, next_id=len(stored) + 1)
    events = reconcile(stored, news)
    store.apply(events, stored)
    after = [s.excursion for s in store.current.values()]
    assert sorted(after, key=by_value) == sorted(news, key=by_value)
    # Applied once, the events leave nothing more to do.
    assert reconcile(list(store.current.values()), news) == []
