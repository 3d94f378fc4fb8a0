"""Example tests of the excursion rules (CONTRACT section 3), one rule at a time."""

from __future__ import annotations

import pytest

from coldchain.domain.excursions import (
    Excursion,
    ExcursionClosed,
    ExcursionEvent,
    ExcursionOpened,
    ExcursionUpdated,
    ExcursionWithdrawn,
    Kind,
    Reevaluation,
    StoredExcursion,
    detect_excursions,
    reconcile,
    reevaluate,
)
from coldchain.domain.profiles import Profile
from tests.unit.excursion_support import ListSource

# The shipped profiles, as CONTRACT section 3 states them.
LN2_VAPOR = Profile("LN2_VAPOR", None, -150.0, 0.0, 900.0)
DRY_ICE = Profile("DRY_ICE", None, -60.0, 0.0, 900.0)
REFRIGERATED = Profile("REFRIGERATED", 2.0, 8.0, 900.0, 900.0)
CRT = Profile("CRT", 15.0, 25.0, 1800.0, 900.0)

T0 = 1_700_000_000_000_000  # 2023-11-14T22:13:20Z in microseconds
US = 1_000_000
HIGH, LOW, LOSS = Kind.HIGH, Kind.LOW, Kind.SIGNAL_LOSS


def at(seconds: float) -> int:
    """Return the time that many seconds after T0."""
    return T0 + round(seconds * US)


def series(*points: tuple[float, float]) -> list[tuple[int, float]]:
    """Turn (seconds after T0, temp_c) pairs into readings."""
    return [(at(s), temp) for s, temp in points]


def every(step_s: float, temps: list[float], *, from_s: float = 0) -> list[tuple[int, float]]:
    """Return readings taken every step_s seconds from from_s."""
    return [(at(from_s + i * step_s), temp) for i, temp in enumerate(temps)]


def detect(
    readings: list[tuple[int, float]],
    profile: Profile,
    *,
    start_us: int | None = T0,
    until_us: int | None = None,
    now_us: int | None = None,
) -> list[Excursion]:
    """Detect with the monitoring window starting at T0 unless told otherwise."""
    return detect_excursions(readings, profile, start_us=start_us, until_us=until_us, now_us=now_us)


def in_range_temp(profile: Profile) -> float:
    """Return a temperature inside the profile's range."""
    if profile.min_c is not None and profile.max_c is not None:
        return (profile.min_c + profile.max_c) / 2
    assert profile.max_c is not None
    return profile.max_c - 40


def run_then_in_range(
    profile: Profile, temp_c: float, duration_s: float
) -> list[tuple[int, float]]:
    """Return readings at temp_c every 60 s from T0, then an in-range one duration_s after T0."""
    readings = [(at(s), temp_c) for s in range(0, int(duration_s), 60) if at(s) < at(duration_s)]
    return [*readings, (at(duration_s), in_range_temp(profile))]


def stored(id_: int, excursion: Excursion) -> StoredExcursion:
    """Return an excursion as the store would hold it."""
    e = excursion
    return StoredExcursion(id_, e.kind, e.started_us, e.ended_us, e.peak_c, e.duration_s)


def step(
    source: ListSource,
    store: dict[int, StoredExcursion],
    batch: list[tuple[int, float]],
    *,
    now_us: int | None,
) -> list[ExcursionEvent]:
    """Store a batch, re-evaluate its span, and reconcile the covered stored excursions."""
    source.add(batch)
    result = reevaluate(
        source,
        source.profile,
        window_from_us=T0,
        window_until_us=None,
        touched_from_us=min(t for t, _ in batch),
        touched_until_us=max(t for t, _ in batch),
        now_us=now_us,
    )
    events = reconcile([s for s in store.values() if result.covers(s.started_us)], result.found)
    apply(store, events)
    return events


def apply(store: dict[int, StoredExcursion], events: list[ExcursionEvent]) -> None:
    """Apply reconcile's events to an in-memory excursion table."""
    for event in events:
        if isinstance(event, ExcursionOpened):
            new_id = max(store, default=0) + 1
            store[new_id] = stored(new_id, event.excursion)
        elif isinstance(event, ExcursionUpdated | ExcursionClosed):
            store[event.id] = stored(event.id, event.excursion)
        else:
            del store[event.id]


def tick(
    source: ListSource,
    store: dict[int, StoredExcursion],
    *,
    until_us: int | None,
    now_us: int,
) -> list[ExcursionEvent]:
    """Re-judge silence at now, as the worker does when no message arrives."""
    result = reevaluate(
        source,
        source.profile,
        window_from_us=T0,
        window_until_us=until_us,
        touched_from_us=now_us,
        touched_until_us=now_us,
        now_us=now_us,
    )
    events = reconcile([s for s in store.values() if result.covers(s.started_us)], result.found)
    apply(store, events)
    return events


# --------------------------------------------------------------------------------------------
# Range limits


@pytest.mark.parametrize(
    ("profile", "temp_c"),
    [
        (LN2_VAPOR, -150.0),
        (LN2_VAPOR, -196.0),
        (DRY_ICE, -60.0),
        (DRY_ICE, -78.5),
        (REFRIGERATED, 2.0),
        (REFRIGERATED, 8.0),
        (CRT, 15.0),
        (CRT, 25.0),
    ],
)
def test_a_reading_exactly_at_a_limit_is_in_range(profile: Profile, temp_c: float) -> None:
    readings = every(60, [temp_c] * 40)
    assert detect(readings, profile) == []


@pytest.mark.parametrize(
    ("profile", "temp_c", "kind"),
    [
        (LN2_VAPOR, -149.9, HIGH),
        (DRY_ICE, -59.9, HIGH),
        (REFRIGERATED, 8.1, HIGH),
        (REFRIGERATED, 1.9, LOW),
        (CRT, 25.1, HIGH),
        (CRT, 14.9, LOW),
    ],
)
def test_a_reading_just_past_a_limit_is_out_of_range_on_its_side(
    profile: Profile, temp_c: float, kind: Kind
) -> None:
    readings = run_then_in_range(profile, temp_c, profile.grace_s + 60)
    end = at(profile.grace_s + 60)
    assert detect(readings, profile) == [Excursion(kind, T0, end, temp_c, profile.grace_s + 60)]


def test_a_profile_without_a_lower_limit_never_reports_low() -> None:
    readings = every(60, [-196.0, -273.0, -196.0])
    assert detect(readings, LN2_VAPOR) == []


# --------------------------------------------------------------------------------------------
# Runs and grace


def test_a_five_minute_warm_up_on_ln2_vapor_is_one_high_excursion() -> None:
    readings = every(60, [-190.0, -170.0, -148.0, -141.5, -139.0, -144.0, -149.0, -151.0, -190.0])
    # Out of range from t=120 (-148) to t=360 (-149); first in-range reading t=420 (-151).
    assert detect(readings, LN2_VAPOR) == [Excursion(HIGH, at(120), at(420), -139.0, 300.0)]


@pytest.mark.parametrize("profile", [LN2_VAPOR, DRY_ICE])
def test_grace_zero_makes_a_single_out_of_range_reading_an_excursion(profile: Profile) -> None:
    assert profile.max_c is not None
    warm = profile.max_c + 0.5
    readings = series((0, profile.max_c - 10), (60, warm), (120, profile.max_c - 10))
    assert detect(readings, profile) == [Excursion(HIGH, at(60), at(120), warm, 60.0)]


@pytest.mark.parametrize("profile", [LN2_VAPOR, DRY_ICE])
def test_grace_zero_makes_a_single_last_reading_an_open_excursion_of_zero_duration(
    profile: Profile,
) -> None:
    assert profile.max_c is not None
    readings = series((0, profile.max_c - 10), (60, profile.max_c + 1))
    assert detect(readings, profile) == [Excursion(HIGH, at(60), None, profile.max_c + 1, 0.0)]


@pytest.mark.parametrize("profile", [REFRIGERATED, CRT])
def test_a_run_just_shorter_than_grace_is_not_an_excursion(profile: Profile) -> None:
    readings = run_then_in_range(profile, 30.0, profile.grace_s - 0.000001)
    assert detect(readings, profile) == []


@pytest.mark.parametrize("profile", [REFRIGERATED, CRT])
@pytest.mark.parametrize("extra_us", [0, 1])
def test_a_run_lasting_grace_or_longer_is_an_excursion(profile: Profile, extra_us: int) -> None:
    readings = run_then_in_range(profile, 30.0, profile.grace_s + extra_us / US)
    end = T0 + round(profile.grace_s * US) + extra_us
    assert detect(readings, profile) == [
        Excursion(HIGH, T0, end, 30.0, profile.grace_s + extra_us / US)
    ]


def test_a_run_is_measured_to_the_first_in_range_reading_not_its_last_out_of_range_one() -> None:
    # The run's last warm reading is 600 s in, but it is only known to be over at 960 s.
    readings = series((0, 9.0), (600, 9.5), (960, 5.0))
    assert detect(readings, REFRIGERATED) == [Excursion(HIGH, at(0), at(960), 9.5, 960.0)]


def test_an_open_run_is_measured_to_the_latest_reading() -> None:
    readings = series((0, 5.0), (60, 9.0), (600, 10.5), (1000, 9.9))
    assert detect(readings, REFRIGERATED, now_us=at(1100)) == [
        Excursion(HIGH, at(60), None, 10.5, 940.0)
    ]


def test_an_open_run_shorter_than_grace_is_not_yet_an_excursion() -> None:
    readings = series((0, 5.0), (60, 9.0), (900, 10.5))
    assert detect(readings, REFRIGERATED, now_us=at(950)) == []


def test_a_low_run_peaks_at_its_minimum() -> None:
    readings = series((0, 5.0), (60, 1.5), (600, -0.5), (1200, 1.0), (1260, 2.0))
    assert detect(readings, REFRIGERATED) == [Excursion(LOW, at(60), at(1260), -0.5, 1200.0)]


def test_high_then_low_directly_closes_the_high_at_the_first_low_reading() -> None:
    readings = series((0, 9.0), (900, 1.0), (1800, 1.5), (1860, 5.0))
    assert detect(readings, REFRIGERATED) == [
        Excursion(HIGH, at(0), at(900), 9.0, 900.0),
        Excursion(LOW, at(900), at(1860), 1.0, 960.0),
    ]


def test_high_then_low_with_grace_zero_gives_two_adjacent_excursions() -> None:
    profile = Profile("TIGHT", 2.0, 8.0, 0.0, 900.0)
    readings = series((0, 9.0), (60, 1.0), (120, 5.0))
    assert detect(readings, profile) == [
        Excursion(HIGH, at(0), at(60), 9.0, 60.0),
        Excursion(LOW, at(60), at(120), 1.0, 60.0),
    ]


def test_a_high_run_split_by_a_low_reading_below_grace_is_no_excursion() -> None:
    readings = series((0, 9.0), (600, 1.0), (660, 9.0), (1200, 5.0))
    assert detect(readings, REFRIGERATED) == []


def test_a_signal_loss_inside_a_run_does_not_end_it() -> None:
    readings = series((0, 9.0), (1000, 9.5), (1060, 5.0))
    assert detect(readings, REFRIGERATED) == [
        Excursion(HIGH, at(0), at(1060), 9.5, 1060.0),
        Excursion(LOSS, at(0), at(1000), None, 1000.0),
    ]


# --------------------------------------------------------------------------------------------
# Signal loss


@pytest.mark.parametrize("profile", [LN2_VAPOR, DRY_ICE, REFRIGERATED, CRT])
def test_a_gap_of_exactly_signal_loss_s_is_not_a_loss(profile: Profile) -> None:
    temp = 20.0 if profile is CRT else 5.0 if profile is REFRIGERATED else -190.0
    readings = [(T0, temp), (T0 + 900 * US, temp)]
    assert detect(readings, profile) == []


@pytest.mark.parametrize("profile", [LN2_VAPOR, DRY_ICE, REFRIGERATED, CRT])
def test_a_gap_one_microsecond_longer_than_signal_loss_s_is_a_loss(profile: Profile) -> None:
    temp = 20.0 if profile is CRT else 5.0 if profile is REFRIGERATED else -190.0
    readings = [(T0, temp), (T0 + 900 * US + 1, temp), (T0 + 960 * US, temp)]
    assert detect(readings, profile) == [Excursion(LOSS, T0, T0 + 900 * US + 1, None, 900.000001)]


def test_every_long_gap_is_its_own_loss() -> None:
    readings = series((0, 5.0), (1000, 5.0), (1060, 5.0), (3060, 5.0))
    assert detect(readings, REFRIGERATED) == [
        Excursion(LOSS, at(0), at(1000), None, 1000.0),
        Excursion(LOSS, at(1060), at(3060), None, 2000.0),
    ]


def test_the_time_from_the_window_start_to_the_first_reading_is_not_a_loss() -> None:
    # monitoring_from may lie before the logger was switched on: that is no gap in its record.
    readings = series((3600, 5.0), (3660, 5.0))
    assert detect(readings, REFRIGERATED, start_us=T0, now_us=at(3700)) == []


def test_silence_until_now_is_an_open_loss() -> None:
    readings = series((0, 5.0), (60, 5.0))
    assert detect(readings, REFRIGERATED, now_us=at(960) + 1) == [
        Excursion(LOSS, at(60), None, None, 900.000001)
    ]


def test_silence_of_exactly_signal_loss_s_until_now_is_not_a_loss() -> None:
    readings = series((0, 5.0), (60, 5.0))
    assert detect(readings, REFRIGERATED, now_us=at(960)) == []


def test_without_now_silence_after_the_last_reading_is_not_judged() -> None:
    readings = series((0, 5.0), (60, 5.0))
    assert detect(readings, REFRIGERATED, until_us=at(99_999)) == []


def test_silence_until_the_end_of_an_ended_window_is_a_closed_loss() -> None:
    readings = series((0, 5.0), (60, 5.0))
    assert detect(readings, REFRIGERATED, until_us=at(3660), now_us=at(99_999)) == [
        Excursion(LOSS, at(60), at(3660), None, 3600.0)
    ]


def test_a_window_ending_exactly_now_closes_the_trailing_loss() -> None:
    readings = series(
        (0, 5.0),
    )
    assert detect(readings, REFRIGERATED, until_us=at(1000), now_us=at(1000)) == [
        Excursion(LOSS, at(0), at(1000), None, 1000.0)
    ]


def test_silence_of_exactly_signal_loss_s_before_the_window_end_is_not_a_loss() -> None:
    readings = series((0, 5.0), (60, 5.0))
    assert detect(readings, REFRIGERATED, until_us=at(960), now_us=at(99_999)) == []


def test_a_window_still_running_judges_silence_against_now() -> None:
    readings = series((0, 5.0), (60, 5.0))
    assert detect(readings, REFRIGERATED, until_us=at(99_999), now_us=at(2000)) == [
        Excursion(LOSS, at(60), None, None, 1940.0)
    ]


def test_now_before_the_last_reading_is_no_loss() -> None:
    readings = series((0, 5.0), (60, 5.0))
    assert detect(readings, REFRIGERATED, now_us=at(30)) == []


# --------------------------------------------------------------------------------------------
# No readings, the window, the order of the result


def test_no_readings_and_no_now_is_nothing() -> None:
    assert detect([], REFRIGERATED, until_us=at(5000)) == []


def test_no_readings_since_the_window_start_is_an_open_loss() -> None:
    assert detect([], REFRIGERATED, now_us=at(901)) == [Excursion(LOSS, T0, None, None, 901.0)]


def test_no_readings_in_an_ended_window_is_a_loss_over_the_whole_window() -> None:
    assert detect([], REFRIGERATED, until_us=at(5000), now_us=at(6000)) == [
        Excursion(LOSS, T0, at(5000), None, 5000.0)
    ]


def test_no_readings_and_no_window_start_is_nothing_even_with_now() -> None:
    assert detect([], REFRIGERATED, start_us=None, now_us=at(99_999)) == []


def test_no_readings_is_silence_from_silent_since_when_given() -> None:
    found = detect_excursions(
        [], REFRIGERATED, start_us=T0, now_us=at(5000), silent_since_us=at(3000)
    )
    assert found == [Excursion(LOSS, at(3000), None, None, 2000.0)]


def test_silence_from_silent_since_of_exactly_signal_loss_s_is_not_a_loss() -> None:
    found = detect_excursions(
        [], REFRIGERATED, start_us=T0, now_us=at(3900), silent_since_us=at(3000)
    )
    assert found == []


def test_silent_since_before_the_window_start_counts_from_the_window_start() -> None:
    found = detect_excursions(
        [], REFRIGERATED, start_us=T0, now_us=at(1000), silent_since_us=at(-5000)
    )
    assert found == [Excursion(LOSS, T0, None, None, 1000.0)]


def test_silence_from_silent_since_closes_at_the_end_of_an_ended_window() -> None:
    found = detect_excursions(
        [], REFRIGERATED, start_us=T0, until_us=at(5000), now_us=at(9000), silent_since_us=at(60)
    )
    assert found == [Excursion(LOSS, at(60), at(5000), None, 4940.0)]


def test_silence_from_silent_since_to_a_late_first_reading_is_a_closed_loss() -> None:
    found = detect_excursions(
        series((4000, 5.0)), REFRIGERATED, start_us=T0, now_us=at(4100), silent_since_us=at(0)
    )
    assert found == [Excursion(LOSS, at(0), at(4000), None, 4000.0)]


def test_a_first_reading_within_signal_loss_s_of_silent_since_leaves_no_loss() -> None:
    found = detect_excursions(
        series((900, 5.0)), REFRIGERATED, start_us=T0, now_us=at(1000), silent_since_us=at(0)
    )
    assert found == []


def test_readings_before_silent_since_leave_no_leading_loss() -> None:
    # A backlog from before the shipment was created fills the time before monitoring began.
    found = detect_excursions(
        series((10, 5.0), (60, 5.0)),
        REFRIGERATED,
        start_us=T0,
        now_us=at(100),
        silent_since_us=at(5000),
    )
    assert found == []


def test_without_silent_since_the_window_start_to_the_first_reading_is_no_loss() -> None:
    found = detect_excursions(series((4000, 5.0)), REFRIGERATED, start_us=T0, now_us=at(4100))
    assert found == []


def test_readings_outside_the_window_are_ignored() -> None:
    readings = series((-3000, 30.0), (-60, 30.0), (600, 5.0), (1200, 5.0), (1260, 30.0))
    assert detect(readings, REFRIGERATED, start_us=T0, until_us=at(1200)) == []


def test_a_gap_is_not_measured_from_a_reading_before_the_window() -> None:
    readings = series((-10, 5.0), (1000, 5.0))
    assert detect(readings, REFRIGERATED, start_us=T0) == []


def test_readings_at_the_window_bounds_count() -> None:
    readings = series((0, 30.0), (900, 5.0))
    assert detect(readings, REFRIGERATED, start_us=at(0), until_us=at(900)) == [
        Excursion(HIGH, at(0), at(900), 30.0, 900.0)
    ]


def test_the_trailing_loss_starts_at_the_last_reading_inside_the_window() -> None:
    readings = series((0, 5.0), (1000, 5.0))
    assert detect(readings, REFRIGERATED, until_us=at(950), now_us=at(5000)) == [
        Excursion(LOSS, at(0), at(950), None, 950.0)
    ]


def test_the_result_is_sorted_by_start_then_kind() -> None:
    readings = series((0, 5.0), (60, 30.0), (1060, 5.0), (1100, 5.0), (2100, 1.0), (3200, 5.0))
    assert detect(readings, REFRIGERATED) == [
        Excursion(HIGH, at(60), at(1060), 30.0, 1000.0),
        Excursion(LOSS, at(60), at(1060), None, 1000.0),
        Excursion(LOSS, at(1100), at(2100), None, 1000.0),
        Excursion(LOW, at(2100), at(3200), 1.0, 1100.0),
        Excursion(LOSS, at(2100), at(3200), None, 1100.0),
    ]


def test_unsorted_readings_are_refused() -> None:
    with pytest.raises(ValueError, match="sorted"):
        detect(series((60, 5.0), (0, 5.0)), REFRIGERATED)


def test_duplicate_times_are_refused() -> None:
    with pytest.raises(ValueError, match="sorted"):
        detect(series((0, 5.0), (0, 6.0)), REFRIGERATED)


def test_an_excursion_is_open_until_it_has_an_end() -> None:
    assert Excursion(HIGH, T0, None, 9.0, 0.0).is_open
    assert not Excursion(HIGH, T0, T0, 9.0, 0.0).is_open


# --------------------------------------------------------------------------------------------
# Re-evaluation of a slice


def test_reevaluate_slices_from_the_last_in_range_reading_to_the_next() -> None:
    source = ListSource(REFRIGERATED, series((0, 5.0), (60, 5.0), (120, 9.0), (1200, 5.0)))
    source.add(series((600, 9.5)))
    result = reevaluate(
        source,
        REFRIGERATED,
        window_from_us=T0,
        window_until_us=None,
        touched_from_us=at(600),
        touched_until_us=at(600),
        now_us=at(1300),
    )
    assert result == Reevaluation(at(60), at(1200), [Excursion(HIGH, at(120), at(1200), 9.5, 1080)])


def test_reevaluate_without_an_earlier_in_range_reading_starts_at_the_window() -> None:
    source = ListSource(REFRIGERATED, series((10, 9.0), (800, 9.0), (1000, 5.0)))
    result = reevaluate(
        source,
        REFRIGERATED,
        window_from_us=T0,
        window_until_us=None,
        touched_from_us=at(800),
        touched_until_us=at(800),
        now_us=None,
    )
    assert result == Reevaluation(T0, at(1000), [Excursion(HIGH, at(10), at(1000), 9.0, 990.0)])


def test_reevaluate_without_a_later_in_range_reading_runs_to_now() -> None:
    source = ListSource(REFRIGERATED, series((0, 5.0), (60, 9.0), (1000, 9.0)))
    result = reevaluate(
        source,
        REFRIGERATED,
        window_from_us=T0,
        window_until_us=None,
        touched_from_us=at(1000),
        touched_until_us=at(1000),
        now_us=at(2000),
    )
    assert result == Reevaluation(
        at(0),
        None,
        [
            Excursion(HIGH, at(60), None, 9.0, 940.0),
            Excursion(LOSS, at(60), at(1000), None, 940.0),
            Excursion(LOSS, at(1000), None, None, 1000.0),
        ],
    )


def test_reevaluate_ignores_in_range_readings_outside_the_window() -> None:
    readings = series((-60, 5.0), (60, 9.0), (600, 9.0), (1000, 9.0), (1100, 5.0))
    source = ListSource(REFRIGERATED, readings)
    result = reevaluate(
        source,
        REFRIGERATED,
        window_from_us=T0,
        window_until_us=at(1050),
        touched_from_us=at(60),
        touched_until_us=at(60),
        now_us=at(5000),
    )
    assert result == Reevaluation(T0, None, [Excursion(HIGH, at(60), None, 9.0, 940.0)])


def test_reevaluate_of_readings_after_the_window_rejudges_its_end() -> None:
    source = ListSource(REFRIGERATED, series((0, 5.0), (5000, 30.0)))
    result = reevaluate(
        source,
        REFRIGERATED,
        window_from_us=T0,
        window_until_us=at(1000),
        touched_from_us=at(5000),
        touched_until_us=at(5000),
        now_us=at(6000),
    )
    assert result == Reevaluation(at(0), None, [Excursion(LOSS, at(0), at(1000), None, 1000.0)])


def test_reevaluate_of_readings_before_the_window_rejudges_its_start() -> None:
    source = ListSource(REFRIGERATED, series((-100, 30.0), (10, 30.0), (500, 30.0), (1000, 5.0)))
    result = reevaluate(
        source,
        REFRIGERATED,
        window_from_us=T0,
        window_until_us=None,
        touched_from_us=at(-100),
        touched_until_us=at(-100),
        now_us=None,
    )
    # The warm reading before the window is not part of the run.
    assert result == Reevaluation(T0, at(1000), [Excursion(HIGH, at(10), at(1000), 30.0, 990.0)])


def test_reevaluate_at_now_with_no_readings_yet_opens_a_loss_from_the_window_start() -> None:
    store: dict[int, StoredExcursion] = {}
    events = tick(ListSource(REFRIGERATED), store, until_us=None, now_us=at(901))
    assert events == [ExcursionOpened(Excursion(LOSS, T0, None, None, 901.0))]


def test_reevaluate_at_now_grows_an_open_loss_and_closes_it_when_the_window_ends() -> None:
    source, store = ListSource(REFRIGERATED, series((0, 5.0))), {}
    assert tick(source, store, until_us=at(5000), now_us=at(1000)) == [
        ExcursionOpened(Excursion(LOSS, at(0), None, None, 1000.0))
    ]
    assert tick(source, store, until_us=at(5000), now_us=at(2000)) == [
        ExcursionUpdated(1, Excursion(LOSS, at(0), None, None, 2000.0))
    ]
    assert tick(source, store, until_us=at(5000), now_us=at(7000)) == [
        ExcursionClosed(1, Excursion(LOSS, at(0), at(5000), None, 5000.0))
    ]
    assert tick(source, store, until_us=at(5000), now_us=at(8000)) == []


def test_reevaluate_refuses_a_touched_span_that_ends_before_it_starts() -> None:
    with pytest.raises(ValueError, match="touched span"):
        reevaluate(
            ListSource(REFRIGERATED),
            REFRIGERATED,
            window_from_us=T0,
            window_until_us=None,
            touched_from_us=at(10),
            touched_until_us=at(9),
            now_us=None,
        )


@pytest.mark.parametrize(
    ("until_us", "started_us", "covered"),
    [
        (at(100), at(9), False),
        (at(100), at(10), True),
        (at(100), at(99), True),
        (at(100), at(100), False),
        (None, at(10**6), True),
    ],
)
def test_a_reevaluation_covers_starts_from_its_start_up_to_its_end_exclusive(
    until_us: int | None, started_us: int, covered: bool
) -> None:
    assert Reevaluation(at(10), until_us, []).covers(started_us) is covered


# --------------------------------------------------------------------------------------------
# Backfill after a loss of signal


def test_a_backfill_that_fills_the_gap_withdraws_the_loss_as_recovered() -> None:
    source, store = ListSource(REFRIGERATED), {}
    events = step(source, store, every(60, [5.0] * 10), now_us=at(540 + 3600))
    assert events == [ExcursionOpened(Excursion(LOSS, at(540), None, None, 3600.0))]
    events = step(source, store, every(60, [5.0] * 60, from_s=600), now_us=at(540 + 3600))
    assert events == [ExcursionWithdrawn(1, "recovered")]
    assert store == {}


def test_a_partial_backfill_leaving_a_real_gap_updates_the_open_loss() -> None:
    source, store = ListSource(REFRIGERATED), {}
    step(source, store, every(60, [5.0] * 10), now_us=at(4140))
    events = step(source, store, every(60, [5.0] * 10, from_s=600), now_us=at(4140))
    assert events == [ExcursionUpdated(1, Excursion(LOSS, at(1140), None, None, 3000.0))]


def test_a_backlog_after_a_loss_closes_it_where_readings_resume() -> None:
    source, store = ListSource(REFRIGERATED), {}
    step(source, store, every(60, [5.0] * 10), now_us=at(4140))
    events = step(source, store, every(60, [5.0] * 10, from_s=3600), now_us=at(4140))
    assert events == [ExcursionClosed(1, Excursion(LOSS, at(540), at(3600), None, 3060.0))]


def test_a_partial_backfill_of_a_closed_loss_updates_it() -> None:
    source, store = ListSource(REFRIGERATED), {}
    step(source, store, series((0, 5.0), (3600, 5.0)), now_us=at(3660))
    assert list(store.values()) == [StoredExcursion(1, LOSS, at(0), at(3600), None, 3600.0)]
    events = step(source, store, every(60, [5.0] * 5, from_s=60), now_us=at(3660))
    assert events == [ExcursionUpdated(1, Excursion(LOSS, at(300), at(3600), None, 3300.0))]


def test_a_backfill_splitting_a_loss_keeps_the_first_part_and_opens_the_second() -> None:
    source, store = ListSource(REFRIGERATED), {}
    step(source, store, series((0, 5.0), (3000, 5.0)), now_us=at(3060))
    events = step(source, store, series((1500, 5.0)), now_us=at(3060))
    assert events == [
        ExcursionUpdated(1, Excursion(LOSS, at(0), at(1500), None, 1500.0)),
        ExcursionOpened(Excursion(LOSS, at(1500), at(3000), None, 1500.0)),
    ]


def test_a_backfill_into_the_first_of_two_adjacent_losses_leaves_the_second_its_id() -> None:
    # The warm reading at 2000 s keeps both gaps inside one re-evaluated slice.
    source, store = ListSource(REFRIGERATED), {}
    step(source, store, series((0, 5.0), (2000, 30.0), (4000, 5.0)), now_us=at(4060))
    assert store == {
        1: StoredExcursion(1, LOSS, at(0), at(2000), None, 2000.0),
        2: StoredExcursion(2, HIGH, at(2000), at(4000), 30.0, 2000.0),
        3: StoredExcursion(3, LOSS, at(2000), at(4000), None, 2000.0),
    }
    events = step(source, store, series((1000, 5.0)), now_us=at(4060))
    assert events == [
        ExcursionUpdated(1, Excursion(LOSS, at(0), at(1000), None, 1000.0)),
        ExcursionOpened(Excursion(LOSS, at(1000), at(2000), None, 1000.0)),
    ]


def test_a_late_reading_before_the_first_opens_the_gap_it_leaves() -> None:
    source, store = ListSource(REFRIGERATED), {}
    step(source, store, series((2000, 5.0), (4000, 5.0)), now_us=at(4060))
    assert store == {1: StoredExcursion(1, LOSS, at(2000), at(4000), None, 2000.0)}
    events = step(source, store, series((1000, 5.0)), now_us=at(4060))
    assert events == [ExcursionOpened(Excursion(LOSS, at(1000), at(2000), None, 1000.0))]


def test_a_silent_loggers_first_reading_withdraws_its_open_loss_as_recovered() -> None:
    source, store = ListSource(REFRIGERATED), {}
    assert tick(source, store, until_us=None, now_us=at(2000)) == [
        ExcursionOpened(Excursion(LOSS, T0, None, None, 2000.0))
    ]
    # Without silent_since the window start to the first reading is not a gap.
    assert step(source, store, series((1990, 5.0)), now_us=at(2000)) == [
        ExcursionWithdrawn(1, "recovered")
    ]


def test_late_in_range_readings_that_split_a_run_below_grace_retract_it() -> None:
    source, store = ListSource(REFRIGERATED), {}
    step(source, store, series((0, 5.0), (60, 9.0), (600, 9.5), (1000, 5.0)), now_us=None)
    assert list(store.values()) == [StoredExcursion(1, HIGH, at(60), at(1000), 9.5, 940.0)]
    events = step(source, store, series((300, 5.0)), now_us=None)
    assert events == [ExcursionWithdrawn(1, "retracted")]


def test_late_out_of_range_readings_before_an_open_run_extend_it_back() -> None:
    source, store = ListSource(LN2_VAPOR), {}
    step(source, store, series((0, -190.0), (120, -140.0)), now_us=at(130))
    events = step(source, store, series((60, -145.0)), now_us=at(130))
    assert events == [ExcursionUpdated(1, Excursion(HIGH, at(60), None, -140.0, 60.0))]


def test_an_in_range_reading_closes_an_open_run() -> None:
    source, store = ListSource(LN2_VAPOR), {}
    step(source, store, series((0, -190.0), (60, -140.0)), now_us=at(70))
    events = step(source, store, series((120, -190.0)), now_us=at(130))
    assert events == [ExcursionClosed(1, Excursion(HIGH, at(60), at(120), -140.0, 60.0))]


def test_a_duplicate_batch_changes_nothing() -> None:
    source, store = ListSource(LN2_VAPOR), {}
    batch = series((0, -190.0), (60, -140.0), (1000, -190.0))
    step(source, store, batch, now_us=at(1010))
    before = dict(store)
    assert step(source, store, batch, now_us=at(1010)) == []
    assert store == before


# --------------------------------------------------------------------------------------------
# Reconciliation, case by case

A = Excursion(HIGH, at(10), at(20), 9.0, 10.0)


def test_nothing_stored_and_nothing_found_is_no_event() -> None:
    assert reconcile([], []) == []


def test_a_found_excursion_with_no_stored_match_is_opened() -> None:
    assert reconcile([], [A]) == [ExcursionOpened(A)]


@pytest.mark.parametrize(
    ("kind", "resolution"),
    [(HIGH, "retracted"), (LOW, "retracted"), (LOSS, "recovered")],
)
def test_a_stored_excursion_no_longer_found_is_withdrawn_with_its_resolution(
    kind: Kind, resolution: str
) -> None:
    old = StoredExcursion(7, kind, at(10), at(20), None, 10.0)
    assert reconcile([old], []) == [ExcursionWithdrawn(7, resolution)]  # type: ignore[arg-type]


def test_an_identical_match_is_no_event() -> None:
    assert reconcile([stored(1, A)], [A]) == []


def test_a_closed_match_with_new_values_is_updated() -> None:
    new = Excursion(HIGH, at(5), at(20), 9.5, 15.0)
    assert reconcile([stored(1, A)], [new]) == [ExcursionUpdated(1, new)]


def test_an_open_match_that_grew_is_updated() -> None:
    old = StoredExcursion(1, LOSS, at(10), None, None, 1000.0)
    new = Excursion(LOSS, at(10), None, None, 1060.0)
    assert reconcile([old], [new]) == [ExcursionUpdated(1, new)]


def test_an_open_match_that_now_has_an_end_is_closed() -> None:
    old = StoredExcursion(1, HIGH, at(10), None, 9.0, 0.0)
    new = Excursion(HIGH, at(10), at(70), 9.0, 60.0)
    assert reconcile([old], [new]) == [ExcursionClosed(1, new)]


def test_a_closed_match_found_open_again_is_updated() -> None:
    new = Excursion(HIGH, at(10), None, 9.0, 5.0)
    assert reconcile([stored(1, A)], [new]) == [ExcursionUpdated(1, new)]


def test_overlapping_excursions_of_different_kinds_do_not_match() -> None:
    new = Excursion(LOW, at(10), at(20), 1.0, 10.0)
    assert reconcile([stored(1, A)], [new]) == [
        ExcursionWithdrawn(1, "retracted"),
        ExcursionOpened(new),
    ]


def test_disjoint_excursions_of_the_same_kind_do_not_match() -> None:
    new = Excursion(HIGH, at(21), at(30), 9.0, 9.0)
    assert reconcile([stored(1, A)], [new]) == [
        ExcursionWithdrawn(1, "retracted"),
        ExcursionOpened(new),
    ]


def test_intervals_touching_at_an_end_overlap() -> None:
    new = Excursion(HIGH, at(20), at(30), 9.0, 10.0)
    assert reconcile([stored(1, A)], [new]) == [ExcursionUpdated(1, new)]


def test_a_zero_length_interval_overlaps_an_interval_around_it() -> None:
    point = StoredExcursion(1, HIGH, at(15), at(15), 9.0, 0.0)
    assert reconcile([point], [A]) == [ExcursionUpdated(1, A)]
    beside = StoredExcursion(1, HIGH, at(21), at(21), 9.0, 0.0)
    assert reconcile([beside], [A]) == [ExcursionOpened(A), ExcursionWithdrawn(1, "retracted")]


def test_an_open_end_reaches_any_later_excursion() -> None:
    old = StoredExcursion(1, LOSS, at(10), None, None, 900.5)
    new = Excursion(LOSS, at(5000), at(6000), None, 1000.0)
    assert reconcile([old], [new]) == [ExcursionClosed(1, new)]


def test_one_stored_excursion_matches_only_the_first_of_two_found() -> None:
    old = StoredExcursion(1, LOSS, at(0), at(3000), None, 3000.0)
    first = Excursion(LOSS, at(0), at(1500), None, 1500.0)
    second = Excursion(LOSS, at(1500), at(3000), None, 1500.0)
    assert reconcile([old], [second, first]) == [
        ExcursionUpdated(1, first),
        ExcursionOpened(second),
    ]


def test_an_identical_stored_excursion_is_matched_before_a_merely_touching_one() -> None:
    olds = [StoredExcursion(1, LOSS, at(1500), at(3000), None, 1500.0)]
    first = Excursion(LOSS, at(0), at(1500), None, 1500.0)
    same = Excursion(LOSS, at(1500), at(3000), None, 1500.0)
    assert reconcile(olds, [first, same]) == [ExcursionOpened(first)]


def test_intervals_sharing_time_are_matched_before_intervals_that_only_touch() -> None:
    olds = [
        StoredExcursion(1, LOSS, at(0), at(2000), None, 2000.0),
        StoredExcursion(2, LOSS, at(2000), at(4000), None, 2000.0),
    ]
    found = [
        Excursion(LOSS, at(0), at(1000), None, 1000.0),
        Excursion(LOSS, at(1000), at(2000), None, 1000.0),
        Excursion(LOSS, at(2000), at(3000), None, 1000.0),
        Excursion(LOSS, at(3000), at(4000), None, 1000.0),
    ]
    assert reconcile(olds, found) == [
        ExcursionUpdated(1, found[0]),
        ExcursionOpened(found[1]),
        ExcursionUpdated(2, found[2]),
        ExcursionOpened(found[3]),
    ]


def test_one_found_excursion_matches_only_the_first_of_two_stored() -> None:
    olds = [
        StoredExcursion(2, LOSS, at(1500), at(3000), None, 1500.0),
        StoredExcursion(1, LOSS, at(0), at(1500), None, 1500.0),
    ]
    new = Excursion(LOSS, at(0), at(3000), None, 3000.0)
    assert reconcile(olds, [new]) == [ExcursionUpdated(1, new), ExcursionWithdrawn(2, "recovered")]


def test_matching_is_per_kind_and_keeps_every_id() -> None:
    olds = [
        StoredExcursion(1, HIGH, at(0), at(100), 9.0, 100.0),
        StoredExcursion(2, LOSS, at(0), at(1000), None, 1000.0),
        StoredExcursion(3, LOW, at(2000), None, 1.0, 950.0),
    ]
    found = [
        Excursion(HIGH, at(0), at(100), 9.0, 100.0),
        Excursion(LOSS, at(0), at(1000), None, 1000.0),
        Excursion(LOW, at(2000), at(3000), 1.0, 1000.0),
    ]
    assert reconcile(olds, found) == [ExcursionClosed(3, found[2])]


def test_stored_kinds_given_as_plain_strings_still_match() -> None:
    old = StoredExcursion(1, "HIGH", at(10), at(20), 9.0, 10.0)  # type: ignore[arg-type]
    assert reconcile([old], [A]) == []


def test_events_come_in_order_of_start() -> None:
    olds = [StoredExcursion(1, LOSS, at(50), at(1000), None, 950.0)]
    found = [Excursion(HIGH, at(60), at(1000), 9.0, 940.0), Excursion(LOW, at(10), None, 1.0, 0.0)]
    assert reconcile(olds, found) == [
        ExcursionOpened(found[1]),
        ExcursionWithdrawn(1, "recovered"),
        ExcursionOpened(found[0]),
    ]
