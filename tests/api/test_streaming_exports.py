"""CSV exports stream: written a chunk at a time from rows read in batches, in flat memory."""

from __future__ import annotations

import csv
import io
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask, Response, request_finished
from flask.testing import FlaskClient
from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from coldchain.api.audit import AUDIT_COLUMNS
from coldchain.api.shipments import EXCURSION_COLUMNS, READING_COLUMNS, SHIPMENT_COLUMNS
from coldchain.domain.signatures import canonical_json
from coldchain.reports import csvstream
from coldchain.reports.tables import to_csv
from coldchain.services import audit, streaming
from coldchain.services import shipments as service
from coldchain.services.timefmt import rfc3339, to_us
from coldchain.store.models import Excursion, Reading
from tests.api.test_custody_api import create
from tests.conftest import World
from tests.web.test_web_roles import sign_in

BATCH = 100
T0_US = to_us(datetime(2024, 3, 1, tzinfo=UTC))
MINUTE_US = 60_000_000


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of 100 rows and chunks of 4 KiB, so that a few thousand rows cross many."""
    monkeypatch.setattr(streaming, "BATCH_ROWS", BATCH)
    monkeypatch.setattr(csvstream, "CHUNK_CHARS", 4096)


def add_readings(
    sessions: sessionmaker[Session], logger_id: str, count: int, *, name: str = "temp"
) -> list[dict[str, Any]]:
    """Store one reading a minute from T0 (temperatures with fractions), as rows."""
    rows = [
        {
            "logger_id": logger_id,
            "name": name,
            "time_us": T0_US + i * MINUTE_US,
            "value": -150.0 + (i % 40) * 0.25,
            "received_us": T0_US + i * MINUTE_US + 1_500_000,
        }
        for i in range(count)
    ]
    with sessions.begin() as session:
        session.execute(insert(Reading), rows)
    return rows


def add_excursions(
    sessions: sessionmaker[Session], shipment_id: int, count: int, *, logger_id: str = "L-1"
) -> None:
    """Store closed HIGH and LOW excursions, every fifth one dispositioned."""
    at = datetime(2024, 3, 2, tzinfo=UTC)
    rows = [
        {
            "shipment_id": shipment_id,
            "logger_id": logger_id,
            "kind": "HIGH" if i % 2 else "LOW",
            "started_us": T0_US + i * MINUTE_US,
            "ended_us": T0_US + i * MINUTE_US + 30_000_000,
            "peak_c": -140.5 if i % 2 else None,
            "duration_s": 30.0,
            "status": "CLOSED",
            "resolution": None,
            "version": 1,
            "disposition": "product_acceptable" if i % 5 == 0 else None,
            "disposition_version": 1 if i % 5 == 0 else None,
            "detected_at": at,
            "updated_at": at,
        }
        for i in range(count)
    ]
    with sessions.begin() as session:
        session.execute(insert(Excursion), rows)


@dataclass
class Exports:
    """Downloads through the test client, with the responses the app itself answered."""

    client: FlaskClient
    world: World
    served: list[Response]

    def csv(self, path: str, user: str) -> list[bytes]:
        """GET a CSV export, check that the app streamed it, and return its chunks."""
        response = self.client.get(path, headers=self.world.auth(user))
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
        # The test client wraps every answer in an iterator: ask the app's own response.
        assert self.served[-1].is_streamed and response.mimetype == "text/csv"
        assert response.headers["Content-Disposition"].startswith("attachment; filename=")
        assert "Content-Length" not in response.headers
        with response:
            return list(response.response)

    def json(self, path: str, user: str) -> list[dict[str, Any]]:
        """The same collection as the JSON API pages it, in one large page unless given one."""
        if "limit=" not in path:
            path += ("&" if "?" in path else "?") + "limit=100000"
        response = self.client.get(path, headers=self.world.auth(user))
        assert response.status_code == 200, response.get_json()
        assert not self.served[-1].is_streamed
        return response.get_json()  # type: ignore[no-any-return]


@pytest.fixture
def exports(app: Flask, client: FlaskClient, world: World) -> Iterator[Exports]:
    served: list[Response] = []

    def record(_sender: Flask, response: Response, **_extra: Any) -> None:
        served.append(response)

    with request_finished.connected_to(record, app):
        yield Exports(client, world, served)


def text(chunks: list[bytes]) -> str:
    return b"".join(chunks).decode("utf-8")


def test_a_shipments_readings_stream_as_csv_across_many_batches(
    exports: Exports, client: FlaskClient, world: World, sessions: sessionmaker[Session]
) -> None:
    shipment = create(client, world, loggers=["L-1", "L-2"], monitoring_from=rfc3339(T0_US))
    stored = add_readings(sessions, "L-1", 1250) + add_readings(sessions, "L-2", 1250)
    add_readings(sessions, "L-1", 50, name="batt")  # not a temperature
    add_readings(sessions, "L-3", 50)  # not on this shipment
    path = f"/api/v1/shipments/{shipment['id']}/readings"

    chunks = exports.csv(f"{path}?format=csv", "auditor")

    assert len(chunks) > 10
    expected = ["logger_id,time,received_at,temp_c"] + [
        f"{r['logger_id']},{rfc3339(r['time_us'])},{rfc3339(r['received_us'])},{r['value']!r}"
        for r in sorted(stored, key=lambda r: (r["time_us"], r["logger_id"]))
    ]
    assert text(chunks) == "\n".join(expected) + "\n"
    assert text(chunks) == to_csv(exports.json(path, "auditor"), READING_COLUMNS)


def test_the_readings_export_keeps_its_filters_and_paging(
    exports: Exports, client: FlaskClient, world: World, sessions: sessionmaker[Session]
) -> None:
    shipment = create(client, world, loggers=["L-1", "L-2"], monitoring_from=rfc3339(T0_US))
    add_readings(sessions, "L-1", 300)
    add_readings(sessions, "L-2", 300)
    path = f"/api/v1/shipments/{shipment['id']}/readings"
    query = f"logger=L-2&since={rfc3339(T0_US + 10 * MINUTE_US)}&offset=5&limit=250"

    chunks = exports.csv(f"{path}?format=csv&{query}", "coord")

    rows = list(csv.DictReader(io.StringIO(text(chunks))))
    assert len(rows) == 250 and {r["logger_id"] for r in rows} == {"L-2"}
    assert rows[0]["time"] == rfc3339(T0_US + 15 * MINUTE_US)
    assert text(chunks) == to_csv(exports.json(f"{path}?{query}", "coord"), READING_COLUMNS)


def test_the_excursion_logs_stream_with_the_same_cells_as_their_json(
    exports: Exports, client: FlaskClient, world: World, sessions: sessionmaker[Session]
) -> None:
    mine = create(client, world, monitoring_from=rfc3339(T0_US))
    theirs = create(
        client, world, 2, destination_site="TC-2", loggers=["L-2"], monitoring_from=rfc3339(T0_US)
    )
    add_excursions(sessions, mine["id"], 450)
    add_excursions(sessions, theirs["id"], 300, logger_id="L-2")

    for path, count in (
        ("/api/v1/excursions", 750),
        (f"/api/v1/shipments/{mine['id']}/excursions", 450),
        ("/api/v1/excursions?kind=high&site=TC-2", 150),
    ):
        separator = "&" if "?" in path else "?"
        chunks = exports.csv(f"{path}{separator}format=csv", "auditor")
        assert len(chunks) > 1, path
        body = text(chunks)
        assert body == to_csv(exports.json(path, "auditor"), EXCURSION_COLUMNS), path
        assert body.count("\n") == count + 1, path
    # Cells as before: None is empty, a float keeps its point, a boolean is True/False.
    first = next(csv.DictReader(io.StringIO(body)))
    assert (first["kind"], first["peak_c"], first["duration_s"]) == ("HIGH", "-140.5", "30.0")
    assert first["resolution"] == "" and first["disposition_current"] in ("True", "False")


def test_the_audit_export_streams_what_verification_needs(
    exports: Exports, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        for n in range(260):
            audit.record(
                session,
                actor="coord",
                action="note.add",
                entity="note",
                entity_id=n,
                old={"n": n - 1} if n else None,
                new={"n": n, "text": 'a "quoted", comma'},
            )

    chunks = exports.csv("/api/v1/audit?format=csv", "auditor")

    expected = exports.json("/api/v1/audit", "auditor")
    assert len(expected) > 2 * BATCH
    for event in expected:
        for name in ("old_values", "new_values"):
            event[name] = None if event[name] is None else canonical_json(event[name])
    assert text(chunks) == to_csv(expected, AUDIT_COLUMNS)
    paged = exports.csv("/api/v1/audit?format=csv&offset=150&limit=101", "auditor")
    rows = list(csv.DictReader(io.StringIO(text(paged))))
    assert [int(r["seq"]) for r in rows] == [e["seq"] for e in expected[150:251]]


def test_the_shipment_list_streams_and_a_clinic_sees_only_its_site(
    exports: Exports, client: FlaskClient, world: World
) -> None:
    mine = create(client, world, loggers=["L-1", "L-3"])
    theirs = create(client, world, 2, destination_site="TC-2", loggers=["L-2"])

    everything = text(exports.csv("/api/v1/shipments?format=csv", "auditor"))
    only_mine = text(exports.csv("/api/v1/shipments?format=csv", "clinic1"))

    rows = list(csv.DictReader(io.StringIO(everything)))
    assert [int(r["id"]) for r in rows] == [theirs["id"], mine["id"]]
    assert rows[1]["loggers"] == "L-1;L-3" and rows[1]["monitoring_until"] == ""
    assert everything == to_csv(exports.json("/api/v1/shipments", "auditor"), SHIPMENT_COLUMNS)
    assert [r["id"] for r in csv.DictReader(io.StringIO(only_mine))] == [str(mine["id"])]


def test_another_sites_exports_are_not_found_and_its_rows_never_listed(
    exports: Exports, client: FlaskClient, world: World, sessions: sessionmaker[Session]
) -> None:
    shipment = create(client, world, monitoring_from=rfc3339(T0_US))
    add_readings(sessions, "L-1", 20)
    add_excursions(sessions, shipment["id"], 5)
    base = f"/api/v1/shipments/{shipment['id']}"

    for path in (f"{base}/readings?format=csv", f"{base}/excursions?format=csv"):
        refused = client.get(path, headers=world.auth("clinic2"))
        assert refused.status_code == 404, path
        assert not exports.served[-1].is_streamed
        assert refused.get_json()["error"]["code"] == "not-found"
        assert text(exports.csv(path, "clinic1")).count("\n") > 5, path
    log = exports.csv("/api/v1/excursions?format=csv", "clinic2")
    assert text(log) == ",".join(EXCURSION_COLUMNS) + "\n"


def test_rows_are_read_as_the_download_is_taken_and_released_when_it_stops(
    app: Flask,
    client: FlaskClient,
    world: World,
    sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shipment = create(client, world, monitoring_from=rfc3339(T0_US))
    add_readings(sessions, "L-1", 2500)
    viewed = 0
    reading_view = service.reading_view

    def counted(row: Any) -> dict[str, Any]:
        nonlocal viewed
        viewed += 1
        return reading_view(row)

    monkeypatch.setattr(service, "reading_view", counted)
    response = client.get(
        f"/api/v1/shipments/{shipment['id']}/readings?format=csv", headers=world.auth("coord")
    )
    chunks = iter(response.response)
    next(chunks)
    assert 0 < viewed < 2 * BATCH  # the first chunk, not the whole table
    next(chunks)
    response.close()  # the client went away
    assert viewed < 3 * BATCH
    assert app.extensions["coldchain"].engine.pool.checkedout() == 0


def test_the_web_pages_csv_export_streams_the_log(
    exports: Exports, app: Flask, client: FlaskClient, world: World, sessions: sessionmaker[Session]
) -> None:
    shipment = create(client, world, monitoring_from=rfc3339(T0_US))
    add_excursions(sessions, shipment["id"], 250)
    reviewer = app.test_client()
    sign_in(reviewer, "qa")

    response = reviewer.get("/excursions/export.csv?kind=LOW")

    assert response.status_code == 200 and exports.served[-1].is_streamed
    with response:
        body = b"".join(response.response).decode("utf-8")
    low = exports.json("/api/v1/excursions?kind=low", "qa")
    assert len(low) == 125 and body == to_csv(low, EXCURSION_COLUMNS)


def peak_bytes(client: FlaskClient, path: str, headers: dict[str, str]) -> tuple[int, int]:
    """Export under tracemalloc: the peak of memory allocated, and the size of the CSV."""
    tracemalloc.start()
    try:
        response = client.get(path, headers=headers)
        size = 0
        with response:
            for chunk in response.response:
                size += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, size


def test_memory_stays_flat_whatever_the_size_of_the_export(
    client: FlaskClient, world: World, sessions: sessionmaker[Session]
) -> None:
    n = 1500
    shipment = create(client, world, monitoring_from=rfc3339(T0_US))
    add_readings(sessions, "L-1", 4 * n)
    path = f"/api/v1/shipments/{shipment['id']}/readings?format=csv"
    small = f"{path}&until={rfc3339(T0_US + (n - 1) * MINUTE_US)}"
    coord = world.auth("coord")
    peak_bytes(client, small, coord)  # warm caches: compiled statements, imports

    peak_n, size_n = peak_bytes(client, small, coord)
    peak_4n, size_4n = peak_bytes(client, path, coord)

    assert size_4n > 3.9 * size_n
    # Held whole, the CSV text alone would grow the peak by the extra bytes; streamed, the
    # peak is that of one batch and one chunk, whatever the number of rows.
    assert peak_4n - peak_n < (size_4n - size_n) / 5, (peak_n, peak_4n, size_4n)


def test_rows_close_their_generator_when_the_csv_stops_early() -> None:
    closed = []

    def rows() -> Iterator[dict[str, Any]]:
        try:
            for n in range(10_000):
                yield {"n": n, "tags": ["a", "b"], "none": None}
        finally:
            closed.append(True)

    chunks = csvstream.csv_chunks(rows(), ["n", "tags", "none"], chunk_chars=100)
    assert next(chunks).startswith("n,tags,none\n0,a;b,\n1,a;b,\n")
    chunks.close()
    assert closed == [True]
