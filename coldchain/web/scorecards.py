"""The scorecards page: sites and couriers side by side, a table and comparison charts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from flask import Response, render_template, request

from coldchain.api.common import ctx
from coldchain.domain.errors import DomainError, NotFoundError
from coldchain.domain.roles import Role
from coldchain.services.timefmt import parse_rfc3339
from coldchain.web import bp, current_user, signed_in

READERS = (Role.ADMIN, Role.COORDINATOR, Role.QA, Role.AUDITOR)
KIND_SERIES = (
    ("high_per_100", "HIGH", "#d62728"),
    ("low_per_100", "LOW", "#1f77b4"),
    ("signal_loss_per_100", "SIGNAL_LOSS", "#7f7f7f"),
)
MINUTES_SERIES = (("minutes_out_of_range", "minutes out of range", "#d67b27"),)
EXPORTS = {
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
# Geometry of the charts (SVG user units): label column, bar area, row height.
LABEL_W, BAR_W, ROW_H = 150, 460, 22


def _span(args: Mapping[str, str]) -> tuple[datetime | None, datetime | None, str | None]:
    """The page's filters; a bad time or kind is a clear 400."""
    times: list[datetime | None] = []
    for name in ("since", "until"):
        value = args.get(name, "").strip()
        try:
            times.append(parse_rfc3339(value) if value else None)
        except ValueError:
            raise DomainError(f"{name}: use a time like 2026-11-25T08:00:00Z", field=name) from None
    kind = args.get("kind") or None
    if kind not in (None, "site", "courier"):
        raise DomainError("kind: site or courier", field="kind")
    return times[0], times[1], kind


def bar_chart(
    rows: Sequence[Mapping[str, Any]], series: Sequence[tuple[str, str, str]]
) -> dict[str, Any]:
    """Lay out a horizontal bar chart, one bar per party, the series stacked along it."""
    totals = [sum(row[column] or 0 for column, _, _ in series) for row in rows]
    top = max(totals, default=0) or 1
    bars = []
    for index, row in enumerate(rows):
        x = float(LABEL_W)
        segments = []
        for column, label, colour in series:
            value = row[column] or 0
            width = BAR_W * value / top
            if width > 0:
                segments.append(
                    {"x": x, "w": width, "colour": colour, "label": label, "value": value}
                )
            x += width
        bars.append(
            {
                "party": row["party"],
                "y": index * ROW_H,
                "segments": segments,
                "total": totals[index],
                "end": x,
            }
        )
    return {
        "bars": bars,
        "series": series,
        "width": LABEL_W + BAR_W + 80,
        "height": max(len(rows), 1) * ROW_H + 4,
        "label_w": LABEL_W,
        "row_h": ROW_H,
    }


@bp.get("/scorecards")
@signed_in(*READERS)
def scorecards_page() -> tuple[str, int]:
    from coldchain.reports import scorecards as report

    error: DomainError | None = None
    rows: list[dict[str, Any]] = []
    try:
        since, until, kind = _span(request.args)
    except DomainError as exc:
        error = exc
    else:
        rows = report.build_scorecards(
            sessions=ctx().sessions,
            principal=current_user(),
            since=since,
            until=until,
            party_type=kind,
        )
    page = render_template(
        "scorecards.html",
        rows=rows,
        args=request.args,
        error=error,
        definitions=report.DEFINITIONS,
        kinds_chart=bar_chart(rows, KIND_SERIES),
        minutes_chart=bar_chart(rows, MINUTES_SERIES),
    )
    return page, 400 if error else 200


@bp.get("/scorecards/export.<fmt>")
@signed_in(*READERS)
def scorecards_export(fmt: str) -> Response:
    from coldchain.reports import scorecards as report

    if fmt not in EXPORTS:
        raise NotFoundError(f"no {fmt} export: csv or xlsx")
    since, until, kind = _span(request.args)
    rows = report.build_scorecards(
        sessions=ctx().sessions, principal=current_user(), since=since, until=until, party_type=kind
    )
    body = report.scorecards_csv(rows) if fmt == "csv" else report.scorecards_xlsx(rows)
    return Response(
        body,
        mimetype=EXPORTS[fmt],
        headers={"Content-Disposition": f'attachment; filename="scorecards.{fmt}"'},
    )
