"""Shipment states. Transitions between them come with custody (issue 4)."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """Where a shipment is in its life."""

    CREATED = "created"
    PICKED_UP = "picked_up"
    IN_TRANSIT = "in_transit"
    DELIVERED = "delivered"
    RECEIVED = "received"
    REJECTED = "rejected"
    QUARANTINED = "quarantined"
    CANCELLED = "cancelled"


# Once a shipment is received, rejected or cancelled its loggers stop monitoring it; a
# quarantined product is still in the clinic's hands and still watched.
FINISHED = frozenset({Status.RECEIVED, Status.REJECTED, Status.CANCELLED})
