"""Encode readings as SenML JSON packs (RFC 8428), split to the backend's size limits."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from devices.scenarios import Reading

MAX_RECORDS = 10_000
MAX_BYTES = 256 * 1024


def base_name(logger_id: str) -> str:
    """Return the SenML base name that the backend expects for this logger."""
    return f"urn:dev:logger:{logger_id}:"


def pack_records(logger_id: str, readings: Sequence[Reading]) -> list[dict[str, Any]]:
    """Return the SenML records of one pack: `bt` is the first time, `t` offsets from it."""
    records: list[dict[str, Any]] = []
    if not readings:
        return records
    # Sorted so every offset is >= 0: SenML reads a resolved time below 2**28 as relative.
    ordered = sorted(readings, key=lambda r: r.time)
    bt = ordered[0].time
    for reading in ordered:
        t = _offset(reading.time, bt)
        if records:
            records.append({"n": "temp", "t": t, "v": reading.temp_c})
        else:
            first = {"bn": base_name(logger_id), "bt": bt, "bu": "Cel"}
            records.append({**first, "n": "temp", "t": t, "v": reading.temp_c})
        if reading.batt_pct is not None:
            records.append({"n": "batt", "u": "%EL", "t": t, "v": reading.batt_pct})
    return records


def encode_packs(
    logger_id: str,
    readings: Iterable[Reading],
    *,
    max_records: int = MAX_RECORDS,
    max_bytes: int = MAX_BYTES,
) -> list[bytes]:
    """Encode readings as as few packs as the record and byte limits allow."""
    ordered = sorted(readings, key=lambda r: r.time)
    packs: list[bytes] = []
    chunk: list[Reading] = []
    n_records = 0
    for reading in ordered:
        size = 1 if reading.batt_pct is None else 2
        if chunk and n_records + size > max_records:
            packs.extend(_encode_within(logger_id, chunk, max_bytes))
            chunk, n_records = [], 0
        chunk.append(reading)
        n_records += size
    if chunk:
        packs.extend(_encode_within(logger_id, chunk, max_bytes))
    return packs


def _encode_within(logger_id: str, readings: list[Reading], max_bytes: int) -> list[bytes]:
    payload = json.dumps(pack_records(logger_id, readings), separators=(",", ":")).encode()
    if len(payload) <= max_bytes or len(readings) == 1:
        return [payload]
    half = len(readings) // 2
    return _encode_within(logger_id, readings[:half], max_bytes) + _encode_within(
        logger_id, readings[half:], max_bytes
    )


def _offset(time: float, bt: float) -> float | int:
    offset = round(time - bt, 3)
    return int(offset) if offset.is_integer() else offset
