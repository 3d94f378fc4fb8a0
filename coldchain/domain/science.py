"""Excursion science (issue 9): stability budget, rate of change and severities.

Pure functions of one logger's readings, each a ``(time_us, temp_c)`` tuple, sorted by time
with unique times, already cut to the judged window (`judged`: the monitoring window without
the profile's start-up ignore period). Everything here reads a series as the excursion rules
do, as consecutive pairs of readings: a reading stands for the time until the next one.

- Time out of range (`out_of_range_us`): the sum, over consecutive pairs whose first reading
  is out of range, of the time to the second. It is the sum of the durations of every
  out-of-range run, those shorter than the grace period included (the budget is about the
  product's stability, not about alarms), each measured as an excursion's ``duration_s`` is:
  to the next reading on the other side, or to the latest reading while it lasts. A gap
  after an out-of-range reading counts whole, as it does in an excursion's duration; a gap
  after an in-range reading counts nothing. Nothing resets it: it adds up over the whole
  shipment, and since it is a sum over pairs it does not depend on arrival order.
- The budget is spent at the first reading at which the time out of range before it reaches
  ``stability_budget_s`` (`budget_spent_at_us`): the reading that shows it used up.
- A rise (`rises`) is a pair of consecutive readings whose temperature went up strictly
  faster than ``max_rise_c_per_min``; it is dated by the later reading.
- Severities (`Severity`, one vocabulary for excursions and alarms): ``info`` (nothing to do),
  ``warning`` (a person should look: every excursion is at least this) and ``critical``
  (the product is likely harmed).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum

from coldchain.domain.profiles import Profile

__all__ = [
    "BudgetUse",
    "Rise",
    "SegmentChange",
    "Severity",
    "budget_spent_at_us",
    "budget_use",
    "excursion_severity",
    "judged",
    "out_of_range_us",
    "rises",
    "segment_change",
]

_US_PER_S = 1_000_000
_US_PER_MIN = 60_000_000

Readings = Sequence[tuple[int, float]]


class Severity(StrEnum):
    """How urgent an excursion or an alarm is."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


def judged(
    readings: Readings, profile: Profile, *, window_from_us: int, window_until_us: int | None
) -> list[tuple[int, float]]:
    """Return the readings the rules judge: inside the window, past the start-up ignore."""
    start_us = profile.judged_from_us(window_from_us)
    return [
        (t, temp)
        for t, temp in readings
        if t >= start_us and (window_until_us is None or t <= window_until_us)
    ]


def _check_sorted(readings: Readings) -> None:
    for (a, _), (b, _) in zip(readings, readings[1:], strict=False):
        if b <= a:
            raise ValueError(f"readings are not sorted by unique time at {b}")


def out_of_range_us(readings: Readings, profile: Profile) -> int:
    """Return the time out of range of a series: each out-of-range reading held to the next."""
    _check_sorted(readings)
    return sum(
        b - a
        for (a, temp), (b, _) in zip(readings, readings[1:], strict=False)
        if profile.out_of_range(temp)
    )


def _budget_us(profile: Profile) -> int | None:
    budget_s = profile.stability_budget_s
    return None if budget_s is None else round(budget_s * _US_PER_S)


def budget_spent_at_us(readings: Readings, profile: Profile) -> int | None:
    """Return the time of the first reading by which the budget is used up (None: it is not)."""
    budget_us = _budget_us(profile)
    if budget_us is None:
        return None
    _check_sorted(readings)
    used = 0
    for (a, temp), (b, _) in zip(readings, readings[1:], strict=False):
        if profile.out_of_range(temp):
            used += b - a
            if used >= budget_us:
                return b
    return None


@dataclass(frozen=True, slots=True)
class BudgetUse:
    """A stability budget and how much of it the readings have used."""

    budget_s: float
    used_s: float
    remaining_s: float
    spent: bool


def budget_use(used_us: int, profile: Profile) -> BudgetUse | None:
    """Return the use of the profile's budget given the time out of range (None: no budget)."""
    budget_us = _budget_us(profile)
    if budget_us is None:
        return None
    return BudgetUse(
        budget_s=budget_us / _US_PER_S,
        used_s=used_us / _US_PER_S,
        remaining_s=max(0, budget_us - used_us) / _US_PER_S,
        spent=used_us >= budget_us,
    )


@dataclass(frozen=True, slots=True)
class Rise:
    """Two consecutive readings whose temperature rose faster than the profile allows."""

    from_us: int
    at_us: int
    from_c: float
    to_c: float
    rise_c_per_min: float


def rises(readings: Readings, profile: Profile) -> list[Rise]:
    """Return every pair of consecutive readings that rose strictly faster than allowed."""
    limit = profile.max_rise_c_per_min
    if limit is None:
        return []
    _check_sorted(readings)
    found = []
    for (a, temp_a), (b, temp_b) in zip(readings, readings[1:], strict=False):
        # Compare the rise over the pair with the limit over the same time, not the slope
        # with the limit: no division, so no rounding decides a pair exactly on the limit.
        if (temp_b - temp_a) * _US_PER_MIN > limit * (b - a):
            rate = (temp_b - temp_a) * _US_PER_MIN / (b - a)
            found.append(Rise(a, b, temp_a, temp_b, rate))
    return found


@dataclass(frozen=True, slots=True)
class SegmentChange:
    """What newly stored readings changed in the pairs of a segment of the series.

    ``used_delta_us`` is the change of the time out of range; ``rises`` are the rises of the
    segment now, and they decide the rise alarms dated ``decided_from_us <= t <=
    decided_until_us`` (the readings whose predecessor the new ones may have changed).
    """

    used_delta_us: int
    rises: list[Rise]
    decided_from_us: int
    decided_until_us: int


def segment_change(
    segment: Readings, new_times_us: Collection[int], profile: Profile
) -> SegmentChange | None:
    """Return what new readings changed in a segment, or None if it holds none of them.

    ``segment`` is every judged reading from the last one before the earliest new reading
    (or from the earliest new one, with none before it) to the first one after the latest
    new reading (or to the latest new one): every pair that the new readings changed lies in
    it, and every pair in it before them was between its old readings.
    """
    if not any(t in new_times_us for t, _ in segment):
        return None
    old = [(t, temp) for t, temp in segment if t not in new_times_us]
    delta = out_of_range_us(segment, profile) - out_of_range_us(old, profile)
    first_us = segment[0][0]
    decided_from = first_us if first_us in new_times_us else first_us + 1
    return SegmentChange(delta, rises(segment, profile), decided_from, segment[-1][0])


def excursion_severity(
    kind: str, peak_c: float | None, duration_s: float, profile: Profile
) -> Severity:
    """Judge an excursion: critical past the profile's margin or duration, else a warning.

    A signal loss is a warning: the temperature is unknown, not known to be wrong. A HIGH or
    LOW excursion is critical when its peak is strictly more than ``critical_margin_c``
    beyond the limit it crossed (LN2 vapour: above -130 C, near the glass transition of
    water, where stored cells start to change) or it lasted at least ``critical_duration_s``.
    """
    if kind not in ("HIGH", "LOW"):
        return Severity.WARNING
    limit = profile.max_c if kind == "HIGH" else profile.min_c
    margin = profile.critical_margin_c
    if margin is not None and peak_c is not None and limit is not None:
        beyond = peak_c - limit if kind == "HIGH" else limit - peak_c
        if beyond > margin:
            return Severity.CRITICAL
    if profile.critical_duration_s is not None and duration_s >= profile.critical_duration_s:
        return Severity.CRITICAL
    return Severity.WARNING
