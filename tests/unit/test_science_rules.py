"""Excursion science (issue 9): stability budget, rate of change, start-up ignore, severities."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coldchain.domain.errors import ValidationError
from coldchain.domain.excursions import Kind, detect_excursions
from coldchain.domain.mkt import (
    mean_kinetic_temperature,
    time_weighted_mkt,
    weighted_mean_kinetic_temperature,
)
from coldchain.domain.profiles import Profile, profile_from_mapping
from coldchain.domain.science import (
    Severity,
    budget_spent_at_us,
    budget_use,
    excursion_severity,
    judged,
    out_of_range_us,
    rises,
    segment_change,
)

T0 = 1_780_000_000_000_000
US = 1_000_000
MIN = 60 * US
FRIDGE = Profile(
    "REFRIGERATED", 2.0, 8.0, 900.0, 900.0,
    stability_budget_s=1800.0, max_rise_c_per_min=1.0, critical_margin_c=2.0,
    critical_duration_s=7200.0, mkt=True,
)  # fmt: skip
LN2 = Profile("LN2_VAPOR", None, -150.0, 0.0, 900.0, critical_margin_c=20.0)
PLAIN = Profile("PLAIN", 2.0, 8.0, 0.0, 900.0)


def series(*points: tuple[float, float]) -> list[tuple[int, float]]:
    """Readings from (minutes after T0, temp_c) pairs."""
    return [(T0 + round(m * MIN), temp) for m, temp in points]


# --- time out of range ----------------------------------------------------------------------


def test_no_reading_or_one_reading_uses_no_time() -> None:
    assert out_of_range_us([], FRIDGE) == 0
    assert out_of_range_us(series((0, 30.0)), FRIDGE) == 0


def test_an_out_of_range_reading_counts_until_the_next_reading() -> None:
    assert out_of_range_us(series((0, 9.0), (5, 5.0)), FRIDGE) == 5 * MIN
    # The in-range reading before it counts nothing, whatever follows it.
    assert out_of_range_us(series((0, 5.0), (5, 9.0)), FRIDGE) == 0


def test_the_limits_are_in_range() -> None:
    assert out_of_range_us(series((0, 8.0), (5, 2.0), (9, 5.0)), FRIDGE) == 0
    assert out_of_range_us(series((0, 8.000001), (5, 5.0)), FRIDGE) == 5 * MIN


def test_a_run_shorter_than_grace_still_uses_the_budget() -> None:
    # 5 minutes at 9 C: no excursion (grace is 15 minutes), but 5 minutes of stability used.
    readings = series((0, 5.0), (1, 9.0), (6, 5.0))
    assert detect_excursions(readings, FRIDGE, start_us=T0) == []
    assert out_of_range_us(readings, FRIDGE) == 5 * MIN


def test_an_open_run_counts_to_the_latest_reading_and_a_gap_inside_it_counts_whole() -> None:
    assert out_of_range_us(series((0, 9.0), (1, 9.5), (61, 10.0)), FRIDGE) == 61 * MIN


def test_high_then_low_counts_both_sides() -> None:
    assert out_of_range_us(series((0, 9.0), (2, 1.0), (5, 5.0)), FRIDGE) == 5 * MIN


def test_unsorted_readings_are_refused() -> None:
    with pytest.raises(ValueError):
        out_of_range_us(series((5, 9.0), (0, 5.0)), FRIDGE)
    with pytest.raises(ValueError):
        out_of_range_us(series((0, 9.0), (0, 5.0)), FRIDGE)


def test_the_budget_adds_up_over_several_excursions_and_is_spent_where_it_ran_out() -> None:
    # The acceptance point: three excursions of 10 minutes each (HIGH, LOW, HIGH)
    # and a 4-minute run below grace, hours apart, against a 30-minute budget: nothing resets
    # it, and it runs out at the reading that ends the third excursion.
    readings = series(
        (0, 5.0),
        (60, 9.5), (70, 5.0),  # 10 min HIGH
        (120, 4.0), (180, 1.0), (190, 4.0),  # 10 min LOW
        (240, 8.5), (244, 6.0),  # 4 min, below grace
        (300, 12.0), (305, 11.0), (310, 5.0),  # 10 min HIGH
        (400, 5.0),
    )  # fmt: skip

    # With the fridge's 15-minute grace none of them is an excursion; the budget counts them.
    def kinds(profile: Profile) -> list[Kind]:
        found = detect_excursions(readings, profile, start_us=T0)
        return [e.kind for e in found if e.kind is not Kind.SIGNAL_LOSS]

    assert kinds(FRIDGE) == []
    budget = Profile("B", 2.0, 8.0, 600.0, 900.0, stability_budget_s=34 * 60.0)
    assert kinds(budget) == [Kind.HIGH, Kind.LOW, Kind.HIGH]
    assert out_of_range_us(readings, budget) == 34 * MIN
    assert budget_spent_at_us(readings, budget) == T0 + 310 * MIN
    use = budget_use(out_of_range_us(readings, budget), budget)
    assert use is not None and use.spent and use.remaining_s == 0 and use.used_s == 34 * 60
    # One microsecond more budget and it is not spent.
    more = Profile("B", 2.0, 8.0, 600.0, 900.0, stability_budget_s=34 * 60.0 + 1e-6)
    assert budget_spent_at_us(readings, more) is None
    assert budget_use(34 * MIN, more) == budget_use(34 * MIN, more)
    left = budget_use(34 * MIN, more)
    assert left is not None and not left.spent and left.remaining_s == pytest.approx(1e-6)


def test_the_budget_is_spent_at_the_reading_that_shows_it_used_up() -> None:
    # 30-minute budget: used 20 min by the reading at 20, 40 min by the one at 40.
    readings = series((0, 9.0), (20, 9.0), (40, 5.0))
    assert budget_spent_at_us(readings, FRIDGE) == T0 + 40 * MIN
    exact = series((0, 9.0), (30, 5.0))
    assert budget_spent_at_us(exact, FRIDGE) == T0 + 30 * MIN
    assert budget_spent_at_us(series((0, 9.0), (29, 5.0)), FRIDGE) is None


def test_a_profile_without_a_budget_has_no_use_and_is_never_spent() -> None:
    assert budget_use(10**12, PLAIN) is None
    assert budget_spent_at_us(series((0, 30.0), (600, 30.0)), PLAIN) is None


# --- rate of change -------------------------------------------------------------------------


def test_a_rise_faster_than_the_limit_is_dated_by_the_later_reading() -> None:
    [rise] = rises(series((0, 4.0), (2, 6.5)), FRIDGE)  # 2.5 C in 2 min
    assert (rise.from_us, rise.at_us, rise.from_c, rise.to_c) == (T0, T0 + 2 * MIN, 4.0, 6.5)
    assert rise.rise_c_per_min == pytest.approx(1.25)


def test_a_rise_exactly_at_the_limit_or_a_fall_is_no_alarm() -> None:
    assert rises(series((0, 4.0), (2, 6.0)), FRIDGE) == []  # exactly 1 C/min
    assert rises(series((0, 6.5), (2, 4.0)), FRIDGE) == []
    assert rises(series((0, 4.0), (0.5, 4.5)), FRIDGE) == []  # 1 C/min over 30 s
    assert len(rises(series((0, 4.0), (0.5, 4.500001)), FRIDGE)) == 1


def test_only_consecutive_readings_are_compared() -> None:
    # 4 -> 4.5 -> 7: the second pair rises 2.5 C/min; 4 -> 7 over two minutes is not looked at.
    found = rises(series((0, 4.0), (1, 4.5), (2, 7.0)), FRIDGE)
    assert [r.at_us for r in found] == [T0 + 2 * MIN]


def test_a_profile_without_a_limit_has_no_rises() -> None:
    assert rises(series((0, -190.0), (1, 20.0)), PLAIN) == []


# --- start-up ignore ------------------------------------------------------------------------


def test_readings_in_the_start_up_period_are_not_judged() -> None:
    settling = Profile("S", 2.0, 8.0, 0.0, 900.0, startup_ignore_s=600.0)
    readings = series((0, 20.0), (9.99, 20.0), (10, 5.0), (11, 9.0), (12, 5.0))
    assert judged(readings, settling, window_from_us=T0, window_until_us=None) == readings[2:]
    assert (
        judged(readings, settling, window_from_us=T0, window_until_us=T0 + 11 * MIN)
        == (readings[2:4])
    )
    found = detect_excursions(readings, settling, start_us=T0)
    assert [(e.kind, e.started_us) for e in found] == [(Kind.HIGH, T0 + 11 * MIN)]
    # With no ignore period the settling readings are an excursion of their own.
    assert len(detect_excursions(readings, PLAIN, start_us=T0)) == 2


# --- segments (what the worker adds per batch) ----------------------------------------------


def test_a_segment_without_new_readings_changes_nothing() -> None:
    assert segment_change(series((0, 9.0), (5, 5.0)), set(), FRIDGE) is None


def test_a_backfill_between_two_readings_changes_their_pair() -> None:
    segment = series((0, 9.0), (5, 5.0), (10, 12.0))
    change = segment_change(segment, {T0 + 5 * MIN}, FRIDGE)
    # Before: 9 C held 10 minutes; after: 5 minutes.
    assert change is not None and change.used_delta_us == -5 * MIN
    assert (change.decided_from_us, change.decided_until_us) == (T0 + 1, T0 + 10 * MIN)
    assert [r.at_us for r in change.rises] == [T0 + 10 * MIN]


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[tuple[int, float]], list[list[tuple[int, float]]]]:
    """Draw a series and its readings cut into messages in any order."""
    size = draw(st.integers(0, 40))
    gaps = draw(st.lists(st.sampled_from([1, US, 30 * US, MIN, 5 * MIN, 20 * MIN]), min_size=size,
                         max_size=size))  # fmt: skip
    temps = draw(st.lists(st.sampled_from([1.9, 2.0, 5.0, 7.0, 8.0, 8.1, 12.0]), min_size=size,
                          max_size=size))  # fmt: skip
    times = [T0 + sum(gaps[: i + 1]) for i in range(size)]
    readings = list(zip(times, temps, strict=True))
    shuffled = draw(st.permutations(readings))
    messages = []
    while shuffled:
        n = draw(st.integers(1, len(shuffled)))
        messages.append(list(shuffled[:n]))
        shuffled = shuffled[n:]
    return readings, messages


@settings(max_examples=300, deadline=None)
@given(deliveries())
def test_segments_added_in_any_arrival_order_give_the_totals_and_rises_of_all_readings(
    delivery: tuple[list[tuple[int, float]], list[list[tuple[int, float]]]],
) -> None:
    readings, messages = delivery
    stored: list[tuple[int, float]] = []
    used = 0
    alarms: set[int] = set()
    for message in messages:
        stored = sorted(stored + message)
        new = {t for t, _ in message}
        lo, hi = min(new), max(new)
        # What the store reads: from the last reading before the new ones to the first after.
        before = [t for t, _ in stored if t < lo]
        after = [t for t, _ in stored if t > hi]
        start = before[-1] if before else lo
        end = after[0] if after else hi
        segment = [(t, temp) for t, temp in stored if start <= t <= end]
        change = segment_change(segment, new, FRIDGE)
        assert change is not None
        used += change.used_delta_us
        alarms = {a for a in alarms if not change.decided_from_us <= a <= change.decided_until_us}
        alarms |= {r.at_us for r in change.rises}
        assert used == out_of_range_us(stored, FRIDGE)
        assert alarms == {r.at_us for r in rises(stored, FRIDGE)}
    assert used == out_of_range_us(readings, FRIDGE)


@settings(max_examples=300, deadline=None)
@given(deliveries())
def test_time_out_of_range_is_the_sum_of_every_run_as_excursions_measure_them(
    delivery: tuple[list[tuple[int, float]], list[list[tuple[int, float]]]],
) -> None:
    readings, _ = delivery
    no_grace = Profile("G0", 2.0, 8.0, 0.0, 10.0**9)
    runs = detect_excursions(readings, no_grace, start_us=T0)
    assert out_of_range_us(readings, FRIDGE) == sum(
        round(e.duration_s * US) for e in runs if e.kind is not Kind.SIGNAL_LOSS
    )


# --- severities -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "peak_c", "duration_s", "expected"),
    [
        ("HIGH", -149.0, 60.0, Severity.WARNING),
        ("HIGH", -130.0, 60.0, Severity.WARNING),  # 20 C beyond: not more than the margin
        ("HIGH", -129.9, 60.0, Severity.CRITICAL),
        ("HIGH", -20.0, 0.0, Severity.CRITICAL),
        ("SIGNAL_LOSS", None, 10_000.0, Severity.WARNING),
    ],
)
def test_ln2_excursions_are_warnings_and_critical_above_minus_130(
    kind: str, peak_c: float | None, duration_s: float, expected: Severity
) -> None:
    assert excursion_severity(kind, peak_c, duration_s, LN2) is expected


@pytest.mark.parametrize(
    ("kind", "peak_c", "duration_s", "expected"),
    [
        ("HIGH", 9.0, 900.0, Severity.WARNING),
        ("HIGH", 10.0, 900.0, Severity.WARNING),
        ("HIGH", 10.01, 900.0, Severity.CRITICAL),
        ("LOW", 1.0, 900.0, Severity.WARNING),
        ("LOW", -0.5, 900.0, Severity.CRITICAL),  # frozen
        ("HIGH", 8.5, 7199.9, Severity.WARNING),
        ("HIGH", 8.5, 7200.0, Severity.CRITICAL),  # at least the critical duration
        ("LOW", 1.5, 7200.0, Severity.CRITICAL),
    ],
)
def test_refrigerated_excursions_are_critical_by_margin_or_by_duration(
    kind: str, peak_c: float | None, duration_s: float, expected: Severity
) -> None:
    assert excursion_severity(kind, peak_c, duration_s, FRIDGE) is expected


def test_a_profile_without_critical_keys_only_warns() -> None:
    assert excursion_severity("HIGH", 80.0, 10.0**7, PLAIN) is Severity.WARNING


# --- profiles -------------------------------------------------------------------------------


def test_the_science_keys_are_read_from_a_profile_table() -> None:
    profile = profile_from_mapping(
        "X",
        {"min_c": 2, "max_c": 8, "grace_s": 900, "signal_loss_s": 900,
         "stability_budget_s": 3600, "max_rise_c_per_min": 1.5, "startup_ignore_s": 300,
         "critical_margin_c": 2, "critical_duration_s": 7200, "mkt": True},
    )  # fmt: skip
    assert profile.stability_budget_s == 3600 and profile.max_rise_c_per_min == 1.5
    assert profile.startup_ignore_s == 300 and profile.mkt
    assert profile.judged_from_us(T0) == T0 + 300 * US
    bare = profile_from_mapping("Y", {"max_c": -150, "signal_loss_s": 900})
    assert (bare.stability_budget_s, bare.max_rise_c_per_min, bare.startup_ignore_s) == (
        None, None, 0.0,
    )  # fmt: skip
    assert bare.judged_from_us(T0) == T0 and not bare.mkt


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("stability_budget_s", 0),
        ("stability_budget_s", -1),
        ("max_rise_c_per_min", 0),
        ("startup_ignore_s", -1),
        ("startup_ignore_s", math.inf),
        ("critical_margin_c", math.nan),
        ("critical_duration_s", "1h"),
        ("mkt", 1),
    ],
)
def test_a_bad_science_key_is_refused(key: str, value: object) -> None:
    with pytest.raises(ValidationError):
        profile_from_mapping("X", {"max_c": 8, "signal_loss_s": 900, key: value})


def test_the_shipped_profiles_keep_the_contract_values_and_judge_from_the_window_start() -> None:
    from coldchain.config import load_settings

    profiles = load_settings(env={}).profiles
    assert {p.startup_ignore_s for p in profiles.values()} == {0.0}
    assert {name for name, p in profiles.items() if p.mkt} == {"REFRIGERATED", "CRT"}
    assert all(p.stability_budget_s for p in profiles.values())
    # Per pair of readings, a rise limit trips on sensor noise at short intervals (0.1 C in
    # 1 s is 6 C/min): only the cryogenic profiles, at 10 C/min, set one.
    assert {name: p.max_rise_c_per_min for name, p in profiles.items()} == {
        "LN2_VAPOR": 10.0, "DRY_ICE": 10.0, "REFRIGERATED": None, "CRT": None,
    }  # fmt: skip


# --- mean kinetic temperature, time-weighted ------------------------------------------------


def test_equally_spaced_readings_give_the_textbook_mkt() -> None:
    temps = [25.0, 25.0, 30.0, 30.0, 20.0]
    # The last reading stands for no time: the first four, equally spaced, are the series.
    readings = [(T0 + i * 3600 * US, t) for i, t in enumerate(temps)]
    assert time_weighted_mkt(readings) == pytest.approx(
        mean_kinetic_temperature(temps[:-1]), abs=1e-9
    )


def test_a_reading_weighs_the_time_until_the_next_one() -> None:
    # 25 C for one hour, then 30 C for two: as the equally spaced series 25, 30, 30.
    # By hand (USP <1079>, dH/R = 83144 / 8.3144 = 10000 K): exp(-10000/298.15) and twice
    # exp(-10000/303.15), averaged, give ln(mean) = -33.1397; 10000 / 33.1397 = 301.75 K,
    # 28.60 C (the arithmetic mean is 28.33 C).
    readings = [(T0, 25.0), (T0 + 3600 * US, 30.0), (T0 + 3 * 3600 * US, 4.0)]
    terms = [math.exp(-10_000 / 298.15), 2 * math.exp(-10_000 / 303.15)]
    by_hand = 10_000 / -math.log(sum(terms) / 3) - 273.15
    assert time_weighted_mkt(readings) == pytest.approx(by_hand, abs=1e-9)
    assert time_weighted_mkt(readings) == pytest.approx(28.60, abs=0.005)
    assert time_weighted_mkt(readings) == pytest.approx(
        mean_kinetic_temperature([25.0, 30.0, 30.0]), abs=1e-9
    )


def test_the_weighted_formula_is_the_published_time_weighted_one() -> None:
    # The time-weighted form, sum(t_i exp(-dH/RT_i)) / sum(t_i), as published by Seeq
    # ("Mean Kinetic Temperature (MKT) Calculation", J. Reckamp, 2020) for unequally spaced
    # data: weights 1, 2 and 3 of 2, 8 and 5 C.
    temps, weights = [2.0, 8.0, 5.0], [1.0, 2.0, 3.0]
    terms = [w * math.exp(-10_000 / (t + 273.15)) for t, w in zip(temps, weights, strict=True)]
    expected = 10_000 / -math.log(sum(terms) / 6.0) - 273.15
    assert weighted_mean_kinetic_temperature(temps, weights) == pytest.approx(expected, abs=1e-9)
    # Weights scale away: only their proportions count.
    assert weighted_mean_kinetic_temperature(temps, [10.0, 20.0, 30.0]) == pytest.approx(
        expected, abs=1e-9
    )


def test_edge_series_of_the_time_weighted_mkt() -> None:
    assert time_weighted_mkt([]) is None
    assert time_weighted_mkt([(T0, 5.0)]) == pytest.approx(5.0)
    with pytest.raises(ValueError):
        time_weighted_mkt([(T0, 5.0), (T0, 6.0)])
    with pytest.raises(ValueError):
        weighted_mean_kinetic_temperature([5.0], [-1.0])
    with pytest.raises(ValueError):
        weighted_mean_kinetic_temperature([5.0, 6.0], [1.0])
    assert weighted_mean_kinetic_temperature([5.0, 40.0], [1.0, 0.0]) == pytest.approx(5.0)
