"""Excursion log exports and the shipment PDF report, from a real shipment on a SQLite file."""

from __future__ import annotations

import io
from typing import Any

import pandas as pd
import pytest
from flask import Flask
from flask.testing import FlaskClient
from pypdf import PdfReader
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from coldchain.config import Settings
from coldchain.domain.mkt import mean_kinetic_temperature
from coldchain.reports import excursions as report
from coldchain.reports import pdf
from coldchain.reports.tables import to_csv
from coldchain.services import accounts
from coldchain.services.accounts import Principal
from coldchain.services.shipments import ExcursionFilter
from coldchain.store.models import AuditHead
from tests.api.test_custody_api import create, deliver, get, receive, sig, store
from tests.conftest import World
from tests.web.test_web_roles import sign_in

TEMPS = [-190.0, -140.0, -140.0, -190.0]


def principal(sessions: sessionmaker[Session], world: World, user: str) -> Principal:
    found = accounts.principal_for_token(sessions=sessions, token=world.tokens[user])
    assert found is not None
    return found


def pdf_text(body: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(body)).pages)


def audit_head(sessions: sessionmaker[Session]) -> tuple[int, str]:
    with sessions() as session:
        seq, digest = session.execute(select(AuditHead.seq, AuditHead.hash)).one()
        return int(seq), str(digest)


@pytest.fixture
def received(
    client: FlaskClient, world: World, sessions: sessionmaker[Session], settings: Settings
) -> dict[str, Any]:
    """A delivered shipment with a warm excursion that QA found acceptable, then accepted."""
    shipment = create(client, world, monitoring_from="2020-01-01T00:00:00Z")
    deliver(client, world, shipment)
    store(sessions, settings, "L-1", TEMPS)
    [excursion] = get(client, world, shipment["id"])["excursions"]
    decided = client.post(
        f"/api/v1/excursions/{excursion['id']}/disposition",
        json={
            "version": excursion["version"],
            "decision": "product_acceptable",
            "reason": "2 minutes at -140 C: within the stability data",
            "signature": sig(meaning="QA disposition"),
        },
        headers=world.auth("qa"),
    )
    assert decided.status_code == 201, decided.get_json()
    accepted = receive(client, world, get(client, world, shipment["id"], "clinic1"))
    assert accepted.status_code == 201, accepted.get_json()
    return accepted.get_json()  # type: ignore[no-any-return]


def test_the_excursion_log_reads_back_from_xlsx_with_every_column(
    received: dict[str, Any], world: World, sessions: sessionmaker[Session]
) -> None:
    rows = report.excursion_rows(
        sessions=sessions, principal=principal(sessions, world, "qa"), filters=ExcursionFilter()
    )
    [row] = rows
    frame = pd.read_excel(io.BytesIO(report.excursions_xlsx(rows)), sheet_name=report.SHEET)
    assert list(frame.columns) == list(report.COLUMNS)
    assert len(frame) == 1
    back = frame.iloc[0]
    assert int(back["id"]) == row["id"] and int(back["shipment_id"]) == received["id"]
    assert (back["logger_id"], back["kind"], back["status"]) == ("L-1", "HIGH", row["status"])
    assert back["disposition"] == "product_acceptable" and bool(back["disposition_current"])
    assert float(back["peak_c"]) == -140.0
    # Times are the API's RFC 3339 text, not spreadsheet dates.
    assert back["started_at"] == row["started_at"] and back["ended_at"] == row["ended_at"]
    assert isinstance(back["detected_at"], str) and back["detected_at"].endswith("Z")


def test_an_empty_excursion_log_is_still_a_workbook_with_a_header(
    world: World, sessions: sessionmaker[Session]
) -> None:
    rows = report.excursion_rows(
        sessions=sessions, principal=principal(sessions, world, "qa"), filters=ExcursionFilter()
    )
    assert rows == []
    frame = pd.read_excel(io.BytesIO(report.excursions_xlsx(rows)), sheet_name="Excursions")
    assert list(frame.columns) == list(report.COLUMNS) and frame.empty
    assert report.excursions_pdf(rows, title="coldchain excursion log").startswith(b"%PDF")


def test_the_excursion_log_reads_back_from_csv(
    received: dict[str, Any], world: World, sessions: sessionmaker[Session]
) -> None:
    rows = report.excursion_rows(
        sessions=sessions,
        principal=principal(sessions, world, "auditor"),
        filters=ExcursionFilter(shipment_id=received["id"]),
    )
    body = report.excursions_csv(rows)
    assert body.decode("utf-8") == to_csv(rows, report.COLUMNS)
    frame = pd.read_csv(io.BytesIO(body))
    assert list(frame.columns) == list(report.COLUMNS)
    assert list(frame["id"]) == [r["id"] for r in rows]
    assert list(frame["started_at"]) == [r["started_at"] for r in rows]
    assert list(frame["disposition"]) == ["product_acceptable"]


def test_the_excursion_log_pdf_lists_each_excursion(
    received: dict[str, Any], world: World, sessions: sessionmaker[Session]
) -> None:
    rows = report.excursion_rows(
        sessions=sessions, principal=principal(sessions, world, "qa"), filters=ExcursionFilter()
    )
    body = report.excursions_pdf(rows, title="coldchain excursion log")
    assert body.startswith(b"%PDF")
    extracted = pdf_text(body)
    assert "coldchain excursion log" in extracted
    assert "HIGH" in extracted and "product_acceptable" in extracted and "L-1" in extracted


def test_the_shipment_report_shows_the_coi_mkt_custody_and_the_audit_head(
    received: dict[str, Any], world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    built = pdf.build_shipment_report(
        sessions=sessions,
        shipment_id=received["id"],
        principal=principal(sessions, world, "qa"),
        profiles=settings.profiles,
    )
    assert [r["temp_c"] for r in built.readings] == TEMPS
    assert (built.min_c, built.max_c) == (None, -150.0)
    assert (built.audit_seq, built.audit_hash) == audit_head(sessions)
    body = pdf.shipment_report_pdf(built)
    assert body.startswith(b"%PDF")
    extracted = pdf_text(body)
    assert received["coi"] in extracted
    assert "MKT" in extracted
    mkt_c = mean_kinetic_temperature(TEMPS)
    assert mkt_c is not None and f"{mkt_c:.1f}" in extracted
    assert f"Audit head: seq {built.audit_seq}, hash {built.audit_hash}" in extracted
    for printed_name in ("courier", "courier2", "clinic1"):
        assert printed_name in extracted
    assert "Handed over intact" in extracted and "Received and verified for patient" in extracted
    assert "product_acceptable" in extracted and "accept" in extracted
    assert len(PdfReader(io.BytesIO(body)).pages[0].images) == 1  # the temperature chart


def test_a_shipment_with_no_readings_still_gets_a_report(
    client: FlaskClient, world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    shipment = create(client, world)
    built = pdf.build_shipment_report(
        sessions=sessions,
        shipment_id=shipment["id"],
        principal=principal(sessions, world, "coord"),
        profiles=settings.profiles,
    )
    extracted = pdf_text(pdf.shipment_report_pdf(built))
    assert shipment["coi"] in extracted and "No temperature readings" in extracted
    assert "MKT not computed" in extracted and built.audit_hash in extracted


def test_one_reading_and_an_open_excursion_still_draw_a_chart(
    client: FlaskClient, world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    shipment = create(client, world, monitoring_from="2020-01-01T00:00:00Z")
    store(sessions, settings, "L-1", [-120.0])
    built = pdf.build_shipment_report(
        sessions=sessions,
        shipment_id=shipment["id"],
        principal=principal(sessions, world, "coord"),
        profiles=settings.profiles,
    )
    [excursion] = built.shipment["excursions"]
    assert excursion["status"] == "OPEN" and excursion["ended_at"] is None
    extracted = pdf_text(pdf.shipment_report_pdf(built))
    assert "open" in extracted and "-120.0" in extracted


def test_the_report_of_a_shipment_another_site_cannot_see_is_not_found(
    client: FlaskClient, world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    from coldchain.domain.errors import NotFoundError

    shipment = create(client, world)
    with pytest.raises(NotFoundError):
        pdf.build_shipment_report(
            sessions=sessions,
            shipment_id=shipment["id"],
            principal=principal(sessions, world, "clinic2"),
            profiles=settings.profiles,
        )


def test_the_web_pages_serve_the_report_and_the_exports(
    app: Flask, received: dict[str, Any]
) -> None:
    reviewer = app.test_client()
    sign_in(reviewer, "qa")
    pdf_response = reviewer.get(f"/shipments/{received['id']}/report.pdf")
    assert pdf_response.status_code == 200 and pdf_response.mimetype == "application/pdf"
    assert received["coi"] in pdf_text(pdf_response.get_data())
    xlsx = reviewer.get("/excursions/export.xlsx")
    assert xlsx.status_code == 200
    assert len(pd.read_excel(io.BytesIO(xlsx.get_data()), sheet_name="Excursions")) == 1


def test_a_profile_missing_from_the_configuration_is_reported_as_unknown_limits(
    client: FlaskClient, world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    shipment = create(client, world)
    profiles = {k: v for k, v in settings.profiles.items() if k != "LN2_VAPOR"}
    built = pdf.build_shipment_report(
        sessions=sessions,
        shipment_id=shipment["id"],
        principal=principal(sessions, world, "coord"),
        profiles=profiles,
    )
    assert not built.profile_configured and (built.min_c, built.max_c) == (None, None)
    assert "limits unknown" in pdf_text(pdf.shipment_report_pdf(built))


@pytest.mark.parametrize(
    ("span_s", "fmt"), [(0.0, "%H:%M"), (3 * 3600.0, "%H:%M"), (5 * 86400.0, "%m-%d\n%H:%M")]
)
def test_chart_ticks_fall_on_round_utc_times(span_s: float, fmt: str) -> None:
    first = 1_760_000_000.0  # 2025-10-09 08:53:20 UTC
    ticks, got = pdf.time_ticks(first, first + span_s)
    assert got == fmt and len(ticks) <= pdf.MOST_TICKS
    assert all(first <= t <= first + span_s for t in ticks)
    assert all(t % 60 == 0 for t in ticks)
