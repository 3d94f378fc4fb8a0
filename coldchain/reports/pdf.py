"""PDF reports: the shipment report a reviewer files with the batch record, and shared layout.

Text is set in reportlab's standard Type 1 fonts (Helvetica, Courier), so every word of the
report (the COI, the signatures, the audit hash) can be searched and extracted from the file;
only the temperature chart is a picture.
"""

from __future__ import annotations

import io
import logging
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    Flowable,
    Image,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from coldchain.domain.mkt import DEFAULT_DELTA_H_J_PER_MOL, TempSummary, summary
from coldchain.domain.profiles import Profile
from coldchain.services import shipments
from coldchain.services.accounts import Principal
from coldchain.services.timefmt import parse_rfc3339, rfc3339
from coldchain.store.models import AuditHead

log = logging.getLogger(__name__)

__all__ = [
    "ShipmentReport",
    "build_shipment_report",
    "excursion_table",
    "render_pdf",
    "shipment_report_pdf",
    "temperature_chart_png",
    "time_ticks",
]

_BASE = getSampleStyleSheet()
TITLE = ParagraphStyle("cc-title", parent=_BASE["Title"], fontSize=16, leading=20, spaceAfter=4)
HEADING = ParagraphStyle(
    "cc-heading", parent=_BASE["Heading2"], fontSize=12, leading=15, spaceBefore=10, spaceAfter=4
)
BODY = ParagraphStyle("cc-body", parent=_BASE["BodyText"], fontSize=9, leading=11.5)
NOTE = ParagraphStyle("cc-note", parent=BODY, fontSize=7.5, leading=9.5, textColor=colors.grey)
CELL = ParagraphStyle("cc-cell", parent=BODY, fontSize=7.5, leading=9)
CELL_HEAD = ParagraphStyle("cc-cell-head", parent=CELL, fontName="Helvetica-Bold")
MONO = ParagraphStyle("cc-mono", parent=BODY, fontName="Courier", fontSize=8.5, leading=11)

KIND_COLOURS = {"HIGH": "#d62728", "LOW": "#1f77b4", "SIGNAL_LOSS": "#7f7f7f"}
CHART_SIZE_IN = (7.2, 3.0)
CHART_DPI = 150


@dataclass(frozen=True)
class ShipmentReport:
    """Everything the shipment report shows, gathered before any page is laid out."""

    shipment: Mapping[str, Any]  # as services.shipments.get_shipment returns it
    readings: Sequence[Mapping[str, Any]]  # as services.shipments.shipment_readings returns
    min_c: float | None
    max_c: float | None
    audit_seq: int
    audit_hash: str
    generated_at: str
    profile_configured: bool = True  # False: the limits are unknown, not absent


def build_shipment_report(
    *,
    sessions: sessionmaker[Session],
    shipment_id: int,
    principal: Principal,
    profiles: Mapping[str, Profile],
) -> ShipmentReport:
    """Gather a shipment's detail, readings, profile limits and the audit head for its report."""
    shipment = shipments.get_shipment(
        sessions=sessions, shipment_id=shipment_id, principal=principal
    )
    readings = shipments.shipment_readings(
        sessions=sessions,
        shipment_id=shipment_id,
        principal=principal,
        since=None,
        until=None,
        logger_id=None,
        limit=None,
        offset=0,
    )
    profile = profiles.get(str(shipment["profile"]))
    if profile is None:
        log.warning("shipment %s: profile %s is not configured", shipment_id, shipment["profile"])
    # Read after the shipment: the head then covers at least every event the report shows.
    with sessions() as session:
        seq, head_hash = session.execute(
            select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)
        ).one()
    return ShipmentReport(
        shipment=shipment,
        readings=readings,
        min_c=None if profile is None else profile.min_c,
        max_c=None if profile is None else profile.max_c,
        audit_seq=int(seq),
        audit_hash=str(head_hash),
        generated_at=str(rfc3339(datetime.now(UTC).replace(microsecond=0))),
        profile_configured=profile is not None,
    )


# Text helpers --------------------------------------------------------------------------------


def text(value: Any, empty: str = "-") -> str:
    """Return a value as cell text, escaped for reportlab's paragraph markup."""
    if value is None or value == "":
        return empty
    if isinstance(value, bool):
        return "yes" if value else "no"
    return escape(str(value))


def when(value: str | None) -> str:
    """Return an RFC 3339 time as readable UTC text that can wrap between date and time."""
    if not value:
        return "-"
    return escape(value.replace("T", " ").replace("Z", " UTC"))


def temp(value: float | None) -> str:
    """Return a temperature in Celsius with one decimal."""
    return "-" if value is None else f"{value:.1f}"


def duration(seconds: float | None) -> str:
    """Return a duration as hours, minutes and seconds."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{seconds:.0f} s"


def limits_text(min_c: float | None, max_c: float | None) -> str:
    """Return a profile's range as text, e.g. '2.0 to 8.0 C' or 'at most -150.0 C'."""
    if min_c is not None and max_c is not None:
        return f"{min_c:.1f} to {max_c:.1f} \N{DEGREE SIGN}C"
    if max_c is not None:
        return f"at most {max_c:.1f} \N{DEGREE SIGN}C"
    if min_c is not None:
        return f"at least {min_c:.1f} \N{DEGREE SIGN}C"
    return "no limits"


def grid(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    widths: Sequence[float],
    *,
    highlight: Sequence[int] = (),
) -> Table:
    """Return a table of paragraph cells (markup already escaped) with a repeated header row."""
    data = [[Paragraph(h, CELL_HEAD) for h in header]]
    data += [[Paragraph(cell, CELL) for cell in row] for row in rows]
    table = Table(data, colWidths=list(widths), repeatRows=1, hAlign="LEFT")
    style = [
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8edf3")),
        ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#9aa5b1")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
        ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3),
    ]
    style += [
        ("BACKGROUND", (0, i + 1), (-1, i + 1), colors.HexColor("#fdecea")) for i in highlight
    ]
    table.setStyle(TableStyle(style))
    return table


def facts(pairs: Sequence[tuple[str, str]], width: float) -> Table:
    """Return label/value pairs as a two-column table, four columns across."""
    cells = [[Paragraph(f"<b>{label}</b>", CELL), Paragraph(value, CELL)] for label, value in pairs]
    if len(cells) % 2:
        cells.append([Paragraph("", CELL), Paragraph("", CELL)])
    rows = [cells[i] + cells[i + 1] for i in range(0, len(cells), 2)]
    label_w, value_w = width * 0.16, width * 0.34
    table = Table(rows, colWidths=[label_w, value_w, label_w, value_w], hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LINEBELOW", (0, 0), (-1, -1), 0.3, colors.HexColor("#d0d7de")),
                ("TOPPADDING", (0, 0), (-1, -1), 2),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
            ]
        )
    )
    return table


def disposition_text(row: Mapping[str, Any]) -> str:
    """Return an excursion's QA disposition, saying when it predates the excursion's last change."""
    decision = row.get("disposition")
    if decision is None:
        return "none"
    if row.get("disposition_current"):
        return text(decision)
    return f"{text(decision)} <font color='#b00020'>(stale: excursion changed since)</font>"


def excursion_table(
    rows: Sequence[Mapping[str, Any]], width: float, *, with_shipment: bool = False
) -> Table:
    """Return the excursion log as a table; open excursions are shaded."""
    header = ["ID", "Logger", "Kind", "Started", "Ended", "Peak \N{DEGREE SIGN}C", "Duration"]
    header += ["Status", "Disposition"]
    shares = [0.05, 0.08, 0.12, 0.14, 0.14, 0.07, 0.09, 0.11, 0.2]
    if with_shipment:
        header.insert(1, "Shipment")
        shares = [0.045, 0.06, 0.075, 0.095, 0.13, 0.13, 0.065, 0.08, 0.12, 0.2]
    body = []
    highlight = []
    for i, row in enumerate(rows):
        status = text(row.get("status"))
        if row.get("resolution"):
            status += f" ({text(row['resolution'])})"
        cells = [
            text(row.get("id")),
            text(row.get("logger_id")),
            text(row.get("kind")),
            when(row.get("started_at")),
            when(row.get("ended_at")) if row.get("ended_at") else "open",
            temp(row.get("peak_c")),
            duration(row.get("duration_s")),
            status,
            disposition_text(row),
        ]
        if with_shipment:
            cells.insert(1, text(row.get("shipment_id")))
        body.append(cells)
        if row.get("status") == "OPEN":
            highlight.append(i)
    return grid(header, body, [width * s for s in shares], highlight=highlight)


def render_pdf(
    story: Sequence[Flowable],
    *,
    title: str,
    footer: str,
    pagesize: tuple[float, float] = A4,
) -> bytes:
    """Lay a story out on pages with a footer and page numbers, and return the PDF bytes."""
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=pagesize,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=18 * mm,
        title=title,
        author="coldchain",
        subject=title,
    )

    def decorate(canvas: Canvas, doc: SimpleDocTemplate) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7.5)
        canvas.setFillColor(colors.grey)
        canvas.drawString(doc.leftMargin, 9 * mm, footer)
        canvas.drawRightString(pagesize[0] - doc.rightMargin, 9 * mm, f"page {doc.page}")
        canvas.restoreState()

    document.build(list(story), onFirstPage=decorate, onLaterPages=decorate)
    return buffer.getvalue()


def frame_width(pagesize: tuple[float, float] = A4) -> float:
    """Return the text width of a page laid out by render_pdf."""
    return float(pagesize[0] - 30 * mm)


# The chart -------------------------------------------------------------------------------------


# Tick spacings a reader counts in: minutes, hours, days, a week.
TICK_STEPS_S: tuple[int, ...] = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600)
TICK_STEPS_S += (43200, 86400, 172800, 345600, 604800)
MOST_TICKS = 8


def time_ticks(first_s: float, last_s: float) -> tuple[list[float], str]:
    """Return round UTC tick positions (epoch seconds) across a span and their strftime format."""
    span_s = max(last_s - first_s, 1.0)
    step_s = next((s for s in TICK_STEPS_S if span_s / s <= MOST_TICKS), None)
    if step_s is None:
        step_s = TICK_STEPS_S[-1] * math.ceil(span_s / TICK_STEPS_S[-1] / MOST_TICKS)
    # Epoch seconds are UTC, so multiples of a step fall on round UTC clock times.
    tick = math.ceil(first_s / step_s) * step_s
    ticks = []
    while tick <= last_s:
        ticks.append(float(tick))
        tick += step_s
    same_day = _utc(first_s).date() == _utc(last_s).date()
    return ticks, "%H:%M" if same_day else "%m-%d\n%H:%M"


def _utc(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def temperature_chart_png(
    readings: Sequence[Mapping[str, Any]],
    *,
    min_c: float | None,
    max_c: float | None,
    excursions: Sequence[Mapping[str, Any]] = (),
) -> bytes | None:
    """Draw temperature over time per logger, with the limits and excursion spans; None if empty."""
    series: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for reading in readings:
        if reading.get("temp_c") is None:
            continue
        times, temps = series[str(reading["logger_id"])]
        times.append(parse_rfc3339(str(reading["time"])).timestamp())
        temps.append(float(reading["temp_c"]))
    if not series:
        return None
    first = min(times[0] for times, _ in series.values())
    last = max(times[-1] for times, _ in series.values())

    figure = Figure(figsize=CHART_SIZE_IN, dpi=CHART_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for logger_id, (times, temps) in sorted(series.items()):
        marker = "o" if len(times) <= 60 else None
        axes.plot(times, temps, marker=marker, markersize=2.5, linewidth=1.1, label=logger_id)
    for value, name in ((max_c, "max"), (min_c, "min")):
        if value is not None:
            axes.axhline(
                value,
                color="#b00020",
                linestyle="--",
                linewidth=1,
                label=f"{name} {value:g} \N{DEGREE SIGN}C",
            )
    shaded: set[str] = set()
    for excursion in excursions:
        if not excursion.get("started_at"):
            continue
        start = parse_rfc3339(str(excursion["started_at"])).timestamp()
        # An open excursion lasts at least until the last reading shown.
        end = (
            parse_rfc3339(str(excursion["ended_at"])).timestamp()
            if excursion.get("ended_at")
            else max(last, start)
        )
        kind = str(excursion.get("kind"))
        axes.axvspan(
            start,
            end,
            color=KIND_COLOURS.get(kind, "#ff7f0e"),
            alpha=0.18,
            linewidth=0,
            label=None if kind in shaded else f"{kind} excursion",
        )
        shaded.add(kind)
        first, last = min(first, start), max(last, end)
    pad_s = max((last - first) * 0.02, 60.0)
    axes.set_xlim(first - pad_s, last + pad_s)
    ticks, fmt = time_ticks(first - pad_s, last + pad_s)
    axes.set_xticks(ticks, [_utc(t).strftime(fmt) for t in ticks])
    day = _utc(first).strftime("%Y-%m-%d")
    axes.set_xlabel(f"Time (UTC), from {day}" if "%m" in fmt else f"Time (UTC), {day}")
    axes.set_ylabel("Temperature (\N{DEGREE SIGN}C)")
    axes.grid(True, linewidth=0.3, alpha=0.6)
    axes.legend(loc="best", fontsize=7, framealpha=0.85)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=CHART_DPI)
    return buffer.getvalue()


# The shipment report ---------------------------------------------------------------------------


def _summary_rows(readings: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    by_logger: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for reading in readings:
        if reading.get("temp_c") is not None:
            by_logger[str(reading["logger_id"])].append(reading)
    groups = sorted(by_logger.items())
    if len(groups) > 1:
        everything = [r for _, rows in groups for r in rows]
        everything.sort(key=lambda r: parse_rfc3339(str(r["time"])))
        groups.append(("all loggers", everything))

    def row(name: str, rows: Sequence[Mapping[str, Any]]) -> list[str]:
        stats: TempSummary = summary([float(r["temp_c"]) for r in rows])
        return [
            text(name),
            str(stats.count),
            when(rows[0]["time"]),
            when(rows[-1]["time"]),
            temp(stats.min_c),
            temp(stats.max_c),
            temp(stats.mean_c),
            f"<b>{temp(stats.mkt_c)}</b>",
        ]

    return [row(name, rows) for name, rows in groups]


def _signature_text(signature: Mapping[str, Any] | None) -> str:
    if not signature:
        return "unsigned"
    lines = [
        f"<b>{text(signature.get('printed_name'))}</b> ({text(signature.get('username'))})",
        f"&quot;{text(signature.get('meaning'))}&quot;",
        when(signature.get("signed_at")),
    ]
    digest = str(signature.get("record_hash") or "")
    if signature.get("valid"):
        lines.append(f"record {escape(digest[:16])}\N{HORIZONTAL ELLIPSIS} matches")
    else:
        lines.append(
            "<font color='#b00020'><b>NOT VALID: the record changed after signing</b></font>"
        )
    return "<br/>".join(lines)


def _custody_rows(chain: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    rows = []
    for handoff in chain:
        seal = text(handoff.get("seal_id"))
        if handoff.get("seal_changed_from"):
            seal += (
                f"<br/>was {text(handoff['seal_changed_from'])}: "
                f"{text(handoff.get('seal_change_reason'))}"
            )
        condition = text(handoff.get("condition"))
        if handoff.get("notes"):
            condition += f"<br/>{text(handoff['notes'])}"
        rows.append(
            [
                text(handoff.get("seq")),
                text(handoff.get("transition")),
                text(handoff.get("from_party")),
                text(handoff.get("to_party")),
                text(handoff.get("location")),
                seal,
                condition,
                when(handoff.get("at")),
                _signature_text(handoff.get("signature")),
            ]
        )
    return rows


def _receipt_rows(receipts: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    rows = []
    for receipt in receipts:
        seal = text(receipt.get("seal_id"))
        if receipt.get("seal_matches") is not None:
            seal += " (matches)" if receipt["seal_matches"] else " (<b>does not match</b>)"
        rows.append(
            [
                f"<b>{text(receipt.get('decision'))}</b>",
                text(receipt.get("reason")),
                text(receipt.get("coi_scan")),
                seal,
                text(receipt.get("site_id")),
                when(receipt.get("at")),
                _signature_text(receipt.get("signature")),
            ]
        )
    return rows


def shipment_report_pdf(report: ShipmentReport) -> bytes:
    """Render the shipment report: facts, chart, readings summary with MKT, excursions, custody."""
    shipment = report.shipment
    coi = str(shipment.get("coi") or "")
    width = frame_width()
    limits = (
        limits_text(report.min_c, report.max_c)
        if report.profile_configured
        else "<b>limits unknown: profile not configured</b>"
    )
    story: list[Flowable] = [
        Paragraph(f"Shipment report: COI {text(coi)}", TITLE),
        Paragraph(
            f"Shipment {text(shipment.get('id'))}, generated {when(report.generated_at)}", NOTE
        ),
        Spacer(1, 4 * mm),
        facts(
            [
                ("COI", f"<b>{text(coi)}</b>"),
                ("Shipment", text(shipment.get("id"))),
                ("Leg", text(shipment.get("leg"))),
                ("Status", f"<b>{text(shipment.get('status'))}</b>"),
                ("Origin", text(shipment.get("origin_site"))),
                ("Destination", text(shipment.get("destination_site"))),
                ("Holder", text(shipment.get("holder"))),
                ("Version", text(shipment.get("version"))),
                (
                    "Profile",
                    f"{text(shipment.get('profile'))}: {limits}",
                ),
                ("Seal", text(shipment.get("seal_id"))),
                ("Loggers", text(", ".join(map(str, shipment.get("loggers") or [])))),
                ("Created", when(shipment.get("created_at"))),
                ("Monitoring from", when(shipment.get("monitoring_from"))),
                ("Monitoring until", when(shipment.get("monitoring_until"))),
            ],
            width,
        ),
        Paragraph("Temperature", HEADING),
    ]
    excursions = list(shipment.get("excursions") or [])
    chart = temperature_chart_png(
        report.readings, min_c=report.min_c, max_c=report.max_c, excursions=excursions
    )
    if chart is None:
        story.append(Paragraph("No temperature readings in the monitoring window.", BODY))
    else:
        ratio = CHART_SIZE_IN[1] / CHART_SIZE_IN[0]
        story.append(Image(io.BytesIO(chart), width=width, height=width * ratio))
        story.append(
            Paragraph(
                "Dashed lines: profile limits. Shaded spans: excursions (open ones up to the "
                "last reading).",
                NOTE,
            )
        )

    story.append(Paragraph("Readings summary", HEADING))
    summary_rows = _summary_rows(report.readings)
    if summary_rows:
        header = ["Logger", "Readings", "First", "Last", "Min \N{DEGREE SIGN}C"]
        header += ["Max \N{DEGREE SIGN}C", "Mean \N{DEGREE SIGN}C", "MKT \N{DEGREE SIGN}C"]
        shares = [0.13, 0.09, 0.19, 0.19, 0.1, 0.1, 0.1, 0.1]
        story.append(grid(header, summary_rows, [width * s for s in shares]))
    else:
        story.append(Paragraph("No readings: MKT not computed.", BODY))
    story.append(
        Paragraph(
            "MKT: mean kinetic temperature (USP &lt;1079&gt;), activation energy "
            f"{DEFAULT_DELTA_H_J_PER_MOL / 1000:.3f} kJ/mol, over the readings as recorded "
            "(the formula assumes equally spaced readings).",
            NOTE,
        )
    )

    story.append(Paragraph(f"Excursions ({len(excursions)})", HEADING))
    if excursions:
        story.append(excursion_table(excursions, width))
    else:
        story.append(Paragraph("No excursions.", BODY))

    chain = list(shipment.get("custody") or [])
    story.append(Paragraph(f"Custody chain ({len(chain)} handoffs)", HEADING))
    if chain:
        header = ["Seq", "Transition", "From", "To", "Location", "Seal", "Condition", "At"]
        header.append("Signature")
        shares = [0.04, 0.1, 0.08, 0.08, 0.12, 0.1, 0.09, 0.12, 0.27]
        story.append(grid(header, _custody_rows(chain), [width * s for s in shares]))
    else:
        story.append(Paragraph("No handoffs recorded.", BODY))

    receipts = list(shipment.get("receipts") or [])
    story.append(Paragraph(f"Receipts ({len(receipts)})", HEADING))
    if receipts:
        header = ["Decision", "Reason", "COI scan", "Seal", "Site", "At", "Signature"]
        shares = [0.1, 0.17, 0.14, 0.12, 0.08, 0.13, 0.26]
        story.append(grid(header, _receipt_rows(receipts), [width * s for s in shares]))
    else:
        story.append(Paragraph("No receipt recorded.", BODY))

    story.append(
        KeepTogether(
            [
                Paragraph("Audit trail", HEADING),
                Paragraph(
                    f"Audit head: seq {report.audit_seq}, hash {text(report.audit_hash)}", MONO
                ),
                Paragraph(
                    "The head of the hash-chained audit trail when this report was generated: "
                    "every event up to this sequence number is covered by this hash.",
                    NOTE,
                ),
            ]
        )
    )
    return render_pdf(
        story,
        title=f"Shipment report COI {coi}",
        footer=f"coldchain shipment report \N{MIDDLE DOT} COI {coi} \N{MIDDLE DOT} "
        f"generated {report.generated_at}",
    )
