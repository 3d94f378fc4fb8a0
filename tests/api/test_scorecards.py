"""Scorecards of sites and couriers on a seeded history, against figures counted by hand."""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner, Result
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from coldchain.cli import main
from coldchain.config import Settings
from coldchain.domain.roles import Role
from coldchain.domain.senml import PackLimits
from coldchain.reports.scorecards import COLUMNS, build_scorecards
from coldchain.services import ingest
from coldchain.services.accounts import Principal
from coldchain.services.timefmt import now_us, parse_rfc3339, rfc3339, to_us
from tests.api.test_custody_api import PATIENT, create, get, handoff, sig
from tests.conftest import World

AUDITOR = Principal(0, "test", "test", Role.AUDITOR, None)


def store_at(
    sessions: sessionmaker[Session],
    settings: Settings,
    logger_id: str,
    points: list[tuple[float, float]],
) -> None:
    """Store temperature readings at absolute Unix times through the ingest service."""
    pack: list[dict[str, Any]] = [{"bn": f"urn:dev:logger:{logger_id}:", "bu": "Cel"}]
    pack += [{"n": "temp", "t": t, "v": v} for t, v in points]
    ingest.store_batch(
        sessions=sessions,
        messages=[
            ingest.Incoming(
                f"coldchain/v1/loggers/{logger_id}/readings", json.dumps(pack).encode(), now_us()
            )
        ],
        profiles=settings.profiles,
        limits=PackLimits(),
        known=ingest.KnownLoggers(),
        now_us=now_us(),
    )


def step(client: FlaskClient, world: World, shipment: dict[str, Any], *args: Any, **kw: Any) -> Any:
    """A handoff that must succeed; returns the shipment after it."""
    done = handoff(client, world, shipment, *args, **kw)
    assert done.status_code == 201, done.get_json()
    return done.get_json()


def decide(
    client: FlaskClient, world: World, shipment: dict[str, Any], user: str, decision: str, **kw: Any
) -> Any:
    body = {
        "version": shipment["version"],
        "coi_scan": shipment["coi"],
        "patient": PATIENT,
        "seal_id": shipment["seal_id"],
        "decision": decision,
        "signature": sig(meaning="Received"),
        **kw,
    }
    done = client.post(
        f"/api/v1/shipments/{shipment['id']}/receipt", json=body, headers=world.auth(user)
    )
    assert done.status_code == 201, done.get_json()
    return done.get_json()


def us(text: str) -> int:
    return to_us(parse_rfc3339(text))


def door_to_door_us(shipment: dict[str, Any]) -> int:
    """First handoff to first receipt decision, from the times the API recorded."""
    return us(shipment["receipts"][0]["at"]) - us(shipment["custody"][0]["at"])


@pytest.fixture
def history(
    client: FlaskClient, world: World, sessions: sessionmaker[Session], settings: Settings
) -> dict[str, Any]:
    """Four shipments, four sites and two couriers, each with a different record.

    S1 MFG-1 -> courier -> courier2 -> TC-1 (LN2, L-1): before pickup, a 1200 s signal loss
       and a 120 s HIGH at MFG-1; courier2 hands it over with a new seal; TC-1 rejects it.
    S2 MFG-1 -> courier2 -> TC-2 (LN2, L-2): no excursion; TC-2 quarantines it, then accepts.
    S3 MFG-1 -> courier (LN2, L-3), still in transit: a 120 s HIGH while courier holds it.
    S4 COLL-1 -> courier2 -> MFG-1 (REFRIGERATED, L-4), delivered, not received: a 1200 s
       LOW at COLL-1 before pickup.
    """
    t0 = int(time.time())
    s1 = create(
        client, world, 1, loggers=["L-1"], monitoring_from=rfc3339(t0 * 10**6 - 3600 * 10**6)
    )
    points = [(t0 - 3000, -190.0), (t0 - 1800, -190.0), (t0 - 1740, -140.0), (t0 - 1680, -140.0)]
    points += [(t, -190.0) for t in range(t0 - 1620, t0, 60)]
    store_at(sessions, settings, "L-1", points)
    s1 = get(client, world, s1["id"])
    assert sorted((e["kind"], e["duration_s"]) for e in s1["excursions"]) == [
        ("HIGH", 120.0),
        ("SIGNAL_LOSS", 1200.0),
    ]
    s1 = step(client, world, s1, "MFG-1", "courier")
    s1 = step(client, world, s1, "courier", "courier2")
    s1 = step(client, world, s1, "courier2", "TC-1", user="courier2", seal_id="SEAL-2",
              seal_change_reason="resealed after customs inspection")  # fmt: skip
    s1 = decide(client, world, s1, "clinic1", "reject", reason="excursions before pickup")

    s2 = create(client, world, 2, loggers=["L-2"], destination_site="TC-2")
    s2 = step(client, world, s2, "MFG-1", "courier2", user="courier2")
    s2 = step(client, world, s2, "courier2", "TC-2", user="courier2")
    s2 = decide(client, world, s2, "clinic2", "quarantine", reason="paperwork missing")
    s2 = decide(client, world, s2, "clinic2", "accept")

    s3 = create(client, world, 3, loggers=["L-3"])
    s3 = step(client, world, s3, "MFG-1", "courier")
    tp = time.time() + 5  # after the pickup: in the courier's custody (up to 300 s ahead is fine)
    store_at(sessions, settings, "L-3",
             [(tp, -190.0), (tp + 60, -140.0), (tp + 120, -140.0), (tp + 180, -190.0)])  # fmt: skip
    mid = datetime.now(UTC)

    s4 = create(client, world, 4, loggers=["L-4"], profile="REFRIGERATED", origin_site="COLL-1",
                destination_site="MFG-1", monitoring_from=rfc3339((t0 - 7200) * 10**6))  # fmt: skip
    cold = range(t0 - 4800, t0 - 3600)
    store_at(
        sessions,
        settings,
        "L-4",
        [(t, 1.0 if t in cold else 5.0) for t in range(t0 - 6000, t0, 60)],
    )
    s4 = get(client, world, s4["id"])
    assert [(e["kind"], e["duration_s"]) for e in s4["excursions"]] == [("LOW", 1200.0)]
    s4 = step(client, world, s4, "COLL-1", "courier2", user="courier2")
    s4 = step(client, world, s4, "courier2", "MFG-1", user="courier2")
    s3 = get(client, world, s3["id"])
    assert [(e["kind"], e["duration_s"]) for e in s3["excursions"]] == [("HIGH", 120.0)]
    return {"S1": s1, "S2": s2, "S3": s3, "S4": s4, "mid": mid, "t0": t0}


def by_party(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["party"]: row for row in rows}


COUNTED = ("shipments", "high_excursions", "low_excursions", "signal_loss_excursions",
           "high_per_100", "low_per_100", "signal_loss_per_100", "minutes_out_of_range",
           "seal_changes", "custody_gaps", "rejections_received", "quarantines_received",
           "rejections_shipped", "quarantines_shipped")  # fmt: skip


def test_scorecards_of_a_seeded_history_match_the_figures_counted_by_hand_in_any_span(
    history: dict[str, Any], sessions: sessionmaker[Session]
) -> None:
    now = now_us()
    rows = build_scorecards(
        sessions=sessions, principal=AUDITOR, since=None, until=None, now_us=now
    )
    assert [r["party"] for r in rows] == ["COLL-1", "MFG-1", "TC-1", "TC-2", "courier", "courier2"]
    got = {p: tuple(r[c] for c in COUNTED) for p, r in by_party(rows).items()}
    assert got == {
        # shipments, HIGH, LOW, SIGNAL_LOSS, the three per 100, minutes out of range, seal
        # changes, gaps, rejections and quarantines received, rejections and quarantines shipped
        # COLL-1: origin of S4 (1); its 1200 s LOW: 1/1 = 100 per 100, 20 min.
        "COLL-1": (1, 0, 1, 0, 0.0, 100.0, 0.0, 20.0, 0, 0, 0, 0, 0, 0),
        # MFG-1: origin of S1, S2, S3 and destination of S4 (4); S1's HIGH (120 s = 2 min)
        # and signal loss, 1/4 = 25 per 100 each; it shipped S1 (rejected), S2 (quarantined).
        "MFG-1": (4, 1, 0, 1, 25.0, 0.0, 25.0, 2.0, 0, 0, 0, 0, 1, 1),
        # TC-1: received S1 (S3 not delivered yet) and rejected it.
        "TC-1": (1, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, 0, 0, 1, 0, 0, 0),
        # TC-2: received S2 and quarantined it (then accepted: no rejection).
        "TC-2": (1, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, 0, 0, 0, 1, 0, 0),
        # courier: S1 and S3 (2); S3's HIGH, 1/2 = 50 per 100, 2 min; shipped S1 (rejected).
        "courier": (2, 1, 0, 0, 50.0, 0.0, 0.0, 2.0, 0, 0, 0, 0, 1, 0),
        # courier2: S1, S2, S4 (3); S1's new seal at its handoff to TC-1; shipped S1, S2.
        "courier2": (3, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, 1, 0, 0, 0, 1, 1),
    }
    s1, s2 = history["S1"], history["S2"]
    d1, d2 = door_to_door_us(s1), door_to_door_us(s2)
    hours = 3600 * 10**6
    medians = {p: r["median_door_to_door_h"] for p, r in by_party(rows).items()}
    assert medians == {
        "COLL-1": None,  # S4 has no receipt yet
        "MFG-1": pytest.approx((d1 + d2) / 2 / hours),  # S1 and S2: the median of two
        "TC-1": pytest.approx(d1 / hours),
        "TC-2": pytest.approx(d2 / hours),
        "courier": pytest.approx(d1 / hours),
        "courier2": pytest.approx((d1 + d2) / 2 / hours),
    }
    # MFG-1's monitored time: S1 from monitoring_from (t0 - 3600 s) to pickup, S2 and S3
    # from creation to pickup, S4 from its delivery until now (one logger each); its
    # signal loss lasted 1200 s.
    s3, s4 = history["S3"], history["S4"]
    held = (
        us(s1["custody"][0]["at"]) - us(s1["monitoring_from"])
        + us(s2["custody"][0]["at"]) - us(s2["monitoring_from"])
        + us(s3["custody"][0]["at"]) - us(s3["monitoring_from"])
        + now - us(s4["custody"][-1]["at"])
    )  # fmt: skip
    mfg = by_party(rows)["MFG-1"]
    assert mfg["custody_hours"] == pytest.approx(held / hours)
    assert mfg["signal_lost_fraction"] == pytest.approx(1200 * 10**6 / held)
    assert by_party(rows)["courier"]["signal_lost_fraction"] == 0.0

    # The span counts shipments by creation time; kind picks sites or couriers.
    later = build_scorecards(sessions=sessions, principal=AUDITOR, since=history["mid"], until=None)
    # Only S4 was created after `mid`: COLL-1 -> courier2 -> MFG-1; courier is not in it.
    assert {r["party"]: r["shipments"] for r in later} == {
        "COLL-1": 1, "MFG-1": 1, "TC-1": 0, "TC-2": 0, "courier2": 1
    }  # fmt: skip
    earlier = build_scorecards(
        sessions=sessions, principal=AUDITOR, since=None, until=history["mid"], party_type="courier"
    )
    assert {r["party"]: r["shipments"] for r in earlier} == {"courier": 2, "courier2": 2}
    nothing = build_scorecards(
        sessions=sessions, principal=AUDITOR, since=datetime(2000, 1, 1, tzinfo=UTC),
        until=datetime(2000, 1, 2, tzinfo=UTC),
    )  # fmt: skip
    assert [r["party"] for r in nothing] == ["COLL-1", "MFG-1", "TC-1", "TC-2"]
    assert all(r["shipments"] == 0 and r["high_per_100"] is None for r in nothing)


def test_the_api_answers_json_and_the_same_rows_as_csv_to_the_central_roles_only(
    history: dict[str, Any], client: FlaskClient, world: World
) -> None:
    for user in ("admin", "coord", "qa", "auditor"):
        answer = client.get("/api/v1/scorecards?kind=courier", headers=world.auth(user))
        assert answer.status_code == 200, answer.get_json()
    rows = by_party(answer.get_json())
    assert set(rows) == {"courier", "courier2"}
    assert rows["courier"]["high_per_100"] == 50.0 and rows["courier2"]["seal_changes"] == 1
    for user in ("courier", "clinic1"):
        refused = client.get("/api/v1/scorecards", headers=world.auth(user))
        assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "forbidden"

    exported = client.get("/api/v1/scorecards?format=csv", headers=world.auth("auditor"))
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    assert 'filename="scorecards.csv"' in exported.headers["Content-Disposition"]
    table = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
    assert list(table[0]) == list(COLUMNS)
    mfg = by_party(table)["MFG-1"]  # type: ignore[arg-type]
    assert (mfg["shipments"], mfg["high_per_100"], mfg["minutes_out_of_range"]) == (
        "4", "25.0", "2.0"
    )  # fmt: skip
    assert by_party(table)["COLL-1"]["median_door_to_door_h"] == ""  # type: ignore[arg-type]

    until = rfc3339(history["mid"])
    span = client.get(f"/api/v1/scorecards?until={until}", headers=world.auth("qa"))
    assert by_party(span.get_json())["MFG-1"]["shipments"] == 3
    bad = client.get("/api/v1/scorecards?since=yesterday", headers=world.auth("qa"))
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "since"
    assert client.get("/api/v1/scorecards?kind=clinic", headers=world.auth("qa")).status_code == 400


def coldchain(url: str, *args: str) -> Result:
    """Run the command in this process (the contract's subprocess runs are in test_cli.py)."""
    return CliRunner().invoke(main, list(args), env={"COLDCHAIN_DATABASE_URL": url})


def test_the_command_writes_the_scorecards_as_csv_xlsx_and_json(
    history: dict[str, Any], database_url: str, tmp_path: Path
) -> None:
    printed = coldchain(database_url, "report", "scorecards", "--format", "csv", "--out", "-")
    assert printed.exit_code == 0, printed.output
    table = by_party(list(csv.DictReader(io.StringIO(printed.stdout))))  # type: ignore[arg-type]
    assert (table["courier2"]["shipments"], table["courier2"]["seal_changes"]) == ("3", "1")
    assert table["COLL-1"]["low_per_100"] == "100.0"

    xlsx = tmp_path / "cards.xlsx"
    done = coldchain(database_url, "report", "scorecards", "--format", "xlsx", "--out", str(xlsx),
                     "--kind", "site")  # fmt: skip
    assert done.exit_code == 0 and "4 scorecards written" in done.stderr
    frame = pd.read_excel(xlsx, sheet_name="Scorecards")
    assert list(frame.columns) == list(COLUMNS) and list(frame["party"]) == [
        "COLL-1", "MFG-1", "TC-1", "TC-2"
    ]  # fmt: skip
    assert frame.set_index("party").loc["COLL-1", "minutes_out_of_range"] == 20.0
    definitions = pd.read_excel(xlsx, sheet_name="Definitions")
    assert list(definitions["column"]) == list(COLUMNS)

    since = rfc3339(history["mid"])
    out = tmp_path / "cards.json"
    done = coldchain(database_url, "report", "scorecards", "--format", "json", "--since", since,
                     "--out", str(out))  # fmt: skip
    assert done.exit_code == 0, done.output
    rows = by_party(json.loads(out.read_text()))
    assert rows["courier2"]["shipments"] == 1 and "courier" not in rows
    bad = coldchain(database_url, "report", "scorecards", "--since", "yesterday")
    assert bad.exit_code == 2 and "RFC 3339" in bad.output


def test_the_page_shows_the_table_and_charts_to_reviewers_and_is_refused_to_others(
    history: dict[str, Any], client: FlaskClient
) -> None:
    from tests.web.test_web_roles import sign_in

    sign_in(client, "qa")
    page = client.get("/scorecards")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'href="/scorecards"' in html  # in the navigation
    assert '<table class="grid" id="scorecards">' in html and html.count('<svg role="img"') == 2
    # MFG-1's HIGH bar (25 per 100) beside courier's (50 per 100): half its length.
    assert "MFG-1: HIGH 25.00 per 100" in html and "courier: HIGH 50.00 per 100" in html
    couriers = client.get("/scorecards?kind=courier").get_data(as_text=True)
    assert ">courier2</th>" in couriers and ">MFG-1</th>" not in couriers
    assert client.get("/scorecards?since=yesterday").status_code == 400
    exported = client.get("/scorecards/export.csv?kind=site")
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    assert [r["party"] for r in csv.DictReader(io.StringIO(exported.get_data(as_text=True)))] == [
        "COLL-1", "MFG-1", "TC-1", "TC-2"
    ]  # fmt: skip
    workbook = client.get("/scorecards/export.xlsx")
    assert pd.read_excel(io.BytesIO(workbook.data), sheet_name="Scorecards").shape[0] == 6
    for user in ("courier", "clinic1"):
        other = client.application.test_client()
        sign_in(other, user)
        assert other.get("/scorecards").status_code == 403
        assert 'href="/scorecards"' not in other.get("/", follow_redirects=True).get_data(
            as_text=True
        )
