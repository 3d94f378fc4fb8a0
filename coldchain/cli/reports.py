"""Reports for auditors (excursions, scorecards) and exports for other systems (EPCIS)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from coldchain.cli.base import Context, _fail, main, pass_ctx
from coldchain.domain.errors import DomainError
from coldchain.domain.roles import Role


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
