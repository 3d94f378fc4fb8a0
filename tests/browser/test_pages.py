"""What coordinators, clinics and auditors do in the browser, on the real running system."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pandas as pd
import pytest
import requests
from playwright.sync_api import Page, expect
from pypdf import PdfReader

from tests.browser.conftest import Site, sign_in
from tests.conftest import PASSWORD, World, make_coi
from tests.e2e.test_pipeline import iso, warmup_records
from tests.support.mqtt import publish_paho, readings_topic
from tests.support.processes import ColdchainProcess, Mosquitto

pytestmark = pytest.mark.e2e

PATIENT = {"mrn": "MRN-5", "name": "Ada Lovelace", "dob": "1815-12-10"}


def api(site: Site, world: World, user: str, method: str, path: str, body: object = None) -> dict:
    response = requests.request(
        method, f"{site.url}/api/v1{path}", json=body, headers=world.auth(user), timeout=15
    )
    assert response.status_code in (200, 201), response.text
    return response.json()  # type: ignore[no-any-return]


def test_no_page_opens_without_signing_in(site: Site) -> None:
    for path in ("/", "/board", "/shipments/new", "/shipments/1", "/incoming", "/qa",
                 "/excursions", "/audit", "/excursions/export.csv", "/board.json"):  # fmt: skip
        response = requests.get(site.url + path, allow_redirects=False, timeout=15)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/login"), path


def test_a_coordinator_creates_a_shipment_and_sees_live_readings_arrive(
    page: Page, site: Site, broker: Mosquitto, worker_env: dict[str, str], tmp_path: Path
) -> None:
    sign_in(page, site, "coord")
    page.get_by_role("link", name="New shipment").click()
    coi = make_coi(501)
    field = page.get_by_label("COI (ISBT 128 DIN and check character, 14 characters)")
    field.fill(coi[:-1] + ("0" if coi[-1] != "0" else "1"))
    expect(page.locator("#coi-check")).to_contain_text("wrong check character")
    field.fill(coi[:7] + " " + coi[7:])  # as a person types it, with a space
    expect(page.locator("#coi-check")).to_contain_text("check character correct")
    page.get_by_label("From (origin site)").select_option("MFG-1")
    page.get_by_label("To (destination site)").select_option("TC-1")
    page.get_by_label("Loggers (ids, comma-separated)").fill("L-1")
    page.get_by_label("Seal number").fill("SEAL-501")
    page.get_by_label("Medical record number").fill(PATIENT["mrn"])
    page.get_by_role("button", name="Create shipment").click()
    # The first notice says what was created; warnings (e.g. a logger without a calibration
    # date) follow it.
    expect(page.locator(".flash").first).to_contain_text(f"COI {coi}")

    page.get_by_role("link", name="Board").click()
    row = page.locator("#board tr", has_text=coi)
    expect(row.locator('[data-col="temp"]')).to_have_text("—")
    page.evaluate("window.__notReloaded = true")
    devices = ColdchainProcess(
        ["--broker", broker.url, "--loggers", "L-1", "--interval", "1", "--scenario", "nominal"],
        {},
        tmp_path / "devices.log",
        module="devices",
    ).start()
    try:
        expect(row.locator('[data-col="temp"]')).to_contain_text("°C", timeout=30_000)
    finally:
        assert devices.stop() == 0, devices.log()
    assert page.evaluate("window.__notReloaded") is True  # updated live, not reloaded
    expect(row.locator('[data-col="presence"]')).to_contain_text("L-1 online")


def delivered_shipment(site: Site, world: World, serial: int, *, warm: bool = False) -> dict:
    """A shipment MFG-1 -> TC-1 on L-2, handed over twice and delivered, through the API."""
    t0 = round(time.time()) - 1300
    shipment = api(site, world, "coord", "POST", "/shipments", {
        "coi": make_coi(serial), "profile": "LN2_VAPOR", "origin_site": "MFG-1",
        "destination_site": "TC-1", "loggers": ["L-2"], "patient": PATIENT,
        "seal_id": "SEAL-9", "monitoring_from": iso(t0 - 60)})  # fmt: skip
    for holder, to_party in (("MFG-1", "courier"), ("courier", "TC-1")):
        current = api(site, world, "courier", "GET", f"/shipments/{shipment['id']}")
        api(site, world, "courier", "POST", f"/shipments/{shipment['id']}/handoffs", {
            "version": current["version"], "from_party": holder, "to_party": to_party,
            "location": "dock", "seal_id": "SEAL-9", "condition": "intact",
            "signature": {"password": PASSWORD, "meaning": "handover"}})  # fmt: skip
    return shipment


def test_a_clinic_is_refused_the_wrong_coi_then_receives_with_the_right_one(
    page: Page, site: Site, world: World
) -> None:
    shipment = delivered_shipment(site, world, 601)
    sign_in(page, site, "clinic1")
    expect(page).to_have_url(f"{site.url}/incoming")
    page.get_by_label("Scan or type a COI to find its shipment").fill(shipment["coi"])
    page.get_by_role("button", name="Find").click()
    page.get_by_role("link", name="Receive this shipment").click()

    def fill(coi: str) -> None:
        page.get_by_label("COI on the label (scan it: the scanner types it)").fill(coi)
        page.get_by_label("Medical record number").fill(PATIENT["mrn"])
        page.get_by_label("Full name").fill(PATIENT["name"])
        page.get_by_label("Date of birth").fill(PATIENT["dob"])
        page.get_by_label("Seal number on the shipper").fill("SEAL-9")
        page.get_by_label("Accept").check()
        page.get_by_label("Your password").fill(PASSWORD)
        page.get_by_role("button", name="Sign receipt").click()

    fill(make_coi(602))  # another patient's label
    expect(page.get_by_role("alert")).to_contain_text("is not this shipment's COI")
    expect(page.get_by_role("alert")).to_contain_text("do not use this product")
    fill(shipment["coi"])
    expect(page.locator(".flash").first).to_contain_text("Receipt recorded: accept")
    expect(page.locator(".timeline")).to_contain_text("receipt: accept")
    expect(page.locator(".timeline")).to_contain_text("signed by clinic1")
    refusals = api(site, world, "auditor", "GET", "/audit?action=receipt.refused")
    assert len(refusals) == 1  # type: ignore[arg-type]


def test_a_clinic_cannot_open_another_sites_shipment(page: Page, site: Site, world: World) -> None:
    shipment = delivered_shipment(site, world, 651)
    sign_in(page, site, "clinic2")
    response = page.goto(f"{site.url}/shipments/{shipment['id']}")
    assert response is not None and response.status == 404
    response = page.goto(f"{site.url}/shipments/{shipment['id']}/receive")
    assert response is not None and response.status == 404


def test_an_auditor_filters_the_excursion_log_and_downloads_csv_xlsx_and_pdf(
    page: Page, site: Site, world: World, broker: Mosquitto, tmp_path: Path
) -> None:
    shipment = delivered_shipment(site, world, 701)
    t0 = round(time.time()) - 1300
    publish_paho(broker, readings_topic("L-2"), json.dumps(warmup_records("L-2", t0)))
    for _ in range(100):
        if api(site, world, "auditor", "GET", f"/shipments/{shipment['id']}/excursions"):
            break
        time.sleep(0.2)
    sign_in(page, site, "auditor")
    expect(page).to_have_url(f"{site.url}/excursions")
    page.get_by_label("Kind").select_option("HIGH")
    page.get_by_label("Disposition").select_option("undecided")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"kind=HIGH"))
    expect(page.locator("#log tbody tr")).to_have_count(1)
    files = {}
    for name in ("CSV", "XLSX", "PDF"):
        with page.expect_download() as download:
            page.locator(".downloads").get_by_role("link", name=name, exact=True).click()
        path = tmp_path / download.value.suggested_filename
        download.value.save_as(path)
        files[name] = path
    table = pd.read_csv(files["CSV"])
    assert list(table["kind"]) == ["HIGH"] and list(table["shipment_id"]) == [shipment["id"]]
    sheet = pd.read_excel(files["XLSX"])
    assert list(sheet["kind"]) == ["HIGH"]
    log_text = "".join(p.extract_text() for p in PdfReader(files["PDF"]).pages)
    assert "HIGH" in log_text
    with page.expect_download() as download:
        page.locator("#log tbody tr").get_by_role("link", name="PDF").click()
    report = tmp_path / "report.pdf"
    download.value.save_as(report)
    text = "".join(p.extract_text() for p in PdfReader(report).pages)
    assert shipment["coi"] in text
    assert "MKT" in text
    assert report.read_bytes()[:4] == b"%PDF"
