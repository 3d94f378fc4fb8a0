"""Shipments, their readings and excursions."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from coldchain.api.auth import current_principal, requires
from coldchain.api.common import collection, ctx, page_limit
from coldchain.api.openapi import endpoint, parse_body, parse_query
from coldchain.api.schemas import ExcursionQuery, ReadingQuery, ShipmentCreate, ShipmentQuery
from coldchain.domain.roles import Role
from coldchain.services import shipments as service

bp = Blueprint("shipments", __name__, url_prefix="/api/v1")

SHIPMENT_COLUMNS = [
    "id",
    "coi",
    "profile",
    "origin_site",
    "destination_site",
    "status",
    "version",
    "loggers",
    "seal_id",
    "monitoring_from",
    "monitoring_until",
    "created_at",
]
READING_COLUMNS = ["logger_id", "time", "received_at", "temp_c"]
EXCURSION_COLUMNS = [
    "id",
    "shipment_id",
    "logger_id",
    "kind",
    "started_at",
    "ended_at",
    "peak_c",
    "duration_s",
    "status",
    "resolution",
    "version",
    "detected_at",
    "updated_at",
]


@bp.post("/shipments")
@requires(Role.ADMIN, Role.COORDINATOR)
@endpoint("Create a shipment", body=ShipmentCreate, status=201, response="the shipment")
def create_shipment() -> tuple[Response, int]:
    body: ShipmentCreate = parse_body(ShipmentCreate)
    app = ctx()
    shipment = service.create_shipment(
        sessions=app.sessions,
        request=service.NewShipment(**body.model_dump()),
        creator=current_principal(),
        profiles=app.settings.profiles,
        secret_key=app.settings.secret_key,
    )
    response = jsonify(shipment)
    response.headers["Location"] = f"/api/v1/shipments/{shipment['id']}"
    return response, 201


@bp.get("/shipments")
@requires()
@endpoint("List the shipments the caller may see", query=ShipmentQuery, csv=True)
def list_shipments() -> Response:
    q: ShipmentQuery = parse_query(ShipmentQuery)
    rows = service.list_shipments(
        sessions=ctx().sessions,
        principal=current_principal(),
        status=q.status,
        limit=page_limit(q.limit, q.format) or 1_000_000_000,
        offset=q.offset,
    )
    return collection(rows, SHIPMENT_COLUMNS, q.format, "shipments")


@bp.get("/shipments/<int:shipment_id>")
@requires()
@endpoint("Show a shipment: status, custody chain, excursions, latest reading")
def get_shipment(shipment_id: int) -> Response:
    return jsonify(
        service.get_shipment(
            sessions=ctx().sessions, shipment_id=shipment_id, principal=current_principal()
        )
    )


@bp.get("/shipments/<int:shipment_id>/readings")
@requires()
@endpoint(
    "A shipment's temperature readings in its monitoring window", query=ReadingQuery, csv=True
)
def shipment_readings(shipment_id: int) -> Response:
    q: ReadingQuery = parse_query(ReadingQuery)
    rows = service.shipment_readings(
        sessions=ctx().sessions,
        shipment_id=shipment_id,
        principal=current_principal(),
        since=q.since,
        until=q.until,
        logger_id=q.logger,
        limit=page_limit(q.limit, q.format),
        offset=q.offset,
    )
    return collection(rows, READING_COLUMNS, q.format, f"shipment-{shipment_id}-readings")


@bp.get("/shipments/<int:shipment_id>/excursions")
@requires()
@endpoint("A shipment's excursions", query=ExcursionQuery, csv=True)
def shipment_excursions(shipment_id: int) -> Response:
    return _excursions(shipment_id)


@bp.get("/excursions")
@requires()
@endpoint(
    "The excursion log: filters since, until, site, kind, status", query=ExcursionQuery, csv=True
)
def list_excursions() -> Response:
    return _excursions(None)


def _excursions(shipment_id: int | None) -> Response:
    q: ExcursionQuery = parse_query(ExcursionQuery)
    filters = service.ExcursionFilter(
        since=q.since,
        until=q.until,
        site=q.site,
        kind=q.kind,
        status=q.status,
        shipment_id=shipment_id,
    )
    rows = service.list_excursions(
        sessions=ctx().sessions,
        principal=current_principal(),
        filters=filters,
        limit=page_limit(q.limit, q.format),
        offset=q.offset,
    )
    name = "excursions" if shipment_id is None else f"shipment-{shipment_id}-excursions"
    return collection(rows, EXCURSION_COLUMNS, q.format, name)
