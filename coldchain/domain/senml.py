"""SenML JSON (RFC 8428) packs from the loggers: parsed into readings, or refused with a reason.

The parser runs on the ingest hot path, so `parse_pack` is one tight loop over the records:
per-record exceptions, attribute lookups and re-validation of unchanged base fields are kept
off the path taken by a valid record. It never raises: whatever it cannot accept comes back as
a `Refusal` that the worker sends to the dead-letter store with the raw payload.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple, NoReturn

from coldchain.domain.errors import ValidationError

# \Z rather than $: "$" also matches before a trailing newline, which would let "L1\n" through
# any caller that uses .match() instead of .fullmatch().
LOGGER_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")

_TOPIC_HEAD = ("coldchain", "v1", "loggers")
_TOPIC_TAIL = "readings"
_URN_PREFIX = "urn:dev:logger:"

# RFC 8428: times below 2**28 are relative to "now"; readings must carry the
# logger's own absolute clock, so such times are refused rather than guessed.
_RELATIVE_TIME_LIMIT_S = 2**28
_ABSOLUTE_ZERO_C = -273.15
_INF = math.inf


class Reason(StrEnum):
    """Why a message or a record went to the dead-letter store (stable strings)."""

    NOT_JSON = "not-json"
    NOT_SENML = "not-senml"
    TOO_LARGE = "too-large"
    TOO_MANY_RECORDS = "too-many-records"
    BAD_TOPIC = "bad-topic"
    UNKNOWN_LOGGER = "unknown-logger"
    WRONG_LOGGER = "wrong-logger"
    BAD_BASE_NAME = "bad-base-name"
    UNKNOWN_NAME = "unknown-name"
    UNKNOWN_UNIT = "unknown-unit"
    NO_VALUE = "no-value"
    BAD_VALUE = "bad-value"
    NON_FINITE_VALUE = "non-finite-value"
    NO_TIME = "no-time"
    RELATIVE_TIME = "relative-time"
    FUTURE_TIME = "future-time"
    CONFLICT = "conflict"
    STORE_ERROR = "store-error"
    BAD_STATUS = "bad-status"


class Reading(NamedTuple):
    """One accepted measurement, timestamped by the logger's clock."""

    logger_id: str
    name: str
    time_us: int
    value: float


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refused message (record_index None) or a refused record of a pack."""

    reason: Reason
    detail: str
    record_index: int | None = None


@dataclass(frozen=True, slots=True)
class PackLimits:
    """Size and clock limits applied to every pack."""

    max_bytes: int = 262144
    max_records: int = 10000
    max_clock_skew_s: float = 300.0

    def __post_init__(self) -> None:
        """Refuse limits that would make every pack (or none) acceptable."""
        if self.max_bytes <= 0:
            raise ValidationError("max_bytes must be positive", field="max_bytes")
        if self.max_records <= 0:
            raise ValidationError("max_records must be positive", field="max_records")
        if not (0 <= self.max_clock_skew_s < _INF):
            raise ValidationError(
                "max_clock_skew_s must be a finite number >= 0", field="max_clock_skew_s"
            )


DEFAULT_LIMITS = PackLimits()


@dataclass(frozen=True, slots=True)
class ParsedPack:
    """The readings accepted from one message and the refusals, both in pack order."""

    readings: list[Reading]
    refusals: list[Refusal]

    @property
    def record_count(self) -> int:
        """Return how many records the pack had (0 when the whole message was refused)."""
        # Every record yields exactly one reading or one indexed refusal.
        indexed = sum(1 for refusal in self.refusals if refusal.record_index is not None)
        return len(self.readings) + indexed


def logger_id_from_topic(topic: str) -> str | None:
    """Return the logger id of a readings topic, or None if the topic is not one."""
    parts = topic.split("/")
    if len(parts) != 5 or parts[4] != _TOPIC_TAIL or tuple(parts[:3]) != _TOPIC_HEAD:
        return None
    logger_id = parts[3]
    return logger_id if LOGGER_ID_RE.fullmatch(logger_id) else None


# Measurement kinds, by resolved measurement name.
_TEMP, _BATT, _LAT, _LON, _LID = range(5)
_NAMES: dict[str, tuple[str, int]] = {
    "temp": ("temp", _TEMP),
    "batt": ("batt", _BATT),
    "lat": ("lat", _LAT),
    "lon": ("lon", _LON),
    "lid": ("lid", _LID),
}
# Unit accepted for each numeric kind other than temp; None (no unit) is accepted too.
_PLAIN_UNIT = {_BATT: "%EL", _LAT: "lat", _LON: "lon"}
# Inclusive value ranges of the numeric kinds other than temp.
_RANGE = {_BATT: (0.0, 100.0), _LAT: (-90.0, 90.0), _LON: (-180.0, 180.0)}

# A record with no other keys than these skips the slow path (base fields, extensions).
_PLAIN_KEYS = frozenset({"n", "t", "v", "u"})
_VALUE_KEYS = ("v", "vs", "vb", "vd")
# Known RFC 8428 fields that carry nothing this parser needs: base sum, sum, update time.
_IGNORED_KEYS = frozenset({"bver", "bs", "s", "ut"})


# Tells an absent field from one that is present with the value null (a wrong type).
_MISSING: Any = object()


class _NonFiniteLiteralError(Exception):
    """A NaN, Infinity or -Infinity literal: valid in Python's JSON, never in SenML."""


def _refuse_constant(literal: str) -> NoReturn:
    raise _NonFiniteLiteralError(literal)


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def _show(value: object) -> str:
    """Describe a JSON value for a refusal detail, briefly and without recursing."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else f"{value[:40]!r}..."
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        text = str(value)
        return text if len(text) <= 40 else f"an integer of {len(text)} digits"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _as_float(value: int | float) -> float:
    """Convert a JSON number to float, saturating integers beyond the double range."""
    try:
        return float(value)
    except OverflowError:
        return _INF if value > 0 else -_INF


def _is_number(value: object) -> bool:
    # bool is a subclass of int, and true is not a number in SenML.
    return type(value) is int or type(value) is float


class _Base:
    """The base fields in effect while walking a pack (RFC 8428).

    A base field that is present but invalid refuses its own record and then stays "broken"
    until a valid value replaces it: every later record that it would apply to is refused
    too. Keeping the previous valid value instead would silently give those records a name,
    time or unit their sender did not mean (e.g. a shifted timestamp).
    """

    __slots__ = (
        "logger_id",
        "own_prefix",
        "name_refusal",
        "name_set",
        "time",
        "time_broken",
        "unit",
        "unit_broken",
        "value",
        "value_broken",
    )

    def __init__(self, logger_id: str) -> None:
        self.logger_id = logger_id
        self.own_prefix = f"{_URN_PREFIX}{logger_id}:"
        # Set while the base name in effect refuses every record under it.
        self.name_refusal: tuple[Reason, str] | None = None
        self.name_set = False
        self.time: int | float | None = None
        self.time_broken: str | None = None
        self.unit: str | None = None
        self.unit_broken: str | None = None
        self.value: float | None = None
        self.value_broken: str | None = None

    def absorb(self, record: dict[str, Any], index: int) -> tuple[Reason, str] | None:
        """Apply the base fields of a record; return what makes the record itself malformed."""
        problem: tuple[Reason, str] | None = None
        if "bn" in record:
            problem = self._absorb_name(record["bn"], index)
        if "bt" in record:
            bt = record["bt"]
            if _is_number(bt):
                self.time, self.time_broken = bt, None
            else:
                self.time_broken = f"the base time bt of record {index} is {_show(bt)}"
                problem = problem or (Reason.NOT_SENML, f"bt {_show(bt)} is not a number")
        if "bu" in record:
            bu = record["bu"]
            if type(bu) is str:
                self.unit, self.unit_broken = bu, None
            else:
                self.unit_broken = f"the base unit bu of record {index} is {_show(bu)}"
                problem = problem or (Reason.NOT_SENML, f"bu {_show(bu)} is not a string")
        if "bv" in record:
            bv = record["bv"]
            if _is_number(bv):
                self.value, self.value_broken = _as_float(bv), None
            else:
                self.value_broken = f"the base value bv of record {index} is {_show(bv)}"
                problem = problem or (Reason.NOT_SENML, f"bv {_show(bv)} is not a number")
        if problem is not None:
            return problem
        present = [key for key in _VALUE_KEYS if key in record]
        if len(present) > 1:
            fields = ", ".join(present)
            return Reason.NOT_SENML, f"the record has more than one value field ({fields})"
        for key in record:
            # RFC 8428: a field whose label ends in "_" must be understood.
            if key.endswith("_"):
                return Reason.NOT_SENML, f"the record has the unsupported field {_show(key)}"
        return None

    def _absorb_name(self, bn: object, index: int) -> tuple[Reason, str] | None:
        self.name_set = True
        if type(bn) is not str:
            self.name_refusal = (
                Reason.NOT_SENML,
                f"the base name bn of record {index} is {_show(bn)}, not a string",
            )
            return self.name_refusal
        if bn == self.own_prefix:
            self.name_refusal = None
            return None
        other = bn[len(_URN_PREFIX) : -1]
        if bn.startswith(_URN_PREFIX) and bn.endswith(":") and LOGGER_ID_RE.fullmatch(other):
            self.name_refusal = (
                Reason.WRONG_LOGGER,
                f"the base name {_show(bn)} names logger {other!r}, "
                f"not {self.logger_id!r} of the topic",
            )
        else:
            self.name_refusal = (
                Reason.BAD_BASE_NAME,
                f"the base name {_show(bn)} is not {self.own_prefix!r}",
            )
        return self.name_refusal


def _measurement_of_urn(name: str, logger_id: str) -> tuple[Reason, str] | str:
    """Return the measurement of a full 'urn:dev:logger:{id}:{m}' name, or why it is refused."""
    logger, sep, measurement = name[len(_URN_PREFIX) :].partition(":")
    if sep and logger != logger_id and LOGGER_ID_RE.fullmatch(logger):
        return (
            Reason.WRONG_LOGGER,
            f"the name {_show(name)} names logger {logger!r}, not {logger_id!r} of the topic",
        )
    if sep and logger == logger_id:
        return measurement
    return Reason.UNKNOWN_NAME, f"the name {_show(name)} is not a known measurement"


def _whole(reason: Reason, detail: str) -> ParsedPack:
    return ParsedPack([], [Refusal(reason, detail, None)])


def _decode(payload: bytes) -> ParsedPack | list[Any]:
    """Decode the JSON of a payload, or return the whole-message refusal."""
    try:
        # str(..., "utf-8") rather than json.loads(bytes): SenML JSON is UTF-8 only, and
        # json.loads would also guess UTF-16 and UTF-32.
        text = str(payload, "utf-8")
    except (UnicodeDecodeError, TypeError) as exc:
        return _whole(Reason.NOT_JSON, f"the payload is not UTF-8 text ({exc})")
    try:
        document = _DECODER.decode(text)
    except _NonFiniteLiteralError as exc:
        return _whole(
            Reason.NON_FINITE_VALUE,
            f"the payload contains the literal {exc.args[0]}, which is not a finite number",
        )
    except RecursionError:
        return _whole(Reason.NOT_JSON, "the JSON is nested too deeply")
    except json.JSONDecodeError as exc:
        return _whole(Reason.NOT_JSON, f"the payload is not JSON: {exc}")
    except ValueError:
        # Python refuses to convert integers of more than 4300 digits (CVE-2020-10735).
        return _whole(Reason.NOT_JSON, "the JSON has a number with too many digits")
    if type(document) is not list:
        return _whole(Reason.NOT_SENML, f"the pack is {_show(document)}, not an array")
    if not document:
        return _whole(Reason.NOT_SENML, "the pack is an empty array")
    return document


def parse_pack(
    payload: bytes,
    *,
    logger_id: str,
    received_us: int,
    limits: PackLimits = DEFAULT_LIMITS,
) -> ParsedPack:
    """Parse a SenML JSON pack from a logger into readings and refusals; never raise."""
    if len(payload) > limits.max_bytes:
        return _whole(
            Reason.TOO_LARGE,
            f"the payload has {len(payload)} bytes, more than the limit of {limits.max_bytes}",
        )
    records = _decode(payload)
    if isinstance(records, ParsedPack):
        return records
    if len(records) > limits.max_records:
        return _whole(
            Reason.TOO_MANY_RECORDS,
            f"the pack has {len(records)} records, more than the limit of {limits.max_records}",
        )

    readings: list[Reading] = []
    refusals: list[Refusal] = []
    add_reading = readings.append
    refuse = refusals.append
    new_reading = tuple.__new__  # skips NamedTuple's Python-level __new__ on the hot path
    isfinite = math.isfinite
    missing = _MISSING
    names = _NAMES
    plain_keys = _PLAIN_KEYS
    # Compared in seconds so that absurd times (huge integers) never reach a float conversion.
    latest_s = (received_us + round(limits.max_clock_skew_s * 1_000_000)) / 1_000_000

    base = _Base(logger_id)
    # Local copies of the base state, refreshed only after a record that has base fields.
    name_refusal: tuple[Reason, str] | None = None
    name_set = False
    bt: int | float | None = None
    bt_broken: str | None = None
    bu: str | None = None
    bu_broken: str | None = None
    bv: float | None = None
    bv_broken: str | None = None

    for index, record in enumerate(records):
        if type(record) is not dict:
            refuse(
                Refusal(Reason.NOT_SENML, f"the record is {_show(record)}, not an object", index)
            )
            continue
        plain = record.keys() <= plain_keys
        if not plain:
            problem = base.absorb(record, index)
            name_refusal, name_set = base.name_refusal, base.name_set
            bt, bt_broken = base.time, base.time_broken
            bu, bu_broken = base.unit, base.unit_broken
            bv, bv_broken = base.value, base.value_broken
            if problem is not None:
                refuse(Refusal(problem[0], problem[1], index))
                continue

        # Name: bn + n. A valid bn is exactly our own prefix, so the measurement is n.
        if name_refusal is not None:
            refuse(Refusal(name_refusal[0], name_refusal[1], index))
            continue
        n = record.get("n", missing)
        if n is missing:
            if not name_set:
                refuse(Refusal(Reason.NOT_SENML, "the record has no name (no n, no bn)", index))
                continue
            n = ""
        elif type(n) is not str:
            refuse(Refusal(Reason.NOT_SENML, f"the name n {_show(n)} is not a string", index))
            continue
        known = names.get(n)
        if known is None:
            if not name_set and n.startswith(_URN_PREFIX):
                measurement = _measurement_of_urn(n, logger_id)
                if isinstance(measurement, tuple):
                    refuse(Refusal(measurement[0], measurement[1], index))
                    continue
                known = names.get(measurement)
            if known is None:
                refuse(
                    Refusal(Reason.UNKNOWN_NAME, f"{_show(n)} is not a known measurement", index)
                )
                continue
        name, kind = known

        # Unit: u, else bu.
        unit = record.get("u", missing)
        if unit is missing:
            if bu_broken is not None and kind != _LID:
                refuse(Refusal(Reason.NOT_SENML, f"{bu_broken}, not a string", index))
                continue
            unit = bu
        elif type(unit) is not str:
            refuse(Refusal(Reason.NOT_SENML, f"the unit u {_show(unit)} is not a string", index))
            continue
        if kind == _TEMP:
            if unit != "Cel" and unit != "K":
                refuse(_bad_temp_unit(unit, index))
                continue
        elif kind != _LID and unit is not None and unit != _PLAIN_UNIT[kind]:
            # The unit of a lid record is ignored: a pack whose bu is Cel still has lid events.
            refuse(
                Refusal(
                    Reason.UNKNOWN_UNIT,
                    f"the unit {_show(unit)} is not {_PLAIN_UNIT[kind]!r} for {name}",
                    index,
                )
            )
            continue

        # Value: v + bv for numbers, vb for the lid.
        if kind == _LID:
            vb = record.get("vb", missing)
            if type(vb) is not bool:
                refuse(_bad_lid_value(record, vb, index))
                continue
            value = 1.0 if vb else 0.0
        else:
            v = record.get("v", missing)
            if type(v) is float:
                value = v
            elif type(v) is int:
                value = _as_float(v)
            else:
                refuse(_bad_number(record, v, plain, index))
                continue
            if bv_broken is not None:
                refuse(Refusal(Reason.NOT_SENML, f"{bv_broken}, not a number", index))
                continue
            if bv is not None:
                value += bv
            if not isfinite(value):
                refuse(
                    Refusal(
                        Reason.NON_FINITE_VALUE,
                        f"the value of {name} is {_show(value)}, not a finite number",
                        index,
                    )
                )
                continue
            if kind == _TEMP:
                if unit == "K":
                    value -= 273.15
                if value < _ABSOLUTE_ZERO_C:
                    refuse(
                        Refusal(
                            Reason.BAD_VALUE,
                            f"the temperature {value!r} Cel is below absolute zero",
                            index,
                        )
                    )
                    continue
            else:
                low, high = _RANGE[kind]
                if not (low <= value <= high):
                    refuse(
                        Refusal(
                            Reason.BAD_VALUE,
                            f"the value {value!r} of {name} is outside {low:g}..{high:g}",
                            index,
                        )
                    )
                    continue

        # Time: bt + t, either defaulting to 0 only when the other is present.
        if bt_broken is not None:
            refuse(Refusal(Reason.NOT_SENML, f"{bt_broken}, not a number", index))
            continue
        t = record.get("t", missing)
        if t is missing:
            if bt is None:
                refuse(Refusal(Reason.NO_TIME, "the record has no time (no t, no bt)", index))
                continue
            t = bt
        elif type(t) is not int and type(t) is not float:
            refuse(Refusal(Reason.NOT_SENML, f"the time t {_show(t)} is not a number", index))
            continue
        elif bt is not None:
            try:
                t = bt + t
            except OverflowError:
                # An integer beyond the double range met a float: saturate, then judge.
                t = _as_float(bt) + _as_float(t)
        if t != t:
            refuse(Refusal(Reason.NOT_SENML, "the time is not a number (inf - inf)", index))
            continue
        if t < _RELATIVE_TIME_LIMIT_S:
            refuse(
                Refusal(
                    Reason.RELATIVE_TIME,
                    f"the time {_show(t)} is below 2**28, a time relative to now",
                    index,
                )
            )
            continue
        if t > latest_s:
            refuse(
                Refusal(
                    Reason.FUTURE_TIME,
                    f"the time {_show(t)} is more than {limits.max_clock_skew_s:g} s "
                    f"after the arrival time {received_us / 1_000_000!r}",
                    index,
                )
            )
            continue

        add_reading(new_reading(Reading, (logger_id, name, round(t * 1_000_000), value)))

    return ParsedPack(readings, refusals)


def _bad_number(record: dict[str, Any], v: object, plain: bool, index: int) -> Refusal:
    """Explain why a record has no numeric value v."""
    if v is not _MISSING:
        return Refusal(Reason.BAD_VALUE, f"the value v {_show(v)} is not a number", index)
    if not plain:
        for key in ("vs", "vd", "vb"):
            if key in record:
                return Refusal(
                    Reason.BAD_VALUE,
                    f"the record has {key} {_show(record[key])} where a number v is expected",
                    index,
                )
    return Refusal(Reason.NO_VALUE, "the record has no value v", index)


def _bad_lid_value(record: dict[str, Any], vb: object, index: int) -> Refusal:
    """Explain why a lid record has no boolean value vb."""
    if vb is not _MISSING:
        return Refusal(Reason.BAD_VALUE, f"the lid value vb {_show(vb)} is not a boolean", index)
    for key in ("v", "vs", "vd"):
        if key in record:
            return Refusal(
                Reason.BAD_VALUE,
                f"the lid record has {key} {_show(record[key])} where a boolean vb is expected",
                index,
            )
    return Refusal(Reason.NO_VALUE, "the lid record has no value vb", index)


def _bad_temp_unit(unit: str | None, index: int) -> Refusal:
    """Explain why a temperature's unit is refused."""
    if unit is None:
        # Celsius and kelvin readings of a cryogenic shipment differ by 273: never guess.
        return Refusal(Reason.UNKNOWN_UNIT, "the temperature has no unit (u or bu)", index)
    return Refusal(Reason.UNKNOWN_UNIT, f"the unit {_show(unit)} is not Cel or K for temp", index)
