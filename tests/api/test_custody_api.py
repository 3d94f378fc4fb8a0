"""Custody, receipt, signatures and QA disposition through the API, on a real SQLite file."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from coldchain.config import Settings
from coldchain.domain.senml import PackLimits
from coldchain.services import ingest
from coldchain.services.timefmt import now_us
from coldchain.store.models import AuditEvent
from tests.conftest import PASSWORD, World, make_coi

PATIENT = {"mrn": "12345", "dob": "1970-01-01"}


def sig(password: str = PASSWORD, meaning: str = "Handed over intact") -> dict[str, str]:
    return {"password": password, "meaning": meaning}


def create(client: FlaskClient, world: World, serial: int = 1, **changes: object) -> dict[str, Any]:
    body: dict[str, object] = {
        "coi": make_coi(serial),
        "profile": "LN2_VAPOR",
        "origin_site": "MFG-1",
        "destination_site": "TC-1",
        "loggers": ["L-1"],
        "patient": PATIENT,
        "seal_id": "SEAL-1",
    }
    body.update(changes)
    response = client.post("/api/v1/shipments", json=body, headers=world.auth("coord"))
    assert response.status_code == 201, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def get(client: FlaskClient, world: World, shipment_id: int, user: str = "coord") -> Any:
    response = client.get(f"/api/v1/shipments/{shipment_id}", headers=world.auth(user))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def handoff(
    client: FlaskClient,
    world: World,
    shipment: dict[str, Any],
    from_party: str,
    to_party: str,
    *,
    user: str = "courier",
    version: int | None = None,
    **changes: object,
) -> Any:
    body: dict[str, object] = {
        "version": shipment["version"] if version is None else version,
        "from_party": from_party,
        "to_party": to_party,
        "location": "Loading bay 2",
        "seal_id": "SEAL-1",
        "condition": "intact",
        "signature": sig(),
    }
    body.update(changes)
    return client.post(
        f"/api/v1/shipments/{shipment['id']}/handoffs", json=body, headers=world.auth(user)
    )


def deliver(client: FlaskClient, world: World, shipment: dict[str, Any]) -> dict[str, Any]:
    picked = handoff(client, world, shipment, "MFG-1", "courier")
    assert picked.status_code == 201, picked.get_json()
    moved = handoff(client, world, picked.get_json(), "courier", "courier2")
    assert moved.status_code == 201, moved.get_json()
    delivered = handoff(client, world, moved.get_json(), "courier2", "TC-1", user="courier2")
    assert delivered.status_code == 201, delivered.get_json()
    return delivered.get_json()  # type: ignore[no-any-return]


def receive(
    client: FlaskClient,
    world: World,
    shipment: dict[str, Any],
    *,
    user: str = "clinic1",
    **changes: object,
) -> Any:
    body: dict[str, object] = {
        "version": shipment["version"],
        "coi_scan": shipment["coi"],
        "patient": PATIENT,
        "seal_id": "SEAL-1",
        "decision": "accept",
        "signature": sig(meaning="Received and verified for patient"),
    }
    body.update(changes)
    return client.post(
        f"/api/v1/shipments/{shipment['id']}/receipt", json=body, headers=world.auth(user)
    )


def error(response: Any) -> tuple[int, str, str | None]:
    body = response.get_json()["error"]
    return response.status_code, body["code"], body.get("field")


def audit_actions(sessions: sessionmaker[Session]) -> list[tuple[str, str]]:
    with sessions() as session:
        return [
            (e.actor, e.action)
            for e in session.scalars(select(AuditEvent).order_by(AuditEvent.seq))
        ]


def test_a_shipment_goes_through_pickup_transfer_delivery_and_an_accepted_receipt(
    client: FlaskClient, world: World, sessions: sessionmaker[Session]
) -> None:
    shipment = create(client, world)
    assert (shipment["status"], shipment["holder"], shipment["leg"]) == (
        "created",
        "MFG-1",
        "final_product",
    )
    picked = handoff(client, world, shipment, "MFG-1", "courier").get_json()
    assert (picked["status"], picked["holder"], picked["version"]) == ("picked_up", "courier", 2)
    delivered = deliver(client, world, create(client, world, serial=2, loggers=["L-2"]))
    assert delivered["status"] == "delivered" and delivered["holder"] == "TC-1"
    chain = delivered["custody"]
    assert [(h["from_party"], h["to_party"], h["transition"]) for h in chain] == [
        ("MFG-1", "courier", "pick_up"),
        ("courier", "courier2", "transfer"),
        ("courier2", "TC-1", "deliver"),
    ]
    signature = chain[0]["signature"]
    assert signature["printed_name"] == "courier" and signature["meaning"] == "Handed over intact"
    assert signature["valid"] is True and len(signature["record_hash"]) == 64
    received = receive(client, world, delivered)
    assert received.status_code == 201, received.get_json()
    body = received.get_json()
    assert body["status"] == "received" and body["monitoring_until"] is not None
    assert body["receipts"][0]["decision"] == "accept"
    assert body["receipts"][0]["signature"]["printed_name"] == "clinic1"
    assert ("clinic1", "shipment.accept") in audit_actions(sessions)


def test_a_broken_chain_is_refused_and_changes_nothing(client: FlaskClient, world: World) -> None:
    shipment = create(client, world)
    assert error(handoff(client, world, shipment, "courier2", "courier")) == (
        409,
        "custody-chain-broken",
        "from_party",
    )
    picked = handoff(client, world, shipment, "MFG-1", "courier").get_json()
    # The courier holds it now: the origin cannot hand it over again.
    refused = handoff(client, world, picked, "MFG-1", "courier2", user="coord")
    assert error(refused) == (409, "custody-chain-broken", "from_party")
    assert get(client, world, shipment["id"])["version"] == picked["version"]


def test_a_party_must_be_a_site_or_a_courier(client: FlaskClient, world: World) -> None:
    shipment = create(client, world)
    for party in ("nobody", "clinic1", "qa"):
        response = handoff(client, world, shipment, "MFG-1", party, user="coord")
        assert error(response) == (400, "unknown-party", "to_party"), party


def test_a_wrong_seal_is_refused_unless_the_change_is_explained(
    client: FlaskClient, world: World
) -> None:
    shipment = create(client, world)
    wrong = handoff(client, world, shipment, "MFG-1", "courier", seal_id="SEAL-9")
    assert error(wrong) == (409, "seal-mismatch", "seal_id")
    changed = handoff(
        client,
        world,
        shipment,
        "MFG-1",
        "courier",
        seal_id="SEAL-9",
        seal_change_reason="customs inspection, resealed by officer 4411",
    )
    assert changed.status_code == 201
    body = changed.get_json()
    assert body["seal_id"] == "SEAL-9" and body["packing_seal_id"] == "SEAL-1"
    assert body["custody"][0]["seal_changed_from"] == "SEAL-1"
    # The new seal is the reference from now on.
    again = handoff(client, world, body, "courier", "courier2", seal_id="SEAL-1")
    assert error(again) == (409, "seal-mismatch", "seal_id")


def test_without_a_seal_at_packing_the_first_handoff_records_it(
    client: FlaskClient, world: World
) -> None:
    shipment = create(client, world, seal_id=None)
    picked = handoff(client, world, shipment, "MFG-1", "courier", seal_id="SEAL-7").get_json()
    assert picked["seal_id"] == "SEAL-7"
    moved = handoff(client, world, picked, "courier", "courier2", seal_id="SEAL-8")
    assert error(moved) == (409, "seal-mismatch", "seal_id")


def test_a_stale_or_replayed_signed_request_is_refused_and_records_nothing(
    client: FlaskClient, world: World, sessions: sessionmaker[Session]
) -> None:
    shipment = create(client, world)
    first = handoff(client, world, shipment, "MFG-1", "courier")
    assert first.status_code == 201
    before = audit_actions(sessions)
    replay = handoff(client, world, shipment, "MFG-1", "courier")
    assert error(replay) == (409, "stale-version", "version")
    assert audit_actions(sessions) == before
    assert len(get(client, world, shipment["id"])["custody"]) == 1


def test_a_wrong_password_is_refused_counted_and_five_in_a_row_lock_the_user(
    client: FlaskClient, world: World, sessions: sessionmaker[Session]
) -> None:
    shipment = create(client, world)
    for attempt in range(1, 6):
        response = handoff(client, world, shipment, "MFG-1", "courier", signature=sig("nope"))
        assert error(response) == (401, "bad-signature", "signature.password"), attempt
    assert audit_actions(sessions).count(("courier", "signature.refused")) == 5
    assert ("system:security", "user.locked") in audit_actions(sessions)
    # Locked: even the right password and the token itself no longer work.
    response = handoff(client, world, shipment, "MFG-1", "courier")
    assert response.status_code == 401
    assert get(client, world, shipment["id"])["custody"] == []


def test_a_right_password_resets_the_count_of_wrong_ones(client: FlaskClient, world: World) -> None:
    shipment = create(client, world)
    for _ in range(4):
        handoff(client, world, shipment, "MFG-1", "courier", signature=sig("nope"))
    picked = handoff(client, world, shipment, "MFG-1", "courier")
    assert picked.status_code == 201
    for _ in range(4):
        response = handoff(
            client, world, picked.get_json(), "courier", "courier2", signature=sig("nope")
        )
        assert response.status_code == 401
    assert handoff(client, world, picked.get_json(), "courier", "courier2").status_code == 201


def test_a_wrong_coi_scan_or_patient_is_refused_and_recorded(
    client: FlaskClient, world: World, sessions: sessionmaker[Session]
) -> None:
    delivered = deliver(client, world, create(client, world))
    wrong_coi = receive(client, world, delivered, coi_scan=make_coi(99))
    assert error(wrong_coi) == (409, "coi-mismatch", "coi_scan")
    wrong_patient = receive(client, world, delivered, patient={"mrn": "54321", "dob": "1970-01-01"})
    assert error(wrong_patient) == (409, "patient-mismatch", "patient")
    refusals = [a for a in audit_actions(sessions) if a[1] == "receipt.refused"]
    assert refusals == [("clinic1", "receipt.refused")] * 2
    assert get(client, world, delivered["id"])["status"] == "delivered"
    # Spacing and case of the scan, and of the patient identifiers, do not matter.
    coi = delivered["coi"]
    ok = receive(
        client,
        world,
        delivered,
        coi_scan=f"{coi[:5]} {coi[5:].lower()}",
        patient={"MRN": " 12345 ", "dob": "1970-01-01"},
    )
    assert ok.status_code == 201, ok.get_json()


def test_only_a_clinic_user_of_the_destination_receives(client: FlaskClient, world: World) -> None:
    delivered = deliver(client, world, create(client, world))
    assert error(receive(client, world, delivered, user="clinic2"))[0] == 404
    # The origin's site user sees the shipment it sent, but does not receive it.
    assert error(receive(client, world, delivered, user="mfg")) == (403, "forbidden", None)
    for user in ("coord", "courier", "qa", "auditor", "admin"):
        assert error(receive(client, world, delivered, user=user)) == (403, "forbidden", None)


@pytest.mark.parametrize(
    ("steps", "action"),
    [
        (0, "receipt"),  # not delivered yet
        (3, "handoff"),  # delivered: the chain has ended
    ],
)
def test_an_illegal_transition_is_refused(
    client: FlaskClient, world: World, steps: int, action: str
) -> None:
    shipment = create(client, world)
    if steps:
        shipment = deliver(client, world, shipment)
    if action == "receipt":
        response = receive(client, world, shipment)
    else:
        response = handoff(client, world, shipment, "TC-1", "courier", user="clinic1")
    assert error(response) == (409, "illegal-transition", "status")


def test_a_cancelled_shipment_frees_its_coi_and_cannot_move(
    client: FlaskClient, world: World
) -> None:
    shipment = create(client, world)
    duplicate = client.post(
        "/api/v1/shipments",
        json={
            "coi": shipment["coi"],
            "profile": "LN2_VAPOR",
            "origin_site": "MFG-1",
            "destination_site": "TC-1",
            "loggers": ["L-2"],
            "patient": PATIENT,
        },
        headers=world.auth("coord"),
    )
    assert error(duplicate) == (409, "coi-in-use", "coi")
    cancelled = client.post(
        f"/api/v1/shipments/{shipment['id']}/cancel",
        json={"version": 1, "reason": "patient unwell, infusion postponed"},
        headers=world.auth("coord"),
    )
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"
    assert error(handoff(client, world, cancelled.get_json(), "MFG-1", "courier")) == (
        409,
        "illegal-transition",
        "status",
    )
    assert create(client, world, loggers=["L-1"])["coi"] == shipment["coi"]


def test_the_coi_links_the_apheresis_leg_to_the_final_product_leg(
    client: FlaskClient, world: World
) -> None:
    apheresis = create(
        client, world, origin_site="COLL-1", destination_site="MFG-1", loggers=["L-3"]
    )
    assert apheresis["leg"] == "apheresis"
    other_patient = client.post(
        "/api/v1/shipments",
        json={
            "coi": apheresis["coi"],
            "profile": "LN2_VAPOR",
            "origin_site": "MFG-1",
            "destination_site": "TC-1",
            "loggers": ["L-4"],
            "patient": {"mrn": "99999"},
        },
        headers=world.auth("coord"),
    )
    assert error(other_patient) == (409, "coi-patient-mismatch", "patient")
    final = create(client, world, loggers=["L-4"])
    history = client.get(f"/api/v1/coi/{final['coi']}", headers=world.auth("coord"))
    assert history.status_code == 200
    assert [leg["leg"] for leg in history.get_json()["legs"]] == ["apheresis", "final_product"]
    # The treatment centre sees its own leg only; another centre sees nothing.
    clinic = client.get(f"/api/v1/coi/{final['coi']}", headers=world.auth("clinic1"))
    assert [leg["id"] for leg in clinic.get_json()["legs"]] == [final["id"]]
    assert (
        client.get(f"/api/v1/coi/{final['coi']}", headers=world.auth("clinic2")).status_code == 404
    )
    bad = client.get(f"/api/v1/coi/{final['coi'][:-1]}0", headers=world.auth("coord"))
    assert bad.status_code == 400


def store(
    sessions: sessionmaker[Session], settings: Settings, logger_id: str, temps: list[float]
) -> None:
    """Store one reading a minute for the logger, ending now."""
    t0 = time.time() - 60 * len(temps)
    pack = [
        {"bn": f"urn:dev:logger:{logger_id}:", "bu": "Cel", "n": "temp", "t": t0, "v": temps[0]}
    ]
    pack += [{"n": "temp", "t": t0 + 60 * i, "v": v} for i, v in enumerate(temps) if i]
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


def test_an_excursion_blocks_accept_until_qa_finds_the_product_acceptable(
    client: FlaskClient, world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    shipment = create(client, world, monitoring_from="2020-01-01T00:00:00Z")
    delivered = deliver(client, world, shipment)
    store(sessions, settings, "L-1", [-190, -140, -140, -190])
    # The excursion moved the shipment to a new version: the page the clinic saw is stale.
    assert error(receive(client, world, delivered)) == (409, "stale-version", "version")
    current = get(client, world, shipment["id"], "clinic1")
    [excursion] = current["excursions"]
    assert excursion["kind"] == "HIGH" and excursion["disposition"] is None
    assert error(receive(client, world, current)) == (409, "excursion-undecided", "decision")

    disposition_url = f"/api/v1/excursions/{excursion['id']}/disposition"
    body = {
        "version": excursion["version"],
        "decision": "product_acceptable",
        "reason": "2 minutes at -140 C: within the stability data for this product",
        "signature": sig(meaning="QA disposition"),
    }
    assert client.post(disposition_url, json=body, headers=world.auth("coord")).status_code == 403
    decided = client.post(disposition_url, json=body, headers=world.auth("qa"))
    assert decided.status_code == 201, decided.get_json()
    record = decided.get_json()
    assert record["disposition"] == "product_acceptable" and record["disposition_current"]
    [kept] = record["dispositions"]
    assert kept["profile"]["max_c"] == -150 and kept["signature"]["printed_name"] == "qa"
    replay = client.post(disposition_url, json=body, headers=world.auth("qa"))
    assert error(replay) == (409, "stale-version", "version")

    current = get(client, world, shipment["id"], "clinic1")
    accepted = receive(client, world, current)
    assert accepted.status_code == 201, accepted.get_json()


def test_a_rejected_or_undecided_excursion_still_allows_quarantine_then_a_decision(
    client: FlaskClient, world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    shipment = create(client, world, monitoring_from="2020-01-01T00:00:00Z")
    deliver(client, world, shipment)
    store(sessions, settings, "L-1", [-190, -140, -140])
    current = get(client, world, shipment["id"], "clinic1")
    assert current["excursions"][0]["status"] == "OPEN"
    no_reason = receive(client, world, current, decision="quarantine")
    assert error(no_reason) == (400, "invalid", "reason")
    held = receive(client, world, current, decision="quarantine", reason="open excursion")
    assert held.status_code == 201 and held.get_json()["status"] == "quarantined"
    excursion = current["excursions"][0]
    client.post(
        f"/api/v1/excursions/{excursion['id']}/disposition",
        json={
            "version": excursion["version"],
            "decision": "product_rejected",
            "reason": "warm for too long",
            "signature": sig(),
        },
        headers=world.auth("qa"),
    )
    current = get(client, world, shipment["id"], "clinic1")
    assert error(receive(client, world, current)) == (409, "excursion-not-acceptable", "decision")
    rejected = receive(client, world, current, decision="reject", reason="QA rejected the product")
    assert rejected.status_code == 201 and rejected.get_json()["status"] == "rejected"


def test_concurrent_handoffs_on_one_shipment_one_wins_the_other_gets_409(
    app: Flask, client: FlaskClient, world: World
) -> None:
    shipment = create(client, world)
    picked = handoff(client, world, shipment, "MFG-1", "courier").get_json()
    results: list[int] = []
    start = threading.Barrier(2)

    def attempt(to_party: str) -> None:
        local = app.test_client()
        start.wait()
        results.append(handoff(local, world, picked, "courier", to_party).status_code)

    threads = [threading.Thread(target=attempt, args=(p,)) for p in ("courier2", "TC-1")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [201, 409]
    assert len(get(client, world, shipment["id"])["custody"]) == 2


def test_the_origin_site_user_hands_over_what_its_site_sent_and_nothing_else(
    client: FlaskClient, world: World
) -> None:
    shipment = create(client, world)
    assert shipment["id"] in [
        s["id"] for s in client.get("/api/v1/shipments", headers=world.auth("mfg")).get_json()
    ]
    released = handoff(client, world, shipment, "MFG-1", "courier", user="mfg")
    assert released.status_code == 201, released.get_json()
    # A site user records only handoffs to or from its own site.
    moved = handoff(client, world, released.get_json(), "courier", "courier2", user="mfg")
    assert error(moved) == (403, "forbidden", "from_party")
