"""Use cases of custody: handoffs, receipt, cancellation, QA disposition, the COI history."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from coldchain.domain import custody as rules
from coldchain.domain.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from coldchain.domain.identity import parse_coi, patient_hash
from coldchain.domain.lifecycle import FINISHED, Status, Transition, apply, handoff_transition
from coldchain.domain.profiles import Profile
from coldchain.domain.roles import Role
from coldchain.services import audit
from coldchain.services.accounts import Principal
from coldchain.services.shipments import detail as custody_detail
from coldchain.services.shipments import visible
from coldchain.services.signing import RecordedRefusal, SignatureInput, run, sign, signature_view
from coldchain.services.timefmt import rfc3339
from coldchain.store.models import (
    Excursion,
    ExcursionDisposition,
    Handoff,
    Receipt,
    Shipment,
    Site,
    User,
    utcnow,
)


@dataclass(frozen=True)
class NewHandoff:
    """A signed request to pass a shipment from one party to the next."""

    version: int
    from_party: str
    to_party: str
    location: str
    seal_id: str
    condition: str
    signature: SignatureInput
    notes: str | None = None
    seal_change_reason: str | None = None


@dataclass(frozen=True)
class NewReceipt:
    """A clinic's signed decision on a delivered shipment."""

    version: int
    coi_scan: str
    patient: Mapping[str, str]
    seal_id: str
    decision: rules.Decision
    signature: SignatureInput
    reason: str | None = None


@dataclass(frozen=True)
class NewDisposition:
    """QA's signed decision on an excursion."""

    version: int
    decision: rules.Disposition
    reason: str
    signature: SignatureInput


def claim_version(session: Session, shipment: Shipment, seen: int) -> None:
    """Move the shipment to its next version if it is still the one the caller saw.

    This conditional UPDATE is the first write of the transaction: it takes the write lock
    (SQLite) or the row lock (PostgreSQL), so of two concurrent requests on one shipment the
    second waits, finds the version moved on, and is refused with nothing recorded.
    """
    result = session.execute(
        update(Shipment)
        .where(Shipment.id == shipment.id, Shipment.version == seen)
        .values(version=Shipment.version + 1)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(shipment)
        raise ConflictError(
            f"shipment {shipment.id} is at version {shipment.version}, not {seen}: it changed "
            "since you saw it; reload it and sign again",
            code="stale-version",
            field="version",
        )
    session.refresh(shipment)


def _party_kind(session: Session, party: str, field: str) -> str:
    """A party is a site id or the user name of a courier."""
    if session.get(Site, party) is not None:
        return "site"
    role = session.scalar(select(User.role).where(User.username == party))
    if role == Role.COURIER.value:
        return "courier"
    raise ValidationError(
        f"{party!r} is neither a site nor a courier's user name", field=field, code="unknown-party"
    )


def _may_record_handoff(principal: Principal, handoff: NewHandoff) -> None:
    parties = (handoff.from_party, handoff.to_party)
    if principal.role is Role.COURIER and principal.username not in parties:
        raise PermissionDeniedError(
            "a courier records only handoffs to or from themselves", field="from_party"
        )
    if principal.role is Role.CLINIC and principal.site_id not in parties:
        raise PermissionDeniedError(
            "a site user records only handoffs to or from their site", field="from_party"
        )


def handoff_record(row: Handoff) -> dict[str, Any]:
    """The fields a handoff's signature covers."""
    return {
        "type": "handoff",
        "shipment_id": row.shipment_id,
        "shipment_version": row.shipment_version,
        "seq": row.seq,
        "transition": row.transition,
        "from_party": row.from_party,
        "to_party": row.to_party,
        "location": row.location,
        "seal_id": row.seal_id,
        "seal_changed_from": row.seal_changed_from,
        "seal_change_reason": row.seal_change_reason,
        "condition": row.condition,
        "notes": row.notes,
        "at": rfc3339(row.at),
    }


def record_handoff(
    *,
    sessions: sessionmaker[Session],
    shipment_id: int,
    principal: Principal,
    handoff: NewHandoff,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Record a signed handoff: the next link of an unbroken chain."""
    _may_record_handoff(principal, handoff)

    def work(session: Session) -> dict[str, Any]:
        shipment = visible(session, shipment_id, principal)
        claim_version(session, shipment, handoff.version)
        status = Status(shipment.status)
        transition = handoff_transition(
            status, to_party=handoff.to_party, destination=shipment.destination_site_id
        )
        after = apply(status, transition)
        rules.check_chain(
            holder=shipment.holder, from_party=handoff.from_party, to_party=handoff.to_party
        )
        _party_kind(session, handoff.to_party, "to_party")
        seal = rules.check_seal(
            recorded=shipment.current_seal,
            seen=handoff.seal_id,
            change_reason=handoff.seal_change_reason,
        )
        seq = 1 + len(_handoffs(session, shipment.id))
        row = Handoff(
            shipment_id=shipment.id,
            shipment_version=shipment.version,
            seq=seq,
            transition=transition.value,
            from_party=handoff.from_party,
            to_party=handoff.to_party,
            location=handoff.location,
            seal_id=seal.seal_id,
            seal_changed_from=seal.changed_from,
            seal_change_reason=handoff.seal_change_reason if seal.changed_from else None,
            condition=handoff.condition,
            notes=handoff.notes,
            recorded_by=principal.user_id,
            at=utcnow(),
        )
        signature = sign(
            session,
            principal=principal,
            given=handoff.signature,
            record_type="handoff",
            record=handoff_record(row),
            request_id=request_id,
        )
        row.signature_id = signature.id
        session.add(row)
        before = _state(shipment)
        shipment.status = after.value
        shipment.holder = handoff.to_party
        shipment.current_seal = seal.seal_id
        session.flush()
        old, new = audit.changes(before, _state(shipment))
        audit.record(
            session,
            actor=principal.username,
            action=f"shipment.{transition.value}",
            entity="shipment",
            entity_id=shipment.id,
            old=old,
            new={**new, "handoff_seq": seq, "signature_id": signature.id},
            reason=handoff.seal_change_reason if seal.changed_from else None,
            request_id=request_id,
        )
        return custody_detail(session, shipment)

    return run(sessions, work)


def _state(shipment: Shipment) -> dict[str, Any]:
    return {
        "status": shipment.status,
        "holder": shipment.holder,
        "seal_id": shipment.current_seal,
        "version": shipment.version,
        "monitoring_until": rfc3339(shipment.monitoring_until),
    }


def receipt_record(row: Receipt) -> dict[str, Any]:
    """The fields a receipt's signature covers."""
    return {
        "type": "receipt",
        "shipment_id": row.shipment_id,
        "shipment_version": row.shipment_version,
        "decision": row.decision,
        "reason": row.reason,
        "coi_scan": row.coi_scan,
        "seal_id": row.seal_id,
        "seal_matches": row.seal_matches,
        "site_id": row.site_id,
        "at": rfc3339(row.at),
    }


def record_receipt(
    *,
    sessions: sessionmaker[Session],
    shipment_id: int,
    principal: Principal,
    receipt: NewReceipt,
    secret_key: bytes,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Record a clinic's signed receipt after checking identity, seal and excursions."""
    if principal.role is not Role.CLINIC:
        raise PermissionDeniedError("only a clinic user of the destination site may receive")
    if receipt.decision is not rules.Decision.ACCEPT and not (receipt.reason or "").strip():
        raise ValidationError(f"a {receipt.decision.value} needs a reason", field="reason")
    scanned = str(parse_coi(receipt.coi_scan)) if receipt.coi_scan else ""
    hashed = patient_hash(receipt.patient, secret_key=secret_key)

    def work(session: Session) -> dict[str, Any]:
        shipment = visible(session, shipment_id, principal)
        if shipment.destination_site_id != principal.site_id:
            raise PermissionDeniedError(
                f"only a user of the destination site {shipment.destination_site_id} may "
                "receive this shipment"
            )
        claim_version(session, shipment, receipt.version)
        status = Status(shipment.status)
        transition = Transition(receipt.decision.value)
        after = apply(status, transition)
        seal_matches = receipt.seal_id == shipment.current_seal
        row = Receipt(
            shipment_id=shipment.id,
            shipment_version=shipment.version,
            decision=receipt.decision.value,
            reason=receipt.reason,
            coi_scan=scanned,
            seal_id=receipt.seal_id,
            seal_matches=seal_matches,
            received_by=principal.user_id,
            site_id=shipment.destination_site_id,
            at=utcnow(),
        )
        # The password is checked before the identity: a mismatch is then told only to the
        # signer, and recorded under their name.
        signature = sign(
            session,
            principal=principal,
            given=receipt.signature,
            record_type="receipt",
            record=receipt_record(row),
            request_id=request_id,
        )
        row.signature_id = signature.id
        if scanned != shipment.coi:
            raise _identity_refusal(
                shipment, principal, request_id, "coi-mismatch", "coi_scan",
                f"the scanned COI {scanned} is not this shipment's COI: do not use this product",
            )  # fmt: skip
        if hashed != shipment.patient_hash:
            raise _identity_refusal(
                shipment, principal, request_id, "patient-mismatch", "patient",
                "the patient identifiers do not match this shipment's patient: do not use "
                "this product",
            )  # fmt: skip
        rules.check_receipt(
            decision=receipt.decision,
            seal_matches=seal_matches,
            excursions=_excursion_states(session, shipment.id),
        )
        session.add(row)
        before = _state(shipment)
        shipment.status = after.value
        if after in FINISHED:
            shipment.monitoring_until = row.at
        session.flush()
        old, new = audit.changes(before, _state(shipment))
        audit.record(
            session,
            actor=principal.username,
            action=f"shipment.{transition.value}",
            entity="shipment",
            entity_id=shipment.id,
            old=old,
            new={**new, "receipt_id": row.id, "signature_id": signature.id},
            reason=receipt.reason,
            request_id=request_id,
        )
        return custody_detail(session, shipment)

    return run(sessions, work)


def _identity_refusal(
    shipment: Shipment,
    principal: Principal,
    request_id: str | None,
    code: str,
    field: str,
    message: str,
) -> RecordedRefusal:
    shipment_id = shipment.id  # read now: the shipment is detached after the rollback

    def record(session: Session) -> None:
        audit.record(
            session,
            actor=principal.username,
            action="receipt.refused",
            entity="shipment",
            entity_id=shipment_id,
            new={"code": code, "site": principal.site_id},
            reason=message,
            request_id=request_id,
        )

    return RecordedRefusal(ConflictError(message, code=code, field=field), record)


def _excursion_states(session: Session, shipment_id: int) -> list[rules.ExcursionState]:
    rows = session.scalars(
        select(Excursion).where(Excursion.shipment_id == shipment_id).order_by(Excursion.id)
    )
    return [
        rules.ExcursionState(
            id=r.id,
            kind=r.kind,
            status=r.status,
            resolution=r.resolution,
            version=r.version,
            disposition=None if r.disposition is None else rules.Disposition(r.disposition),
            disposition_version=r.disposition_version,
        )
        for r in rows
    ]


def cancel_shipment(
    *,
    sessions: sessionmaker[Session],
    shipment_id: int,
    principal: Principal,
    version: int,
    reason: str,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Call a shipment off before delivery; its COI is then free for a replacement."""
    if not reason.strip():
        raise ValidationError("a cancellation needs a reason", field="reason")

    def work(session: Session) -> dict[str, Any]:
        shipment = visible(session, shipment_id, principal)
        claim_version(session, shipment, version)
        after = apply(Status(shipment.status), Transition.CANCEL)
        before = _state(shipment)
        shipment.status = after.value
        shipment.monitoring_until = utcnow()
        session.flush()
        old, new = audit.changes(before, _state(shipment))
        audit.record(
            session,
            actor=principal.username,
            action="shipment.cancel",
            entity="shipment",
            entity_id=shipment.id,
            old=old,
            new=new,
            reason=reason,
            request_id=request_id,
        )
        return custody_detail(session, shipment)

    return run(sessions, work)


def disposition_record(row: ExcursionDisposition) -> dict[str, Any]:
    """The fields a disposition's signature covers."""
    return {
        "type": "disposition",
        "excursion_id": row.excursion_id,
        "excursion_version": row.excursion_version,
        "decision": row.decision,
        "reason": row.reason,
        "profile_name": row.profile_name,
        "profile": json.loads(row.profile_json),
        "at": rfc3339(row.at),
    }


def profile_snapshot(profile: Profile) -> dict[str, Any]:
    """The profile as it judged the excursion."""
    return {
        "name": profile.name,
        "min_c": profile.min_c,
        "max_c": profile.max_c,
        "grace_s": profile.grace_s,
        "signal_loss_s": profile.signal_loss_s,
    }


def record_disposition(
    *,
    sessions: sessionmaker[Session],
    excursion_id: int,
    principal: Principal,
    disposition: NewDisposition,
    profiles: Mapping[str, Profile],
    request_id: str | None = None,
) -> dict[str, Any]:
    """Record QA's signed decision on an excursion, with a copy of the profile that judged it."""
    if principal.role is not Role.QA:
        raise PermissionDeniedError("only QA may disposition an excursion")
    if not disposition.reason.strip():
        raise ValidationError("a disposition needs a reason", field="reason")

    def work(session: Session) -> dict[str, Any]:
        excursion = session.get(Excursion, excursion_id)
        if excursion is None:
            raise NotFoundError(f"excursion {excursion_id} not found")
        claimed = session.execute(
            update(Excursion)
            .where(Excursion.id == excursion_id, Excursion.version == disposition.version)
            .values(version=Excursion.version + 1)
            .execution_options(synchronize_session=False)
        )
        session.refresh(excursion)
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            raise ConflictError(
                f"excursion {excursion_id} is at version {excursion.version}, not "
                f"{disposition.version}: it changed since you saw it; reload it and sign again",
                code="stale-version",
                field="version",
            )
        shipment = session.get(Shipment, excursion.shipment_id)
        assert shipment is not None
        profile = profiles.get(shipment.profile)
        snapshot = profile_snapshot(profile) if profile is not None else {"name": shipment.profile}
        row = ExcursionDisposition(
            excursion_id=excursion.id,
            decision=disposition.decision.value,
            reason=disposition.reason,
            excursion_version=excursion.version,
            profile_name=shipment.profile,
            profile_json=json.dumps(snapshot, sort_keys=True),
            decided_by=principal.user_id,
            at=utcnow(),
        )
        signature = sign(
            session,
            principal=principal,
            given=disposition.signature,
            record_type="disposition",
            record=disposition_record(row),
            request_id=request_id,
        )
        row.signature_id = signature.id
        session.add(row)
        old = {"disposition": excursion.disposition}
        excursion.disposition = row.decision
        excursion.disposition_version = excursion.version
        # The shipment's record changed too: a receipt signed on the old one is stale.
        shipment.version = Shipment.version + 1
        session.flush()
        audit.record(
            session,
            actor=principal.username,
            action="excursion.disposition",
            entity="excursion",
            entity_id=excursion.id,
            old=old,
            new={"disposition": row.decision, "signature_id": signature.id},
            reason=disposition.reason,
            request_id=request_id,
        )
        return excursion_detail(session, excursion)

    return run(sessions, work)


def excursion_detail(session: Session, excursion: Excursion) -> dict[str, Any]:
    """An excursion with its dispositions and their signatures."""
    from coldchain.services.views import excursion_view

    body = excursion_view(excursion)
    rows = session.scalars(
        select(ExcursionDisposition)
        .where(ExcursionDisposition.excursion_id == excursion.id)
        .order_by(ExcursionDisposition.id)
    )
    body["dispositions"] = [
        {
            "decision": r.decision,
            "reason": r.reason,
            "excursion_version": r.excursion_version,
            "profile": json.loads(r.profile_json),
            "at": rfc3339(r.at),
            "signature": signature_view(r.signature, disposition_record(r)),
        }
        for r in rows
    ]
    return body


def get_excursion(
    *, sessions: sessionmaker[Session], excursion_id: int, principal: Principal
) -> dict[str, Any]:
    """Return an excursion the caller may see, with its dispositions."""
    with sessions() as session:
        excursion = session.get(Excursion, excursion_id)
        if excursion is None:
            raise NotFoundError(f"excursion {excursion_id} not found")
        visible(session, excursion.shipment_id, principal)
        return excursion_detail(session, excursion)


def _handoffs(session: Session, shipment_id: int) -> list[Handoff]:
    return list(
        session.scalars(
            select(Handoff).where(Handoff.shipment_id == shipment_id).order_by(Handoff.seq)
        )
    )


def custody_view(session: Session, shipment: Shipment) -> dict[str, Any]:
    """The custody chain and receipts of a shipment, each with its signature."""
    chain = []
    for row in _handoffs(session, shipment.id):
        chain.append(
            {
                "seq": row.seq,
                "transition": row.transition,
                "from_party": row.from_party,
                "to_party": row.to_party,
                "location": row.location,
                "seal_id": row.seal_id,
                "seal_changed_from": row.seal_changed_from,
                "seal_change_reason": row.seal_change_reason,
                "condition": row.condition,
                "notes": row.notes,
                "at": rfc3339(row.at),
                "signature": signature_view(row.signature, handoff_record(row)),
            }
        )
    receipts = []
    for r in session.scalars(
        select(Receipt).where(Receipt.shipment_id == shipment.id).order_by(Receipt.id)
    ):
        receipts.append(
            {
                "decision": r.decision,
                "reason": r.reason,
                "coi_scan": r.coi_scan,
                "seal_id": r.seal_id,
                "seal_matches": r.seal_matches,
                "site_id": r.site_id,
                "at": rfc3339(r.at),
                "signature": signature_view(r.signature, receipt_record(r)),
            }
        )
    return {"custody": chain, "receipts": receipts}
