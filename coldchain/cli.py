"""The `coldchain` command."""

from __future__ import annotations

import csv
import json
import logging
import secrets
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from sqlalchemy import inspect
from sqlalchemy.exc import OperationalError

from coldchain.config import ConfigError, Settings, load_settings
from coldchain.domain.alerts import ALERT_TYPES
from coldchain.domain.errors import DomainError
from coldchain.domain.roles import SITE_KINDS, Role
from coldchain.store.engine import make_engine, make_sessions
from coldchain.store.migrate import upgrade

log = logging.getLogger(__name__)


class Context:
    """Lazily built settings and sessions shared by the subcommands."""

    def __init__(self) -> None:
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_settings()
            except (ConfigError, DomainError) as exc:
                raise click.ClickException(str(exc)) from exc
        return self._settings

    def sessions(self) -> Any:
        """Return a session factory on a schema that is up to date."""
        ensure_schema(self.settings.database_url)
        return make_sessions(make_engine(self.settings.database_url))

    def record_configuration(self, sessions: Any) -> None:
        """Audit the configuration this process runs with, if it changed since last time."""
        from coldchain.services.audit import record_configuration, settings_snapshot

        snapshot = settings_snapshot(self.settings.values, self.settings.profiles)
        if record_configuration(sessions, snapshot):
            log.info("configuration changed since the last start: recorded in the audit trail")


def ensure_schema(url: str) -> None:
    """Create or upgrade the schema, tolerating another process doing the same at once."""
    for attempt in range(5):
        try:
            upgrade(url)
            return
        except OperationalError as exc:
            # Two processes started together on a new SQLite file race to create the
            # tables; the loser finds them made and succeeds on the next try.
            if attempt == 4:
                raise click.ClickException(f"cannot prepare the database: {exc.orig}") from exc
            time.sleep(0.5 + attempt)


pass_ctx = click.make_pass_decorator(Context, ensure=True)


def _fail(exc: DomainError) -> click.ClickException:
    field = f" ({exc.field})" if exc.field else ""
    return click.ClickException(f"{exc.message}{field}")


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level.")
@click.pass_context
def main(click_ctx: click.Context, verbose: bool) -> None:
    """coldchain: cold-chain tracking for autologous cell therapy."""
    context = click_ctx.ensure_object(Context)
    level = "DEBUG" if verbose else None
    try:
        level = level or str(context.settings.get("log_level", "INFO")).upper()
    except click.ClickException:
        level = "INFO"
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@pass_ctx
def db_upgrade(context: Context, revision: str) -> None:
    """Apply the Alembic migrations."""
    upgrade(context.settings.database_url, revision)
    engine = make_engine(context.settings.database_url)
    tables = len(inspect(engine).get_table_names())
    engine.dispose()
    click.echo(f"database at {revision}: {tables} tables")


@main.group()
def sites() -> None:
    """Collection, manufacturing and treatment sites."""


@sites.command("add")
@click.argument("site")
@click.option("--name", required=True)
@click.option("--kind", required=True, type=click.Choice(SITE_KINDS))
@pass_ctx
def sites_add(context: Context, site: str, name: str, kind: str) -> None:
    """Register a site."""
    from coldchain.services.accounts import add_site

    try:
        add_site(sessions=context.sessions(), site_id=site, name=name, kind=kind)
    except DomainError as exc:
        raise _fail(exc) from exc
    click.echo(f"site {site} added ({kind})")


@main.group()
def users() -> None:
    """People and their API tokens."""


@users.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option("--site", default=None, help="Site of a clinic user.")
@click.option("--password", default=None, help="Generated and printed when not given.")
@click.option("--full-name", default=None, help="Printed name for signatures.")
@pass_ctx
def users_add(
    context: Context,
    name: str,
    role: str,
    site: str | None,
    password: str | None,
    full_name: str | None,
) -> None:
    """Create a user; the new API token is printed alone on the last line."""
    from coldchain.services.accounts import add_user

    generated = password is None
    password = password or secrets.token_urlsafe(12)
    try:
        _user, token = add_user(
            sessions=context.sessions(),
            username=name,
            role=role,
            site_id=site,
            password=password,
            full_name=full_name,
        )
    except DomainError as exc:
        raise _fail(exc) from exc
    click.echo(f"user {name} added ({role}{', site ' + site if site else ''})")
    if generated:
        click.echo(f"password: {password}")
    click.echo(token)


@users.command("set-role")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option("--site", default=None, help="Site of a clinic user.")
@click.option("--reason", required=True, help="Why the role changes (audited).")
@pass_ctx
def users_set_role(context: Context, name: str, role: str, site: str | None, reason: str) -> None:
    """Change a user's role."""
    from coldchain.services.accounts import set_role

    try:
        set_role(sessions=context.sessions(), username=name, role=role, site_id=site, reason=reason)
    except DomainError as exc:
        raise _fail(exc) from exc
    click.echo(f"user {name} is now {role}{', site ' + site if site else ''}")


@users.command("unlock")
@click.argument("name")
@click.option("--reason", required=True, help="Why the account is unlocked (audited).")
@pass_ctx
def users_unlock(context: Context, name: str, reason: str) -> None:
    """Unlock a user locked by five wrong signature passwords in a row."""
    from coldchain.services.accounts import unlock_user

    try:
        unlock_user(sessions=context.sessions(), username=name, reason=reason)
    except DomainError as exc:
        raise _fail(exc) from exc
    click.echo(f"user {name} unlocked")


@main.group()
def loggers() -> None:
    """Temperature loggers."""


@loggers.command("add")
@click.argument("logger_id")
@click.option("--model", default=None)
@click.option("--firmware", default=None)
@click.option(
    "--calibration-due",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Calibration valid through this day (UTC), YYYY-MM-DD; without it: unknown.",
)
@pass_ctx
def loggers_add(
    context: Context,
    logger_id: str,
    model: str | None,
    firmware: str | None,
    calibration_due: Any,
) -> None:
    """Register a logger so that its readings are accepted."""
    from coldchain.services.accounts import add_logger

    try:
        add_logger(
            sessions=context.sessions(),
            logger_id=logger_id,
            model=model,
            firmware=firmware,
            calibration_due=None if calibration_due is None else calibration_due.date(),
        )
    except DomainError as exc:
        raise _fail(exc) from exc
    click.echo(f"logger {logger_id} added")


@loggers.command("calibrate")
@click.argument("logger_id")
@click.option(
    "--due",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    required=True,
    help="Next calibration due (valid through that day, UTC), YYYY-MM-DD.",
)
@click.option("--certificate", default=None, help="The calibration certificate's reference.")
@click.option(
    "--on",
    "calibrated_on",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="The day it was calibrated, YYYY-MM-DD; default today (UTC).",
)
@pass_ctx
def loggers_calibrate(
    context: Context, logger_id: str, due: Any, certificate: str | None, calibrated_on: Any
) -> None:
    """Record a logger's calibration and its next due date (audited: logger.calibrated)."""
    from coldchain.services import fleet

    try:
        view = fleet.record_calibration(
            sessions=context.sessions(),
            logger_id=logger_id,
            calibrated_on=None if calibrated_on is None else calibrated_on.date(),
            certificate=certificate,
            next_due=due.date(),
            policy=fleet.policy_from_settings(context.settings.values),
        )
    except DomainError as exc:
        raise _fail(exc) from exc
    click.echo(
        f"logger {logger_id} calibrated on {view['calibrated_on']}, "
        f"next due {view['calibration_due']}"
    )


def _broker_files(context: Context) -> Any:
    from coldchain.services.broker_accounts import files_from_settings

    return files_from_settings(context.settings.values)


def _echo_issued(issued: Any, files: Any) -> None:
    """Say what changed, then the new password alone on the last line (shown only once)."""
    verb = "rotated" if issued.rotated else "created"
    click.echo(f"broker account {issued.username} {verb} in {files.password_file}")
    _echo_reload(issued.reloaded, files)
    click.echo(issued.password)


def _echo_revoked(username: str, files: Any, reloaded: bool) -> None:
    click.echo(f"broker account {username} revoked from {files.password_file}")
    _echo_reload(reloaded, files)


def _echo_reload(reloaded: bool, files: Any) -> None:
    if reloaded:
        click.echo(f"broker sent SIGHUP (pid file {files.pid_file}): it re-reads its files")
    else:
        click.echo("reload the broker (SIGHUP) for the change to take effect")


@loggers.command("provision")
@click.argument("logger_id")
@click.option("--model", default=None, help="Model, if the logger is registered now.")
@click.option("--firmware", default=None, help="Firmware, if the logger is registered now.")
@click.option("--revoke", is_flag=True, help="Remove the logger's broker account instead.")
@pass_ctx
def loggers_provision(
    context: Context, logger_id: str, model: str | None, firmware: str | None, revoke: bool
) -> None:
    """Give a logger its broker account; the new password is printed alone on the last line.

    Registers the logger first if it is not yet known (as `loggers add`). Provisioning an
    account that exists rotates its password. Both changes are audited; the files are the
    [broker] settings' password_file and acl_file.
    """
    from coldchain.services import broker_accounts

    files = _broker_files(context)
    try:
        if revoke:
            reloaded = broker_accounts.revoke_account(
                sessions=context.sessions(), files=files, username=logger_id
            )
            _echo_revoked(logger_id, files, reloaded)
            return
        issued = broker_accounts.provision_logger(
            sessions=context.sessions(),
            files=files,
            logger_id=logger_id,
            model=model,
            firmware=firmware,
        )
    except DomainError as exc:
        raise _fail(exc) from exc
    except broker_accounts.BrokerFileError as exc:
        raise click.ClickException(str(exc)) from exc
    if issued.logger_registered:
        click.echo(f"logger {logger_id} added")
    _echo_issued(issued, files)


@main.group()
def broker() -> None:
    """Accounts on the MQTT broker (Mosquitto's password and ACL files)."""


@broker.command("account")
@click.argument("name", required=False)
@click.option("--revoke", is_flag=True, help="Remove the account instead.")
@pass_ctx
def broker_account(context: Context, name: str | None, revoke: bool) -> None:
    """Create or rotate the backend's account (default broker.backend_username).

    The worker and its ack helper connect with it: put the password, printed alone on the
    last line, in COLDCHAIN_MQTT_URL (mqtts://NAME:PASSWORD@host:8883).
    """
    from coldchain.services import broker_accounts

    files = _broker_files(context)
    username = name or str(context.settings["broker_backend_username"])
    try:
        if revoke:
            reloaded = broker_accounts.revoke_account(
                sessions=context.sessions(), files=files, username=username
            )
            _echo_revoked(username, files, reloaded)
            return
        issued = broker_accounts.issue_backend_account(
            sessions=context.sessions(), files=files, username=username
        )
    except DomainError as exc:
        raise _fail(exc) from exc
    except broker_accounts.BrokerFileError as exc:
        raise click.ClickException(str(exc)) from exc
    _echo_issued(issued, files)


@main.command()
@click.option("--host", default=None, help="Default: http.host from the config.")
@click.option("--port", default=None, type=int, help="Default: http.port from the config.")
@click.option("--threads", default=8, show_default=True)
@pass_ctx
def serve(context: Context, host: str | None, port: int | None, threads: int) -> None:
    """Serve the REST API (waitress)."""
    from waitress import serve as waitress_serve

    from coldchain.app import create_app

    settings = context.settings
    check_secret(settings)
    sessions = context.sessions()
    context.record_configuration(sessions)
    host = host or str(settings["http_host"])
    port = port or int(settings["http_port"])
    click.echo(f"coldchain on http://{host}:{port}/ (API under /api/v1)")

    def _stop(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping the server", signum)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop)
    waitress_serve(
        create_app(settings=settings), host=host, port=port, threads=threads, ident="coldchain"
    )


def check_secret(settings: Settings) -> None:
    """Refuse the shipped default secret key outside debug mode."""
    if settings["secret_key"] == "change-me-coldchain-dev-secret" and not settings["http_debug"]:
        log.warning("COLDCHAIN_SECRET_KEY is the shipped default: set your own in production")


@main.command()
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Worker processes sharing the load (default ingest.workers, 1).",
)
@click.option(
    "--worker-index",
    type=click.IntRange(1),
    default=None,
    hidden=True,
    help="Run only worker number N (used by --workers to start its processes).",
)
@pass_ctx
def ingest(context: Context, workers: int | None, worker_index: int | None) -> None:
    """Run the MQTT ingest workers until SIGTERM or Ctrl-C.

    Worker N has the MQTT client id "{ingest.client_id}-N" and a persistent session; all
    of them subscribe through the shared subscription of ingest.readings_topic, so each
    message reaches one of them. The sessions of worker numbers above the ones run are
    drained and ended first (see ingest.retire_scan).
    """
    from coldchain.ingest.supervisor import supervise
    from coldchain.ingest.worker import protocol_version, retire_workers, run_worker

    settings = context.settings
    try:
        protocol = protocol_version(settings["mqtt_protocol"])
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    sessions = context.sessions()
    if worker_index is not None:
        run_worker(settings, sessions, worker_index)
        return
    count = workers if workers is not None else int(settings["ingest_workers"])
    if count > 1 and str(protocol.name) != "MQTTv5":
        raise click.ClickException("several workers need MQTT 5 shared subscriptions")
    context.record_configuration(sessions)
    retire_workers(settings, sessions, count)
    if count == 1:
        run_worker(settings, sessions, 1)
    else:
        supervise(count, verbose=logging.getLogger().isEnabledFor(logging.DEBUG))


@main.command()
@click.option("--port", default=None, type=int, help="HTTP port (default demo.http_port).")
@click.option("--duration", default=None, type=float, help="Stop after this many seconds.")
@pass_ctx
def demo(context: Context, port: int | None, duration: float | None) -> None:
    """Run everything on this machine: broker, worker, API and a simulated fleet."""
    from coldchain.demo import run_demo

    sys.exit(run_demo(context.settings, http_port=port, duration_s=duration))


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


@main.group()
def report() -> None:
    """Reports for auditors."""


@report.command("excursions")
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "xlsx", "pdf"]), default="csv", show_default=True
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File to write (default: excursions.FORMAT in the current folder; - for stdout).",
)
@click.option("--since", default=None, help="Excursions overlapping from this RFC 3339 time.")
@click.option("--until", default=None, help="... until this RFC 3339 time.")
@click.option("--site", default=None, help="Origin or destination site.")
@click.option("--kind", type=click.Choice(["HIGH", "LOW", "SIGNAL_LOSS"]), default=None)
@click.option("--status", type=click.Choice(["OPEN", "CLOSED"]), default=None)
@pass_ctx
def report_excursions(
    context: Context,
    fmt: str,
    out: Path | None,
    since: str | None,
    until: str | None,
    site: str | None,
    kind: str | None,
    status: str | None,
) -> None:
    """Write the excursion log as CSV, XLSX or PDF."""
    from coldchain.reports import excursions as build
    from coldchain.services.accounts import Principal
    from coldchain.services.shipments import ExcursionFilter, list_excursions
    from coldchain.services.timefmt import parse_rfc3339

    try:
        filters = ExcursionFilter(
            since=parse_rfc3339(since) if since else None,
            until=parse_rfc3339(until) if until else None,
            site=site,
            kind=kind,
            status=status,
        )
    except ValueError as exc:
        raise click.BadParameter(f"times are RFC 3339, e.g. 2026-11-25T08:00:00Z ({exc})") from exc
    # The command line runs with the database's own rights: it sees every site, read-only.
    reader = Principal(0, "system:cli", "coldchain command line", Role.AUDITOR, None)
    rows = list_excursions(
        sessions=context.sessions(), principal=reader, filters=filters, limit=None, offset=0
    )
    if fmt == "csv":
        body = build.excursions_csv(rows)
    elif fmt == "xlsx":
        body = build.excursions_xlsx(rows)
    else:
        body = build.excursions_pdf(rows, title="coldchain excursion log")
    if out is not None and str(out) == "-":
        sys.stdout.buffer.write(body)
        return
    target = out or Path(f"excursions.{fmt}")
    target.write_bytes(body)
    click.echo(f"{len(rows)} excursions written to {target}", err=True)


@report.command("scorecards")
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "xlsx", "json"]), default="csv", show_default=True
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File to write (default: scorecards.FORMAT in the current folder; - for stdout).",
)
@click.option("--since", default=None, help="Shipments created from this RFC 3339 time.")
@click.option("--until", default=None, help="... and before this RFC 3339 time.")
@click.option("--kind", type=click.Choice(["site", "courier"]), default=None)
@pass_ctx
def report_scorecards(
    context: Context,
    fmt: str,
    out: Path | None,
    since: str | None,
    until: str | None,
    kind: str | None,
) -> None:
    """Write the scorecards of sites and couriers as CSV, XLSX or JSON."""
    from coldchain.reports import scorecards as build
    from coldchain.services.accounts import Principal
    from coldchain.services.timefmt import parse_rfc3339

    try:
        span = [parse_rfc3339(t) if t else None for t in (since, until)]
    except ValueError as exc:
        raise click.BadParameter(f"times are RFC 3339, e.g. 2026-11-25T08:00:00Z ({exc})") from exc
    reader = Principal(0, "system:cli", "coldchain command line", Role.AUDITOR, None)
    sessions = context.sessions()
    try:
        rows = build.build_scorecards(
            sessions=sessions, principal=reader, since=span[0], until=span[1], party_type=kind
        )
    finally:
        sessions.kw["bind"].dispose()  # the command may run inside another process (tests)
    writers = {"csv": build.scorecards_csv, "xlsx": build.scorecards_xlsx}
    body = writers.get(fmt, build.scorecards_json)(rows)
    if out is not None and str(out) == "-":
        sys.stdout.buffer.write(body)
        return
    target = out or Path(f"scorecards.{fmt}")
    target.write_bytes(body)
    click.echo(f"{len(rows)} scorecards written to {target}", err=True)


@main.group("export")
def export_group() -> None:
    """Exports for other systems."""


@export_group.command("epcis")
@click.argument("shipment_id", type=int)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File to write (default: stdout).",
)
@pass_ctx
def export_epcis(context: Context, shipment_id: int, out: Path | None) -> None:
    """Write a shipment's GS1 EPCIS 2.0 document (JSON-LD)."""
    from coldchain.services.accounts import Principal
    from coldchain.services.epcis import shipment_epcis

    # The command line runs with the database's own rights: it sees every site, read-only.
    reader = Principal(0, "system:cli", "coldchain command line", Role.AUDITOR, None)
    try:
        document = shipment_epcis(
            sessions=context.sessions(),
            shipment_id=shipment_id,
            principal=reader,
            base_uri=str(context.settings["epcis_base_uri"]),
        )
    except DomainError as exc:
        raise _fail(exc) from exc
    text = json.dumps(document, indent=2) + "\n"
    if out is None:
        click.echo(text, nl=False)
        return
    out.write_text(text, encoding="utf-8")
    events = len(document["epcisBody"]["eventList"])
    click.echo(f"{events} EPCIS events of shipment {shipment_id} written to {out}", err=True)


@main.group("alerts")
def alerts_group() -> None:
    """Alerts out: webhooks and e-mail for excursions, predictions, signal loss, identity."""


_ALERT_TYPES = click.Choice(ALERT_TYPES)


def _subscription_options(func: Any) -> Any:
    func = click.option(
        "--type",
        "types",
        multiple=True,
        type=_ALERT_TYPES,
        help="Only this alert type (repeat for several; default: every type).",
    )(func)
    func = click.option(
        "--min-severity",
        default="warning",
        show_default=True,
        type=click.Choice(["info", "warning", "critical"]),
    )(func)
    return click.option(
        "--site", default=None, help="Only alerts of shipments from or to this site."
    )(func)


def _echo_subscription(view: dict[str, Any]) -> None:
    types = ",".join(view["types"]) or "all types"
    click.echo(
        f"{view['id']:>4}  {view['channel']:<7} {view['target']}  site {view['site'] or 'all'}"
        f"  >= {view['min_severity']}  {types}"
        + (f"  removed {view['removed_at']}" if view["removed_at"] else "")
    )


@alerts_group.command("add-webhook")
@click.argument("url")
@_subscription_options
@click.option("--secret", default=None, help="HMAC key (16+ characters); generated if not given.")
@pass_ctx
def alerts_add_webhook(
    context: Context,
    url: str,
    site: str | None,
    min_severity: str,
    types: tuple[str, ...],
    secret: str | None,
) -> None:
    """Send alerts to a webhook; its signing secret is printed alone on the last line."""
    from coldchain.services.alerts import add_subscription

    try:
        view, key = add_subscription(
            sessions=context.sessions(),
            channel="webhook",
            target=url,
            site_id=site,
            min_severity=min_severity,
            alert_types=types,
            secret=secret,
        )
    except DomainError as exc:
        raise _fail(exc) from exc
    _echo_subscription(view)
    click.echo(key)


@alerts_group.command("add-email")
@click.argument("address")
@_subscription_options
@pass_ctx
def alerts_add_email(
    context: Context, address: str, site: str | None, min_severity: str, types: tuple[str, ...]
) -> None:
    """Send alerts to an e-mail address (through the [alerts] SMTP server)."""
    from coldchain.services.alerts import add_subscription

    try:
        view, _ = add_subscription(
            sessions=context.sessions(),
            channel="email",
            target=address,
            site_id=site,
            min_severity=min_severity,
            alert_types=types,
        )
    except DomainError as exc:
        raise _fail(exc) from exc
    _echo_subscription(view)


@alerts_group.command("list")
@click.option("--all", "include_removed", is_flag=True, help="Also removed subscriptions.")
@pass_ctx
def alerts_list(context: Context, include_removed: bool) -> None:
    """List the alert subscriptions."""
    from coldchain.services.alerts import list_subscriptions

    for view in list_subscriptions(sessions=context.sessions(), include_removed=include_removed):
        _echo_subscription(view)


@alerts_group.command("remove")
@click.argument("subscription_id", type=int)
@click.option("--reason", default=None, help="Why (audited).")
@pass_ctx
def alerts_remove(context: Context, subscription_id: int, reason: str | None) -> None:
    """End a subscription; its unsent alerts are cancelled and its log is kept."""
    from coldchain.services.alerts import remove_subscription

    try:
        remove_subscription(
            sessions=context.sessions(), subscription_id=subscription_id, reason=reason
        )
    except DomainError as exc:
        raise _fail(exc) from exc
    click.echo(f"alert subscription {subscription_id} removed")


@alerts_group.command("log")
@click.option("--subscription", type=int, default=None)
@click.option("--seq", type=int, default=None, help="Only the alerts of this audit event.")
@click.option("--outcome", type=click.Choice(["delivered", "retry", "failed"]), default=None)
@click.option("--limit", type=click.IntRange(1), default=None, help="At most this many.")
@click.option("--format", "fmt", type=click.Choice(["text", "csv"]), default="text")
@pass_ctx
def alerts_log(
    context: Context,
    subscription: int | None,
    seq: int | None,
    outcome: str | None,
    limit: int | None,
    fmt: str,
) -> None:
    """Show the delivery log: every attempt, oldest first."""
    from coldchain.services.alerts import ATTEMPT_COLUMNS, AttemptFilter, list_attempts

    rows = list_attempts(
        sessions=context.sessions(),
        filters=AttemptFilter(subscription_id=subscription, audit_seq=seq, outcome=outcome),
        limit=limit,
    )
    if fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=ATTEMPT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return
    for row in rows:
        nxt = f"  next {row['next_attempt_at']}" if row["next_attempt_at"] else ""
        click.echo(
            f"{row['at']}  sub {row['subscription_id']}  seq {row['audit_seq']}  "
            f"{row['alert_type']}  #{row['attempt']}  {row['outcome']}: {row['detail']}{nxt}"
        )


@alerts_group.command("run")
@click.option("--once", is_flag=True, help="One pass, then exit.")
@pass_ctx
def alerts_run(context: Context, once: bool) -> None:
    """Follow the audit trail and send alerts until SIGTERM or Ctrl-C."""
    import threading

    from coldchain.alerts.dispatcher import DispatchSettings, run, run_once

    config = DispatchSettings.from_values(context.settings.values)
    sessions = context.sessions()
    if once:
        result = run_once(sessions, config)
        click.echo(
            f"{result.events} audit events read, {result.deliveries} deliveries queued, "
            f"{result.attempts} attempts made"
        )
        return
    stop = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping the alert dispatcher", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    run(sessions, config, stop)
