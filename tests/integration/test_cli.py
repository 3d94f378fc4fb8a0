"""The command line as CONTRACT section 5 fixes it, run as real processes on a SQLite file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from coldchain.app import create_app
from coldchain.config import load_settings
from tests.conftest import PASSWORD, World

ROOT = Path(__file__).resolve().parents[2]


def coldchain(db: Path | str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the command on a SQLite file (a path) or any database (a URL)."""
    url = db if isinstance(db, str) else f"sqlite:///{db}"
    env = {**os.environ, "COLDCHAIN_DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "coldchain", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def client_for(db: Path) -> FlaskClient:
    settings = load_settings(env={}, overrides={"database_url": f"sqlite:///{db}"})
    return create_app(settings=settings).test_client()


def test_sites_users_and_loggers_are_added_and_the_token_is_the_last_line(
    tmp_path: Path,
) -> None:
    db = tmp_path / "cli.db"
    assert coldchain(db, "db", "upgrade").returncode == 0
    for site, kind in (("MFG-9", "manufacturing"), ("TC-9", "treatment")):
        done = coldchain(db, "sites", "add", site, "--name", f"Site {site}", "--kind", kind)
        assert done.returncode == 0, done.stderr
    added = coldchain(db, "users", "add", "nurse", "--role", "clinic", "--site", "TC-9",
                      "--password", PASSWORD)  # fmt: skip
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip().splitlines()[-1]
    assert coldchain(db, "loggers", "add", "LOG-0001").returncode == 0
    client = client_for(db)
    listed = client.get("/api/v1/shipments", headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200 and listed.get_json() == []
    generated = coldchain(db, "users", "add", "cora", "--role", "coordinator")
    assert generated.returncode == 0
    assert "password: " in generated.stdout
    loggers = client.get(
        "/api/v1/loggers",
        headers={"Authorization": f"Bearer {generated.stdout.strip().splitlines()[-1]}"},
    )
    assert [row["id"] for row in loggers.get_json()] == ["LOG-0001"]


def test_bad_input_is_a_clear_error_and_a_nonzero_exit(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    cases = [
        (["users", "add", "x", "--role", "pilot", "--password", PASSWORD], "pilot"),
        (["users", "add", "x", "--role", "clinic", "--password", PASSWORD], "site"),
        (["sites", "add", "S", "--name", "n", "--kind", "warehouse"], "kind"),
        (["loggers", "add", "bad id!"], "logger id"),
    ]
    for args, words in cases:
        done = coldchain(db, *args)
        assert done.returncode != 0, args
        assert words in done.stderr.lower() and "Traceback" not in done.stderr, done.stderr


def test_a_locked_user_is_unlocked_with_a_reason(
    tmp_path: Path, database_url: str, world: World, client: FlaskClient
) -> None:
    db = database_url
    shipment = client.post(
        "/api/v1/shipments",
        headers=world.auth("coord"),
        json={"coi": "G123498654321H", "profile": "LN2_VAPOR", "origin_site": "MFG-1",
              "destination_site": "TC-1", "loggers": ["L-1"], "patient": {"mrn": "1"},
              "seal_id": "S-1"},
    ).get_json()  # fmt: skip
    body = {"version": 1, "from_party": "MFG-1", "to_party": "courier", "location": "dock",
            "seal_id": "S-1", "condition": "intact",
            "signature": {"password": "wrong", "meaning": "handover"}}  # fmt: skip
    url = f"/api/v1/shipments/{shipment['id']}/handoffs"
    for _ in range(5):
        assert client.post(url, json=body, headers=world.auth("courier")).status_code == 401
    assert client.get(url.rsplit("/", 1)[0], headers=world.auth("courier")).status_code == 401
    refused = coldchain(db, "users", "unlock", "courier")
    assert refused.returncode != 0 and "--reason" in refused.stderr
    done = coldchain(db, "users", "unlock", "courier", "--reason", "identity confirmed by phone")
    assert done.returncode == 0, done.stderr
    body["signature"]["password"] = PASSWORD  # type: ignore[index]
    assert client.post(url, json=body, headers=world.auth("courier")).status_code == 201


def test_report_excursions_writes_csv_xlsx_and_pdf(
    tmp_path: Path,
    database_url: str,
    world: World,
    client: FlaskClient,
    sessions: Any,
    settings: Any,
) -> None:
    import io

    import pandas as pd
    from pypdf import PdfReader

    from tests.api.test_custody_api import create, store

    shipment = create(client, world, monitoring_from="2020-01-01T00:00:00Z")
    store(sessions, settings, "L-1", [-190, -140, -140, -190])
    db = database_url
    printed = coldchain(db, "report", "excursions", "--format", "csv", "--out", "-")
    assert printed.returncode == 0, printed.stderr
    table = pd.read_csv(io.StringIO(printed.stdout))
    assert list(table["kind"]) == ["HIGH"] and list(table["shipment_id"]) == [shipment["id"]]
    xlsx = tmp_path / "log.xlsx"
    done = coldchain(db, "report", "excursions", "--format", "xlsx", "--out", str(xlsx),
                     "--kind", "HIGH")  # fmt: skip
    assert done.returncode == 0 and "1 excursions" in done.stderr
    assert list(pd.read_excel(xlsx)["kind"]) == ["HIGH"]
    pdf = tmp_path / "log.pdf"
    assert (
        coldchain(db, "report", "excursions", "--format", "pdf", "--out", str(pdf)).returncode == 0
    )
    assert "HIGH" in "".join(page.extract_text() for page in PdfReader(pdf).pages)
    none = coldchain(db, "report", "excursions", "--kind", "LOW", "--out", str(tmp_path / "x.csv"))
    assert none.returncode == 0 and "0 excursions" in none.stderr
    bad = coldchain(db, "report", "excursions", "--since", "yesterday")
    assert bad.returncode == 2 and "RFC 3339" in bad.stderr
