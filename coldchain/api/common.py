"""Shared helpers of the API blueprints: the app context, paging and CSV answers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flask import Response, current_app, g, jsonify, stream_with_context
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from coldchain.api.errors import ApiError
from coldchain.config import Settings
from coldchain.reports.csvstream import csv_chunks


@dataclass
class AppContext:
    """What every request needs: settings and the session factory."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]


def ctx() -> AppContext:
    """Return the coldchain context of the current app."""
    return current_app.extensions["coldchain"]  # type: ignore[no-any-return]


def request_id() -> str | None:
    """The id of this request (X-Request-Id), carried into the audit trail."""
    value = g.get("request_id")
    return None if value is None else str(value)


def page_limit(limit: int | None, fmt: str) -> int | None:
    """Return the page size: the default for JSON, everything for a CSV export."""
    settings = ctx().settings
    if limit is None:
        return None if fmt == "csv" else int(settings["http_page_size"])
    maximum = int(settings["http_max_page_size"])
    if limit > maximum:
        raise ApiError(400, "invalid", f"limit: at most {maximum}", "limit")
    return limit


def collection(
    rows: Iterable[Mapping[str, Any]], columns: Sequence[str], fmt: str, filename: str
) -> Response:
    """Answer a collection as a JSON array or, with ?format=csv, as a streamed CSV download."""
    if fmt == "csv":
        return csv_download(rows, columns, filename)
    return jsonify(list(rows))


def csv_download(
    rows: Iterable[Mapping[str, Any]], columns: Sequence[str], filename: str
) -> Response:
    """Answer rows as a CSV download, written a chunk at a time as the rows are read.

    The status and headers go out before the first row is read: check what can fail (a
    shipment the caller may not see) before calling this. A database error later cuts the
    body short, and the server then ends the connection without the final chunk, so the
    client sees a failed download rather than a short file.
    """
    return Response(
        stream_with_context(csv_chunks(rows, columns)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'},
    )
