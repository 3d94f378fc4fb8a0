"""Read the dead-letter store."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from coldchain.services.timefmt import rfc3339
from coldchain.store.models import DeadLetter, DeadLetterMessage


def list_dead_letters(
    *,
    sessions: sessionmaker[Session],
    reason: str | None,
    logger_id: str | None,
    since: datetime | None,
    limit: int | None,
    offset: int,
) -> list[dict[str, Any]]:
    """Return refusals with their raw message, newest first."""
    query = select(DeadLetter, DeadLetterMessage).join(DeadLetter.message)
    if reason:
        query = query.where(DeadLetter.reason == reason)
    if logger_id:
        query = query.where(DeadLetterMessage.logger_id == logger_id)
    if since is not None:
        query = query.where(DeadLetterMessage.received_at >= since)
    query = query.order_by(DeadLetter.id.desc()).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    with sessions() as session:
        return [_view(letter, message) for letter, message in session.execute(query)]


def _view(letter: DeadLetter, message: DeadLetterMessage) -> dict[str, Any]:
    try:
        payload, encoding = message.payload.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        payload, encoding = base64.b64encode(message.payload).decode(), "base64"
    return {
        "id": letter.id,
        "message_id": message.id,
        "reason": letter.reason,
        "detail": letter.detail,
        "record_index": letter.record_index,
        "topic": message.topic,
        "logger_id": message.logger_id,
        "received_at": rfc3339(message.received_at),
        "payload": payload,
        "payload_encoding": encoding,
    }
