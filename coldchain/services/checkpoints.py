"""Signed checkpoints of the audit chain's head (Ed25519), kept outside the server."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from coldchain.domain.audit import Checkpoint
from coldchain.domain.errors import NotFoundError, ValidationError
from coldchain.domain.signatures import canonical_json
from coldchain.services import audit
from coldchain.services.timefmt import rfc3339
from coldchain.store.models import AuditCheckpoint, AuditHead, utcnow


class CheckpointError(Exception):
    """A checkpoint file or key that cannot be used."""


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint with the key and signature that vouch for it."""

    checkpoint: Checkpoint
    public_key: str  # raw Ed25519 public key, hex
    signature: str  # hex

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.checkpoint.seq,
            "hash": self.checkpoint.hash,
            "at": self.checkpoint.at,
            "public_key": self.public_key,
            "signature": self.signature,
        }


def signed_message(checkpoint: Checkpoint) -> bytes:
    """The bytes a checkpoint's signature covers."""
    return canonical_json(
        {"seq": checkpoint.seq, "hash": checkpoint.hash, "at": checkpoint.at}
    ).encode()


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """Load the signing key, or create it (mode 0600) with its public half beside it."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise CheckpointError(f"{path} is not an Ed25519 private key")
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    public_path(path).write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key


def public_path(private_key_path: Path) -> Path:
    return private_key_path.with_name(private_key_path.stem + ".pub.pem")


def public_hex(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def load_public_key(path: Path) -> str:
    """Read a pinned public key (PEM, or raw hex) and return it as hex."""
    text = path.read_text().strip()
    if "BEGIN PUBLIC KEY" in text:
        key = serialization.load_pem_public_key(text.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise CheckpointError(f"{path} is not an Ed25519 public key")
        return public_hex(key)
    return text


def make_checkpoint(
    *, sessions: sessionmaker[Session], key: Ed25519PrivateKey, actor: str = "system:cli"
) -> SignedCheckpoint:
    """Sign the current head, keep it in the database and record the act in the trail."""
    with sessions.begin() as session:
        head = session.get(AuditHead, 1)
        if head is None or head.seq == 0:
            raise ValidationError("the audit trail is empty: nothing to checkpoint")
        checkpoint = Checkpoint(seq=head.seq, hash=head.hash, at=str(rfc3339(utcnow())))
        signed = SignedCheckpoint(
            checkpoint,
            public_hex(key.public_key()),
            key.sign(signed_message(checkpoint)).hex(),
        )
        session.add(AuditCheckpoint(**signed.as_dict()))
        audit.record(
            session,
            actor=actor,
            action="audit.checkpoint",
            entity="audit",
            entity_id=checkpoint.seq,
            new={"seq": checkpoint.seq, "hash": checkpoint.hash, "public_key": signed.public_key},
        )
    return signed


def latest(*, sessions: sessionmaker[Session]) -> SignedCheckpoint:
    """The newest checkpoint kept in the database."""
    with sessions() as session:
        row = session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc())).first()
        if row is None:
            raise NotFoundError("no audit checkpoint yet: run `coldchain audit checkpoint`")
        return SignedCheckpoint(
            Checkpoint(row.seq, row.hash, row.at), row.public_key, row.signature
        )


def parse(data: Any) -> SignedCheckpoint:
    """Read a checkpoint from its JSON form."""
    try:
        return SignedCheckpoint(
            Checkpoint(int(data["seq"]), str(data["hash"]), str(data["at"])),
            str(data["public_key"]),
            str(data["signature"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"not a checkpoint: {exc}") from exc


def read_file(path: Path) -> SignedCheckpoint:
    try:
        return parse(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc


def check_signature(signed: SignedCheckpoint, pinned_public_key: str | None) -> None:
    """Refuse a checkpoint not signed by the pinned key (or by its own key, if none pinned)."""
    key_hex = pinned_public_key or signed.public_key
    if pinned_public_key and pinned_public_key != signed.public_key:
        raise CheckpointError("the checkpoint was signed with another key than the pinned one")
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(key_hex))
        key.verify(bytes.fromhex(signed.signature), signed_message(signed.checkpoint))
    except (InvalidSignature, ValueError) as exc:
        raise CheckpointError("the checkpoint's signature is not valid") from exc
