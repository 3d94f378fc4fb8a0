"""Conversions between integer microseconds, datetimes and RFC 3339 strings."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def to_us(moment: datetime) -> int:
    """Return integer microseconds since the epoch of a tz-aware datetime."""
    delta = moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(time_us: int) -> datetime:
    """Return the tz-aware UTC datetime of integer microseconds since the epoch."""
    return datetime.fromtimestamp(time_us // 1_000_000, UTC).replace(
        microsecond=time_us % 1_000_000
    )


def rfc3339(moment: datetime | int | None) -> str | None:
    """Format a time as RFC 3339 UTC ending in Z (fraction only when there is one)."""
    if moment is None:
        return None
    if isinstance(moment, int):
        moment = from_us(moment)
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 time with a zone; raise ValueError for a naive or malformed one."""
    moment = datetime.fromisoformat(text.replace("z", "Z"))
    if moment.tzinfo is None:
        raise ValueError("time has no zone: RFC 3339 needs Z or an offset")
    return moment.astimezone(UTC)


def now_us() -> int:
    """Return the wall-clock time in microseconds (arrival times, the signal-loss clock)."""
    return time.time_ns() // 1000
