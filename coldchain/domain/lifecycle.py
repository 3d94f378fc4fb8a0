"""The shipment life cycle: states, named transitions, and the rule that refuses the rest."""

from __future__ import annotations

from enum import StrEnum

from coldchain.domain.errors import ConflictError


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


class Transition(StrEnum):
    """Every way a shipment changes state, by name."""

    PICK_UP = "pick_up"  # the first handoff, from the origin site
    TRANSFER = "transfer"  # a handoff between carriers on the way
    DELIVER = "deliver"  # a handoff to the destination site
    ACCEPT = "accept"  # receipt: the clinic accepts the product
    REJECT = "reject"  # receipt: the clinic rejects it
    QUARANTINE = "quarantine"  # receipt: held at the clinic pending a decision
    CANCEL = "cancel"  # called off before delivery


TRANSITIONS: dict[tuple[Status, Transition], Status] = {
    (Status.CREATED, Transition.PICK_UP): Status.PICKED_UP,
    (Status.CREATED, Transition.DELIVER): Status.DELIVERED,  # carried by hand, site to site
    (Status.PICKED_UP, Transition.TRANSFER): Status.IN_TRANSIT,
    (Status.IN_TRANSIT, Transition.TRANSFER): Status.IN_TRANSIT,
    (Status.PICKED_UP, Transition.DELIVER): Status.DELIVERED,
    (Status.IN_TRANSIT, Transition.DELIVER): Status.DELIVERED,
    (Status.DELIVERED, Transition.ACCEPT): Status.RECEIVED,
    (Status.DELIVERED, Transition.REJECT): Status.REJECTED,
    (Status.DELIVERED, Transition.QUARANTINE): Status.QUARANTINED,
    # A quarantined product is decided later, by the same receipt with a final decision.
    (Status.QUARANTINED, Transition.ACCEPT): Status.RECEIVED,
    (Status.QUARANTINED, Transition.REJECT): Status.REJECTED,
    (Status.CREATED, Transition.CANCEL): Status.CANCELLED,
    (Status.PICKED_UP, Transition.CANCEL): Status.CANCELLED,
    (Status.IN_TRANSIT, Transition.CANCEL): Status.CANCELLED,
}

# Once a shipment is received, rejected or cancelled its loggers stop monitoring it; a
# quarantined product is still in the clinic's hands and still watched.
FINISHED = frozenset({Status.RECEIVED, Status.REJECTED, Status.CANCELLED})


def apply(status: Status, transition: Transition) -> Status:
    """Return the state after a transition, or refuse one the life cycle does not allow."""
    after = TRANSITIONS.get((status, transition))
    if after is None:
        allowed = sorted(t.value for (s, t) in TRANSITIONS if s is status)
        raise ConflictError(
            f"a shipment that is {status.value} cannot {transition.value}"
            + (f"; it can: {', '.join(allowed)}" if allowed else "; its life cycle has ended"),
            code="illegal-transition",
            field="status",
        )
    return after


def handoff_transition(status: Status, *, to_party: str, destination: str) -> Transition:
    """Name the transition a handoff makes: to the destination it delivers."""
    if to_party == destination:
        return Transition.DELIVER
    if status is Status.CREATED:
        return Transition.PICK_UP
    return Transition.TRANSFER
