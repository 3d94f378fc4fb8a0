"""Temperature loggers and their accounts on the MQTT broker."""

from __future__ import annotations

from typing import Any

import click

from coldchain.cli.base import Context, _fail, main, pass_ctx
from coldchain.domain.errors import DomainError


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
