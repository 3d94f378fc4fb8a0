"""Hold-time prediction of LN2 dry shippers: the PREDICTED alarm at ingest, the estimate on read.

Only shipments created with a `shipper` (rated hold, charge time) take part. Their
[prediction] settings and the profile's limit are stored with them at creation
(`Shipment.prediction_settings`), so later readings, replays and backfills are judged by
the rule that was in force when the shipment was made, whatever the configuration says now.

The alarm is computed where the worker stores readings (`update_touched`, called from
`ingest.reevaluate_touched`, in the batch's transaction): the estimate is made at fixed
evaluation points, the first reading of every `step_min` bucket of the logger's clock, each
from the readings of the `lookback_h` before it, so an evaluation point and its estimate
depend on the readings alone, not on how they were batched. A PREDICTED alarm is raised at
the first evaluation point whose estimate falls before the planned arrival plus `margin_h`
(its `at_us` is that reading's time: a replay raises the same alarm, which changes nothing),
and cleared at the first later point whose estimate is `clear_h` further past that: a
shipper that held longer than its derated rating, a warm-up that stopped. One PREDICTED
alarm per shipment and logger is open at a time.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from coldchain.domain.errors import ValidationError
from coldchain.domain.holdtime import (
    US_PER_H,
    HoldSettings,
    Prediction,
    evaluation_points,
    is_alarming,
    is_safe,
    predict_crossing,
)
from coldchain.domain.profiles import Profile
from coldchain.services.alarms import clear_alarm, raise_alarm
from coldchain.services.timefmt import rfc3339, to_us
from coldchain.store.models import Alarm, Reading, Shipment

KIND = "PREDICTED"
# The settings a deployment may change; the rest are the estimator's fixed constants.
CONFIGURABLE = ("margin_h", "clear_h", "derating", "warmup_h", "ambient_c")


def settings_from(values: Mapping[str, Any]) -> HoldSettings:
    """Return the [prediction] settings (defaults where a key is missing)."""
    default = HoldSettings()
    return dataclasses.replace(
        default,
        **{
            name: float(values.get(f"prediction_{name}", getattr(default, name)))
            for name in CONFIGURABLE
        },
    )


def shipper_columns(
    *,
    shipper: Mapping[str, Any] | None,
    planned_arrival: datetime | None,
    profile: Profile,
    settings: HoldSettings | None,
    now: datetime,
) -> dict[str, Any]:
    """Return a new shipment's prediction columns, with its settings and limit as of now."""
    columns: dict[str, Any] = {"planned_arrival": planned_arrival}
    if shipper is None:
        return columns
    if profile.max_c is None:
        raise ValidationError(
            f"profile {profile.name} has no upper limit whose crossing could be predicted",
            field="shipper",
        )
    charged_at: datetime = shipper["charged_at"]
    if charged_at > now + timedelta(minutes=5):
        raise ValidationError(
            "the shipper cannot be charged in the future", field="shipper.charged_at"
        )
    snapshot = {**dataclasses.asdict(settings or HoldSettings()), "limit_c": profile.max_c}
    columns.update(
        shipper_rated_hold_h=float(shipper["rated_hold_h"]),
        shipper_charged_at=charged_at,
        prediction_settings=json.dumps(snapshot, sort_keys=True),
    )
    return columns


def audit_fields(columns: Mapping[str, Any]) -> dict[str, Any]:
    """Return the prediction fields of a new shipment for its audit event (none if unset)."""
    fields: dict[str, Any] = {}
    if columns.get("planned_arrival") is not None:
        fields["planned_arrival"] = rfc3339(columns["planned_arrival"])
    if columns.get("prediction_settings") is not None:
        fields["shipper"] = {
            "rated_hold_h": columns["shipper_rated_hold_h"],
            "charged_at": rfc3339(columns["shipper_charged_at"]),
        }
        fields["prediction_settings"] = json.loads(columns["prediction_settings"])
    return fields


def shipment_fields(session: Session, shipment: Shipment) -> dict[str, Any]:
    """Return what a shipment's GET shows of its arrival, shipper and prediction."""
    return {
        "planned_arrival": rfc3339(shipment.planned_arrival),
        "shipper": shipper_view(shipment),
        "prediction": shipment_prediction(session, shipment),
    }


def _stored(shipment: Shipment) -> tuple[HoldSettings, float]:
    raw = dict(json.loads(shipment.prediction_settings or "{}"))
    limit_c = float(raw.pop("limit_c"))
    known = {f.name for f in dataclasses.fields(HoldSettings)}
    return HoldSettings(**{k: v for k, v in raw.items() if k in known}), limit_c


def _series(
    session: Session, logger_id: str, from_us: int, until_us: int
) -> list[tuple[int, float]]:
    rows = session.execute(
        select(Reading.time_us, Reading.value)
        .where(
            Reading.logger_id == logger_id,
            Reading.name == "temp",
            Reading.time_us >= from_us,
            Reading.time_us <= until_us,
        )
        .order_by(Reading.time_us)
    )
    return [(t, v) for t, v in rows]


def _predict(
    series: Sequence[tuple[int, float]], shipment: Shipment, settings: HoldSettings, limit_c: float
) -> Prediction:
    assert shipment.shipper_charged_at is not None and shipment.shipper_rated_hold_h is not None
    return predict_crossing(
        series,
        limit_c=limit_c,
        charged_at_us=to_us(shipment.shipper_charged_at),
        rated_hold_h=shipment.shipper_rated_hold_h,
        settings=settings,
    )


def update_touched(
    session: Session,
    touched: Mapping[str, tuple[int, int]],
    links: Iterable[tuple[Shipment, str]],
) -> None:
    """Raise or clear PREDICTED alarms of dry-shipper shipments whose readings changed.

    `links` are the touched loggers' shipments (`ingest.monitored_links`); those without
    a prediction (no hold-time settings or no planned arrival) are passed over.
    """
    for shipment, logger_id in links:
        if shipment.prediction_settings is None or shipment.planned_arrival is None:
            continue
        lo, hi = touched[logger_id]
        _update_one(session, shipment, logger_id, lo, hi)


def _update_one(session: Session, shipment: Shipment, logger_id: str, lo: int, hi: int) -> None:
    settings, limit_c = _stored(shipment)
    assert shipment.planned_arrival is not None
    arrival_us = to_us(shipment.planned_arrival)
    window_from = to_us(shipment.monitoring_from)
    window_until = None if shipment.monitoring_until is None else to_us(shipment.monitoring_until)
    lookback_us = round(settings.lookback_h * US_PER_H)
    step_us = round(settings.step_min * 60_000_000)
    # New readings change the estimates made at the points up to lookback_h after them, and
    # may be points themselves (first of their bucket: the bucket's readings are needed).
    points_from = max(window_from, lo)
    points_until = hi + lookback_us if window_until is None else min(hi + lookback_us, window_until)
    if points_from > points_until:
        return
    bucket_from = max(window_from, points_from // step_us * step_us)
    near = _series(session, logger_id, bucket_from, points_until)
    points = [
        index
        for index in evaluation_points([t for t, _ in near], step_min=settings.step_min)
        if near[index][0] >= points_from
    ]
    if not points:
        # The usual live case: a reading that is not the first of its bucket.
        return
    earlier = _series(
        session, logger_id, max(window_from, points_from - lookback_us), bucket_from - 1
    )
    series = earlier + near
    offset = len(earlier)
    open_alarm = session.scalars(
        select(Alarm)
        .where(
            Alarm.shipment_id == shipment.id,
            Alarm.logger_id == logger_id,
            Alarm.kind == KIND,
            Alarm.status == "OPEN",
        )
        .order_by(Alarm.at_us.desc())
    ).first()
    start = 0
    for point in points:
        index = offset + point
        at_us = series[index][0]
        while series[start][0] < at_us - lookback_us:
            start += 1
        prediction = _predict(series[start : index + 1], shipment, settings, limit_c)
        if open_alarm is None and is_alarming(prediction, arrival_us=arrival_us, settings=settings):
            raised = raise_alarm(
                session,
                shipment_id=shipment.id,
                logger_id=logger_id,
                kind=KIND,
                severity="critical" if prediction.crossing_us < arrival_us else "warning",
                at_us=at_us,
                detail={
                    **prediction_view(prediction),
                    "planned_arrival": rfc3339(arrival_us),
                    "margin_h": settings.margin_h,
                    "limit_c": limit_c,
                },
            )
            if raised is not None:
                open_alarm = raised
        elif (
            open_alarm is not None
            and at_us > open_alarm.at_us
            and is_safe(prediction, arrival_us=arrival_us, settings=settings)
        ):
            clear_alarm(session, open_alarm, cleared_us=at_us)
            open_alarm = None


def prediction_view(prediction: Prediction) -> dict[str, Any]:
    """Return a prediction object (times RFC 3339)."""
    return {
        "crossing_at": rfc3339(prediction.crossing_us),
        "method": prediction.method,
        "earliest_at": rfc3339(prediction.earliest_us),
        "latest_at": rfc3339(prediction.latest_us),
        "as_of": rfc3339(prediction.as_of_us),
    }


def shipment_prediction(session: Session, shipment: Shipment) -> dict[str, Any] | None:
    """Return the estimate as of each logger's latest reading: the earliest crossing wins."""
    if shipment.prediction_settings is None or shipment.monitoring_until is not None:
        return None
    settings, limit_c = _stored(shipment)
    window_from = to_us(shipment.monitoring_from)
    best: tuple[Prediction, str | None] | None = None
    for link in shipment.loggers:
        latest = session.scalar(
            select(Reading.time_us)
            .where(
                Reading.logger_id == link.logger_id,
                Reading.name == "temp",
                Reading.time_us >= window_from,
            )
            .order_by(Reading.time_us.desc())
            .limit(1)
        )
        series = (
            []
            if latest is None
            else _series(
                session,
                link.logger_id,
                max(window_from, latest - round(settings.lookback_h * US_PER_H)),
                latest,
            )
        )
        prediction = _predict(series, shipment, settings, limit_c)
        if best is None or prediction.crossing_us < best[0].crossing_us:
            best = (prediction, link.logger_id if series else None)
    if best is None:
        return None
    prediction, logger_id = best
    return {**prediction_view(prediction), "logger_id": logger_id, "limit_c": limit_c}


def shipper_view(shipment: Shipment) -> dict[str, Any] | None:
    """Return the shipment's dry shipper as given at creation."""
    if shipment.shipper_charged_at is None:
        return None
    return {
        "rated_hold_h": shipment.shipper_rated_hold_h,
        "charged_at": rfc3339(shipment.shipper_charged_at),
    }
