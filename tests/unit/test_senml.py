"""Unit tests of the SenML pack parser: no broker, no database."""

from __future__ import annotations

import json
import math
import sys
import timeit
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coldchain.domain.errors import ValidationError
from coldchain.domain.senml import (
    DEFAULT_LIMITS,
    LOGGER_ID_RE,
    PackLimits,
    ParsedPack,
    Reading,
    Reason,
    Refusal,
    logger_id_from_topic,
    parse_pack,
)

LOGGER = "L1"
BN = "urn:dev:logger:L1:"
T0 = 1_764_000_000
RECEIVED_US = (T0 + 3600) * 1_000_000
KNOWN_NAMES = {"temp", "batt", "lat", "lon", "lid"}


def encode(records: Any) -> bytes:
    """Encode a JSON value, writing an infinity as 1e400: a JSON number too big for a double."""
    return json.dumps(records).replace("Infinity", "1e400").encode()


def parse(payload: Any, **kwargs: Any) -> ParsedPack:
    """Parse a pack (records or raw bytes) from logger L1 an hour after T0."""
    if not isinstance(payload, bytes):
        payload = encode(payload)
    kwargs.setdefault("logger_id", LOGGER)
    kwargs.setdefault("received_us", RECEIVED_US)
    return parse_pack(payload, **kwargs)


def temp(**fields: Any) -> dict[str, Any]:
    """Return a valid Celsius temperature record at T0, with some fields replaced."""
    record: dict[str, Any] = {"n": "temp", "u": "Cel", "t": T0, "v": -190.0}
    record.update(fields)
    return {key: value for key, value in record.items() if value is not DROP}


DROP = object()


def whole_refusal(pack: ParsedPack) -> Refusal:
    """Return the refusal of a message refused as a whole."""
    assert pack.readings == []
    assert pack.record_count == 0
    assert len(pack.refusals) == 1
    refusal = pack.refusals[0]
    assert refusal.record_index is None
    assert refusal.detail
    return refusal


def only_refusal(records: Any, **kwargs: Any) -> Refusal:
    """Parse a one-record pack that must be refused, and return the record's refusal."""
    pack = parse(records if isinstance(records, list) else [records], **kwargs)
    assert pack.readings == []
    assert len(pack.refusals) == 1, pack.refusals
    refusal = pack.refusals[0]
    assert refusal.record_index == 0
    assert refusal.detail
    return refusal


def only_reading(records: Any, **kwargs: Any) -> Reading:
    """Parse a pack that must give exactly one reading and nothing else."""
    pack = parse(records if isinstance(records, list) else [records], **kwargs)
    assert pack.refusals == []
    assert len(pack.readings) == 1
    return pack.readings[0]


def reasons(pack: ParsedPack) -> list[tuple[int | None, Reason]]:
    """Return (record index, reason) of each refusal."""
    return [(refusal.record_index, refusal.reason) for refusal in pack.refusals]


def check_invariants(pack: ParsedPack) -> None:
    """Check what holds for the result of any payload whatsoever."""
    assert isinstance(pack, ParsedPack)
    for refusal in pack.refusals:
        assert isinstance(refusal.reason, Reason)
        assert isinstance(refusal.detail, str) and refusal.detail
        refusal.detail.encode("utf-8")  # storable: no lone surrogates
    if any(refusal.record_index is None for refusal in pack.refusals):
        assert len(pack.refusals) == 1
        assert pack.readings == []
        assert pack.record_count == 0
        return
    indexes = [r.record_index for r in pack.refusals if r.record_index is not None]
    assert indexes == sorted(set(indexes))
    for reading in pack.readings:
        assert type(reading) is Reading
        assert reading.logger_id == LOGGER
        assert reading.name in KNOWN_NAMES
        assert type(reading.time_us) is int
        assert 2**28 * 1_000_000 <= reading.time_us <= RECEIVED_US + 300_000_000
        assert type(reading.value) is float and math.isfinite(reading.value)


# --- topics ------------------------------------------------------------------------------


def test_the_logger_id_is_read_from_a_readings_topic() -> None:
    assert logger_id_from_topic("coldchain/v1/loggers/L1/readings") == "L1"
    assert logger_id_from_topic("coldchain/v1/loggers/a_b-9/readings") == "a_b-9"


def test_a_logger_id_of_64_characters_is_the_longest_accepted() -> None:
    longest = "A" * 64
    assert logger_id_from_topic(f"coldchain/v1/loggers/{longest}/readings") == longest
    assert logger_id_from_topic(f"coldchain/v1/loggers/{longest}A/readings") is None


@pytest.mark.parametrize(
    "topic",
    [
        "",
        "coldchain/v1/loggers/L1",
        "coldchain/v1/loggers/L1/ack",
        "coldchain/v1/loggers/L1/status",
        "coldchain/v1/loggers//readings",
        "coldchain/v1/loggers/L1/readings/",
        "/coldchain/v1/loggers/L1/readings",
        "coldchain/v2/loggers/L1/readings",
        "coldchain/v1/logger/L1/readings",
        "coldchain/v1/loggers/L1/x/readings",
        "coldchain/v1/loggers/+/readings",
        "coldchain/v1/loggers/#",
        "coldchain/v1/loggers/-L1/readings",
        "coldchain/v1/loggers/_L1/readings",
        "coldchain/v1/loggers/L 1/readings",
        "coldchain/v1/loggers/L:1/readings",
        "coldchain/v1/loggers/L1\n/readings",
        "coldchain/v1/loggers/Lé/readings",
        "coldchain/v1/loggers/L1/readings\n",
    ],
)
def test_a_topic_that_is_not_a_readings_topic_gives_no_logger(topic: str) -> None:
    assert logger_id_from_topic(topic) is None


def test_the_logger_id_pattern_refuses_a_trailing_newline_even_with_match() -> None:
    assert LOGGER_ID_RE.match("L1")
    assert LOGGER_ID_RE.match("L1\n") is None


# --- reasons and limits -------------------------------------------------------------------


def test_reason_codes_are_stable_kebab_case_strings() -> None:
    assert {reason.name: str(reason) for reason in Reason} == {
        "NOT_JSON": "not-json",
        "NOT_SENML": "not-senml",
        "TOO_LARGE": "too-large",
        "TOO_MANY_RECORDS": "too-many-records",
        "BAD_TOPIC": "bad-topic",
        "UNKNOWN_LOGGER": "unknown-logger",
        "WRONG_LOGGER": "wrong-logger",
        "BAD_BASE_NAME": "bad-base-name",
        "UNKNOWN_NAME": "unknown-name",
        "UNKNOWN_UNIT": "unknown-unit",
        "NO_VALUE": "no-value",
        "BAD_VALUE": "bad-value",
        "NON_FINITE_VALUE": "non-finite-value",
        "NO_TIME": "no-time",
        "RELATIVE_TIME": "relative-time",
        "FUTURE_TIME": "future-time",
        "CONFLICT": "conflict",
        "STORE_ERROR": "store-error",
        "BAD_STATUS": "bad-status",
    }


def test_the_default_limits_are_those_of_the_contract() -> None:
    assert DEFAULT_LIMITS == PackLimits(
        max_bytes=256 * 1024, max_records=10_000, max_clock_skew_s=300.0
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_bytes": 0},
        {"max_records": 0},
        {"max_clock_skew_s": -1.0},
        {"max_clock_skew_s": math.inf},
        {"max_clock_skew_s": math.nan},
    ],
)
def test_limits_that_make_no_sense_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        PackLimits(**kwargs)
    assert caught.value.field == next(iter(kwargs))


# --- whole-message refusals ---------------------------------------------------------------


def test_a_payload_over_the_size_limit_is_refused_before_it_is_parsed() -> None:
    refusal = whole_refusal(parse(b"\xff" * 101, limits=PackLimits(max_bytes=100)))
    assert refusal.reason is Reason.TOO_LARGE
    assert "101" in refusal.detail


def test_a_payload_at_the_size_limit_is_parsed() -> None:
    payload = encode([temp()])
    pack = parse(payload, limits=PackLimits(max_bytes=len(payload)))
    assert len(pack.readings) == 1


def test_the_default_size_limit_is_256_kib() -> None:
    assert whole_refusal(parse(b" " * (256 * 1024 + 1))).reason is Reason.TOO_LARGE
    assert whole_refusal(parse(b" " * (256 * 1024))).reason is Reason.NOT_JSON


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff\xfe[]",
        b'[{"n": "temp\xc3"}]',
        b'[{"n": "\xed\xa0\x80"}]',  # an encoded surrogate is not UTF-8
        "[{}]".encode("utf-16"),
        "[{}]".encode("utf-32"),
    ],
)
def test_a_payload_that_is_not_utf8_is_not_json(payload: bytes) -> None:
    assert whole_refusal(parse(payload)).reason is Reason.NOT_JSON


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"   ",
        b"[",
        b"[{]",
        b"[{'n': 'temp'}]",
        b'[{"n": "temp",}]',
        b"[1] [2]",
        b"[1] x",
        b'\xef\xbb\xbf[{"n": "temp"}]',  # a byte order mark
        b"nan",
        b"[01]",
        b"[.5]",
        b"[1.]",
        b"[+1]",
        b'["\\x41"]',
        b"[true, false, nul]",
    ],
)
def test_a_payload_that_is_not_json_is_refused_whole(payload: bytes) -> None:
    assert whole_refusal(parse(payload)).reason is Reason.NOT_JSON


@pytest.mark.parametrize("opening", [b"[", b'{"a":', b'[{"n":'])
def test_deeply_nested_json_is_refused_as_nested_too_deeply(opening: bytes) -> None:
    refusal = whole_refusal(parse(opening * (200_000 // len(opening))))
    assert refusal.reason is Reason.NOT_JSON
    assert "nested too deeply" in refusal.detail


def test_nesting_deeper_than_any_stack_is_refused_without_crashing() -> None:
    limits = PackLimits(max_bytes=10_000_000)
    assert whole_refusal(parse(b"[" * 5_000_000, limits=limits)).reason is Reason.NOT_JSON


def test_an_integer_with_too_many_digits_is_not_json() -> None:
    payload = b'[{"n":"temp","u":"Cel","t":1764000000,"v":' + b"9" * 5000 + b"}]"
    refusal = whole_refusal(parse(payload))
    assert refusal.reason is Reason.NOT_JSON
    assert "digits" in refusal.detail


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_a_non_finite_literal_refuses_the_whole_message_and_is_named(literal: str) -> None:
    payload = f'[{{"n":"temp","u":"Cel","t":1764000000,"v":{literal}}}]'.encode()
    refusal = whole_refusal(parse(payload))
    assert refusal.reason is Reason.NON_FINITE_VALUE
    assert literal in refusal.detail


def test_a_non_finite_literal_anywhere_in_the_pack_refuses_it() -> None:
    payload = encode([temp(), temp(t=T0 + 60)])[:-1] + b', {"x": [NaN]}]'
    assert whole_refusal(parse(payload)).reason is Reason.NON_FINITE_VALUE


@pytest.mark.parametrize(
    "document",
    [{"n": "temp"}, "temp", 1, 1.5, True, None, {"e": [temp()]}],
)
def test_a_pack_that_is_not_an_array_is_not_senml(document: Any) -> None:
    assert whole_refusal(parse(document)).reason is Reason.NOT_SENML


def test_an_empty_pack_is_not_senml() -> None:
    refusal = whole_refusal(parse([]))
    assert refusal.reason is Reason.NOT_SENML
    assert "empty" in refusal.detail


def test_a_pack_with_more_records_than_the_limit_is_refused_whole() -> None:
    records = [temp(t=T0 + i) for i in range(11)]
    refusal = whole_refusal(parse(records, limits=PackLimits(max_records=10)))
    assert refusal.reason is Reason.TOO_MANY_RECORDS
    assert "11" in refusal.detail


def test_a_pack_with_as_many_records_as_the_limit_is_parsed() -> None:
    records = [temp(t=T0 + i) for i in range(10)]
    assert len(parse(records, limits=PackLimits(max_records=10)).readings) == 10


def test_the_default_record_limit_is_10000() -> None:
    records: list[Any] = [{}] * 10_001
    assert whole_refusal(parse(records)).reason is Reason.TOO_MANY_RECORDS
    assert parse(records[:-1]).record_count == 10_000


# --- a typical pack -----------------------------------------------------------------------


def test_a_typical_pack_gives_one_reading_per_record_in_pack_order() -> None:
    pack = parse(
        [
            {"bn": BN, "bt": T0, "bu": "Cel", "n": "temp", "t": 0, "v": -190.1},
            {"n": "temp", "t": 60, "v": -190.2},
            {"n": "temp", "t": 120, "v": -190},
        ]
    )
    assert pack.refusals == []
    assert pack.record_count == 3
    assert pack.readings == [
        Reading("L1", "temp", T0 * 1_000_000, -190.1),
        Reading("L1", "temp", (T0 + 60) * 1_000_000, -190.2),
        Reading("L1", "temp", (T0 + 120) * 1_000_000, -190.0),
    ]
    assert all(type(reading.value) is float for reading in pack.readings)


def test_every_measurement_is_read_with_its_unit() -> None:
    pack = parse(
        [
            {"bn": BN, "bt": T0, "n": "temp", "u": "Cel", "v": 4.5},
            {"n": "batt", "u": "%EL", "v": 87},
            {"n": "lat", "u": "lat", "v": 48.85},
            {"n": "lon", "u": "lon", "v": 2.35},
            {"n": "lid", "vb": True},
            {"n": "lid", "vb": False},
        ]
    )
    assert pack.refusals == []
    assert [(r.name, r.value) for r in pack.readings] == [
        ("temp", 4.5),
        ("batt", 87.0),
        ("lat", 48.85),
        ("lon", 2.35),
        ("lid", 1.0),
        ("lid", 0.0),
    ]
    assert {r.time_us for r in pack.readings} == {T0 * 1_000_000}


def test_a_backlog_out_of_order_with_duplicates_is_kept_as_sent() -> None:
    records = [temp(t=T0 + 120), temp(t=T0), temp(t=T0 + 60), temp(t=T0), temp(t=T0, v=-1.0)]
    pack = parse(records)
    assert [(r.time_us // 1_000_000 - T0, r.value) for r in pack.readings] == [
        (120, -190.0),
        (0, -190.0),
        (60, -190.0),
        (0, -190.0),
        (0, -1.0),
    ]


def test_readings_carry_the_logger_id_of_the_topic() -> None:
    reading = only_reading(temp(n="urn:dev:logger:X-9:temp"), logger_id="X-9")
    assert reading.logger_id == "X-9"


def test_a_reading_is_a_plain_named_tuple() -> None:
    reading = only_reading(temp())
    assert reading == ("L1", "temp", T0 * 1_000_000, -190.0)
    assert reading._asdict() == {
        "logger_id": "L1",
        "name": "temp",
        "time_us": T0 * 1_000_000,
        "value": -190.0,
    }


# --- record-level refusals ---------------------------------------------------------------


def test_a_partly_bad_pack_keeps_its_good_records_and_indexes_its_refusals() -> None:
    pack = parse(
        [
            temp(t=T0),
            temp(n="humidity"),
            "not a record",
            temp(t=T0 + 60),
            temp(u="F"),
            temp(t=T0 + 10**6),
            temp(t=T0 + 120),
        ]
    )
    assert [r.time_us // 1_000_000 - T0 for r in pack.readings] == [0, 60, 120]
    assert reasons(pack) == [
        (1, Reason.UNKNOWN_NAME),
        (2, Reason.NOT_SENML),
        (4, Reason.UNKNOWN_UNIT),
        (5, Reason.FUTURE_TIME),
    ]
    assert pack.record_count == 7


@pytest.mark.parametrize("element", [1, "temp", None, True, [], [temp()], 1.5])
def test_a_record_that_is_not_an_object_is_not_senml(element: Any) -> None:
    pack = parse([temp(), element, temp(t=T0 + 1)])
    assert len(pack.readings) == 2
    assert reasons(pack) == [(1, Reason.NOT_SENML)]


def test_an_empty_record_has_no_name_and_is_not_senml() -> None:
    assert only_refusal({}).reason is Reason.NOT_SENML


def test_a_record_with_a_must_understand_field_is_not_senml() -> None:
    # RFC 8428: fields ending in "_" must be understood, or the record refused.
    refusal = only_refusal(temp(crit_=1))
    assert refusal.reason is Reason.NOT_SENML
    assert "crit_" in refusal.detail


def test_unknown_fields_and_fields_of_no_use_here_are_ignored() -> None:
    record = temp(bver=10, s=5.0, ut=60, bs=1.0, vendor={"x": [1, 2]})
    assert only_reading(record).value == -190.0


@pytest.mark.parametrize(
    "extra",
    [{"vb": True}, {"vs": "x"}, {"vd": "AAE="}],
)
def test_a_record_with_two_value_fields_is_not_senml(extra: dict[str, Any]) -> None:
    refusal = only_refusal(temp(**extra))
    assert refusal.reason is Reason.NOT_SENML
    assert "more than one value" in refusal.detail


# --- names -------------------------------------------------------------------------------


def test_the_name_is_the_base_name_followed_by_n() -> None:
    assert only_reading([{"bn": BN, "n": "temp", "u": "Cel", "t": T0, "v": 1}]).name == "temp"


def test_without_a_base_name_a_full_urn_of_this_logger_is_accepted() -> None:
    assert only_reading(temp(n="urn:dev:logger:L1:temp")).name == "temp"


def test_without_a_base_name_a_bare_measurement_name_is_accepted() -> None:
    assert only_reading(temp(n="temp")).name == "temp"


def test_without_a_base_name_a_full_urn_of_another_logger_is_the_wrong_logger() -> None:
    refusal = only_refusal(temp(n="urn:dev:logger:L2:temp"))
    assert refusal.reason is Reason.WRONG_LOGGER
    assert "L2" in refusal.detail


@pytest.mark.parametrize(
    "name",
    [
        "urn:dev:logger:L1:humidity",
        "urn:dev:logger:L1:",
        "urn:dev:logger:L1",
        "urn:dev:logger::temp",
        "urn:dev:logger:L 1:temp",
        "urn:dev:logger:",
        "urn:dev:mac:L1:temp",
        "Temp",
        "TEMP",
        "temp ",
        "",
        "humidity",
        "urn:dev:logger:L1:urn:dev:logger:L1:temp",
    ],
)
def test_a_name_that_is_not_a_known_measurement_is_refused(name: str) -> None:
    assert only_refusal(temp(n=name)).reason is Reason.UNKNOWN_NAME


def test_with_a_base_name_n_is_the_measurement_and_a_full_urn_is_unknown() -> None:
    refusal = only_refusal([{"bn": BN, "n": "urn:dev:logger:L1:temp", "u": "Cel", "t": T0}])
    assert refusal.reason is Reason.UNKNOWN_NAME


def test_with_a_base_name_and_no_n_the_name_is_empty_and_unknown() -> None:
    refusal = only_refusal([{"bn": BN, "u": "Cel", "t": T0, "v": 1.0}])
    assert refusal.reason is Reason.UNKNOWN_NAME


@pytest.mark.parametrize("name", [None, 1, True, ["temp"], {"n": "temp"}])
def test_a_name_that_is_not_a_string_is_not_senml(name: Any) -> None:
    assert only_refusal(temp(n=name)).reason is Reason.NOT_SENML


# --- base name ---------------------------------------------------------------------------


@pytest.mark.parametrize("bn", ["urn:dev:logger:L2:", "urn:dev:logger:l1:", "urn:dev:logger:L1-:"])
def test_a_base_name_naming_another_logger_refuses_every_record_under_it(bn: str) -> None:
    pack = parse([temp(bn=bn), temp(t=T0 + 60), temp(bn=BN, t=T0 + 120), temp(t=T0 + 180)])
    assert reasons(pack) == [(0, Reason.WRONG_LOGGER), (1, Reason.WRONG_LOGGER)]
    assert [r.time_us // 1_000_000 - T0 for r in pack.readings] == [120, 180]
    assert "another" not in pack.refusals[0].detail  # it names the loggers instead
    assert bn[15:-1] in pack.refusals[0].detail


@pytest.mark.parametrize(
    "bn",
    [
        "urn:dev:logger:L1",
        "urn:dev:logger:L1:temp",
        "urn:dev:logger::",
        "urn:dev:logger:L 1:",
        "urn:dev:logger:" + "A" * 65 + ":",
        "urn:dev:mac:L1:",
        "URN:DEV:LOGGER:L1:",
        "L1:",
        "",
        "urn:dev:logger:L1:\n",
    ],
)
def test_any_other_base_name_is_a_bad_base_name_for_every_record_under_it(bn: str) -> None:
    pack = parse([temp(bn=bn), temp(t=T0 + 60), temp(bn=BN, t=T0 + 120)])
    assert reasons(pack) == [(0, Reason.BAD_BASE_NAME), (1, Reason.BAD_BASE_NAME)]
    assert len(pack.readings) == 1


@pytest.mark.parametrize("bn", [None, 1, True, ["urn:dev:logger:L1:"]])
def test_a_base_name_that_is_not_a_string_refuses_the_records_under_it(bn: Any) -> None:
    pack = parse([temp(bn=BN), temp(bn=bn, t=T0 + 60), temp(t=T0 + 120), temp(bn=BN, t=T0 + 180)])
    assert reasons(pack) == [(1, Reason.NOT_SENML), (2, Reason.NOT_SENML)]
    assert [r.time_us // 1_000_000 - T0 for r in pack.readings] == [0, 180]
    assert "record 1" in pack.refusals[1].detail


def test_a_base_name_can_change_mid_pack() -> None:
    pack = parse(
        [
            {"bn": "urn:dev:logger:L2:", "n": "temp", "u": "Cel", "t": T0, "v": 1},
            {"bn": BN, "n": "temp", "u": "Cel", "t": T0 + 1, "v": 2},
            {"n": "temp", "u": "Cel", "t": T0 + 2, "v": 3},
        ]
    )
    assert reasons(pack) == [(0, Reason.WRONG_LOGGER)]
    assert [r.value for r in pack.readings] == [2.0, 3.0]


# --- base time and time ------------------------------------------------------------------


def test_the_time_is_the_base_time_plus_t() -> None:
    pack = parse(
        [
            {"bt": T0, "n": "temp", "u": "Cel", "t": 0, "v": 1},
            {"n": "temp", "u": "Cel", "t": -60, "v": 2},
            {"n": "temp", "u": "Cel", "t": 1.5, "v": 3},
        ]
    )
    assert [r.time_us for r in pack.readings] == [
        T0 * 1_000_000,
        (T0 - 60) * 1_000_000,
        T0 * 1_000_000 + 1_500_000,
    ]


def test_a_record_without_t_takes_the_base_time() -> None:
    assert only_reading([{"bt": T0, "n": "temp", "u": "Cel", "v": 1}]).time_us == T0 * 1_000_000


def test_a_record_without_base_time_takes_t_alone() -> None:
    assert only_reading(temp(t=T0 + 5)).time_us == (T0 + 5) * 1_000_000


def test_the_base_time_can_change_mid_pack() -> None:
    pack = parse(
        [
            {"bt": T0, "n": "temp", "u": "Cel", "t": 10, "v": 1},
            {"n": "temp", "u": "Cel", "t": 20, "v": 2},
            {"bt": T0 + 1000, "n": "temp", "u": "Cel", "t": 10, "v": 3},
            {"n": "temp", "u": "Cel", "t": 20, "v": 4},
        ]
    )
    assert [r.time_us // 1_000_000 - T0 for r in pack.readings] == [10, 20, 1010, 1020]


def test_a_base_time_on_a_record_without_a_reading_still_applies_after_it() -> None:
    pack = parse([{"bn": BN, "bt": T0, "bu": "Cel"}, {"n": "temp", "t": 60, "v": 1}])
    assert reasons(pack) == [(0, Reason.UNKNOWN_NAME)]
    assert [r.time_us for r in pack.readings] == [(T0 + 60) * 1_000_000]


def test_a_time_is_converted_to_integer_microseconds() -> None:
    reading = only_reading(temp(t=T0 + 0.123456))
    assert type(reading.time_us) is int
    assert reading.time_us == T0 * 1_000_000 + 123_456
    fractional = only_reading([{"bt": T0 + 0.5, "n": "temp", "u": "Cel", "t": 0.25, "v": 1}])
    assert fractional.time_us == T0 * 1_000_000 + 750_000


def test_a_record_with_neither_time_nor_base_time_has_no_time() -> None:
    assert only_refusal(temp(t=DROP)).reason is Reason.NO_TIME


@pytest.mark.parametrize(
    "fields",
    [
        {"t": 0},
        {"t": -60},
        {"t": 2**28 - 1},
        {"t": 2**28 - 0.5},
        {"bt": 2**28 - 100, "t": 99},
        {"bt": -(10**400), "t": 1.5},
        {"t": -1e400},
    ],
)
def test_a_time_below_2_to_the_28_is_refused_as_relative(fields: dict[str, Any]) -> None:
    assert only_refusal(temp(**fields)).reason is Reason.RELATIVE_TIME


def test_a_time_of_exactly_2_to_the_28_is_absolute() -> None:
    assert only_reading(temp(t=2**28)).time_us == 2**28 * 1_000_000


def test_a_time_up_to_the_clock_skew_after_arrival_is_accepted() -> None:
    latest_s = RECEIVED_US // 1_000_000 + 300
    assert only_reading(temp(t=latest_s)).time_us == latest_s * 1_000_000


@pytest.mark.parametrize(
    "fields",
    [
        {"t": RECEIVED_US / 1_000_000 + 300.001},
        {"t": RECEIVED_US // 1_000_000 + 301},
        {"t": T0 + 10**9},
        {"t": 1e300},
        {"t": 1e400},
        {"t": 10**400},
        {"bt": 10**400, "t": 1.5},
        {"bt": 1.5e300, "t": 10**400},
        {"bt": 1e308, "t": 1e308},
    ],
)
def test_a_time_in_the_far_future_is_refused(fields: dict[str, Any]) -> None:
    assert only_refusal([temp(**fields)]).reason is Reason.FUTURE_TIME


def test_the_clock_skew_allowed_is_configurable() -> None:
    limits = PackLimits(max_clock_skew_s=0)
    now_s = RECEIVED_US // 1_000_000
    assert only_reading(temp(t=now_s), limits=limits).time_us == RECEIVED_US
    assert only_refusal(temp(t=now_s + 0.001), limits=limits).reason is Reason.FUTURE_TIME


@pytest.mark.parametrize("t", [True, False, None, "1764000000", [T0], {"t": T0}])
def test_a_time_that_is_not_a_number_is_not_senml(t: Any) -> None:
    assert only_refusal(temp(t=t)).reason is Reason.NOT_SENML


def test_a_time_that_is_infinity_minus_infinity_is_not_senml() -> None:
    assert only_refusal([{"bt": 1e400, **temp(t=-1e400)}]).reason is Reason.NOT_SENML


# --- base unit and unit ------------------------------------------------------------------


def test_the_base_unit_applies_to_records_without_a_unit() -> None:
    pack = parse(
        [
            {"bu": "K", "n": "temp", "t": T0, "v": 83.15},
            {"n": "temp", "t": T0 + 1, "v": 273.15},
            {"n": "temp", "u": "Cel", "t": T0 + 2, "v": -190.0},
            {"bu": "Cel", "n": "temp", "t": T0 + 3, "v": -190.0},
        ]
    )
    assert pack.refusals == []
    values = [r.value for r in pack.readings]
    assert values[0] == pytest.approx(-190.0)
    assert values[1:] == [0.0, -190.0, -190.0]


@pytest.mark.parametrize(
    ("kelvin", "celsius"),
    [(0, -273.15), (77.35, -195.8), (194.65, -78.5), (273.15, 0.0), (278.15, 5.0)],
)
def test_a_temperature_in_kelvin_is_converted_to_celsius(kelvin: float, celsius: float) -> None:
    assert only_reading(temp(u="K", v=kelvin)).value == pytest.approx(celsius, abs=1e-9)


def test_a_temperature_without_a_unit_is_refused_as_ambiguous() -> None:
    refusal = only_refusal(temp(u=DROP))
    assert refusal.reason is Reason.UNKNOWN_UNIT
    assert "no unit" in refusal.detail


@pytest.mark.parametrize("unit", ["F", "Far", "cel", "CEL", "degC", "k", "%EL", "", "Cel "])
def test_a_temperature_in_another_unit_is_refused(unit: str) -> None:
    assert only_refusal(temp(u=unit)).reason is Reason.UNKNOWN_UNIT


@pytest.mark.parametrize(
    ("name", "unit", "value"),
    [
        ("batt", "%EL", 50),
        ("batt", None, 50),
        ("lat", "lat", 45.5),
        ("lat", None, 45.5),
        ("lon", "lon", -73.5),
        ("lon", None, -73.5),
    ],
)
def test_battery_and_position_take_their_own_unit_or_none(
    name: str, unit: str | None, value: float
) -> None:
    record = {"n": name, "t": T0, "v": value} | ({"u": unit} if unit else {})
    assert only_reading(record) == Reading(LOGGER, name, T0 * 1_000_000, float(value))


@pytest.mark.parametrize(
    ("name", "unit"),
    [
        ("batt", "%"),
        ("batt", "%RH"),
        ("batt", "V"),
        ("batt", "Cel"),
        ("lat", "lon"),
        ("lat", "deg"),
        ("lon", "lat"),
        ("lon", "rad"),
    ],
)
def test_battery_and_position_in_another_unit_are_refused(name: str, unit: str) -> None:
    refusal = only_refusal({"n": name, "u": unit, "t": T0, "v": 10})
    assert refusal.reason is Reason.UNKNOWN_UNIT


def test_a_base_unit_of_another_measurement_refuses_battery_and_position() -> None:
    pack = parse([{"bu": "Cel", "n": name, "t": T0, "v": 10} for name in ("batt", "lat", "lon")])
    assert [reason for _, reason in reasons(pack)] == [Reason.UNKNOWN_UNIT] * 3


def test_the_unit_of_a_lid_record_is_ignored() -> None:
    pack = parse(
        [
            {"bn": BN, "bt": T0, "bu": "Cel", "n": "temp", "v": -190.0},
            {"n": "lid", "vb": True},
            {"n": "lid", "u": "whatever", "vb": False},
        ]
    )
    assert pack.refusals == []
    assert [(r.name, r.value) for r in pack.readings] == [
        ("temp", -190.0),
        ("lid", 1.0),
        ("lid", 0.0),
    ]


@pytest.mark.parametrize("unit", [None, 1, True, ["Cel"]])
def test_a_unit_that_is_not_a_string_is_not_senml(unit: Any) -> None:
    assert only_refusal(temp(u=unit)).reason is Reason.NOT_SENML
    assert only_refusal({"n": "lid", "u": unit, "t": T0, "vb": True}).reason is Reason.NOT_SENML


# --- base value and value ----------------------------------------------------------------


def test_the_base_value_is_added_to_v() -> None:
    pack = parse(
        [
            {"bv": -190, "bu": "Cel", "bt": T0, "n": "temp", "v": 0.5},
            {"n": "temp", "t": 1, "v": -0.5},
            {"bv": 10, "n": "batt", "u": "%EL", "t": 2, "v": 80},
        ]
    )
    assert [r.value for r in pack.readings] == [-189.5, -190.5, 90.0]


def test_a_base_value_is_not_a_value_on_its_own() -> None:
    assert only_refusal([{"bv": -190.0, **temp(v=DROP)}]).reason is Reason.NO_VALUE


def test_a_base_value_does_not_apply_to_a_lid_event() -> None:
    assert only_reading([{"bv": 5, "n": "lid", "t": T0, "vb": True}]).value == 1.0


def test_an_integer_value_becomes_a_float() -> None:
    reading = only_reading(temp(v=-190))
    assert reading.value == -190.0 and type(reading.value) is float


def test_a_record_without_a_value_has_no_value() -> None:
    assert only_refusal(temp(v=DROP)).reason is Reason.NO_VALUE
    assert only_refusal({"n": "lid", "t": T0}).reason is Reason.NO_VALUE


@pytest.mark.parametrize("value", [True, False])
@pytest.mark.parametrize("name", ["temp", "batt", "lat", "lon"])
def test_a_boolean_is_not_a_number(name: str, value: bool) -> None:
    record: dict[str, Any] = {"n": name, "t": T0, "v": value}
    if name == "temp":
        record["u"] = "Cel"
    assert only_refusal(record).reason is Reason.BAD_VALUE


@pytest.mark.parametrize("value", ["-190.0", "", None, [1.0], {"v": 1.0}])
def test_a_value_that_is_not_a_number_is_a_bad_value(value: Any) -> None:
    assert only_refusal(temp(v=value)).reason is Reason.BAD_VALUE


@pytest.mark.parametrize("field", [{"vs": "-190.0"}, {"vd": "AAE="}, {"vb": True}])
def test_a_string_data_or_boolean_value_instead_of_a_number_is_a_bad_value(
    field: dict[str, Any],
) -> None:
    refusal = only_refusal({**temp(v=DROP), **field})
    assert refusal.reason is Reason.BAD_VALUE
    assert next(iter(field)) in refusal.detail


@pytest.mark.parametrize(
    "fields",
    [
        {"v": 1e400},
        {"v": -1e400},
        {"v": 10**400},
        {"v": 1e308, "bv": 1e308},
        {"v": 1, "bv": 1e400},
        {"v": 1, "bv": -(10**400)},
    ],
)
def test_a_value_that_is_not_finite_is_refused(fields: dict[str, Any]) -> None:
    bv = {"bv": fields.pop("bv")} if "bv" in fields else {}
    assert only_refusal([{**bv, **temp(**fields)}]).reason is Reason.NON_FINITE_VALUE


@pytest.mark.parametrize(
    ("unit", "value"), [("Cel", -273.16), ("Cel", -1000), ("K", -0.01), ("K", -1e300)]
)
def test_a_temperature_below_absolute_zero_is_a_bad_value(unit: str, value: float) -> None:
    assert only_refusal(temp(u=unit, v=value)).reason is Reason.BAD_VALUE


def test_absolute_zero_itself_is_a_temperature() -> None:
    assert only_reading(temp(v=-273.15)).value == -273.15
    assert only_reading(temp(u="K", v=0)).value == -273.15


@pytest.mark.parametrize(
    ("name", "low", "high"), [("batt", 0, 100), ("lat", -90, 90), ("lon", -180, 180)]
)
def test_battery_and_position_must_lie_within_their_range(
    name: str, low: float, high: float
) -> None:
    assert only_reading({"n": name, "t": T0, "v": low}).value == low
    assert only_reading({"n": name, "t": T0, "v": high}).value == high
    assert only_refusal({"n": name, "t": T0, "v": low - 0.001}).reason is Reason.BAD_VALUE
    assert only_refusal({"n": name, "t": T0, "v": high + 0.001}).reason is Reason.BAD_VALUE


@pytest.mark.parametrize("vb", [1, 0, 1.0, "true", "open", None, [True]])
def test_a_lid_value_that_is_not_a_boolean_is_a_bad_value(vb: Any) -> None:
    assert only_refusal({"n": "lid", "t": T0, "vb": vb}).reason is Reason.BAD_VALUE


@pytest.mark.parametrize("field", [{"v": 1}, {"v": True}, {"vs": "open"}, {"vd": "AQ=="}])
def test_a_lid_event_needs_a_boolean_vb(field: dict[str, Any]) -> None:
    refusal = only_refusal({"n": "lid", "t": T0, **field})
    assert refusal.reason is Reason.BAD_VALUE
    assert "vb" in refusal.detail


# --- broken base fields ------------------------------------------------------------------


@pytest.mark.parametrize("bt", ["1764000000", True, None, [T0]])
def test_a_broken_base_time_refuses_the_records_under_it_until_replaced(bt: Any) -> None:
    # Keeping the previous bt would shift the later relative times silently.
    pack = parse(
        [
            {"bt": T0, "n": "temp", "u": "Cel", "t": 0, "v": 1},
            {"bt": bt, "n": "temp", "u": "Cel", "t": 0, "v": 2},
            {"n": "temp", "u": "Cel", "t": 60, "v": 3},
            {"n": "temp", "u": "Cel", "t": T0 + 60, "v": 4},
            {"bt": T0 + 7, "n": "temp", "u": "Cel", "t": 0, "v": 5},
        ]
    )
    assert reasons(pack) == [(1, Reason.NOT_SENML), (2, Reason.NOT_SENML), (3, Reason.NOT_SENML)]
    assert "bt" in pack.refusals[1].detail and "record 1" in pack.refusals[1].detail
    assert [(r.value, r.time_us // 1_000_000 - T0) for r in pack.readings] == [(1, 0), (5, 7)]


@pytest.mark.parametrize("bu", [1, True, None, ["Cel"]])
def test_a_broken_base_unit_refuses_the_records_that_would_use_it(bu: Any) -> None:
    pack = parse(
        [
            {"bu": "Cel", "n": "temp", "t": T0, "v": 1},
            {"bu": bu, "n": "temp", "t": T0, "v": 2},
            {"n": "temp", "t": T0, "v": 3},
            {"n": "temp", "u": "Cel", "t": T0, "v": 4},
            {"n": "lid", "t": T0, "vb": True},
            {"bu": "K", "n": "temp", "t": T0, "v": 273.15},
        ]
    )
    assert reasons(pack) == [(1, Reason.NOT_SENML), (2, Reason.NOT_SENML)]
    assert [r.value for r in pack.readings] == [1.0, 4.0, 1.0, 0.0]


@pytest.mark.parametrize("bv", ["1", True, None, [1]])
def test_a_broken_base_value_refuses_the_numbers_that_would_use_it(bv: Any) -> None:
    pack = parse(
        [
            {"bv": 100, "bu": "Cel", "bt": T0, "n": "temp", "v": 1},
            {"bv": bv, "n": "temp", "v": 2},
            {"n": "temp", "v": 3},
            {"n": "lid", "vb": False},
            {"bv": 0, "n": "temp", "v": 4},
        ]
    )
    assert reasons(pack) == [(1, Reason.NOT_SENML), (2, Reason.NOT_SENML)]
    assert [r.value for r in pack.readings] == [101.0, 0.0, 4.0]


def test_the_valid_base_fields_of_a_refused_record_still_apply() -> None:
    pack = parse(
        [
            {"bn": BN, "bt": T0, "bu": "K", "bv": "x", "n": "temp", "v": 0},
            {"n": "temp", "t": 5, "v": 273.15, "bv": 0},
        ]
    )
    assert reasons(pack) == [(0, Reason.NOT_SENML)]
    assert pack.readings == [Reading(LOGGER, "temp", (T0 + 5) * 1_000_000, 0.0)]


def test_a_deeply_nested_field_is_described_without_recursing() -> None:
    payload = b'[{"n":' + b"[" * 900 + b"]" * 900 + b',"u":"Cel","t":1764000000,"v":1}]'
    refusal = only_refusal(json.loads(payload))
    assert refusal.reason is Reason.NOT_SENML
    assert "array" in refusal.detail


def test_a_refusal_detail_is_short_and_storable_whatever_the_input() -> None:
    refusal = only_refusal(temp(n="\ud800" + "x" * 10_000))
    assert refusal.reason is Reason.UNKNOWN_NAME
    assert len(refusal.detail) < 200
    refusal.detail.encode("utf-8")


# --- properties --------------------------------------------------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=20,
)
FIELD_NAMES = st.sampled_from(
    ["bn", "bt", "bu", "bv", "bver", "n", "u", "v", "vs", "vb", "vd", "t", "s", "ut", "x_"]
)
FIELD_VALUES = (
    JSON_SCALARS
    | st.sampled_from(
        [BN, "urn:dev:logger:L2:", "Cel", "K", "%EL", "lat", "lon", "temp", "batt", "lid"]
    )
    | st.sampled_from(["urn:dev:logger:L1:temp", "urn:dev:logger:L2:temp", T0, 0, 60, 2**28])
    | st.integers(min_value=T0 - 10**6, max_value=T0 + 10**6)
    | st.floats(min_value=-300, max_value=300)
    | st.sampled_from([1e308, -1e308, 10**400, -(10**400)])
)
RECORDS = st.lists(st.dictionaries(FIELD_NAMES, FIELD_VALUES, max_size=7), max_size=12)


@given(st.binary(max_size=512))
@settings(max_examples=500)
def test_parse_pack_never_raises_on_arbitrary_bytes(payload: bytes) -> None:
    check_invariants(parse(payload))


@given(JSON_VALUES)
@settings(max_examples=300)
def test_parse_pack_never_raises_on_arbitrary_json(document: Any) -> None:
    check_invariants(parse(document))


@given(RECORDS)
@settings(max_examples=1000)
def test_every_record_of_a_senml_like_pack_is_either_read_or_refused(records: Any) -> None:
    pack = parse(records)
    check_invariants(pack)
    if records:
        assert pack.record_count == len(records)
        assert all(refusal.record_index is not None for refusal in pack.refusals)


@given(st.binary(max_size=64), st.integers(min_value=0, max_value=200))
def test_a_valid_pack_with_garbage_spliced_in_never_raises(garbage: bytes, at: int) -> None:
    payload = encode([temp(), temp(t=T0 + 60)])
    at = min(at, len(payload))
    check_invariants(parse(payload[:at] + garbage + payload[at:]))


RESOLVED = st.lists(
    st.tuples(
        st.sampled_from(["temp", "batt", "lat", "lon", "lid"]),
        st.integers(min_value=T0 - 86_400, max_value=T0 + 3_600),
        st.integers(min_value=0, max_value=90),
    ),
    min_size=1,
    max_size=30,
)


@given(RESOLVED, st.data())
def test_readings_packed_with_any_use_of_base_fields_resolve_to_themselves(
    resolved: list[tuple[str, int, int]], data: st.DataObject
) -> None:
    records: list[dict[str, Any]] = []
    bt: int | None = None
    bv: int | None = None
    bu: str | None = None
    use_bn = False
    for name, time_s, value in resolved:
        record: dict[str, Any] = {}
        if data.draw(st.booleans(), label="set bn"):
            record["bn"] = BN
            use_bn = True
        if data.draw(st.booleans(), label="set bt"):
            bt = data.draw(st.integers(min_value=T0 - 100_000, max_value=T0 + 100_000))
            record["bt"] = bt
        if data.draw(st.booleans(), label="set bv"):
            bv = data.draw(st.integers(min_value=-50, max_value=50))
            record["bv"] = bv
        if data.draw(st.booleans(), label="set bu"):
            bu = data.draw(st.sampled_from(["Cel", "%EL", "lat", "lon"]))
            record["bu"] = bu
        full_name = data.draw(st.booleans(), label="full name") and not use_bn
        record["n"] = f"urn:dev:logger:{LOGGER}:{name}" if full_name else name
        if bt is None:
            record["t"] = time_s
        elif time_s != bt or data.draw(st.booleans(), label="explicit t"):
            record["t"] = time_s - bt
        unit = {"temp": "Cel", "batt": "%EL", "lat": "lat", "lon": "lon", "lid": None}[name]
        if name != "lid" and (bu != unit or data.draw(st.booleans(), label="explicit u")):
            record["u"] = unit
        if name == "lid":
            record["vb"] = value % 2 == 1
        else:
            record["v"] = value - bv if bv is not None else value
        records.append(record)
    pack = parse(records)
    assert pack.refusals == []
    assert pack.readings == [
        Reading(LOGGER, name, time_s * 1_000_000, float(value % 2 if name == "lid" else value))
        for name, time_s, value in resolved
    ]


# --- a timing check run by hand: python tests/unit/test_senml.py ------------------------


def time_a_typical_pack(records: int = 1000, rounds: int = 200) -> tuple[float, float]:
    """Return the µs per record of parse_pack on a typical pack, and of json.loads alone."""
    pack = [{"bn": BN, "bt": T0, "bu": "Cel", "n": "temp", "t": 0, "v": -190.1}] + [
        {"n": "temp", "t": 60 * i, "v": round(-190.1 - i * 0.01, 2)} for i in range(1, records)
    ]
    payload = encode(pack)
    received_us = (T0 + 60 * records) * 1_000_000
    assert len(parse(payload, received_us=received_us).readings) == records
    decode_s = min(timeit.repeat(lambda: json.loads(payload), number=rounds, repeat=5))
    parse_s = min(
        timeit.repeat(
            lambda: parse_pack(payload, logger_id=LOGGER, received_us=received_us),
            number=rounds,
            repeat=5,
        )
    )
    per_record_us = 1e6 / rounds / records
    return parse_s * per_record_us, decode_s * per_record_us


if __name__ == "__main__":
    total_us, decode_us = time_a_typical_pack()
    sys.stdout.write(
        f"parse_pack: {total_us:.2f} us/record, of which json.loads {decode_us:.2f} us/record\n"
    )
