"""Read models: the JSON shapes of stored objects, shared by the API and the MQTT alerts."""

from __future__ import annotations

from typing import Any

from coldchain.services.timefmt import rfc3339
from coldchain.store.models import Excursion, Shipment, Site

# The fields of an excursion object, in the order tables and exports show them.
EXCURSION_FIELDS = (
    "id",
    "shipment_id",
    "logger_id",
    "kind",
    "started_at",
    "ended_at",
    "peak_c",
    "duration_s",
    "status",
    "resolution",
    "severity",
    "version",
    "disposition",
    "disposition_current",
    "detected_at",
    "updated_at",
)


def excursion_view(row: Excursion, *, now_us: int | None = None) -> dict[str, Any]:
    """Return an excursion object as the contract names its fields."""
    duration_s = row.duration_s
    if row.kind == "SIGNAL_LOSS" and row.ended_us is None and now_us is not None:
        # An open signal loss lasts until now; the stored figure is as of the last check.
        duration_s = max(duration_s, (now_us - row.started_us) / 1_000_000)
    return {
        "id": row.id,
        "shipment_id": row.shipment_id,
        "logger_id": row.logger_id,
        "kind": row.kind,
        "started_at": rfc3339(row.started_us),
        "ended_at": rfc3339(row.ended_us),
        "peak_c": row.peak_c,
        "duration_s": duration_s,
        "status": row.status,
        "resolution": row.resolution,
        "severity": row.severity,
        "version": row.version,
        "disposition": row.disposition,
        "disposition_current": row.disposition is not None
        and row.disposition_version == row.version,
        "detected_at": rfc3339(row.detected_at),
        "updated_at": rfc3339(row.updated_at),
    }


def site_view(row: Site) -> dict[str, Any]:
    """Return a site object."""
    return {"id": row.id, "name": row.name, "kind": row.kind}


def shipment_summary(row: Shipment) -> dict[str, Any]:
    """Return the shipment fields shown in lists (no patient data: only its keyed hash exists)."""
    return {
        "id": row.id,
        "coi": row.coi,
        "profile": row.profile,
        "origin_site": row.origin_site_id,
        "destination_site": row.destination_site_id,
        "status": row.status,
        "version": row.version,
        "loggers": [link.logger_id for link in row.loggers],
        "seal_id": row.current_seal,
        "packing_seal_id": row.seal_id,
        "leg": row.leg,
        "holder": row.holder,
        "monitoring_from": rfc3339(row.monitoring_from),
        "monitoring_until": rfc3339(row.monitoring_until),
        "created_at": rfc3339(row.created_at),
    }
