"""The audit chain: what an event's hash covers, and how a chain is verified.

Each event's hash is the SHA-256 of the canonical JSON (sorted keys, no spaces, UTF-8, floats
as text, times as RFC 3339 UTC strings) of its fields other than the hash itself, including
the previous event's hash. Editing, deleting or reordering events therefore breaks the chain
at the first event touched. Cutting off the tail, or rewriting every hash after an edit,
leaves a chain that is consistent in itself: only a checkpoint kept outside the server (the
head's sequence and hash, signed) catches those.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from coldchain.domain.signatures import record_hash

GENESIS_HASH = "0" * 64
HASHED_FIELDS = (
    "seq",
    "at",
    "actor",
    "action",
    "entity",
    "entity_id",
    "old_values",
    "new_values",
    "reason",
    "request_id",
    "prev_hash",
)


def event_hash(event: Mapping[str, Any]) -> str:
    """Return the hash of an event from its hashed fields (any other key is ignored)."""
    return record_hash({name: event.get(name) for name in HASHED_FIELDS})


@dataclass(frozen=True)
class Checkpoint:
    """A head of the chain as it was at some time, kept (and signed) outside the server."""

    seq: int
    hash: str
    at: str


@dataclass(frozen=True)
class Verdict:
    """The result of verifying a chain."""

    ok: bool
    events: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None
    checkpoint_seq: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "first_bad_seq": self.first_bad_seq,
            "problem": self.problem,
            "checkpoint_seq": self.checkpoint_seq,
        }


def verify_chain(
    events: Iterable[Mapping[str, Any]], checkpoint: Checkpoint | None = None
) -> Verdict:
    """Walk the events in the order given and name the first one that breaks the chain.

    Each event is a mapping of the hashed fields plus `hash`. Sequence numbers must run
    1, 2, 3... with no gap; each `prev_hash` must be the hash of the event before; each hash
    must be that of the event's content. With a checkpoint, the chain must reach the
    checkpoint's sequence and hold the checkpointed hash there.
    """
    expected_seq, prev_hash, count = 1, GENESIS_HASH, 0
    hash_at_checkpoint: str | None = None
    for event in events:
        count += 1
        seq = event.get("seq")
        if seq != expected_seq:
            if isinstance(seq, int) and seq > expected_seq:
                problem = f"event {expected_seq} is missing (the next one is {seq})"
            else:
                problem = f"event {seq} is out of order: expected event {expected_seq} here"
            return _bad(count, expected_seq - 1, prev_hash, expected_seq, problem, checkpoint)
        if event.get("prev_hash") != prev_hash:
            problem = f"event {seq} does not link to event {seq - 1}: its prev_hash differs"
            return _bad(count, seq - 1, prev_hash, seq, problem, checkpoint)
        if event_hash(event) != event.get("hash"):
            problem = f"event {seq} was altered: its content does not hash to its stored hash"
            return _bad(count, seq - 1, prev_hash, seq, problem, checkpoint)
        prev_hash = str(event["hash"])
        if checkpoint is not None and seq == checkpoint.seq:
            hash_at_checkpoint = prev_hash
        expected_seq += 1
    head_seq = expected_seq - 1
    if checkpoint is not None:
        if head_seq < checkpoint.seq:
            problem = (
                f"the chain ends at event {head_seq} but the checkpoint of {checkpoint.at} "
                f"vouches for event {checkpoint.seq}: events were cut off the end"
            )
            return _bad(count, head_seq, prev_hash, head_seq + 1, problem, checkpoint)
        if hash_at_checkpoint != checkpoint.hash:
            problem = (
                f"event {checkpoint.seq} does not have the hash the checkpoint of "
                f"{checkpoint.at} vouches for: the chain was rewritten"
            )
            return _bad(count, head_seq, prev_hash, checkpoint.seq, problem, checkpoint)
    return Verdict(
        True,
        count,
        head_seq,
        prev_hash,
        checkpoint_seq=None if checkpoint is None else checkpoint.seq,
    )


def _bad(
    count: int,
    head_seq: int,
    head_hash: str,
    bad_seq: int,
    problem: str,
    checkpoint: Checkpoint | None,
) -> Verdict:
    return Verdict(
        False,
        count,
        head_seq,
        head_hash,
        bad_seq,
        problem,
        None if checkpoint is None else checkpoint.seq,
    )
