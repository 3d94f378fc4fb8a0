"""The excursion log as CSV, XLSX and PDF, from the rows of services.shipments.list_excursions.

CSV is written a chunk at a time (`excursions_csv_chunks`), so the log streams in constant
memory whatever its size. XLSX and PDF are built whole in memory: a workbook is a zip and a
PDF a table laid out across pages, neither written row by row, and both are meant for logs
a person reads (thousands of rows, not millions).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from reportlab.lib.pagesizes import A4, landscape
from reportlab.platypus import Flowable, Paragraph, Spacer
from sqlalchemy.orm import Session, sessionmaker

from coldchain.reports.csvstream import csv_chunks
from coldchain.reports.pdf import NOTE, TITLE, excursion_table, frame_width, render_pdf, text
from coldchain.services import shipments
from coldchain.services.accounts import Principal
from coldchain.services.shipments import ExcursionFilter
from coldchain.services.timefmt import rfc3339
from coldchain.services.views import EXCURSION_FIELDS

__all__ = [
    "COLUMNS",
    "SHEET",
    "excursion_rows",
    "excursions_csv",
    "excursions_csv_chunks",
    "excursions_frame",
    "excursions_pdf",
    "excursions_xlsx",
]

COLUMNS = EXCURSION_FIELDS
SHEET = "Excursions"


def excursion_rows(
    *, sessions: sessionmaker[Session], principal: Principal, filters: ExcursionFilter
) -> list[dict[str, Any]]:
    """Return every excursion of the log the caller may see, oldest first (no paging)."""
    return shipments.list_excursions(
        sessions=sessions, principal=principal, filters=filters, limit=None, offset=0
    )


def excursions_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Return the log as a data frame with the contract's columns; times stay RFC 3339 text."""
    # Text, not spreadsheet dates: Excel has no time zone and keeps no microseconds.
    return pd.DataFrame.from_records(
        [{column: row.get(column) for column in COLUMNS} for row in rows], columns=list(COLUMNS)
    )


def excursions_csv(rows: Iterable[Mapping[str, Any]]) -> bytes:
    """Return the log as UTF-8 CSV with a header row (the streamed writer's text, whole)."""
    return "".join(csv_chunks(rows, COLUMNS)).encode("utf-8")


def excursions_csv_chunks(
    *, sessions: sessionmaker[Session], principal: Principal, filters: ExcursionFilter
) -> Iterator[str]:
    """Yield the log the caller may see as CSV text, read from the database in batches."""
    return csv_chunks(
        shipments.stream_excursions(sessions=sessions, principal=principal, filters=filters),
        COLUMNS,
    )


def excursions_xlsx(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """Return the log as an XLSX workbook with one sheet, "Excursions", and a header row."""
    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        excursions_frame(rows).to_excel(writer, sheet_name=SHEET, index=False)
        sheet = writer.sheets[SHEET]
        sheet.freeze_panes = "A2"
        sheet.auto_filter.ref = sheet.dimensions
        for cells in sheet.iter_cols(min_row=1, max_row=min(sheet.max_row, 500)):
            longest = max(len(str(c.value)) for c in cells if c.value is not None)
            sheet.column_dimensions[cells[0].column_letter].width = min(longest + 2, 40)
    return buffer.getvalue()


def excursions_pdf(rows: Sequence[Mapping[str, Any]], title: str) -> bytes:
    """Return the log as a landscape PDF table, open excursions shaded."""
    pagesize = landscape(A4)
    generated_at = rfc3339(datetime.now(UTC).replace(microsecond=0))
    story: list[Flowable] = [
        Paragraph(text(title), TITLE),
        Paragraph(f"{len(rows)} excursions, generated {text(generated_at)}", NOTE),
        Spacer(1, 8),
    ]
    if rows:
        story.append(excursion_table(rows, frame_width(pagesize), with_shipment=True))
    else:
        story.append(Paragraph("No excursions match.", NOTE))
    return render_pdf(
        story,
        title=title,
        footer=f"{title} \N{MIDDLE DOT} generated {generated_at}",
        pagesize=pagesize,
    )
