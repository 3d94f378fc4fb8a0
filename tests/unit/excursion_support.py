"""An in-memory ReadingSource shared by the excursion tests."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from coldchain.domain.profiles import Profile


class ListSource:
    """A ReadingSource over an in-memory sorted list, as the store answers it with SQL."""

    def __init__(self, profile: Profile, readings: Sequence[tuple[int, float]] = ()) -> None:
        self.profile = profile
        self.times: list[int] = []
        self.temps: list[float] = []
        self.add(readings)

    def add(self, readings: Sequence[tuple[int, float]]) -> None:
        """Store readings; the first value of a time stands."""
        for t, temp in readings:
            i = bisect.bisect_left(self.times, t)
            if i < len(self.times) and self.times[i] == t:
                continue
            self.times.insert(i, t)
            self.temps.insert(i, temp)

    def last_in_range_before(self, before_us: int, *, not_before_us: int | None) -> int | None:
        """Return the latest in-range reading time in [not_before_us, before_us)."""
        for i in range(bisect.bisect_left(self.times, before_us) - 1, -1, -1):
            if not_before_us is not None and self.times[i] < not_before_us:
                return None
            if not self.profile.out_of_range(self.temps[i]):
                return self.times[i]
        return None

    def first_in_range_after(self, after_us: int, *, not_after_us: int | None) -> int | None:
        """Return the earliest in-range reading time in (after_us, not_after_us]."""
        for i in range(bisect.bisect_right(self.times, after_us), len(self.times)):
            if not_after_us is not None and self.times[i] > not_after_us:
                return None
            if not self.profile.out_of_range(self.temps[i]):
                return self.times[i]
        return None

    def readings_between(self, from_us: int, until_us: int | None) -> list[tuple[int, float]]:
        """Return the readings in [from_us, until_us], sorted."""
        lo = bisect.bisect_left(self.times, from_us)
        hi = len(self.times) if until_us is None else bisect.bisect_right(self.times, until_us)
        return list(zip(self.times[lo:hi], self.temps[lo:hi], strict=True))
