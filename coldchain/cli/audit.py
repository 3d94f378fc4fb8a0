"""The tamper-evident audit trail: signed checkpoints and verification."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from coldchain.cli.base import Context, _fail, main, pass_ctx
from coldchain.domain.errors import DomainError


@main.group("audit")
def audit_group() -> None:
    """The tamper-evident audit trail: checkpoints and verification."""


@audit_group.command("checkpoint")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Checkpoint file to write (default: audit.checkpoint_dir).")  # fmt: skip
@pass_ctx
def audit_checkpoint(context: Context, out: Path | None) -> None:
    """Sign the chain's current head with the Ed25519 key and write it to a file."""
    from coldchain.services import checkpoints

    key_path = Path(str(context.settings["audit_signing_key_file"]))
    try:
        key = checkpoints.load_or_create_key(key_path)
        signed = checkpoints.make_checkpoint(sessions=context.sessions(), key=key)
    except checkpoints.CheckpointError as exc:
        raise click.ClickException(str(exc)) from exc
    except DomainError as exc:
        raise _fail(exc) from exc
    if out is None:
        out = Path(str(context.settings["audit_checkpoint_dir"])) / (
            f"checkpoint-{signed.checkpoint.seq:09d}.json"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(signed.as_dict(), indent=2) + "\n")
    click.echo(
        f"checkpoint of event {signed.checkpoint.seq} ({signed.checkpoint.hash}) "
        f"signed by key {signed.public_key} written to {out}"
    )


@audit_group.command("verify")
@click.option(
    "--checkpoint",
    "checkpoint_file",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Checkpoint file to check against (default: the newest one in the database).",
)
@click.option(
    "--export",
    "export_file",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Verify this export (JSON lines or CSV) instead of the database.",
)
@click.option("--public-key", "public_key_file", default=None,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Pinned Ed25519 public key (default: audit.public_key_file).")  # fmt: skip
@pass_ctx
def audit_verify(
    context: Context,
    checkpoint_file: Path | None,
    export_file: Path | None,
    public_key_file: Path | None,
) -> None:
    """Re-compute the chain; exit 0 if intact, 1 naming the first bad event."""
    from coldchain.domain.audit import verify_chain
    from coldchain.services import audit, checkpoints

    configured = str(context.settings["audit_public_key_file"] or "")
    pinned_path = public_key_file or (Path(configured) if configured else None)
    try:
        pinned = checkpoints.load_public_key(pinned_path) if pinned_path else None
        if checkpoint_file is not None:
            signed: checkpoints.SignedCheckpoint | None = checkpoints.read_file(checkpoint_file)
        elif export_file is None:
            try:
                signed = checkpoints.latest(sessions=context.sessions())
            except DomainError:
                signed = None
        else:
            signed = None
        if signed is not None:
            checkpoints.check_signature(signed, pinned)
    except (checkpoints.CheckpointError, OSError) as exc:
        click.echo(f"audit trail NOT verified: {exc}", err=True)
        sys.exit(1)
    checkpoint = None if signed is None else signed.checkpoint
    if export_file is not None:
        verdict = verify_chain(read_export(export_file), checkpoint)
    else:
        verdict = audit.verify_database(context.sessions(), checkpoint)
    source = str(export_file) if export_file else "the database"
    against = (
        "no checkpoint (a cut tail or a rewritten chain cannot be seen without one)"
        if signed is None
        else f"the checkpoint of event {signed.checkpoint.seq} at {signed.checkpoint.at}, "
        f"key {signed.public_key}{'' if pinned else ' (not pinned)'}"
    )
    if not verdict.ok:
        click.echo(
            f"audit trail BROKEN in {source} at event {verdict.first_bad_seq}: {verdict.problem}",
            err=True,
        )
        sys.exit(1)
    click.echo(
        f"audit trail intact in {source}: {verdict.events} events, head {verdict.head_seq} "
        f"{verdict.head_hash}; checked against {against}"
    )


def read_export(path: Path) -> Iterator[dict[str, Any]]:
    """Read the events of an export, JSON lines or CSV, in file order."""
    with path.open(encoding="utf-8", newline="") as handle:
        if path.suffix.lower() == ".csv":
            for row in csv.DictReader(handle):
                event: dict[str, Any] = dict(row)
                event["seq"] = int(row["seq"])
                for name in ("old_values", "new_values"):
                    event[name] = json.loads(row[name]) if row[name] else None
                for name in ("reason", "request_id"):
                    event[name] = row[name] or None
                yield event
        else:
            for line in handle:
                if line.strip():
                    yield json.loads(line)
