"""Scorecards of sites and couriers: each party's shares of its shipments, added up with pandas.

`coldchain.services.scorecards` reads the shipments and attributes every excursion, custody
interval, seal change and receipt to a party (the rules are in `coldchain.domain.scorecards`);
this module aggregates those shares into one row per party and writes them as CSV, XLSX or
JSON. A scorecard has one row per site and per courier, so it is built whole in memory.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from coldchain.domain.scorecards import HIGH, LOW, SIGNAL_LOSS, US_PER_S, fraction, per_hundred
from coldchain.reports.csvstream import csv_chunks
from coldchain.services.accounts import Principal
from coldchain.services.scorecards import ScorecardFacts, scorecard_facts

__all__ = [
    "COLUMNS",
    "DEFINITIONS",
    "build_scorecards",
    "scorecard_frame",
    "scorecard_rows",
    "scorecards_csv",
    "scorecards_json",
    "scorecards_xlsx",
]

# Each column with its exact definition (the README's "Scorecards" section says the same).
DEFINITIONS: dict[str, str] = {
    "party": "site id, or a courier's user name as the handoffs name it",
    "party_type": "site (from the sites table) or courier (a handoff party that is no site)",
    "site_kind": "apheresis, manufacturing or treatment; empty for a courier",
    "name": "the site's name, or the courier's full name",
    "shipments": "shipments created in the span that the party held at some time "
    "(the origin always; any other party once a handoff gave it custody)",
    "high_excursions": "HIGH excursions that started while the party held the shipment",
    "low_excursions": "LOW excursions that started while the party held the shipment",
    "signal_loss_excursions": "SIGNAL_LOSS excursions that started while the party held it",
    "high_per_100": "high_excursions per 100 shipments",
    "low_per_100": "low_excursions per 100 shipments",
    "signal_loss_per_100": "signal_loss_excursions per 100 shipments",
    "minutes_out_of_range": "minutes of HIGH and LOW excursions that fell in the party's "
    "custody, summed over excursions (two loggers out at once count twice)",
    "custody_hours": "hours the party held the shipments within their monitoring windows",
    "signal_lost_fraction": "SIGNAL_LOSS time in the party's custody divided by its "
    "monitored logger time (custody time times the shipment's loggers)",
    "seal_changes": "handoffs from the party with a new seal (seal_changed_from set)",
    "custody_gaps": "handoffs that broke the chain where the party should have handed over: "
    "not from the holder, or earlier than the handoff before",
    "rejections_received": "shipments the party, as receiving site, rejected",
    "quarantines_received": "shipments the party, as receiving site, quarantined",
    "rejections_shipped": "shipments the party held before a receiving site rejected them",
    "quarantines_shipped": "shipments the party held before a receiving site quarantined them",
    "median_door_to_door_h": "median hours from a shipment's first handoff to its first "
    "receipt decision, over the party's shipments that have both",
}
COLUMNS = tuple(DEFINITIONS)
SHEET = "Scorecards"
COUNTS = (
    "high",
    "low",
    "signal_loss",
    "out_of_range_us",
    "signal_lost_us",
    "custody_us",
    "monitored_logger_us",
    "seal_changes",
    "custody_gaps",
    "rejections_received",
    "quarantines_received",
    "rejections_shipped",
    "quarantines_shipped",
)


def build_scorecards(
    *,
    sessions: sessionmaker[Session],
    principal: Principal,
    since: datetime | None,
    until: datetime | None,
    party_type: str | None = None,
    now_us: int | None = None,
) -> list[dict[str, Any]]:
    """Return the scorecard rows of the span, sites first, optionally of one party type."""
    facts = scorecard_facts(
        sessions=sessions, principal=principal, since=since, until=until, now_us=now_us
    )
    return scorecard_rows(scorecard_frame(facts, party_type))


def scorecard_frame(facts: ScorecardFacts, party_type: str | None = None) -> pd.DataFrame:
    """Return one row per party with the scorecard's columns (None where a rate is undefined)."""
    shares = pd.DataFrame.from_records(
        [
            {
                "shipment_id": s.shipment_id,
                "party": s.party,
                "high": s.excursions.get(HIGH, 0),
                "low": s.excursions.get(LOW, 0),
                "signal_loss": s.excursions.get(SIGNAL_LOSS, 0),
                **{name: getattr(s, name) for name in COUNTS[3:]},
                "door_to_door_us": s.door_to_door_us,
            }
            for s in facts.shares
        ],
        columns=["shipment_id", "party", *COUNTS, "door_to_door_us"],
    )
    shares["door_to_door_us"] = pd.to_numeric(shares["door_to_door_us"], errors="coerce")
    totals = shares.groupby("party").agg(
        shipments=("shipment_id", "nunique"),
        median_door_to_door_us=("door_to_door_us", "median"),
        **{name: (name, "sum") for name in COUNTS},
    )
    parties = pd.DataFrame.from_records(
        [vars(p) for p in facts.parties], columns=["party", "party_type", "site_kind", "name"]
    )
    if party_type is not None:
        parties = parties[parties["party_type"] == party_type]
    frame = parties.merge(totals, how="left", left_on="party", right_index=True)
    for name in ("shipments", *COUNTS):
        frame[name] = frame[name].fillna(0).astype("int64")

    def rate(count: str) -> list[float | None]:
        counts = zip(frame[count], frame["shipments"], strict=True)
        return [per_hundred(int(n), int(of)) for n, of in counts]

    frame["high_excursions"] = frame["high"]
    frame["low_excursions"] = frame["low"]
    frame["signal_loss_excursions"] = frame["signal_loss"]
    frame["high_per_100"] = rate("high")
    frame["low_per_100"] = rate("low")
    frame["signal_loss_per_100"] = rate("signal_loss")
    frame["minutes_out_of_range"] = frame["out_of_range_us"] / (60 * US_PER_S)
    frame["custody_hours"] = frame["custody_us"] / (3600 * US_PER_S)
    frame["signal_lost_fraction"] = [
        fraction(lost, watched)
        for lost, watched in zip(frame["signal_lost_us"], frame["monitored_logger_us"], strict=True)
    ]
    frame["median_door_to_door_h"] = frame["median_door_to_door_us"] / (3600 * US_PER_S)
    frame["sites_first"] = frame["party_type"] != "site"
    frame = frame.sort_values(["sites_first", "party"], kind="stable")
    return frame.reindex(columns=list(COLUMNS)).reset_index(drop=True)


def scorecard_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Return a scorecard frame as JSON-ready rows: plain ints and floats, None for no value."""
    plain = frame.astype(object).where(frame.notna(), None)
    return [
        {column: _plain(value) for column, value in row.items()} for row in plain.to_dict("records")
    ]


def _plain(value: Any) -> Any:
    """A cell as a Python value: numpy scalars unwrapped (JSON and openpyxl take them so)."""
    return value.item() if hasattr(value, "item") else value


def scorecards_csv(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """Return the scorecards as UTF-8 CSV with a header row."""
    return "".join(csv_chunks(rows, COLUMNS)).encode("utf-8")


def scorecards_json(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """Return the scorecards as a JSON array, as the API answers them."""
    return (json.dumps(list(rows), indent=2) + "\n").encode("utf-8")


def scorecards_xlsx(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """Return an XLSX workbook: the scorecards, and a sheet with each column's definition."""
    buffer = io.BytesIO()
    frame = pd.DataFrame.from_records(list(rows), columns=list(COLUMNS))
    definitions = pd.DataFrame(list(DEFINITIONS.items()), columns=["column", "definition"])
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        frame.to_excel(writer, sheet_name=SHEET, index=False)
        definitions.to_excel(writer, sheet_name="Definitions", index=False)
        sheet = writer.sheets[SHEET]
        sheet.freeze_panes = "B2"
        for cells in sheet.iter_cols(min_row=1, max_row=1):
            sheet.column_dimensions[cells[0].column_letter].width = max(len(str(cells[0].value)), 8)
        writer.sheets["Definitions"].column_dimensions["B"].width = 100
    return buffer.getvalue()
