"""Request bodies and query strings of the API, validated with pydantic."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

# The largest offset the databases take (a signed 64-bit integer), and the largest record id
# (the tables' ids are 32-bit integers): a larger one is refused, or not found, rather than
# failing in the driver.
MAX_INT64 = 2**63 - 1
MAX_ID = 2**31 - 1


def _rfc3339_text(value: Any) -> Any:
    # Pydantic would read 0.5 or "0.5" as Unix seconds; the contract speaks RFC 3339 only,
    # and a number where a time was meant is more likely a mistake than a wish.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or "T" not in value.upper():
        raise ValueError("must be an RFC 3339 date-time, e.g. 2026-01-31T12:00:00Z")
    return value


def _integer_text(value: Any) -> Any:
    # A query string's "0.0" or "1e3" would pass as an integer in pydantic's lax mode.
    if isinstance(value, str) and not value.lstrip("-").isdigit():
        raise ValueError("must be a whole number written in digits")
    return value


def _iso_date_text(value: Any) -> Any:
    # Pydantic would take 1764000000 as a day, or a full time as its date; a calendar day
    # (a calibration due date) is written YYYY-MM-DD and nothing else.
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or len(value) != 10:
        raise ValueError("must be a calendar date written YYYY-MM-DD, e.g. 2027-01-31")
    return value


# A calendar day (UTC) in a body: YYYY-MM-DD.
IsoDate = Annotated[date, BeforeValidator(_iso_date_text)]


# An integer in a query string: digits only. A page size is at least 1 (the upper bound is a
# setting, checked by the view); the bound sits inside the type so that the OpenAPI
# document shows it as `minimum` on the integer branch of `limit`'s anyOf.
QueryInt = Annotated[int, BeforeValidator(_integer_text)]
PageSize = Annotated[int, Field(ge=1), BeforeValidator(_integer_text)]

# A time in a query string or body: RFC 3339 with a time zone.
Rfc3339 = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text)]


PAGE_SIZE = (
    "page size: 1 to http.max_page_size (default 100000), else 400; default http.page_size"
    " (JSON) or every row (CSV)"
)


class Strict(BaseModel):
    # An unknown field is refused (400 naming it): a misspelt optional field must not be
    # silently ignored on a record that decides a patient's dose.
    model_config = ConfigDict(extra="forbid")


class ShipperIn(Strict):
    """An LN2 dry shipper: its rated static hold time and when it was charged."""

    rated_hold_h: float = Field(gt=0, le=10_000, description="rated static hold time, hours")
    charged_at: Rfc3339 = Field(description="when it was charged with LN2")


class ShipmentCreate(Strict):
    """POST /api/v1/shipments."""

    coi: str = Field(description="14-character COI: ISBT 128 DIN + Mod 37-2 check character")
    profile: str = Field(description="temperature profile name, e.g. LN2_VAPOR")
    origin_site: str
    destination_site: str
    loggers: list[str] = Field(min_length=1)
    patient: dict[str, str] = Field(description="patient identifiers; stored only as a keyed hash")
    monitoring_from: Rfc3339 | None = None
    seal_id: str | None = Field(default=None, max_length=100)
    planned_arrival: Rfc3339 | None = Field(
        default=None, description="when the product should reach its destination"
    )
    shipper: ShipperIn | None = Field(
        default=None,
        description="LN2 dry shipper (profile with a max_c): its limit crossing is predicted, "
        "and a PREDICTED alarm raised if it falls before planned_arrival + prediction.margin_h",
    )


class LoggerCreate(Strict):
    """POST /api/v1/loggers."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    model: str | None = Field(default=None, max_length=100)
    firmware: str | None = Field(default=None, max_length=100)
    calibration_due: IsoDate | None = Field(
        default=None, description="valid through this day (UTC); none: calibration unknown"
    )


class LoggerUpdate(Strict):
    """PATCH /api/v1/loggers/{logger_id}: only the fields given change; null clears one."""

    model: str | None = Field(default=None, max_length=100)
    firmware: str | None = Field(default=None, max_length=100)
    calibration_due: IsoDate | None = Field(
        default=None, description="valid through this day (UTC); null: calibration unknown"
    )


class CalibrationCreate(Strict):
    """POST /api/v1/loggers/{logger_id}/calibration: a calibration done."""

    calibrated_on: IsoDate | None = Field(
        default=None, description="the day it was calibrated (UTC), today if absent"
    )
    certificate: str | None = Field(
        default=None, min_length=1, max_length=100, description="calibration certificate ref."
    )
    calibration_due: IsoDate = Field(description="next calibration due (valid through that day)")


class Page(Strict):
    limit: PageSize | None = Field(default=None, description=PAGE_SIZE)
    offset: QueryInt = Field(default=0, ge=0, le=MAX_INT64)
    format: Literal["json", "csv"] = "json"


class ShipmentQuery(Page):
    status: str | None = None


class ReadingQuery(Page):
    since: Rfc3339 | None = None
    until: Rfc3339 | None = None
    logger: str | None = None


class ExcursionQuery(Page):
    since: Rfc3339 | None = Field(default=None, description="overlapping from")
    until: Rfc3339 | None = Field(default=None, description="overlapping until")
    site: str | None = Field(default=None, description="origin or destination site")
    kind: Literal["HIGH", "LOW", "SIGNAL_LOSS", "high", "low", "signal_loss"] | None = None
    status: Literal["OPEN", "CLOSED", "open", "closed"] | None = None


class DeadLetterQuery(Page):
    reason: str | None = None
    logger: str | None = None
    since: Rfc3339 | None = None


class SignatureIn(Strict):
    """The second component of a signature: the signer's password again, and its meaning."""

    password: str = Field(min_length=1, max_length=1000)
    meaning: str = Field(min_length=1, max_length=200, description='e.g. "Released to courier"')


class Signed(Strict):
    # Strict: JSON true is not version 1.
    version: int = Field(
        ge=1,
        le=MAX_ID,
        strict=True,
        description="the version the signer saw, as its GET returned it",
    )
    signature: SignatureIn


class HandoffCreate(Signed):
    """POST /api/v1/shipments/{id}/handoffs."""

    from_party: str = Field(min_length=1, max_length=100, description="site id or courier name")
    to_party: str = Field(min_length=1, max_length=100, description="site id or courier name")
    location: str = Field(min_length=1, max_length=200)
    seal_id: str = Field(min_length=1, max_length=100, description="the seal seen at handoff")
    condition: str = Field(min_length=1, max_length=200, description='e.g. "intact"')
    notes: str | None = Field(default=None, max_length=2000)
    seal_change_reason: str | None = Field(
        default=None, max_length=2000, description="required when the seal is not the recorded one"
    )


class ReceiptCreate(Signed):
    """POST /api/v1/shipments/{id}/receipt."""

    coi_scan: str = Field(min_length=1, max_length=40, description="the COI as scanned")
    patient: dict[str, str] = Field(description="patient identifiers, re-entered")
    seal_id: str = Field(min_length=1, max_length=100)
    decision: Literal["accept", "reject", "quarantine"]
    reason: str | None = Field(default=None, max_length=2000, description="required unless accept")


class CancelRequest(Strict):
    """POST /api/v1/shipments/{id}/cancel."""

    version: int = Field(ge=1, le=MAX_ID, strict=True)
    reason: str = Field(min_length=1, max_length=2000)


class DispositionCreate(Signed):
    """POST /api/v1/excursions/{id}/disposition."""

    decision: Literal["product_acceptable", "product_rejected", "needs_investigation"]
    reason: str = Field(min_length=1, max_length=2000)


class AuditQuery(Strict):
    """GET /api/v1/audit."""

    entity: str | None = Field(default=None, description="shipment, excursion, user, ...")
    entity_id: str | None = None
    actor: str | None = Field(default=None, description="user name or system:...")
    action: str | None = Field(default=None, description='e.g. "shipment.accept" or "shipment"')
    since: Rfc3339 | None = None
    until: Rfc3339 | None = None
    limit: PageSize | None = Field(default=None, description=PAGE_SIZE)
    offset: QueryInt = Field(default=0, ge=0, le=MAX_INT64)
    format: Literal["json", "csv", "jsonl"] = "json"
