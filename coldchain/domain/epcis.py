"""A shipment's story as a GS1 EPCIS 2.0 JSON-LD document, built from plain facts.

Identifiers are HTTP URIs under one base (`epcis.base_uri`): EPCIS 2.0 accepts any URI as
an object or location identifier, and coldchain has no GS1 company prefix to make GTINs or
GLNs from. The product is `{base}/coi/{COI}/{leg}`: the ISBT 128 donation number names the
donation, and each leg carries a different object of it (the apheresis material, the final
product), so each gets its own identifier and its own commissioning. No patient data is in
any identifier: the COI is a donation number, and patient identifiers exist only as a hash.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
OFFSET = "+00:00"


@dataclass(frozen=True)
class TemperatureSummary:
    """One logger's temperatures over a span: what a sensorReport summarises."""

    logger_id: str
    first: datetime
    last: datetime
    min_c: float
    max_c: float
    mean_c: float


@dataclass(frozen=True)
class ExcursionFact:
    """An excursion as EPCIS reports it: an alarm (HIGH, LOW) or an error (SIGNAL_LOSS)."""

    kind: str
    logger_id: str
    started: datetime
    ended: datetime | None
    peak_c: float | None


@dataclass(frozen=True)
class HandoffFact:
    """One link of the custody chain; a party is a site id or a courier's user name."""

    at: datetime
    from_party: str
    to_party: str
    from_site: bool
    to_site: bool


@dataclass(frozen=True)
class ReceiptFact:
    """A receipt decision at the destination, with the temperatures up to it."""

    at: datetime
    site_id: str
    decision: str
    summaries: tuple[TemperatureSummary, ...]


@dataclass(frozen=True)
class LegFacts:
    """Everything the export says about one shipment (one leg of a COI)."""

    shipment_id: int
    coi: str
    leg: str
    profile: str
    origin_site: str
    created_at: datetime
    handoffs: tuple[HandoffFact, ...]
    receipts: tuple[ReceiptFact, ...]
    excursions: tuple[ExcursionFact, ...]
    # The temperatures so far, reported by a sensor_reporting event while no receipt has.
    open_summaries: tuple[TemperatureSummary, ...] = ()
    cancelled_at: datetime | None = None


# Receipt decision -> (CBV 2.0 bizStep, disposition). A quarantine is `holding` (CBV: an
# object segregated for further review), not `accepting`: nobody has accepted it yet.
RECEIPT_STEPS = {
    "accept": ("accepting", "conformant"),
    "reject": ("accepting", "non_conformant"),
    "quarantine": ("holding", "non_conformant"),
}


class Identifiers:
    """The URIs of coldchain's objects, parties, locations and devices under one base."""

    def __init__(self, base_uri: str) -> None:
        self.base = base_uri.rstrip("/")

    def _uri(self, kind: str, *parts: str) -> str:
        return "/".join([self.base, kind, *(quote(p, safe="") for p in parts)])

    def product(self, coi: str, leg: str) -> str:
        """The identifier of what one leg carries: the donation's material of that leg."""
        return self._uri("coi", coi, leg)

    def site(self, site_id: str) -> str:
        """A site, as read point, business location and party."""
        return self._uri("site", site_id)

    def party(self, party: str, *, is_site: bool) -> str:
        """A custody party: a site, or a courier by user name."""
        return self.site(party) if is_site else self._uri("courier", party)

    def logger(self, logger_id: str) -> str:
        """A temperature logger, as a sensor's deviceID."""
        return self._uri("logger", logger_id)

    def profile(self, name: str) -> str:
        """The temperature profile that judged the readings, as the sensor's bizRules."""
        return self._uri("profile", name)

    def event(self, shipment_id: int, name: str) -> str:
        """A stable event id: the same event has the same id in every export."""
        name_uri = f"{self.base}/shipment/{shipment_id}/{name}"
        return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, name_uri)}"


def epcis_time(moment: datetime) -> str:
    """Format a time as RFC 3339 UTC with milliseconds, as EPCIS examples do."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def epcis_document(legs: Sequence[LegFacts], *, base_uri: str, created: datetime) -> dict[str, Any]:
    """Build the EPCISDocument of one or more legs, events in time order."""
    ids = Identifiers(base_uri)
    events: list[tuple[datetime, int, dict[str, Any]]] = []
    for leg in legs:
        for event in leg_events(leg, ids):
            events.append((event[0], len(events), event[1]))
    return {
        "@context": [CONTEXT],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": epcis_time(created),
        "epcisBody": {"eventList": [event for _at, _n, event in sorted(events)]},
    }


def leg_events(leg: LegFacts, ids: Identifiers) -> list[tuple[datetime, dict[str, Any]]]:
    """The ObjectEvents of one leg, each with its time."""
    epc = ids.product(leg.coi, leg.leg)

    def event(
        name: str, at: datetime, action: str, **fields: Any
    ) -> tuple[datetime, dict[str, Any]]:
        body = {
            "type": "ObjectEvent",
            "eventID": ids.event(leg.shipment_id, name),
            "eventTime": epcis_time(at),
            "eventTimeZoneOffset": OFFSET,
            "epcList": [epc],
            "action": action,
        }
        body.update({key: value for key, value in fields.items() if value is not None})
        return at, body

    origin = {"id": ids.site(leg.origin_site)}
    out = [
        event(
            "commissioning",
            leg.created_at,
            "ADD",
            bizStep="commissioning",
            disposition="active",
            readPoint=origin,
            bizLocation=origin,
        )
    ]
    for n, handoff in enumerate(leg.handoffs, start=1):
        parties = _parties(handoff, ids)
        sender = {"id": ids.site(handoff.from_party)} if handoff.from_site else None
        receiver = {"id": ids.site(handoff.to_party)} if handoff.to_site else None
        out.append(
            event(
                f"handoff/{n}/shipping",
                handoff.at,
                "OBSERVE",
                bizStep="shipping",
                disposition="in_transit",
                readPoint=sender,
                **parties,
            )
        )
        out.append(
            event(
                f"handoff/{n}/receiving",
                handoff.at,
                "OBSERVE",
                bizStep="receiving",
                disposition="in_progress" if handoff.to_site else "in_transit",
                readPoint=receiver,
                bizLocation=receiver,
                **parties,
            )
        )
    for n, receipt in enumerate(leg.receipts, start=1):
        step, disposition = RECEIPT_STEPS[receipt.decision]
        site = {"id": ids.site(receipt.site_id)}
        out.append(
            event(
                f"receipt/{n}",
                receipt.at,
                "OBSERVE",
                bizStep=step,
                disposition=disposition,
                readPoint=site,
                bizLocation=site,
                sensorElementList=sensor_elements(
                    receipt.summaries,
                    [e for e in leg.excursions if e.started <= receipt.at],
                    ids,
                    leg.profile,
                ),
            )
        )
    if not leg.receipts:
        elements = sensor_elements(leg.open_summaries, leg.excursions, ids, leg.profile)
        if elements:
            times = [s.last for s in leg.open_summaries] + [
                e.ended or e.started for e in leg.excursions
            ]
            out.append(
                event(
                    "sensor_reporting",
                    max(times),
                    "OBSERVE",
                    bizStep="sensor_reporting",
                    sensorElementList=elements,
                )
            )
    if leg.cancelled_at is not None:
        out.append(event("cancelled", leg.cancelled_at, "OBSERVE", bizStep="void_shipping"))
    return out


def _parties(handoff: HandoffFact, ids: Identifiers) -> dict[str, Any]:
    """Who had the product before the handoff and who has it after: possessing parties."""
    source = ids.party(handoff.from_party, is_site=handoff.from_site)
    destination = ids.party(handoff.to_party, is_site=handoff.to_site)
    sources = [{"type": "possessing_party", "source": source}]
    destinations = [{"type": "possessing_party", "destination": destination}]
    if handoff.from_site:
        sources.append({"type": "location", "source": source})
    if handoff.to_site:
        destinations.append({"type": "location", "destination": destination})
    return {"sourceList": sources, "destinationList": destinations}


def sensor_elements(
    summaries: Iterable[TemperatureSummary],
    excursions: Iterable[ExcursionFact],
    ids: Identifiers,
    profile: str,
) -> list[dict[str, Any]] | None:
    """Each logger's temperature summary, then each excursion as an alarm or error report."""
    elements: list[dict[str, Any]] = []
    for s in summaries:
        elements.append(
            {
                "sensorMetadata": {
                    "startTime": epcis_time(s.first),
                    "endTime": epcis_time(s.last),
                    "deviceID": ids.logger(s.logger_id),
                    "bizRules": ids.profile(profile),
                },
                "sensorReport": [
                    {
                        "type": "Temperature",
                        "uom": "CEL",
                        "minValue": s.min_c,
                        "maxValue": s.max_c,
                        "meanValue": round(s.mean_c, 3),
                    }
                ],
            }
        )
    for e in excursions:
        metadata = {
            "startTime": epcis_time(e.started),
            "deviceID": ids.logger(e.logger_id),
            "bizRules": ids.profile(profile),
        }
        if e.ended is not None:
            metadata["endTime"] = epcis_time(e.ended)
        # A signal loss is missing data, not a temperature out of range: an error condition.
        report: dict[str, Any] = {
            "type": "Temperature",
            "exception": "ERROR_CONDITION" if e.kind == "SIGNAL_LOSS" else "ALARM_CONDITION",
        }
        if e.peak_c is not None and e.kind in ("HIGH", "LOW"):
            report["uom"] = "CEL"
            report["maxValue" if e.kind == "HIGH" else "minValue"] = e.peak_c
        elements.append({"sensorMetadata": metadata, "sensorReport": [report]})
    return elements or None
