"""Custody rules: an unbroken chain of handoffs, the seal, and what a receipt may decide."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from coldchain.domain.errors import ConflictError, ValidationError


class Decision(StrEnum):
    """What a clinic decides at receipt."""

    ACCEPT = "accept"
    REJECT = "reject"
    QUARANTINE = "quarantine"


class Disposition(StrEnum):
    """What QA decides about an excursion."""

    PRODUCT_ACCEPTABLE = "product_acceptable"
    PRODUCT_REJECTED = "product_rejected"
    NEEDS_INVESTIGATION = "needs_investigation"


@dataclass(frozen=True)
class SealCheck:
    """The seal after a handoff, and whether the handoff changed it."""

    seal_id: str
    changed_from: str | None


def check_chain(*, holder: str, from_party: str, to_party: str) -> None:
    """A handoff must come from whoever holds the shipment, and go to someone else."""
    if from_party != holder:
        raise ConflictError(
            f"the custody chain would break: the shipment is held by {holder!r}, "
            f"so the handoff must be from {holder!r}, not {from_party!r}",
            code="custody-chain-broken",
            field="from_party",
        )
    if to_party == from_party:
        raise ValidationError("a handoff must go to another party", field="to_party")


def check_seal(*, recorded: str | None, seen: str, change_reason: str | None) -> SealCheck:
    """The seal seen at a handoff must be the one recorded, unless a change is explained.

    The first seal recorded (at packing: the shipment's creation, or else its first handoff)
    is the reference; a handoff that finds or fits another seal says why, and its seal becomes
    the reference for the next.
    """
    if recorded is None or seen == recorded:
        return SealCheck(seen, None)
    if not change_reason or not change_reason.strip():
        raise ConflictError(
            f"seal {seen!r} is not the recorded seal {recorded!r}; a seal change needs "
            "seal_change_reason",
            code="seal-mismatch",
            field="seal_id",
        )
    return SealCheck(seen, recorded)


@dataclass(frozen=True)
class ExcursionState:
    """What a receipt needs to know of one excursion of the shipment."""

    id: int
    kind: str
    status: str
    resolution: str | None
    version: int
    # The latest QA disposition and the excursion version it was made on, if any.
    disposition: Disposition | None = None
    disposition_version: int | None = None

    @property
    def counts(self) -> bool:
        """A loss filled by a backfill, or a run that late readings split, was no excursion."""
        return self.resolution not in ("recovered", "retracted")

    @property
    def decided(self) -> Disposition | None:
        """The disposition if it was made on the excursion as it is now, else None."""
        if self.disposition_version != self.version:
            return None
        return self.disposition


def check_receipt(
    *, decision: Decision, seal_matches: bool, excursions: Iterable[ExcursionState]
) -> None:
    """Refuse an `accept` the product's record does not support; reject and quarantine stay open.

    A clinic may always reject or quarantine what it holds. It may accept only a shipment
    whose seal is the recorded one and each of whose excursions QA has found acceptable, on
    the excursion as it now stands (a disposition made before the excursion grew is stale).
    """
    if decision is not Decision.ACCEPT:
        return
    if not seal_matches:
        raise ConflictError(
            "the seal is not the recorded one: the product can be rejected or quarantined, "
            "not accepted",
            code="seal-mismatch",
            field="seal_id",
        )
    for excursion in excursions:
        if not excursion.counts:
            continue
        decided = excursion.decided
        if decided is Disposition.PRODUCT_ACCEPTABLE:
            continue
        state = (
            "is open"
            if excursion.status == "OPEN" and decided is None
            else "has no QA disposition on its current record"
            if decided is None
            else f"was dispositioned {decided.value} by QA"
        )
        raise ConflictError(
            f"excursion {excursion.id} ({excursion.kind}) {state}: the product cannot be "
            "accepted until QA finds it acceptable; it may be quarantined",
            code="excursion-undecided" if decided is None else "excursion-not-acceptable",
            field="decision",
        )
