"""Alerts out: webhook and e-mail subscriptions, the delivery log, the dispatcher."""

from __future__ import annotations

import csv
import signal
import sys
from typing import Any

import click

from coldchain.cli.base import Context, _fail, log, main, pass_ctx
from coldchain.domain.alerts import ALERT_TYPES
from coldchain.domain.errors import DomainError


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
