"""A catalogue of bad input, over MQTT and HTTP, each with its exact outcome.

MQTT cases go through a real Mosquitto and one real `coldchain ingest` process shared by the
module: each case publishes its payload, then a good reading from the same logger, and checks
the dead-letter reasons (or the values stored), that the good reading was stored and that the
worker lives. HTTP cases go through the Flask app on a real database: each checks the status,
the error code and the field to blame, that a write changed nothing (the shipment's version,
the audit trail's length) and that a normal request still succeeds.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from coldchain.config import Settings
from coldchain.domain.senml import PackLimits
from coldchain.services import accounts, ingest
from coldchain.services.timefmt import now_us
from coldchain.store.engine import make_engine, make_sessions
from coldchain.store.models import AuditEvent, DeadLetterMessage, Reading
from tests.conftest import ENGINE, PASSWORD, World, make_coi
from tests.e2e.test_pipeline import eventually
from tests.support.mqtt import publish_paho, readings_topic
from tests.support.processes import ColdchainProcess, Mosquitto

SQLI = "x'); DROP TABLE shipments; --"
XSS = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
PATIENT = {"mrn": "12345", "dob": "1970-01-01"}

# --- MQTT: one broker, one worker, one database for the module -----------------------------


@pytest.fixture(scope="module")
def mqtt_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database of this module alone, copied from the seeded template of the engine."""
    if ENGINE == "postgresql":
        postgres = request.getfixturevalue("postgres")
        request.getfixturevalue("pg_template")
        name = f"m_{uuid.uuid4().hex[:12]}"
        admin = create_engine(postgres.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name} TEMPLATE coldchain_template")
        yield postgres.url(name)
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()
    else:
        path = tmp_path_factory.mktemp("catalogue") / "coldchain.db"
        shutil.copy(request.getfixturevalue("template")[0], path)
        yield f"sqlite:///{path}"


@pytest.fixture(scope="module")
def mqtt_sessions(mqtt_database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(mqtt_database_url)
    yield make_sessions(engine)
    engine.dispose()


@pytest.fixture(scope="module")
def shared_worker(
    broker: Mosquitto, mqtt_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ColdchainProcess]:
    tag = uuid.uuid4().hex[:8]
    env = {
        "COLDCHAIN_DATABASE_URL": mqtt_database_url,
        "COLDCHAIN_MQTT_URL": broker.url,
        "COLDCHAIN_INGEST_CLIENT_ID": f"catalogue-{tag}",
        "COLDCHAIN_INGEST_READINGS_TOPIC": f"$share/c{tag}/coldchain/v1/loggers/+/readings",
        "COLDCHAIN_INGEST_SESSION_EXPIRY_S": "60",
        "COLDCHAIN_INGEST_BATCH_MAX_MS": "20",
    }
    log = tmp_path_factory.mktemp("catalogue-worker") / "worker.log"
    process = ColdchainProcess(["ingest"], env, log).start()
    process.wait_for_log("connected to", timeout_s=20)
    yield process
    assert process.stop() == 0, process.log()


@dataclass
class Mqtt:
    broker: Mosquitto
    worker: ColdchainProcess
    sessions: sessionmaker[Session]

    def new_logger(self) -> str:
        logger_id = f"X-{uuid.uuid4().hex[:10]}"
        accounts.add_logger(sessions=self.sessions, logger_id=logger_id)
        return logger_id

    def readings(self, logger_id: str) -> dict[int, tuple[str, float]]:
        with self.sessions() as session:
            rows = session.execute(
                select(Reading.time_us, Reading.name, Reading.value).where(
                    Reading.logger_id == logger_id
                )
            )
            return {time_us: (name, value) for time_us, name, value in rows}

    def reasons(self, topic: str) -> list[str]:
        with self.sessions() as session:
            messages = session.scalars(
                select(DeadLetterMessage).where(DeadLetterMessage.topic == topic)
            ).all()
            return sorted(letter.reason for m in messages for letter in m.letters)

    def good_reading_after(self, logger_id: str) -> int:
        """Publish a good reading from the logger; wait until it is stored; the worker lives."""
        t = time.time() - 1
        pack = [{"bn": f"urn:dev:logger:{logger_id}:", "n": "temp", "u": "Cel", "t": t, "v": -190}]
        publish_paho(self.broker, readings_topic(logger_id), json.dumps(pack))
        eventually(lambda: round(t * 1e6) in self.readings(logger_id))
        assert self.worker.process is not None and self.worker.process.poll() is None
        assert "Traceback" not in self.worker.log()
        return round(t * 1e6)


@pytest.fixture
def mqtt(
    broker: Mosquitto, shared_worker: ColdchainProcess, mqtt_sessions: sessionmaker[Session]
) -> Mqtt:
    return Mqtt(broker, shared_worker, mqtt_sessions)


def record(now: float, **changes: Any) -> str:
    """One temp record as JSON text; a value given as str is written raw (1e400, true)."""
    fields: dict[str, Any] = {"n": "temp", "u": "Cel", "t": now, "v": -190.5, **changes}
    parts = [
        f"{json.dumps(k)}:{v if isinstance(v, Raw) else json.dumps(v)}" for k, v in fields.items()
    ]
    return "{" + ",".join(parts) + "}"


class Raw(str):
    """JSON text written as it is."""


def pack(*records: str) -> bytes:
    return ("[" + ",".join(records) + "]").encode()


BIG = "1" + "0" * 400
# (id, payload of `now`, dead-letter reasons, readings stored from the payload)
MQTT_CASES: list[tuple[str, Callable[[float], bytes], list[str], list[tuple[str, float]]]] = [
    ("nested-arrays-10000", lambda now: b"[" * 10_000 + b"]" * 10_000, ["not-json"], []),
    (
        "nested-objects-10000-in-a-record",
        lambda now: pack(record(now, x=Raw('{"a":' * 10_000 + "1" + "}" * 10_000))),
        ["not-json"],
        [],
    ),
    ("v-1e400", lambda now: pack(record(now, v=Raw("1e400"))), ["non-finite-value"], []),
    ("v-minus-1e400", lambda now: pack(record(now, v=Raw("-1e400"))), ["non-finite-value"], []),
    ("v-10-to-400-integer", lambda now: pack(record(now, v=Raw(BIG))), ["non-finite-value"], []),
    ("v-5000-digits", lambda now: pack(record(now, v=Raw("9" * 5000))), ["not-json"], []),
    ("v-NaN-literal", lambda now: pack(record(now, v=Raw("NaN"))), ["non-finite-value"], []),
    ("t-1e400", lambda now: pack(record(now, t=Raw("1e400"))), ["future-time"], []),
    ("t-10-to-400-integer", lambda now: pack(record(now, t=Raw(BIG))), ["future-time"], []),
    ("t-minus-1e400", lambda now: pack(record(now, t=Raw("-1e400"))), ["relative-time"], []),
    (
        "bt-1e400-plus-t-minus-1e400",
        lambda now: pack(record(now, bt=Raw("1e400"), t=Raw("-1e400"))),
        ["not-senml"],
        [],
    ),
    ("v-true", lambda now: pack(record(now, v=True)), ["bad-value"], []),
    ("v-null", lambda now: pack(record(now, v=None)), ["bad-value"], []),
    ("t-true", lambda now: pack(record(now, t=True)), ["not-senml"], []),
    ("bt-true", lambda now: pack(record(now, bt=True)), ["not-senml"], []),
    (
        "lid-vb-as-string",
        lambda now: pack(json.dumps({"n": "lid", "t": now, "vb": "true"})),
        ["bad-value"],
        [],
    ),
    ("nul-in-name", lambda now: pack(record(now, n="te\x00mp")), ["unknown-name"], []),
    ("nul-in-unit", lambda now: pack(record(now, u="Cel\x00")), ["unknown-unit"], []),
    (
        "raw-nul-byte-in-a-string",
        lambda now: pack(record(now)).replace(b"temp", b"te\x00mp"),
        ["not-json"],
        [],
    ),
    (
        "invalid-utf8",
        lambda now: pack(record(now)).replace(b"Cel", b"C\xff\xfel"),
        ["not-json"],
        [],
    ),
    ("utf16-json", lambda now: pack(record(now)).decode().encode("utf-16"), ["not-json"], []),
    (
        "duplicate-key-last-wins",
        lambda now: pack(record(now).replace('"v":-190.5', '"v":-190.5,"v":-80.25')),
        [],
        [("temp", -80.25)],
    ),
    (
        "sql-injection-in-name",
        lambda now: pack(record(now, n="temp'; DROP TABLE readings; --")),
        ["unknown-name"],
        [],
    ),
    ("html-in-unit", lambda now: pack(record(now, u=XSS)), ["unknown-unit"], []),
    (
        "bn-naming-another-logger",
        lambda now: pack(record(now, bn="urn:dev:logger:L-2:")),
        ["wrong-logger"],
        [],
    ),
    (
        "bn-with-path-traversal",
        lambda now: pack(record(now, bn="urn:dev:logger:../../etc:")),
        ["bad-base-name"],
        [],
    ),
    (
        "over-256-KiB",
        lambda now: b"[" + b" " * (256 * 1024) + pack(record(now))[1:],
        ["too-large"],
        [],
    ),
    (
        "over-10000-records",
        lambda now: b"[" + b",".join([b"{}"] * 10_001) + b"]",
        ["too-many-records"],
        [],
    ),
    ("empty-array", lambda now: b"[]", ["not-senml"], []),
    ("an-object-not-an-array", lambda now: record(now).encode(), ["not-senml"], []),
    ("empty-payload", lambda now: b"", ["not-json"], []),
    (
        "partly-bad-pack-keeps-the-good-record",
        lambda now: pack(record(now - 10, v=-191.0), record(now - 5, v="warm")),
        ["bad-value"],
        [("temp", -191.0)],
    ),
]


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("payload", "reasons", "stored"),
    [pytest.param(p, r, s, id=i) for i, p, r, s in MQTT_CASES],
)
def test_a_bad_payload_has_its_exact_outcome_and_the_worker_goes_on(
    mqtt: Mqtt,
    payload: Callable[[float], bytes],
    reasons: list[str],
    stored: list[tuple[str, float]],
) -> None:
    logger_id = mqtt.new_logger()
    topic = readings_topic(logger_id)
    publish_paho(mqtt.broker, topic, payload(time.time() - 30))
    good_us = mqtt.good_reading_after(logger_id)
    assert mqtt.reasons(topic) == reasons
    readings = mqtt.readings(logger_id)
    assert readings.pop(good_us) == ("temp", -190.0)
    assert sorted(readings.values()) == sorted(stored)


# (id, topic, payload, dead-letter reasons kept for that topic)
TOPIC_CASES = [
    ("unregistered-logger", readings_topic("NOBODY-1"), "unknown-logger"),
    # Long but legal: the broker takes a 65,535-byte topic; its id is no logger id.
    (
        "65535-byte-topic",
        readings_topic("x" * (65_535 - len(readings_topic("")))),
        "bad-topic",
    ),
    ("dot-dot-logger-id", readings_topic(".."), "bad-topic"),
    ("sql-injection-logger-id", readings_topic("L-1' OR '1'='1"), "bad-topic"),
    ("html-logger-id", readings_topic(XSS.replace("/", "")), "bad-topic"),
    ("logger-id-of-65-characters", readings_topic("L" * 65), "bad-topic"),
]


@pytest.mark.e2e
@pytest.mark.parametrize(("topic", "reason"), [pytest.param(t, r, id=i) for i, t, r in TOPIC_CASES])
def test_a_bad_topic_is_dead_lettered_and_stores_nothing(
    mqtt: Mqtt, topic: str, reason: str
) -> None:
    assert len(topic.encode()) <= 65_535
    payload = pack(record(time.time() - 30))
    publish_paho(mqtt.broker, topic, payload)
    witness = mqtt.new_logger()
    mqtt.good_reading_after(witness)
    eventually(lambda: mqtt.reasons(topic))
    assert mqtt.reasons(topic) == [reason]
    with mqtt.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Reading)) == session.scalar(
            select(func.count()).select_from(Reading).where(Reading.logger_id.like("X-%"))
        )


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


@pytest.mark.e2e
def test_a_1_MB_topic_cannot_be_sent_and_a_forged_one_ends_the_connection(mqtt: Mqtt) -> None:
    topic = readings_topic("x" * 1_000_000)
    # paho refuses it before sending anything: MQTT writes a topic's length in two bytes.
    with pytest.raises(ValueError, match="too long"):
        publish_paho(mqtt.broker, topic, b"[]")
    # Forged on a raw socket, the two-byte length cannot say 1 MB: a PUBLISH whose topic
    # length runs past the end of its packet is malformed, and the broker hangs up.
    with socket.create_connection(("127.0.0.1", mqtt.broker.port), timeout=5) as raw:
        client_id = b"forger"
        connect = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(client_id).to_bytes(2, "big") + client_id
        raw.sendall(b"\x10" + _remaining_length(len(connect)) + connect)
        assert raw.recv(4)[:1] == b"\x20"  # CONNACK
        body = b"\xff\xff" + topic.encode()[:1000]
        raw.sendall(b"\x30" + _remaining_length(len(body)) + body)
        closed = b""
        try:
            closed = raw.recv(1024)
        except ConnectionResetError:
            pass
        assert closed == b""
    witness = mqtt.new_logger()
    mqtt.good_reading_after(witness)
    assert mqtt.reasons(topic) == []


# --- HTTP ---------------------------------------------------------------------------------


def sig(meaning: str = "Handed over intact") -> dict[str, str]:
    return {"password": PASSWORD, "meaning": meaning}


def shipment_body(serial: int = 1, **changes: Any) -> dict[str, Any]:
    return {
        "coi": make_coi(serial),
        "profile": "LN2_VAPOR",
        "origin_site": "MFG-1",
        "destination_site": "TC-1",
        "loggers": ["L-1"],
        "patient": PATIENT,
        "seal_id": "SEAL-1",
        **changes,
    }


def handoff_body(version: int, **changes: Any) -> dict[str, Any]:
    return {
        "version": version,
        "from_party": "MFG-1",
        "to_party": "courier",
        "location": "Loading bay 2",
        "seal_id": "SEAL-1",
        "condition": "intact",
        "signature": sig(),
        **changes,
    }


def receipt_body(version: int, **changes: Any) -> dict[str, Any]:
    return {
        "version": version,
        "coi_scan": make_coi(1),
        "patient": PATIENT,
        "seal_id": "SEAL-1",
        "decision": "accept",
        "signature": sig("Received"),
        **changes,
    }


def disposition_body(version: int, **changes: Any) -> dict[str, Any]:
    return {
        "version": version,
        "decision": "product_acceptable",
        "reason": "within stability data",
        "signature": sig("QA decision"),
        **changes,
    }


@dataclass
class Scene:
    """A created shipment (and, on demand, an excursion of it) for one HTTP case."""

    client: FlaskClient
    world: World
    sessions: sessionmaker[Session]
    settings: Settings
    shipment: dict[str, Any] = field(default_factory=dict)
    excursion: dict[str, Any] = field(default_factory=dict)

    def make_excursion(self) -> None:
        t0 = time.time() - 600
        temps = [-190, -140, -140, -190]
        records = [
            {"bn": "urn:dev:logger:L-1:", "bu": "Cel", "n": "temp", "t": t0, "v": temps[0]}
        ] + [{"n": "temp", "t": t0 + 60 * i, "v": v} for i, v in enumerate(temps) if i]
        ingest.store_batch(
            sessions=self.sessions,
            messages=[
                ingest.Incoming(readings_topic("L-1"), json.dumps(records).encode(), now_us())
            ],
            profiles=self.settings.profiles,
            limits=PackLimits(),
            known=ingest.KnownLoggers(),
            now_us=now_us(),
        )
        self.shipment = self.get()
        [self.excursion] = self.shipment["excursions"]

    def get(self) -> dict[str, Any]:
        response = self.client.get(
            f"/api/v1/shipments/{self.shipment['id']}", headers=self.world.auth("coord")
        )
        assert response.status_code == 200, response.get_json()
        return response.get_json()  # type: ignore[no-any-return]

    def audit_length(self) -> int:
        with self.sessions() as session:
            return int(session.scalar(select(func.count()).select_from(AuditEvent)) or 0)


@pytest.fixture
def scene(
    client: FlaskClient, world: World, sessions: sessionmaker[Session], settings: Settings
) -> Scene:
    created = client.post(
        "/api/v1/shipments",
        json=shipment_body(monitoring_from="2020-01-01T00:00:00Z"),
        headers=world.auth("coord"),
    )
    assert created.status_code == 201, created.get_json()
    return Scene(client, world, sessions, settings, created.get_json())


@dataclass
class Call:
    """One request of a case: who, what, and the body (JSON, or raw bytes with a type)."""

    user: str | None
    method: str
    path: str
    json: Callable[[Scene], Any] | None = None
    raw: bytes | None = None
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    needs_excursion: bool = False


def deep(n: int) -> bytes:
    return b"[" * n + b"]" * n


S = "/api/v1/shipments"
SID = "/api/v1/shipments/{sid}"
EID = "/api/v1/excursions/{eid}"
BAD_TOKEN = {"Authorization": "Bearer " + "A" * 43}


def post(user: str | None, path: str, body: Callable[[Scene], Any], **kw: Any) -> Call:
    return Call(user, "POST", path, json=body, **kw)


def get(user: str | None, path: str, **kw: Any) -> Call:
    return Call(user, "GET", path, **kw)


def create(**changes: Any) -> Callable[[Scene], Any]:
    return lambda s: {**shipment_body(serial=2, loggers=["L-2"]), **changes}


def hand(**changes: Any) -> Callable[[Scene], Any]:
    return lambda s: {**handoff_body(s.shipment["version"]), **changes}


def raw_json(text: bytes) -> dict[str, Any]:
    return {"raw": text, "content_type": "application/json"}


# (id, call, status, error code, field); status 200 with code None: an empty list answered.
HTTP_CASES: list[tuple[str, Call, int, str | None, str | None]] = [
    # Deep nesting, huge numbers, true where a number is meant.
    (
        "body-nested-arrays-10000",
        Call("coord", "POST", S, **raw_json(deep(10_000))),
        400,
        "invalid-json",
        None,
    ),
    (
        "body-nested-objects-10000",
        Call("coord", "POST", S, **raw_json(b'{"a":' * 10_000 + b"1" + b"}" * 10_000)),
        400,
        "invalid-json",
        None,
    ),
    (
        "patient-nested-40-levels",
        post("coord", S, create(patient={"mrn": json.loads(deep(40))})),
        400,
        "invalid-json",
        None,
    ),
    (
        "version-1e400",
        Call("coord", "POST", SID + "/cancel", **raw_json(b'{"version": 1e400, "reason": "x"}')),
        400,
        "invalid",
        "version",
    ),
    (
        "version-10-to-400-integer",
        Call(
            "coord",
            "POST",
            SID + "/cancel",
            **raw_json(b'{"version": %s, "reason": "x"}' % BIG.encode()),
        ),
        400,
        "invalid",
        "version",
    ),
    (
        "version-5000-digits",
        Call(
            "coord",
            "POST",
            SID + "/cancel",
            **raw_json(b'{"version": %s, "reason": "x"}' % (b"9" * 5000)),
        ),
        400,
        "invalid-json",
        None,
    ),
    (
        "version-true",
        post("coord", SID + "/cancel", lambda s: {"version": True, "reason": "x"}),
        400,
        "invalid",
        "version",
    ),
    (
        "handoff-version-true",
        post("courier", SID + "/handoffs", hand(version=True)),
        400,
        "invalid",
        "version",
    ),
    (
        "version-2-to-63",
        post("coord", SID + "/cancel", lambda s: {"version": 2**63, "reason": "x"}),
        400,
        "invalid",
        "version",
    ),
    (
        "monitoring-from-year-99999",
        post("coord", S, create(monitoring_from="99999-01-01T00:00:00Z")),
        400,
        "invalid",
        "monitoring_from",
    ),
    (
        "monitoring-from-true",
        post("coord", S, create(monitoring_from=True)),
        400,
        "invalid",
        "monitoring_from",
    ),
    ("loggers-true", post("coord", S, create(loggers=True)), 400, "invalid", "loggers"),
    # NUL bytes, invalid UTF-8, duplicate keys.
    ("nul-in-seal-id", post("coord", S, create(seal_id="SEAL\x00")), 400, "nul-byte", "seal_id"),
    (
        "nul-in-meaning",
        post(
            "courier",
            SID + "/handoffs",
            hand(signature={"password": PASSWORD, "meaning": "ok\x00"}),
        ),
        400,
        "nul-byte",
        "signature.meaning",
    ),
    ("nul-in-url", get("coord", SID + "%00"), 400, "nul-byte", "path"),
    ("nul-in-query", get("coord", S + "?status=created%00"), 400, "nul-byte", "status"),
    (
        "invalid-utf8-body",
        Call("coord", "POST", S, **raw_json(b'{"coi": "\xff\xfe"}')),
        400,
        "invalid-json",
        None,
    ),
    ("invalid-utf8-in-url", get("coord", "/api/v1/coi/%FF%FE"), 400, "coi-format", "coi"),
    (
        "duplicate-key",
        Call(
            "coord",
            "POST",
            S,
            **raw_json(
                json.dumps(shipment_body(2, loggers=["L-2"]))[:-1].encode() + b', "coi": "X"}'
            ),
        ),
        400,
        "duplicate-key",
        "coi",
    ),
    (
        "duplicate-key-in-signature",
        Call(
            "courier",
            "POST",
            SID + "/handoffs",
            **raw_json(b'{"version": 1, "signature": {"meaning": "a", "meaning": "b"}}'),
        ),
        400,
        "duplicate-key",
        "meaning",
    ),
    # Size and content type.
    (
        "body-over-1-MiB",
        Call("coord", "POST", S, **raw_json(b'{"coi": "' + b"x" * (1 << 20) + b'"}')),
        413,
        "payload-too-large",
        None,
    ),
    (
        "text-plain",
        Call(
            "coord", "POST", S, raw=json.dumps(shipment_body(2)).encode(), content_type="text/plain"
        ),
        415,
        "unsupported-media-type",
        None,
    ),
    (
        "form-encoded",
        Call("coord", "POST", S, raw=b"coi=x", content_type="application/x-www-form-urlencoded"),
        415,
        "unsupported-media-type",
        None,
    ),
    (
        "no-content-type",
        Call("coord", "POST", S, raw=json.dumps(shipment_body(2)).encode()),
        415,
        "unsupported-media-type",
        None,
    ),
    ("json-array-body", Call("coord", "POST", S, **raw_json(b"[]")), 400, "invalid-json", None),
    ("empty-json-body", Call("coord", "POST", S, **raw_json(b"")), 400, "invalid-json", None),
    # Unknown fields: no mass assignment.
    ("create-with-status", post("coord", S, create(status="received")), 400, "invalid", "status"),
    ("create-with-id", post("coord", S, create(id=5)), 400, "invalid", "id"),
    ("create-with-version", post("coord", S, create(version=99)), 400, "invalid", "version"),
    ("create-with-role", post("coord", S, create(role="admin")), 400, "invalid", "role"),
    (
        "handoff-with-transition",
        post("courier", SID + "/handoffs", hand(transition="deliver")),
        400,
        "invalid",
        "transition",
    ),
    (
        "logger-with-online",
        post("admin", "/api/v1/loggers", lambda s: {"id": "L-9", "online": True}),
        400,
        "invalid",
        "online",
    ),
    # SQL and HTML in the fields that name something: refused, naming the field.
    ("coi-sql", post("coord", S, create(coi=SQLI)), 400, "coi-format", "coi"),
    ("profile-sql", post("coord", S, create(profile=SQLI)), 400, "invalid", "profile"),
    ("origin-site-sql", post("coord", S, create(origin_site=SQLI)), 400, "invalid", "origin_site"),
    (
        "destination-site-html",
        post("coord", S, create(destination_site=XSS)),
        400,
        "invalid",
        "destination_site",
    ),
    ("logger-id-sql", post("coord", S, create(loggers=[SQLI])), 400, "invalid", "loggers"),
    ("logger-id-dot-dot", post("coord", S, create(loggers=["../L-1"])), 400, "invalid", "loggers"),
    (
        "new-logger-id-dot-dot",
        post("admin", "/api/v1/loggers", lambda s: {"id": "../etc"}),
        400,
        "invalid",
        "id",
    ),
    (
        "new-logger-id-html",
        post("admin", "/api/v1/loggers", lambda s: {"id": XSS}),
        400,
        "invalid",
        "id",
    ),
    (
        "to-party-sql",
        post("coord", SID + "/handoffs", hand(to_party=SQLI)),
        400,
        "unknown-party",
        "to_party",
    ),
    (
        "from-party-html",
        post("coord", SID + "/handoffs", hand(from_party=XSS)),
        409,
        "custody-chain-broken",
        "from_party",
    ),
    ("site-filter-sql", get("qa", "/api/v1/excursions?site=" + SQLI), 200, None, None),
    ("status-filter-sql", get("coord", S + "?status=" + SQLI), 200, None, None),
    ("audit-actor-sql", get("auditor", "/api/v1/audit?actor=" + SQLI), 200, None, None),
    (
        "deadletter-logger-html",
        get("auditor", "/api/v1/deadletters?logger=" + XSS),
        200,
        None,
        None,
    ),
    ("excursion-kind-sql", get("qa", "/api/v1/excursions?kind=" + SQLI), 400, "invalid", "kind"),
    # Paging: refused above http.max_page_size and below 1, never clamped silently.
    ("limit-minus-1", get("coord", S + "?limit=-1"), 400, "invalid", "limit"),
    ("limit-0", get("coord", S + "?limit=0"), 400, "invalid", "limit"),
    ("limit-10-to-12", get("coord", S + f"?limit={10**12}"), 400, "invalid", "limit"),
    ("limit-abc", get("coord", S + "?limit=abc"), 400, "invalid", "limit"),
    (
        "csv-limit-10-to-12",
        get("coord", S + f"?format=csv&limit={10**12}"),
        400,
        "invalid",
        "limit",
    ),
    (
        "audit-jsonl-limit-10-to-12",
        get("auditor", f"/api/v1/audit?format=jsonl&limit={10**12}"),
        400,
        "invalid",
        "limit",
    ),
    ("offset-minus-5", get("coord", S + "?offset=-5"), 400, "invalid", "offset"),
    ("offset-10-to-30", get("coord", S + f"?offset={10**30}"), 400, "invalid", "offset"),
    ("page-abc", get("coord", S + "?page=abc"), 400, "invalid", "page"),
    # Path traversal and absurd ids.
    ("shipment-id-traversal", get("coord", S + "/..%2f..%2fetc%2fpasswd"), 404, "not-found", None),
    ("coi-traversal", get("coord", "/api/v1/coi/../../"), 404, "not-found", None),
    (
        "coi-encoded-traversal",
        get("coord", "/api/v1/coi/..%2f..%2fetc%2fpasswd"),
        404,
        "not-found",
        None,
    ),
    ("shipment-id-30-digits", get("coord", S + "/" + "9" * 30), 404, "not-found", None),
    ("shipment-id-negative", get("coord", S + "/-1"), 404, "not-found", None),
    (
        "excursion-id-30-digits",
        post("qa", "/api/v1/excursions/" + "9" * 30 + "/disposition", lambda s: {}),
        404,
        "not-found",
        None,
    ),
    # Roles and tokens.
    ("courier-creates-a-shipment", post("courier", S, create()), 403, "forbidden", None),
    ("auditor-creates-a-shipment", post("auditor", S, create()), 403, "forbidden", None),
    (
        "auditor-registers-a-logger",
        post("auditor", "/api/v1/loggers", lambda s: {"id": "L-9"}),
        403,
        "forbidden",
        None,
    ),
    (
        "auditor-cancels",
        post("auditor", SID + "/cancel", lambda s: {"version": 1, "reason": "x"}),
        403,
        "forbidden",
        None,
    ),
    ("auditor-hands-off", post("auditor", SID + "/handoffs", hand()), 403, "forbidden", None),
    (
        "qa-receives",
        post("qa", SID + "/receipt", lambda s: receipt_body(s.shipment["version"])),
        403,
        "forbidden",
        None,
    ),
    ("other-clinic-reads", get("clinic2", SID), 404, "not-found", None),
    ("other-clinic-reads-readings", get("clinic2", SID + "/readings"), 404, "not-found", None),
    (
        "other-clinic-receives",
        post("clinic2", SID + "/receipt", lambda s: receipt_body(s.shipment["version"])),
        404,
        "not-found",
        None,
    ),
    (
        "other-clinic-hands-off",
        post("clinic2", SID + "/handoffs", hand(from_party="TC-2")),
        404,
        "not-found",
        None,
    ),
    (
        "auditor-dispositions",
        post(
            "auditor",
            EID + "/disposition",
            lambda s: disposition_body(s.excursion["version"]),
            needs_excursion=True,
        ),
        403,
        "forbidden",
        None,
    ),
    (
        "coordinator-dispositions",
        post(
            "coord",
            EID + "/disposition",
            lambda s: disposition_body(s.excursion["version"]),
            needs_excursion=True,
        ),
        403,
        "forbidden",
        None,
    ),
    # Decided from the parties named, before the shipment is looked up: the same for any id.
    (
        "clinic-hands-off-for-another-site",
        post("clinic2", SID + "/handoffs", hand()),
        403,
        "forbidden",
        "from_party",
    ),
    (
        "no-endpoint-creates-users",
        post("admin", "/api/v1/users", lambda s: {"name": "eve", "role": "admin"}),
        404,
        "not-found",
        None,
    ),
    ("forged-token", get(None, S, headers=BAD_TOKEN), 401, "unauthenticated", None),
    (
        "empty-bearer",
        get(None, S, headers={"Authorization": "Bearer "}),
        401,
        "unauthenticated",
        None,
    ),
    (
        "basic-auth",
        get(None, S, headers={"Authorization": "Basic YWRtaW46eA=="}),
        401,
        "unauthenticated",
        None,
    ),
    ("no-token-write", post(None, S, create()), 401, "unauthenticated", None),
]


def _send(scene: Scene, call: Call) -> Any:
    path = call.path.format(sid=scene.shipment["id"], eid=scene.excursion.get("id"))
    headers = dict(call.headers)
    if call.user is not None:
        headers.update(scene.world.auth(call.user))
    kwargs: dict[str, Any] = {"headers": headers}
    if call.json is not None:
        kwargs["json"] = call.json(scene)
    elif call.raw is not None:
        kwargs["data"] = call.raw
        if call.content_type is not None:
            kwargs["content_type"] = call.content_type
    return scene.client.open(path, method=call.method, **kwargs)


@pytest.mark.parametrize(
    ("call", "status", "code", "field_"),
    [pytest.param(c, s, k, f, id=i) for i, c, s, k, f in HTTP_CASES],
)
def test_a_bad_request_has_its_exact_answer_and_changes_nothing(
    scene: Scene, call: Call, status: int, code: str | None, field_: str | None
) -> None:
    if call.needs_excursion:
        scene.make_excursion()
    version, audit_length = scene.shipment["version"], scene.audit_length()
    response = _send(scene, call)
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.content_type == "application/json"
    body = response.get_json()
    if code is None:
        assert body == []
    else:
        assert set(body) == {"error"}
        assert body["error"]["code"] == code, body
        assert body["error"].get("field") == field_, body
        assert body["error"]["message"] and "Traceback" not in body["error"]["message"]
    # Nothing changed, and the API still answers a normal request.
    after = scene.get()
    assert after["version"] == version and after["status"] == "created"
    assert scene.audit_length() == audit_length
    listed = scene.client.get(S, headers=scene.world.auth("coord"))
    assert listed.status_code == 200 and len(listed.get_json()) == 1


def test_the_catalogue_counts_at_least_sixty_cases() -> None:
    mqtt_cases = len(MQTT_CASES) + len(TOPIC_CASES) + 1
    assert mqtt_cases >= 30 and len(HTTP_CASES) >= 60


# --- Free text: stored as given, shown escaped --------------------------------------------

FREE_TEXT = [SQLI, XSS]


@pytest.mark.parametrize("text", FREE_TEXT, ids=["sql", "html"])
def test_free_text_is_stored_verbatim_and_every_page_shows_it_escaped(
    scene: Scene, text: str
) -> None:
    client, world = scene.client, scene.world
    created = client.post(
        S,
        json=shipment_body(2, loggers=["L-2"], seal_id=text, patient={"mrn": text, "name": text}),
        headers=world.auth("coord"),
    )
    assert created.status_code == 201, created.get_json()
    shipment = created.get_json()
    assert shipment["seal_id"] == text
    handed = client.post(
        f"{S}/{shipment['id']}/handoffs",
        json=handoff_body(
            shipment["version"],
            seal_id=text,
            location=text,
            condition=text,
            notes=text,
            signature=sig(text),
        ),
        headers=world.auth("courier"),
    )
    assert handed.status_code == 201, handed.get_json()
    [link] = handed.get_json()["custody"]
    assert (link["location"], link["condition"], link["notes"]) == (text, text, text)
    assert link["signature"]["meaning"] == " ".join(text.split())
    logger = client.post(
        "/api/v1/loggers",
        json={"id": "L-9", "model": text, "firmware": text},
        headers=world.auth("admin"),
    )
    assert logger.status_code == 201 and logger.get_json()["model"] == text
    # Filters with the text find exactly what holds it, and nothing breaks.
    found = client.get(f"/api/v1/audit?entity_id={shipment['id']}", headers=world.auth("auditor"))
    assert found.status_code == 200 and found.get_json()
    # The web pages that show the text escape it.
    # The board fills its rows from /board.json in the browser (text nodes, never HTML).
    pages = {
        "coord": [f"/shipments/{shipment['id']}"],
        "clinic1": [f"/shipments/{shipment['id']}", f"/shipments/{shipment['id']}/receive"],
        "auditor": ["/audit", f"/audit?actor={quote(text)}", f"/shipments/{shipment['id']}"],
    }
    for user, paths in pages.items():
        _sign_in(client, user)
        for path in paths:
            page = client.get(path)
            assert page.status_code == 200, path
            html = page.get_data(as_text=True)
            # Escaped as HTML text, or as JSON inside the page (tojson writes < as \u003c).
            if text == XSS:
                assert XSS not in html, path
                assert ESCAPED in html or "\\u003cscript\\u003e" in html, path
            else:
                assert "x&#39;); DROP" in html or "x\\u0027); DROP" in html, path
        client.post(
            "/logout", data={"csrf_token": _csrf(client.get(paths[0]).get_data(as_text=True))}
        )


def _csrf(page: str) -> str:
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token, page[:500]
    return token[1]


def _sign_in(client: FlaskClient, username: str) -> None:
    token = _csrf(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login", data={"username": username, "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:500]


@pytest.mark.parametrize("username", [SQLI, XSS, "admin' --", "a" * 10_000])
def test_a_hostile_user_name_at_sign_in_is_refused_and_shown_escaped(
    client: FlaskClient, world: World, username: str
) -> None:
    token = _csrf(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login", data={"username": username, "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 401
    html = response.get_data(as_text=True)
    assert "wrong user name or password" in html and XSS not in html
    _sign_in(client, "coord")


def test_a_tampered_token_is_refused(client: FlaskClient, world: World) -> None:
    token = world.tokens["admin"]
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    response = client.get(S, headers={"Authorization": f"Bearer {tampered}"})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthenticated"
    assert client.get(S, headers=world.auth("admin")).status_code == 200


def test_paging_limits_are_in_the_openapi_document(client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    parameters = document["paths"]["/api/v1/shipments"]["get"]["parameters"]
    by_name = {p["name"]: p for p in parameters}
    assert by_name["limit"]["schema"]["anyOf"][0]["minimum"] == 1
    assert "max_page_size" in by_name["limit"]["description"]
    assert by_name["offset"]["schema"]["minimum"] == 0
