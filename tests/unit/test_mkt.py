"""Mean kinetic temperature: the USP <1079> formula, stable down to liquid-nitrogen vapour."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coldchain.domain.mkt import TempSummary, mean_kinetic_temperature, summary

DELTA_H = 83_144.0
R = 8.3144


def plain_mkt(temps_c: list[float], delta_h: float = DELTA_H) -> float:
    """The textbook formula, term by term, with no guard against underflow."""
    terms = [math.exp(-delta_h / (R * (t + 273.15))) for t in temps_c]
    return (delta_h / R) / -math.log(sum(terms) / len(terms)) - 273.15


def test_an_empty_series_has_no_mkt() -> None:
    assert mean_kinetic_temperature([]) is None
    assert summary([]) == TempSummary(0, None, None, None, None)


@pytest.mark.parametrize("temp_c", [-196.0, -190.0, -150.0, -80.0, -20.0, 5.0, 25.0, 40.0])
def test_a_constant_series_has_that_temperature_as_its_mkt(temp_c: float) -> None:
    mkt_c = mean_kinetic_temperature([temp_c] * 50)
    assert mkt_c == pytest.approx(temp_c, abs=1e-9)


def test_room_temperatures_match_the_plain_formula() -> None:
    temps_c = [20.0, 22.5, 25.0, 27.5, 30.0, 24.0, 21.0, 35.0, 18.0, 25.0, 26.0, 23.0]
    assert mean_kinetic_temperature(temps_c) == pytest.approx(plain_mkt(temps_c), abs=1e-9)


def test_a_textbook_month_of_weekly_highs_weighs_the_warm_week_more() -> None:
    # Two weeks at 25 C and two at 30 C: the arithmetic mean is 27.5 C, the MKT is higher.
    # By hand, with dH/R = 10000 K: exp(-10000/298.15) = e^-33.5402, exp(-10000/303.15) =
    # e^-32.9870; their mean is e^-33.5402 * (1 + e^0.5532) / 2 = e^-33.2258, and
    # 10000 / 33.2258 = 300.97 K = 27.82 C.
    temps_c = [25.0, 25.0, 30.0, 30.0]
    mkt_c = mean_kinetic_temperature(temps_c)
    assert mkt_c == pytest.approx(plain_mkt(temps_c), abs=1e-9)
    assert mkt_c == pytest.approx(27.82, abs=0.005)


def test_another_activation_energy_is_used_when_given() -> None:
    temps_c = [2.0, 8.0, 15.0, 4.0]
    assert mean_kinetic_temperature(temps_c, 60_000.0) == pytest.approx(
        plain_mkt(temps_c, 60_000.0), abs=1e-9
    )
    # A higher activation energy makes the warm reading count for more.
    assert mean_kinetic_temperature(temps_c, 120_000.0) > mean_kinetic_temperature(  # type: ignore[operator]
        temps_c, 60_000.0
    )


def test_a_cryogenic_series_gives_a_finite_mkt_within_its_range() -> None:
    temps_c = [-190.0, -189.5, -191.0, -140.0, -185.0, -196.0]
    mkt_c = mean_kinetic_temperature(temps_c)
    assert mkt_c is not None and math.isfinite(mkt_c)
    assert -196.0 <= mkt_c <= -140.0
    assert mkt_c >= sum(temps_c) / len(temps_c)


def test_a_series_so_cold_that_every_term_underflows_still_has_an_mkt() -> None:
    # At 1 K every exp(-1e4 / T) is 0.0 in double precision: the plain formula divides by -inf.
    temps_c = [-272.15, -272.0, -271.5]
    assert math.exp(-DELTA_H / (R * 1.0)) == 0.0
    mkt_c = mean_kinetic_temperature(temps_c)
    assert mkt_c is not None and -272.15 <= mkt_c <= -271.5


@pytest.mark.parametrize("bad", [-273.15, -300.0, math.nan, math.inf])
def test_a_temperature_at_or_below_absolute_zero_is_refused(bad: float) -> None:
    with pytest.raises(ValueError):
        mean_kinetic_temperature([20.0, bad])


def test_the_summary_gives_count_extremes_mean_and_mkt() -> None:
    result = summary([-190.0, -150.0, -170.0])
    assert (result.count, result.min_c, result.max_c) == (3, -190.0, -150.0)
    assert result.mean_c == pytest.approx(-170.0)
    assert result.mkt_c is not None and result.mean_c <= result.mkt_c <= -150.0  # type: ignore[operator]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.floats(min_value=-200.0, max_value=60.0, allow_nan=False, allow_infinity=False),
        min_size=1,
        max_size=60,
    )
)
def test_mkt_is_never_below_the_arithmetic_mean_nor_outside_the_range(temps_c: list[float]) -> None:
    mkt_c = mean_kinetic_temperature(temps_c)
    assert mkt_c is not None
    assert mkt_c >= sum(temps_c) / len(temps_c) - 1e-9
    assert min(temps_c) - 1e-9 <= mkt_c <= max(temps_c) + 1e-9
