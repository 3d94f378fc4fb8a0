"""The EPCIS 2.0 document builder, pure: GS1's schema accepts what it builds."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from coldchain.domain import epcis
from tests.support.epcis import EXAMPLES, assert_valid_epcis, schema_errors

BASE = "https://coldchain.example"
T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def summary(logger_id: str = "LOG-1", until: float = 180) -> epcis.TemperatureSummary:
    return epcis.TemperatureSummary(logger_id, at(0), at(until), -191.0, -135.0, -185.25)


def leg(**changes: Any) -> epcis.LegFacts:
    facts: dict[str, Any] = {
        "shipment_id": 7,
        "coi": "W12342600010" + "2X",
        "leg": "final_product",
        "profile": "LN2_VAPOR",
        "origin_site": "MFG-1",
        "created_at": at(0),
        "handoffs": (
            epcis.HandoffFact(at(10), "MFG-1", "courier", from_site=True, to_site=False),
            epcis.HandoffFact(at(60), "courier", "air courier", from_site=False, to_site=False),
            epcis.HandoffFact(at(170), "air courier", "TC-1", from_site=False, to_site=True),
        ),
        "receipts": (epcis.ReceiptFact(at(180), "TC-1", "accept", (summary(),)),),
        "excursions": (
            epcis.ExcursionFact("HIGH", "LOG-1", at(60), at(80), -135.0),
            epcis.ExcursionFact("SIGNAL_LOSS", "LOG-1", at(100), at(120), None),
        ),
    }
    facts.update(changes)
    return epcis.LegFacts(**facts)


def document(*legs: epcis.LegFacts) -> dict[str, Any]:
    return epcis.epcis_document(legs or (leg(),), base_uri=BASE, created=at(200))


def events(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return doc["epcisBody"]["eventList"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_the_validator_accepts_gs1s_own_examples(example: Any) -> None:
    assert_valid_epcis(json.loads(example.read_text(encoding="utf-8")))


MUTATIONS = {
    "no schemaVersion": lambda d: d.pop("schemaVersion"),
    "an unknown bizStep": lambda d: events(d)[0].update(bizStep="teleporting"),
    "a CBV URI where the JSON binding wants the short name": lambda d: events(d)[1].update(
        sourceList=[{"type": "urn:epcglobal:cbv:sdt:possessing_party", "source": BASE}]
    ),
    "an exception outside the enum": lambda d: events(d)[-1]["sensorElementList"][0][
        "sensorReport"
    ][0].update(exception="TOO_WARM"),
    "a read point that is no URI": lambda d: events(d)[0].update(readPoint={"id": "dock 4"}),
    "a time that is no RFC 3339 time": lambda d: events(d)[0].update(eventTime="yesterday"),
    "an unknown event field": lambda d: events(d)[0].update(temperature=-190),
    "no action": lambda d: events(d)[0].pop("action"),
}


@pytest.mark.parametrize("mutate", MUTATIONS.values(), ids=MUTATIONS.keys())
def test_the_validator_rejects_a_mutated_document(mutate: Any) -> None:
    doc = document()
    assert_valid_epcis(doc)
    mutated = copy.deepcopy(doc)
    mutate(mutated)
    assert schema_errors(mutated)


def test_a_received_leg_is_commissioning_then_each_handoff_then_accepting() -> None:
    doc = document()
    assert_valid_epcis(doc)
    assert doc["@context"] == [epcis.CONTEXT]
    assert (doc["type"], doc["schemaVersion"]) == ("EPCISDocument", "2.0")
    steps = [(e["bizStep"], e.get("disposition"), e["action"]) for e in events(doc)]
    assert steps == [
        ("commissioning", "active", "ADD"),
        ("shipping", "in_transit", "OBSERVE"),
        ("receiving", "in_transit", "OBSERVE"),
        ("shipping", "in_transit", "OBSERVE"),
        ("receiving", "in_transit", "OBSERVE"),
        ("shipping", "in_transit", "OBSERVE"),
        ("receiving", "in_progress", "OBSERVE"),
        ("accepting", "conformant", "OBSERVE"),
    ]
    product = f"{BASE}/coi/W123426000102X/final_product"
    assert all(e["epcList"] == [product] for e in events(doc))
    assert all(e["eventTimeZoneOffset"] == "+00:00" for e in events(doc))
    assert events(doc)[0]["eventTime"] == "2026-11-25T08:00:00.000Z"
    assert len({e["eventID"] for e in events(doc)}) == len(events(doc))


def test_a_handoff_names_both_possessing_parties_and_the_sites_as_locations() -> None:
    pickup, courier_gets_it = events(document())[1:3]
    assert pickup["sourceList"] == [
        {"type": "possessing_party", "source": f"{BASE}/site/MFG-1"},
        {"type": "location", "source": f"{BASE}/site/MFG-1"},
    ]
    assert pickup["destinationList"] == [
        {"type": "possessing_party", "destination": f"{BASE}/courier/courier"}
    ]
    assert pickup["readPoint"] == {"id": f"{BASE}/site/MFG-1"}
    assert "readPoint" not in courier_gets_it, "a courier is a party, not a location"
    # A user name with a space is percent-encoded: still a URI.
    transfer = events(document())[3]
    assert transfer["destinationList"][0]["destination"] == f"{BASE}/courier/air%20courier"


def test_the_receipt_carries_the_temperature_summary_and_each_excursion() -> None:
    accepting = events(document())[-1]
    assert accepting["bizLocation"] == {"id": f"{BASE}/site/TC-1"}
    leg_summary, high, loss = accepting["sensorElementList"]
    assert leg_summary == {
        "sensorMetadata": {
            "startTime": "2026-11-25T08:00:00.000Z",
            "endTime": "2026-11-25T11:00:00.000Z",
            "deviceID": f"{BASE}/logger/LOG-1",
            "bizRules": f"{BASE}/profile/LN2_VAPOR",
        },
        "sensorReport": [
            {
                "type": "Temperature",
                "uom": "CEL",
                "minValue": -191.0,
                "maxValue": -135.0,
                "meanValue": -185.25,
            }
        ],
    }
    assert high["sensorReport"] == [
        {"type": "Temperature", "exception": "ALARM_CONDITION", "uom": "CEL", "maxValue": -135.0}
    ]
    assert high["sensorMetadata"]["endTime"] == "2026-11-25T09:20:00.000Z"
    assert loss["sensorReport"] == [{"type": "Temperature", "exception": "ERROR_CONDITION"}]


@pytest.mark.parametrize(
    ("decision", "step", "disposition"),
    [
        ("reject", "accepting", "non_conformant"),
        ("quarantine", "holding", "non_conformant"),
    ],
)
def test_a_refused_receipt_is_non_conformant(decision: str, step: str, disposition: str) -> None:
    doc = document(leg(receipts=(epcis.ReceiptFact(at(180), "TC-1", decision, ()),)))
    assert_valid_epcis(doc)
    last = events(doc)[-1]
    assert (last["bizStep"], last["disposition"]) == (step, disposition)


def test_a_quarantine_then_an_accept_each_report_the_excursions_before_them() -> None:
    receipts = (
        epcis.ReceiptFact(at(70), "TC-1", "quarantine", (summary(until=70),)),
        epcis.ReceiptFact(at(180), "TC-1", "accept", (summary(),)),
    )
    doc = document(leg(handoffs=(), receipts=receipts))
    assert_valid_epcis(doc)
    held, accepted = events(doc)[-2:]
    assert [len(e["sensorElementList"]) for e in (held, accepted)] == [2, 3]


def test_a_leg_in_transit_reports_its_temperatures_so_far() -> None:
    doc = document(leg(handoffs=leg().handoffs[:1], receipts=(), open_summaries=(summary(),)))
    assert_valid_epcis(doc)
    last = events(doc)[-1]
    assert last["bizStep"] == "sensor_reporting"
    assert last["eventTime"] == "2026-11-25T11:00:00.000Z", "the time of the latest reading"
    assert len(last["sensorElementList"]) == 3


def test_a_leg_with_no_readings_and_no_receipt_has_no_sensor_event() -> None:
    doc = document(leg(handoffs=(), receipts=(), excursions=()))
    assert_valid_epcis(doc)
    assert [e["bizStep"] for e in events(doc)] == ["commissioning"]


def test_a_cancelled_leg_ends_with_void_shipping() -> None:
    doc = document(leg(handoffs=(), receipts=(), excursions=(), cancelled_at=at(30)))
    assert_valid_epcis(doc)
    assert [e["bizStep"] for e in events(doc)] == ["commissioning", "void_shipping"]


def test_two_legs_of_a_coi_are_two_products_in_one_document_in_time_order() -> None:
    apheresis = leg(shipment_id=3, leg="apheresis", origin_site="COLL-1", created_at=at(-600))
    doc = document(leg(), apheresis)
    assert_valid_epcis(doc)
    times = [e["eventTime"] for e in events(doc)]
    assert times == sorted(times)
    assert {e["epcList"][0].rsplit("/", 1)[1] for e in events(doc)} == {
        "apheresis",
        "final_product",
    }
    assert len({e["eventID"] for e in events(doc)}) == len(events(doc))
