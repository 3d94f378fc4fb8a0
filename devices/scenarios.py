"""Pure scenarios for the simulated loggers: temperature curves and what to send when.

Nothing here touches the network or reads the clock: every function is a pure function of its
arguments (the start time, the elapsed time, the seed), so curves and schedules are tested
without a broker. A plan is a sequence of `Send(at_s, readings)`: at `at_s` seconds of wall-clock
time after the start, publish these readings. Readings sit on a grid `start + i * interval_s`
(index `i`, negative for the past) and carry a battery level on every 10th index.

Scenarios:

- `nominal`: an LN2 dry shipper in vapour phase, about -190 C within +-1.5 C (a slow wobble
  plus sensor noise), never above -150 C. One reading per interval from the start, sent live.
- `excursion`: nominal, except that in every hour of runtime, from `warmup_after_s` for
  `warmup_s`, the shipper warms up: every reading in that window is above -150 C, peaking at
  about -130 C halfway through; after the window it is back at about -190 C.
- `signal-loss`: the logger starts as if it had already been out of coverage for `backfill_s`:
  its buffer holds readings on the grid from `start - backfill_s`. It stays silent for another
  `silence_s` of wall-clock time while it goes on sampling, then publishes the whole backlog,
  `[start - backfill_s, start + silence_s]`, as ONE store-and-forward pack (split only where a
  pack would exceed 10,000 records or 256 KiB), then goes on live like nominal. A consumer
  watching a shipment whose monitoring began more than `signal_loss_s` ago sees a signal loss
  within `silence_s` of the start, then a backfill that fills the gap. It happens once per run.
- `load`: `count` messages of `pack_size` temperature records each (no battery records, so
  records = readings), at `rate` messages per second (0 = as fast as possible), nominal
  temperatures. Reading times are spaced by `interval_s` from
  `start - count * pack_size * interval_s`, so the last is one interval before the start and
  none is in the future (a backend refuses readings from the future).
- `dry-shipper`: an LN2 dry shipper charged `charged_h_ago` hours before the start, with a
  rated static hold of `rated_hold_h`, `charge_fraction` of its rated charge and
  `heat_leak_factor` times its rated heat leak (devices/dryshipper.py: flat near -190 C
  while LN2 is left, then a Newtonian warm-up through -150 C), plus +-0.5 C of noise. The
  logger's last `backfill_s` are sent first as a backlog, replayed `accel` times faster than
  they were sampled (in packs of `pack_size`; `accel` 0 = as one store-and-forward pack at
  the start), so that hours of a warm-up reach the backend in seconds with their own times,
  none in the future; then it goes on live.
"""

from __future__ import annotations

import heapq
import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from devices.dryshipper import DryShipper

SCENARIOS = ("nominal", "excursion", "signal-loss", "load", "dry-shipper")

NOMINAL_C = -190.0
LIMIT_C = -150.0
PEAK_C = -130.0
NOISE_C = 1.5
DRY_SHIPPER_NOISE_C = 0.5
EXCURSION_PERIOD_S = 3600.0
BATTERY_EVERY = 10
# About 1 % per 500 readings: a few days at a 10 s interval, as a real logger's cell lasts.
BATTERY_READINGS_PER_PCT = 500

_MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class Scenario:
    """What a simulated logger does: the scenario name and its options."""

    name: str = "nominal"
    interval_s: float = 10.0
    seed: int = 0
    silence_s: float = 60.0
    backfill_s: float = 1200.0
    warmup_after_s: float = 60.0
    warmup_s: float = 300.0
    rate: float = 0.0
    count: int = 1000
    pack_size: int = 1
    rated_hold_h: float = 240.0
    charged_h_ago: float = 230.0
    charge_fraction: float = 1.0
    heat_leak_factor: float = 1.0
    accel: float = 0.0

    def __post_init__(self) -> None:
        if self.name not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.name!r}")
        # Times are sent to the millisecond: a finer grid would give readings the same identity.
        if not self.interval_s >= 0.001:
            raise ValueError("interval_s must be at least 0.001")
        numbers = ("silence_s", "backfill_s", "warmup_after_s", "warmup_s", "rate")
        for field in (*numbers, "charged_h_ago", "accel"):
            value = getattr(self, field)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{field} must be a finite number >= 0")
        if self.count < 1:
            raise ValueError("count must be at least 1")
        if not 1 <= self.pack_size <= 10_000:
            raise ValueError("pack_size must be between 1 and 10000")
        self.shipper()  # its own checks

    def shipper(self) -> DryShipper:
        """Return the dry shipper of the `dry-shipper` scenario."""
        return DryShipper(
            rated_hold_h=self.rated_hold_h,
            charge_fraction=self.charge_fraction,
            heat_leak_factor=self.heat_leak_factor,
        )


@dataclass(frozen=True)
class Reading:
    """One sample: its absolute time (Unix seconds, ms precision), temperature and battery."""

    time: float
    temp_c: float
    batt_pct: int | None = None


@dataclass(frozen=True)
class Send:
    """Publish these readings `at_s` seconds of wall-clock time after the start."""

    at_s: float
    readings: tuple[Reading, ...]


def logger_seed(seed: int, logger_id: str) -> int:
    """Derive a per-logger seed so loggers of one fleet do not share their noise."""
    return zlib.crc32(f"{seed}:{logger_id}".encode())


def noise(seed: int, key: int) -> float:
    """Return deterministic noise in [-1, 1] for a seed and an integer key (splitmix64)."""
    z = (seed * 0x9E3779B97F4A7C15 + key * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    z ^= z >> 31
    return (z / _MASK64) * 2.0 - 1.0


def nominal_temp_c(elapsed_s: float, seed: int = 0) -> float:
    """Return the LN2 vapour temperature at `elapsed_s` after the start: -190 C +- 1.5 C."""
    phase = (seed % 3600) / 3600.0 * 2.0 * math.pi
    wobble = 0.8 * math.sin(2.0 * math.pi * elapsed_s / 900.0 + phase)
    return round(NOMINAL_C + wobble + 0.7 * noise(seed, round(elapsed_s * 1000)), 2)


def excursion_temp_c(
    elapsed_s: float, seed: int = 0, *, warmup_after_s: float = 60.0, warmup_s: float = 300.0
) -> float:
    """Return the temperature of a shipper that warms above -150 C once per hour of runtime."""
    if elapsed_s < 0:
        return nominal_temp_c(elapsed_s, seed)
    into_hour = elapsed_s % EXCURSION_PERIOD_S
    if not warmup_after_s <= into_hour < warmup_after_s + warmup_s:
        return nominal_temp_c(elapsed_s, seed)
    fraction = (into_hour - warmup_after_s) / warmup_s
    # The floor stays 2 C above the limit and the noise is 1 C, so every reading of the
    # window is out of range and the excursion lasts the whole warm-up.
    floor_c = LIMIT_C + 2.0
    temp = floor_c + (PEAK_C - floor_c) * math.sin(math.pi * fraction)
    return round(temp + 1.0 * noise(seed, round(elapsed_s * 1000)), 2)


def dry_shipper_temp_c(scenario: Scenario, elapsed_s: float) -> float:
    """Return the dry shipper's product temperature `elapsed_s` after the start, with noise."""
    hours = scenario.charged_h_ago + elapsed_s / 3600.0
    temp = scenario.shipper().temp_c(hours)
    return round(temp + DRY_SHIPPER_NOISE_C * noise(scenario.seed, round(elapsed_s * 1000)), 2)


def temperature_c(scenario: Scenario, elapsed_s: float) -> float:
    """Return the scenario's temperature at `elapsed_s` seconds after the start."""
    if scenario.name == "dry-shipper":
        return dry_shipper_temp_c(scenario, elapsed_s)
    if scenario.name == "excursion":
        return excursion_temp_c(
            elapsed_s,
            scenario.seed,
            warmup_after_s=scenario.warmup_after_s,
            warmup_s=scenario.warmup_s,
        )
    return nominal_temp_c(elapsed_s, scenario.seed)


def battery_pct(index: int) -> int:
    """Return the battery level at reading `index`: 100 at the start, slowly decreasing."""
    return max(0, 100 - max(0, index) // BATTERY_READINGS_PER_PCT)


def reading_at(scenario: Scenario, start: float, index: int) -> Reading:
    """Return the reading at grid `index` (negative = before the start)."""
    time = round(start + index * scenario.interval_s, 3)
    batt = battery_pct(index) if index % BATTERY_EVERY == 0 else None
    return Reading(time=time, temp_c=temperature_c(scenario, time - start), batt_pct=batt)


def plan(scenario: Scenario, start: float) -> Iterator[Send]:
    """Yield what to send when, from `start` (Unix seconds); endless except for `load`."""
    if scenario.name == "load":
        yield from _load_plan(scenario, start)
        return
    if scenario.name == "dry-shipper":
        yield from heapq.merge(
            _backlog_plan(scenario, start), _live_plan(scenario, start, 0), key=lambda s: s.at_s
        )
        return
    index = 0
    if scenario.name == "signal-loss":
        first = -math.floor(scenario.backfill_s / scenario.interval_s + 1e-9)
        last = math.floor(scenario.silence_s / scenario.interval_s + 1e-9)
        backlog = tuple(reading_at(scenario, start, i) for i in range(first, last + 1))
        yield Send(at_s=scenario.silence_s, readings=backlog)
        index = last + 1
    while True:
        yield Send(at_s=index * scenario.interval_s, readings=(reading_at(scenario, start, index),))
        index += 1


def _live_plan(scenario: Scenario, start: float, index: int) -> Iterator[Send]:
    while True:
        yield Send(at_s=index * scenario.interval_s, readings=(reading_at(scenario, start, index),))
        index += 1


def _backlog_plan(scenario: Scenario, start: float) -> Iterator[Send]:
    """The readings of the last `backfill_s` before the start, replayed `accel` times faster."""
    first = -math.floor(scenario.backfill_s / scenario.interval_s + 1e-9)
    indexes = range(first, 0)
    if scenario.accel == 0:
        if indexes:
            yield Send(0.0, tuple(reading_at(scenario, start, i) for i in indexes))
        return
    for at in range(0, len(indexes), scenario.pack_size):
        chunk = indexes[at : at + scenario.pack_size]
        at_s = (chunk[-1] - first) * scenario.interval_s / scenario.accel
        yield Send(at_s, tuple(reading_at(scenario, start, i) for i in chunk))


def _load_plan(scenario: Scenario, start: float) -> Iterator[Send]:
    size = scenario.pack_size
    first_time = start - scenario.count * size * scenario.interval_s
    for message in range(scenario.count):
        readings = []
        for k in range(message * size, (message + 1) * size):
            time = round(first_time + k * scenario.interval_s, 3)
            readings.append(Reading(time=time, temp_c=nominal_temp_c(time - start, scenario.seed)))
        at_s = message / scenario.rate if scenario.rate > 0 else 0.0
        yield Send(at_s=at_s, readings=tuple(readings))
