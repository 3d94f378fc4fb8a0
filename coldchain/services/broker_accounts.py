"""Broker accounts: Mosquitto's password file and ACL file, kept by coldchain.

Each logger connects with its own username (its logger id) and a random password; the ACL
lets it publish only its own readings and status and read only its own acks (CONTRACT
section 2). The backend (worker and ack helper) has an account of its own. Mosquitto reads
both files at start and again on SIGHUP.

The hashes are Mosquitto 2.0's own format, made here so that provisioning needs no
`mosquitto_passwd`: `$7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512>`.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import logging
import os
import re
import secrets
import signal
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from coldchain.domain.errors import ConflictError, NotFoundError, ValidationError
from coldchain.domain.senml import LOGGER_ID_RE
from coldchain.services import audit
from coldchain.services.accounts import SYSTEM_CLI, add_logger
from coldchain.store.models import Logger

log = logging.getLogger(__name__)

# Mosquitto 2.0's own default (mosquitto_passwd). The broker derives the hash again at every
# CONNECT, and the passwords made here are 192 random bits, which no iteration count would
# make easier or harder to guess.
HASH_ITERATIONS = 101
SALT_BYTES = 12  # what mosquitto_passwd uses
PBKDF2_SHA512 = 7  # Mosquitto's hash type number
PASSWORD_BYTES = 24

TOPIC_ROOT = "coldchain/v1"
# Lines above this one in the ACL file are the operator's own and are kept on every rewrite.
ACL_MARKER = "# --- coldchain: generated below; rules above this line are kept ---"

# Usernames go into line-oriented files: the logger id pattern keeps out ':', spaces,
# newlines and the MQTT wildcards that would turn %u into a topic filter.
USERNAME_RE = LOGGER_ID_RE
_HASH_RE = re.compile(r"^\$7\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$")


class BrokerFileError(Exception):
    """A password or ACL file that cannot be read, parsed or written."""


@dataclass(frozen=True)
class BrokerFiles:
    """Where Mosquitto's password and ACL files are, and how to make it re-read them."""

    password_file: Path
    acl_file: Path
    pid_file: Path | None = None


@dataclass(frozen=True)
class IssuedAccount:
    """A broker account just created or rotated; the password is shown once, never stored."""

    username: str
    password: str
    rotated: bool
    logger_registered: bool = False
    reloaded: bool = False


# Pure parts: hashes and file texts.


def check_username(username: str, field: str = "username") -> str:
    """Return the username if it is safe in the password and ACL files, else refuse it."""
    if not isinstance(username, str) or not USERNAME_RE.match(username):
        raise ValidationError(f"{field} must match [A-Za-z0-9][A-Za-z0-9_-]{{0,63}}", field=field)
    return username


def new_password() -> str:
    """Return a random password that is safe in an mqtt:// URL without quoting."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


def hash_password(
    password: str, *, salt: bytes | None = None, iterations: int = HASH_ITERATIONS
) -> str:
    """Return Mosquitto 2.0's PBKDF2-SHA512 hash of a password (`$7$...`)."""
    if iterations < 1:
        raise ValueError("iterations must be at least 1")
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return (
        f"${PBKDF2_SHA512}${iterations}$"
        f"{base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    )


def check_password(password: str, encoded: str) -> bool:
    """Return whether a password matches a `$7$` hash, as Mosquitto would decide."""
    match = _HASH_RE.match(encoded)
    if match is None:
        return False
    iterations, salt, digest = match.groups()
    try:
        expected = base64.b64decode(digest, validate=True)
        derived = hashlib.pbkdf2_hmac(
            "sha512", password.encode(), base64.b64decode(salt, validate=True), int(iterations)
        )
    except ValueError:
        return False
    return hmac.compare_digest(derived, expected)


def parse_password_file(text: str) -> dict[str, str]:
    """Return {username: hash} of a Mosquitto password file, in file order."""
    entries: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        username, sep, encoded = line.partition(":")
        if not sep or not username.strip() or not encoded.strip():
            raise BrokerFileError(f"password file line {number} is not USERNAME:HASH")
        entries[username.strip()] = encoded.strip()
    return entries


def render_password_file(entries: Mapping[str, str]) -> str:
    """Return the text of a Mosquitto password file."""
    return "".join(f"{username}:{encoded}\n" for username, encoded in entries.items())


def split_acl(text: str) -> tuple[str, list[str]]:
    """Return (the operator's own rules, the backend usernames) of an ACL file we wrote."""
    local, sep, generated = text.partition(ACL_MARKER)
    if not sep:
        # Not written by coldchain yet: everything in it is the operator's.
        return text, []
    backends = [
        line.split(None, 1)[1].strip()
        for line in generated.splitlines()
        if line.startswith("user ") and len(line.split(None, 1)) == 2
    ]
    return local, backends


def acl_text(backend_usernames: Iterable[str], local_rules: str = "") -> str:
    """Return the ACL file: the operator's rules, then the loggers' pattern, then the backend."""
    loggers = f"{TOPIC_ROOT}/loggers"
    lines = [
        ACL_MARKER,
        "# Written by `coldchain loggers provision` and `coldchain broker account`; Mosquitto",
        "# re-reads it on SIGHUP. A logger's username is its logger id (%u): it may publish",
        "# only its own readings and status (its Last Will), and read only its own acks.",
        f"pattern write {loggers}/%u/readings",
        f"pattern write {loggers}/%u/status",
        f"pattern read {loggers}/%u/ack",
        "",
        "# The backend: the worker reads every logger's readings (also through the shared",
        "# subscription $share/coldchain-ingest/...: Mosquitto checks the topic of each message",
        "# it delivers) and statuses; it and its ack helper publish acks and excursion alerts.",
    ]
    for username in dict.fromkeys(backend_usernames):
        check_username(username)
        lines += [
            f"user {username}",
            f"topic read {loggers}/+/readings",
            f"topic read {loggers}/+/status",
            f"topic write {loggers}/+/ack",
            f"topic write {TOPIC_ROOT}/alerts/excursions",
            "",
        ]
    local = local_rules.rstrip("\n")
    return (local + "\n" if local else "") + "\n".join(lines).rstrip("\n") + "\n"


# Files.


def write_atomically(path: Path, text: str, mode: int, *, private: bool = False) -> None:
    """Replace a file in one step (temp file + rename).

    A new file gets `mode`; an existing one keeps its owner, group and mode (a private file
    never readable by others), so that a file given to Mosquitto's user stays its own.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        before = path.stat()
        owner: tuple[int, int] | None = (before.st_uid, before.st_gid)
        mode = before.st_mode & (0o770 if private else 0o777)
    except FileNotFoundError:
        owner = None
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), mode)
            if owner is not None and os.geteuid() == 0:
                # Mosquitto reads the files again on SIGHUP after dropping to its own user:
                # a file the operator gave to that user must stay readable by it.
                os.fchown(handle.fileno(), *owner)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


@contextmanager
def _locked(files: BrokerFiles) -> Iterator[None]:
    """Serialise rewrites, so that two provisionings at once cannot lose an account."""
    lock_path = files.password_file.with_name(files.password_file.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise BrokerFileError(f"cannot read {path}: {exc}") from exc


def read_accounts(files: BrokerFiles) -> tuple[dict[str, str], list[str]]:
    """Return the password file's entries and the ACL's backend usernames."""
    return parse_password_file(_read(files.password_file)), split_acl(_read(files.acl_file))[1]


def _rewrite(
    files: BrokerFiles,
    *,
    set_hash: tuple[str, str] | None = None,
    remove: str | None = None,
    add_backend: str | None = None,
) -> bool:
    """Apply one change to both files; return whether the username had an entry before."""
    entries = parse_password_file(_read(files.password_file))
    local, backends = split_acl(_read(files.acl_file))
    existed = False
    if set_hash is not None:
        existed = set_hash[0] in entries
        entries[set_hash[0]] = set_hash[1]
    if remove is not None:
        existed = entries.pop(remove, None) is not None
        backends = [name for name in backends if name != remove]
    if add_backend is not None and add_backend not in backends:
        backends.append(add_backend)
    try:
        # The ACL first: a new account is usable only once its password is written.
        write_atomically(files.acl_file, acl_text(backends, local), 0o644)
        write_atomically(files.password_file, render_password_file(entries), 0o600, private=True)
    except OSError as exc:
        raise BrokerFileError(f"cannot write the broker files: {exc}") from exc
    return existed


def reload_broker(pid_file: Path | None) -> bool:
    """Send Mosquitto SIGHUP (it re-reads the password and ACL files); False if not sent."""
    if pid_file is None:
        return False
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError) as exc:
        # The files are written and the password must still reach the operator: a broker
        # that could not be signalled is reported, not an error that would swallow it.
        log.warning("cannot signal the broker named in %s: %s", pid_file, exc)
        return False
    return True


# Use cases.


def provision_logger(
    *,
    sessions: sessionmaker[Session],
    files: BrokerFiles,
    logger_id: str,
    model: str | None = None,
    firmware: str | None = None,
    actor: str = SYSTEM_CLI,
) -> IssuedAccount:
    """Register the logger if needed and give it a new broker password (rotating any old one)."""
    check_username(logger_id, field="logger_id")
    if logger_id in read_accounts(files)[1]:
        raise ConflictError(f"{logger_id} is a backend account", field="logger_id")
    registered = False
    with sessions() as session:
        known = session.get(Logger, logger_id) is not None
    if not known:
        add_logger(
            sessions=sessions, logger_id=logger_id, model=model, firmware=firmware, actor=actor
        )
        registered = True
    password = new_password()
    with _locked(files):
        if logger_id in read_accounts(files)[1]:
            raise ConflictError(f"{logger_id} is a backend account", field="logger_id")
        with sessions.begin() as session:
            rotated = logger_id in read_accounts(files)[0]
            audit.record(
                session,
                actor=actor,
                action="logger.broker_password_rotated"
                if rotated
                else "logger.broker_account_issued",
                entity="logger",
                entity_id=logger_id,
                new={"username": logger_id, "password_file": str(files.password_file)},
            )
            # Written inside the transaction: a file that cannot be written rolls back the
            # audit event, so the trail never records an account that was not made.
            _rewrite(files, set_hash=(logger_id, hash_password(password)))
    reloaded = reload_broker(files.pid_file)
    return IssuedAccount(logger_id, password, rotated, registered, reloaded)


def issue_backend_account(
    *,
    sessions: sessionmaker[Session],
    files: BrokerFiles,
    username: str,
    actor: str = SYSTEM_CLI,
) -> IssuedAccount:
    """Create or rotate the backend's broker account (read readings, publish acks and alerts)."""
    check_username(username)
    password = new_password()
    with _locked(files), sessions.begin() as session:
        if session.get(Logger, username) is not None:
            raise ConflictError(f"{username} is a logger id", field="username")
        rotated = username in read_accounts(files)[0]
        audit.record(
            session,
            actor=actor,
            action="broker.backend_password_rotated"
            if rotated
            else "broker.backend_account_issued",
            entity="broker_account",
            entity_id=username,
            new={"username": username, "password_file": str(files.password_file)},
        )
        _rewrite(files, set_hash=(username, hash_password(password)), add_backend=username)
    reloaded = reload_broker(files.pid_file)
    return IssuedAccount(username, password, rotated, reloaded=reloaded)


def revoke_account(
    *,
    sessions: sessionmaker[Session],
    files: BrokerFiles,
    username: str,
    actor: str = SYSTEM_CLI,
) -> bool:
    """Remove a logger's or the backend's broker account; return whether SIGHUP was sent."""
    check_username(username)
    with _locked(files), sessions.begin() as session:
        is_logger = session.get(Logger, username) is not None
        if username not in read_accounts(files)[0]:
            raise NotFoundError(f"no broker account {username}", field="username")
        audit.record(
            session,
            actor=actor,
            action="logger.broker_account_revoked" if is_logger else "broker.account_revoked",
            entity="logger" if is_logger else "broker_account",
            entity_id=username,
            old={"username": username},
        )
        _rewrite(files, remove=username)
    return reload_broker(files.pid_file)


def files_from_settings(values: Mapping[str, object]) -> BrokerFiles:
    """Return the broker files named by the [broker] settings."""
    pid_file = str(values.get("broker_pid_file") or "")
    return BrokerFiles(
        password_file=Path(str(values["broker_password_file"])),
        acl_file=Path(str(values["broker_acl_file"])),
        pid_file=Path(pid_file) if pid_file else None,
    )
