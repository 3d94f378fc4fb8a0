"""Signing a record: re-entered password, lockout, and refusals that are recorded anyway."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session, sessionmaker

from coldchain.domain.errors import AuthenticationError, DomainError
from coldchain.domain.signatures import after_wrong_password, check_meaning, record_hash
from coldchain.services import audit
from coldchain.services.accounts import Principal
from coldchain.services.timefmt import rfc3339
from coldchain.store.models import Signature, User, utcnow

T = TypeVar("T")
_hasher = PasswordHasher()


@dataclass(frozen=True)
class SignatureInput:
    """What the signer sends: the password again, and what the signature means."""

    password: str
    meaning: str


class RecordedRefusal(Exception):  # noqa: N818 - a control-flow signal, not an error type
    """A refusal whose trace must outlive the rolled-back transaction of the request."""

    def __init__(self, error: DomainError, record: Callable[[Session], None]):
        super().__init__(error.message)
        self.error = error
        self.record = record


def run(sessions: sessionmaker[Session], work: Callable[[Session], T]) -> T:
    """Run `work` in one transaction; a RecordedRefusal rolls it back, is recorded, and raised."""
    try:
        with sessions.begin() as session:
            return work(session)
    except RecordedRefusal as refusal:
        with sessions.begin() as session:
            refusal.record(session)
        raise refusal.error from None


def sign(
    session: Session,
    *,
    principal: Principal,
    given: SignatureInput,
    record_type: str,
    record: Mapping[str, Any],
    request_id: str | None,
) -> Signature:
    """Check the signer's password and return the signature bound to the record's hash.

    A wrong password is refused with 401 and counted in a transaction of its own; the fifth
    in a row locks the account (its tokens stop working) until an administrator unlocks it.
    """
    meaning = check_meaning(given.meaning)
    user = session.get(User, principal.user_id)
    if user is None or user.locked_at is not None:
        raise AuthenticationError("the account is locked", field="signature.password")
    if not _password_matches(user.password_hash, given.password):
        raise RecordedRefusal(
            AuthenticationError(
                "the password does not match: the signature is refused",
                field="signature.password",
                code="bad-signature",
            ),
            lambda s: _count_failure(s, principal, record_type, request_id),
        )
    if user.failed_logins:
        user.failed_logins = 0
    signature = Signature(
        user_id=user.id,
        username=user.username,
        printed_name=user.full_name,
        meaning=meaning,
        signed_at=utcnow(),
        record_type=record_type,
        record_hash=record_hash(record),
    )
    session.add(signature)
    session.flush()
    audit.record(
        session,
        actor=user.username,
        action="signature.signed",
        entity="signature",
        entity_id=signature.id,
        new={
            "printed_name": signature.printed_name,
            "meaning": signature.meaning,
            "record_type": record_type,
            "record_hash": signature.record_hash,
        },
        request_id=request_id,
    )
    return signature


def _password_matches(password_hash: str, password: str) -> bool:
    try:
        return bool(_hasher.verify(password_hash, password))
    except (VerificationError, InvalidHashError):
        return False


def _count_failure(
    session: Session, principal: Principal, record_type: str, request_id: str | None
) -> None:
    user = session.get(User, principal.user_id)
    assert user is not None
    attempt = after_wrong_password(user.failed_logins)
    user.failed_logins = attempt.failures
    audit.record(
        session,
        actor=principal.username,
        action="signature.refused",
        entity="user",
        entity_id=principal.username,
        new={"failed_signatures": attempt.failures, "record_type": record_type},
        reason="wrong password",
        request_id=request_id,
    )
    if attempt.locks and user.locked_at is None:
        user.locked_at = utcnow()
        audit.record(
            session,
            actor="system:security",
            action="user.locked",
            entity="user",
            entity_id=principal.username,
            old={"locked": False},
            new={"locked": True},
            reason=f"{attempt.failures} wrong passwords in a row",
            request_id=request_id,
        )


def signature_view(signature: Signature, record: Mapping[str, Any]) -> dict[str, Any]:
    """Return a signature as shown on its record, with whether the record still matches it."""
    return {
        "printed_name": signature.printed_name,
        "username": signature.username,
        "meaning": signature.meaning,
        "signed_at": rfc3339(signature.signed_at),
        "record_hash": signature.record_hash,
        "valid": record_hash(record) == signature.record_hash,
    }
