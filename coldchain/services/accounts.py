"""Use cases for sites, users, API tokens and loggers."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import date

from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from coldchain.domain.errors import ConflictError, NotFoundError, ValidationError
from coldchain.domain.roles import SITE_BOUND, SITE_KINDS, Role
from coldchain.domain.senml import LOGGER_ID_RE
from coldchain.services import audit
from coldchain.store.models import ApiToken, Logger, Site, User, utcnow

_hasher = PasswordHasher()
SYSTEM_CLI = "system:cli"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of a request."""

    user_id: int
    username: str
    full_name: str
    role: Role
    site_id: str | None


def token_digest(token: str) -> str:
    """Return the SHA-256 under which a token is kept (tokens are random, so no salt is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def parse_role(role: str) -> Role:
    """Return the role named, or a 400 naming the field."""
    try:
        return Role(role)
    except ValueError:
        raise ValidationError(
            f"role must be one of {', '.join(r.value for r in Role)}", field="role"
        ) from None


def add_site(
    *,
    sessions: sessionmaker[Session],
    site_id: str,
    name: str,
    kind: str,
    actor: str = SYSTEM_CLI,
) -> Site:
    """Register a site."""
    if kind not in SITE_KINDS:
        raise ValidationError(f"kind must be one of {', '.join(SITE_KINDS)}", field="kind")
    if not site_id or len(site_id) > 64:
        raise ValidationError("site id must be 1 to 64 characters", field="site")
    with sessions.begin() as session:
        if session.get(Site, site_id) is not None:
            raise ConflictError(f"site {site_id} exists already", field="site")
        site = Site(id=site_id, name=name, kind=kind)
        session.add(site)
        audit.record(
            session,
            actor=actor,
            action="site.created",
            entity="site",
            entity_id=site_id,
            new={"name": name, "kind": kind},
        )
    return site


def add_user(
    *,
    sessions: sessionmaker[Session],
    username: str,
    role: str,
    site_id: str | None,
    password: str,
    full_name: str | None = None,
    actor: str = SYSTEM_CLI,
) -> tuple[User, str]:
    """Create a user with a hashed password and a first API token; return both."""
    role_ = parse_role(role)
    if role_ in SITE_BOUND and not site_id:
        raise ValidationError(f"a {role_} user must be bound to a site", field="site")
    if len(password) < 8:
        raise ValidationError("password must have at least 8 characters", field="password")
    with sessions.begin() as session:
        if site_id is not None and session.get(Site, site_id) is None:
            raise NotFoundError(f"site {site_id} does not exist", field="site")
        if session.scalar(select(User.id).where(User.username == username)) is not None:
            raise ConflictError(f"user {username} exists already", field="name")
        user = User(
            username=username,
            full_name=full_name or username,
            role=role_.value,
            site_id=site_id,
            password_hash=_hasher.hash(password),
        )
        session.add(user)
        session.flush()
        token = secrets.token_urlsafe(32)
        session.add(ApiToken(user_id=user.id, token_hash=token_digest(token)))
        audit.record(
            session,
            actor=actor,
            action="user.created",
            entity="user",
            entity_id=username,
            new={"role": role_.value, "site": site_id, "full_name": user.full_name},
        )
    return user, token


def principal_for_token(*, sessions: sessionmaker[Session], token: str) -> Principal | None:
    """Return who holds a bearer token, or None for an unknown, revoked or locked one."""
    with sessions() as session:
        row = session.execute(
            select(User)
            .join(ApiToken, ApiToken.user_id == User.id)
            .where(ApiToken.token_hash == token_digest(token), ApiToken.revoked_at.is_(None))
        ).scalar_one_or_none()
        if row is None or row.locked_at is not None:
            return None
        return Principal(row.id, row.username, row.full_name, Role(row.role), row.site_id)


def add_logger(
    *,
    sessions: sessionmaker[Session],
    logger_id: str,
    model: str | None = None,
    firmware: str | None = None,
    actor: str = SYSTEM_CLI,
    request_id: str | None = None,
    calibration_due: date | None = None,
) -> Logger:
    """Register a logger so that its readings are accepted."""
    if not isinstance(logger_id, str) or not LOGGER_ID_RE.match(logger_id):
        raise ValidationError("logger id must match [A-Za-z0-9][A-Za-z0-9_-]{0,63}", field="id")
    with sessions.begin() as session:
        if session.get(Logger, logger_id) is not None:
            raise ConflictError(f"logger {logger_id} exists already", field="id")
        logger = Logger(
            id=logger_id,
            model=model,
            firmware=firmware,
            calibration_due=calibration_due,
            created_at=utcnow(),
        )
        session.add(logger)
        audit.record(
            session,
            actor=actor,
            action="logger.registered",
            entity="logger",
            entity_id=logger_id,
            new={
                "model": model,
                "firmware": firmware,
                "calibration_due": None if calibration_due is None else calibration_due.isoformat(),
            },
            request_id=request_id,
        )
    return logger


def list_sites(*, sessions: sessionmaker[Session]) -> list[Site]:
    """Return every site, by id."""
    with sessions() as session:
        return list(session.scalars(select(Site).order_by(Site.id)))


def list_loggers(*, sessions: sessionmaker[Session]) -> list[Logger]:
    """Return every logger, by id."""
    with sessions() as session:
        return list(session.scalars(select(Logger).order_by(Logger.id)))


def set_role(
    *,
    sessions: sessionmaker[Session],
    username: str,
    role: str,
    site_id: str | None,
    reason: str,
    actor: str = SYSTEM_CLI,
) -> None:
    """Change a user's role (and site); the change and its reason are audited."""
    role_ = parse_role(role)
    if not reason.strip():
        raise ValidationError("a role change needs a reason", field="reason")
    if role_ in SITE_BOUND and not site_id:
        raise ValidationError(f"a {role_} user must be bound to a site", field="site")
    with sessions.begin() as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            raise NotFoundError(f"no user {username}", field="name")
        if site_id is not None and session.get(Site, site_id) is None:
            raise NotFoundError(f"site {site_id} does not exist", field="site")
        before = {"role": user.role, "site": user.site_id}
        user.role = role_.value
        user.site_id = site_id if role_ in SITE_BOUND else None
        old, new = audit.changes(before, {"role": user.role, "site": user.site_id})
        audit.record(
            session,
            actor=actor,
            action="user.role_changed",
            entity="user",
            entity_id=username,
            old=old,
            new=new,
            reason=reason,
        )


def unlock_user(
    *, sessions: sessionmaker[Session], username: str, reason: str, actor: str = SYSTEM_CLI
) -> None:
    """Unlock a user and reset their count of wrong passwords; the unlock is audited."""
    if not reason.strip():
        raise ValidationError("an unlock needs a reason", field="reason")
    with sessions.begin() as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            raise NotFoundError(f"no user {username}", field="name")
        was_locked = user.locked_at is not None
        user.locked_at = None
        user.failed_logins = 0
        audit.record(
            session,
            actor=actor,
            action="user.unlocked",
            entity="user",
            entity_id=username,
            old={"locked": was_locked},
            new={"locked": False},
            reason=reason,
        )


def principal_for_user_id(*, sessions: sessionmaker[Session], user_id: int) -> Principal | None:
    """Return the user of a web session, or None if gone or locked."""
    with sessions() as session:
        row = session.get(User, user_id)
        if row is None or row.locked_at is not None:
            return None
        return Principal(row.id, row.username, row.full_name, Role(row.role), row.site_id)


def sign_in(
    *, sessions: sessionmaker[Session], username: str, password: str, request_id: str | None
) -> Principal:
    """Check a user name and password for the web pages; failures count towards the lock.

    Wrong passwords at sign-in and at signing share one count: five in a row lock the
    account. Each failure of a known user, and each lock, is audited; an unknown name is
    refused the same way, without telling which of the two was wrong.
    """
    from argon2.exceptions import InvalidHashError, VerificationError

    from coldchain.domain.errors import AuthenticationError
    from coldchain.domain.signatures import after_wrong_password

    refused = AuthenticationError("wrong user name or password", code="sign-in-failed")
    with sessions.begin() as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            _hasher.hash(password)  # the same work as a real check: no timing oracle
            raise refused
        if user.locked_at is not None:
            raise AuthenticationError(
                "this account is locked after repeated wrong passwords: ask an administrator",
                code="account-locked",
            )
        try:
            matches = bool(_hasher.verify(user.password_hash, password))
        except (VerificationError, InvalidHashError):
            matches = False
        if matches:
            user.failed_logins = 0
            return Principal(user.id, user.username, user.full_name, Role(user.role), user.site_id)
        attempt = after_wrong_password(user.failed_logins)
        user.failed_logins = attempt.failures
        audit.record(
            session,
            actor=username,
            action="login.failed",
            entity="user",
            entity_id=username,
            new={"failed_attempts": attempt.failures},
            request_id=request_id,
        )
        if attempt.locks:
            user.locked_at = utcnow()
            audit.record(
                session,
                actor="system:security",
                action="user.locked",
                entity="user",
                entity_id=username,
                old={"locked": False},
                new={"locked": True},
                reason=f"{attempt.failures} wrong passwords in a row",
                request_id=request_id,
            )
    raise refused


def record_rate_limited(
    *,
    sessions: sessionmaker[Session],
    username: str,
    kind: str,
    scope: str,
    address: str,
    limit: str,
    request_id: str | None,
) -> None:
    """Audit that a known user's sign-ins or signatures hit a rate limit; ignore unknown names.

    Unknown names are not audited: anyone could make them up, and grow the chain at will.
    """
    with sessions.begin() as session:
        if session.scalar(select(User.id).where(User.username == username)) is None:
            return
        audit.record(
            session,
            actor="system:security",
            action=f"{kind}.rate_limited",
            entity="user",
            entity_id=username,
            new={"scope": scope, "address": address, "limit": limit},
            request_id=request_id,
        )
