"""Scorecards of sites and couriers, side by side."""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, Response
from pydantic import Field

from coldchain.api import responses as out
from coldchain.api.auth import current_principal, requires
from coldchain.api.common import collection, ctx
from coldchain.api.openapi import endpoint, parse_query
from coldchain.api.schemas import Rfc3339, Strict
from coldchain.domain.roles import Role
from coldchain.reports import scorecards as report

bp = Blueprint("scorecards", __name__, url_prefix="/api/v1")


class ScorecardQuery(Strict):
    """GET /api/v1/scorecards."""

    since: Rfc3339 | None = Field(default=None, description="shipments created from (inclusive)")
    until: Rfc3339 | None = Field(default=None, description="shipments created before")
    kind: Literal["site", "courier"] | None = Field(
        default=None, description="only sites or only couriers; default both"
    )
    format: Literal["json", "csv"] = "json"


@bp.get("/scorecards")
@requires(Role.ADMIN, Role.COORDINATOR, Role.QA, Role.AUDITOR)
@endpoint(
    "Scorecards of sites and couriers over shipments created in a span (README: Scorecards)",
    query=ScorecardQuery,
    returns=list[out.Scorecard],
)
def scorecards() -> Response:
    q: ScorecardQuery = parse_query(ScorecardQuery)
    rows = report.build_scorecards(
        sessions=ctx().sessions,
        principal=current_principal(),
        since=q.since,
        until=q.until,
        party_type=q.kind,
    )
    return collection(rows, report.COLUMNS, q.format, "scorecards")
