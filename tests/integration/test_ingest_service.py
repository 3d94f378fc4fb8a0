"""The ingest transaction on a real SQLite file: idempotent storage, dead letters, counters."""

from __future__ import annotations

import json
import time
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from coldchain.config import Settings
from coldchain.domain.senml import PackLimits
from coldchain.services import ingest
from coldchain.services.timefmt import now_us, rfc3339, to_us
from coldchain.store.counters import read_counts
from coldchain.store.models import DeadLetter, DeadLetterMessage, Logger, Reading, Shipment
from tests.api.test_custody_api import create, deliver, receive
from tests.conftest import World

BN = "urn:dev:logger:L-1:"


def message(
    records: list[dict[str, Any]] | bytes, logger_id: str = "L-1", kind: str = "readings"
) -> ingest.Incoming:
    payload = records if isinstance(records, bytes) else json.dumps(records).encode()
    return ingest.Incoming(f"coldchain/v1/loggers/{logger_id}/{kind}", payload, now_us())


def store(
    sessions: sessionmaker[Session], settings: Settings, *messages: ingest.Incoming
) -> ingest.BatchOutcome:
    return ingest.store_batch(
        sessions=sessions,
        messages=list(messages),
        profiles=settings.profiles,
        limits=PackLimits(),
        known=ingest.KnownLoggers(),
        now_us=now_us(),
    )


def count(sessions: sessionmaker[Session], model: Any) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_storing_the_same_pack_twice_stores_it_once(
    sessions: sessionmaker[Session], settings: Settings, world: World
) -> None:
    t = round(time.time()) - 100
    pack = [{"bn": BN, "bu": "Cel", "bt": t, "n": "temp", "t": i, "v": -190} for i in range(5)]
    first = store(sessions, settings, message(pack))
    second = store(sessions, settings, message(pack), message(pack))
    assert first.counts["readings_stored"] == 5
    assert second.counts["readings_stored"] == 0 and second.counts["readings_duplicate"] == 10
    assert count(sessions, Reading) == 5 and count(sessions, DeadLetter) == 0
    # Duplicates are acknowledged end to end: the logger may forget them.
    assert [(m.accepted, m.first_us, m.last_us) for m in second.messages] == [
        (5, t * 1_000_000, (t + 4) * 1_000_000)
    ] * 2


def test_a_second_value_for_the_same_reading_is_dead_lettered_and_the_first_stands(
    sessions: sessionmaker[Session], settings: Settings, world: World
) -> None:
    t = round(time.time()) - 100
    outcome = store(
        sessions,
        settings,
        message([{"bn": BN, "n": "temp", "u": "Cel", "t": t, "v": -190}]),
        message([{"bn": BN, "n": "temp", "u": "Cel", "t": t, "v": -100}]),
    )
    assert [m.accepted for m in outcome.messages] == [1, 0]
    with sessions() as session:
        assert session.scalars(select(Reading.value)).all() == [-190]
        letters = session.scalars(select(DeadLetter)).all()
    assert [letter.reason for letter in letters] == ["conflict"]
    later = store(
        sessions, settings, message([{"bn": BN, "n": "temp", "u": "Cel", "t": t, "v": -150}])
    )
    assert later.messages[0].refusals[0].reason == "conflict"
    assert count(sessions, DeadLetter) == 2


def test_a_partly_bad_pack_keeps_its_good_records(
    sessions: sessionmaker[Session], settings: Settings, world: World
) -> None:
    t = round(time.time()) - 100
    pack = [
        {"bn": BN, "bu": "Cel", "bt": t, "n": "temp", "t": 0, "v": -190},
        {"n": "temp", "t": 1, "v": True},
        {"n": "humidity", "t": 2, "v": 40},
        {"n": "batt", "u": "%EL", "t": 3, "v": 88},
        {"n": "lid", "t": 4, "vb": False},
    ]
    outcome = store(sessions, settings, message(pack))
    assert outcome.messages[0].accepted == 3
    with sessions() as session:
        names = sorted(session.scalars(select(Reading.name)).all())
        letters = session.scalars(select(DeadLetter).order_by(DeadLetter.record_index)).all()
        assert [(x.record_index, x.reason) for x in letters] == [
            (1, "bad-value"),
            (2, "unknown-name"),
        ]
        assert letters[0].message.payload == json.dumps(pack).encode()
    assert names == ["batt", "lid", "temp"]
    counts = outcome.counts
    assert counts["dead_letters:bad-value"] == counts["dead_letters:unknown-name"] == 1


def test_an_unknown_logger_and_a_bad_topic_are_dead_lettered_whole(
    sessions: sessionmaker[Session], settings: Settings, world: World
) -> None:
    pack = [{"n": "temp", "u": "Cel", "t": time.time(), "v": -190}]
    store(
        sessions,
        settings,
        message(pack, logger_id="STRANGER"),
        ingest.Incoming("coldchain/v1/loggers/bad id!/readings", b"[]", now_us()),
    )
    with sessions() as session:
        letters = session.scalars(select(DeadLetter).order_by(DeadLetter.id)).all()
        assert [(x.reason, x.record_index) for x in letters] == [
            ("unknown-logger", None),
            ("bad-topic", None),
        ]
        assert letters[0].message.logger_id == "STRANGER"


def test_the_status_topic_records_presence(
    sessions: sessionmaker[Session], settings: Settings, world: World
) -> None:
    store(sessions, settings, message(b"online", kind="status"))
    with sessions() as session:
        assert session.get(Logger, "L-1").online is True  # type: ignore[union-attr]
    store(sessions, settings, message(b"offline", kind="status"), message(b"sleepy", kind="status"))
    with sessions() as session:
        assert session.get(Logger, "L-1").online is False  # type: ignore[union-attr]
        assert session.scalars(select(DeadLetter.reason)).all() == ["bad-status"]


def test_counters_add_up_across_batches(
    sessions: sessionmaker[Session], settings: Settings, world: World
) -> None:
    t = round(time.time()) - 100
    pack = [{"bn": BN, "bu": "Cel", "bt": t, "n": "temp", "t": i, "v": -190} for i in range(3)]
    store(sessions, settings, message(pack))
    store(sessions, settings, message(pack), message(b"nope"))
    with sessions() as session:
        counts = read_counts(session.connection())
    assert counts["readings_stored"] == 3 and counts["readings_duplicate"] == 3
    assert counts["messages"] == 3 and counts["batches"] == 2
    assert counts["dead_letters:not-json"] == 1
    assert counts["batch_us"] >= 2  # each batch adds its own time, at least a microsecond


def test_nul_characters_in_a_pack_are_dead_lettered_not_a_store_error(
    sessions: sessionmaker[Session], settings: Settings, world: World
) -> None:
    # PostgreSQL refuses NUL in text: the reasons quoting the bad names must still be stored.
    t = round(time.time()) - 100
    pack = [
        {"bn": "urn:dev:logger:L-1\u0000:", "n": "temp", "u": "Cel", "t": t, "v": -190},
        {"bn": BN, "n": "te\u0000mp", "u": "Cel", "t": t, "v": -190},
        {"n": "temp", "u": "C\u0000el", "t": t, "v": -190},
        {"n": "temp", "u": "Cel", "t": t + 1, "v": -190},
    ]
    outcome = store(sessions, settings, message(pack))
    assert outcome.messages[0].accepted == 1
    with sessions() as session:
        letters = session.scalars(select(DeadLetter).order_by(DeadLetter.record_index)).all()
        assert [(x.record_index, x.reason) for x in letters] == [
            (0, "bad-base-name"),
            (1, "unknown-name"),
            (2, "unknown-unit"),
        ]
        assert all("\x00" not in x.detail and "\\x00" in x.detail for x in letters)
        assert letters[0].message.payload == json.dumps(pack).encode()

    # A broker should refuse a topic with a NUL (MQTT forbids it); should one arrive anyway
    # it is dead-lettered with the NUL written as \\x00, not lost to a database error.
    store(sessions, settings, ingest.Incoming("coldchain/v1/loggers/L-\x001/readings", b"[]", 1))
    with sessions() as session:
        topics = session.scalars(select(DeadLetterMessage.topic)).all()
    assert "coldchain/v1/loggers/L-\\x001/readings" in topics


def test_a_batch_judges_only_the_shipments_whose_window_its_readings_fall_in(
    client: FlaskClient, sessions: sessionmaker[Session], settings: Settings, world: World
) -> None:
    # L-1 served shipment A (monitored from an hour ago until its receipt), then B.
    hour_ago = now_us() - 3_600_000_000
    a = create(client, world, 1, monitoring_from=rfc3339(hour_ago))
    assert receive(client, world, deliver(client, world, a)).status_code == 201
    b = create(client, world, 2)
    with sessions() as session:
        ended = session.get(Shipment, a["id"])
        assert ended is not None and ended.monitoring_until is not None
        a_until = to_us(ended.monitoring_until)
        started = session.get(Shipment, b["id"])
        assert started is not None
        b_from = to_us(started.monitoring_from)

        def judged(lo: int, hi: int, logger_id: str = "L-1") -> list[int]:
            links = ingest.monitored_links(session, {logger_id: (lo, hi)})
            return sorted(shipment.id for shipment, _logger in links)

        # A late reading from A's trip is judged on A alone, a live one on B alone.
        assert judged(hour_ago + 60_000_000, hour_ago + 60_000_000) == [a["id"]]
        assert a_until <= b_from
        assert judged(a_until - 1, a_until - 1) == [a["id"]]
        assert judged(b_from + 1, b_from + 1) == [b["id"]]
        # A span over both, both; before either, or another logger's, none.
        assert judged(hour_ago, b_from + 1) == [a["id"], b["id"]]
        assert judged(hour_ago - 7_200_000_000, hour_ago - 1) == []
        assert judged(hour_ago, b_from + 1, "L-2") == []
