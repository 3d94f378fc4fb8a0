"""Shipments, their readings and excursions."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from coldchain.api import responses as out
from coldchain.api.auth import current_principal, requires
from coldchain.api.common import collection, ctx, page_limit, request_id
from coldchain.api.openapi import endpoint, parse_body, parse_query
from coldchain.api.ratelimit import limit_signature
from coldchain.api.schemas import (
    CancelRequest,
    DispositionCreate,
    ExcursionQuery,
    HandoffCreate,
    ReadingQuery,
    ReceiptCreate,
    ShipmentCreate,
    ShipmentQuery,
    SignatureIn,
)
from coldchain.domain.custody import Decision, Disposition
from coldchain.domain.roles import Role
from coldchain.services import custody, holdtime
from coldchain.services import shipments as service
from coldchain.services.fleet import policy_from_settings
from coldchain.services.signing import SignatureInput
from coldchain.services.views import EXCURSION_FIELDS

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
    "leg",
    "holder",
    "monitoring_from",
    "monitoring_until",
    "created_at",
]
READING_COLUMNS = ["logger_id", "time", "received_at", "temp_c"]
EXCURSION_COLUMNS = list(EXCURSION_FIELDS)


@bp.post("/shipments")
@requires(Role.ADMIN, Role.COORDINATOR)
@endpoint(
    "Create a shipment",
    body=ShipmentCreate,
    status=201,
    response="the shipment, with `warnings` (battery low, calibration unknown)",
    returns=out.CreatedShipment,
)
def create_shipment() -> tuple[Response, int]:
    body: ShipmentCreate = parse_body(ShipmentCreate)
    app = ctx()
    shipment = service.create_shipment(
        sessions=app.sessions,
        request=service.NewShipment(**body.model_dump()),
        creator=current_principal(),
        profiles=app.settings.profiles,
        secret_key=app.settings.secret_key,
        request_id=request_id(),
        fleet_policy=policy_from_settings(app.settings.values),
        prediction=holdtime.settings_from(app.settings.values),
    )
    response = jsonify(shipment)
    response.headers["Location"] = f"/api/v1/shipments/{shipment['id']}"
    return response, 201


@bp.get("/shipments")
@requires()
@endpoint(
    "List the shipments the caller may see",
    query=ShipmentQuery,
    csv=True,
    returns=list[out.ShipmentSummary],
)
def list_shipments() -> Response:
    q: ShipmentQuery = parse_query(ShipmentQuery)
    read = service.stream_shipments if q.format == "csv" else service.list_shipments
    rows = read(
        sessions=ctx().sessions,
        principal=current_principal(),
        status=q.status,
        limit=page_limit(q.limit, q.format),
        offset=q.offset,
    )
    return collection(rows, SHIPMENT_COLUMNS, q.format, "shipments")


@bp.get("/shipments/<int:shipment_id>")
@requires()
@endpoint(
    "Show a shipment: status, custody chain, excursions, latest reading",
    returns=out.Shipment,
)
def get_shipment(shipment_id: int) -> Response:
    return jsonify(
        service.get_shipment(
            sessions=ctx().sessions, shipment_id=shipment_id, principal=current_principal()
        )
    )


@bp.get("/shipments/<int:shipment_id>/readings")
@requires()
@endpoint(
    "A shipment's temperature readings in its monitoring window",
    query=ReadingQuery,
    csv=True,
    returns=list[out.Reading],
)
def shipment_readings(shipment_id: int) -> Response:
    q: ReadingQuery = parse_query(ReadingQuery)
    read = service.stream_shipment_readings if q.format == "csv" else service.shipment_readings
    rows = read(
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
@endpoint("A shipment's excursions", query=ExcursionQuery, csv=True, returns=list[out.Excursion])
def shipment_excursions(shipment_id: int) -> Response:
    return _excursions(shipment_id)


@bp.get("/excursions")
@requires()
@endpoint(
    "The excursion log: filters since, until, site, kind, status",
    query=ExcursionQuery,
    csv=True,
    returns=list[out.Excursion],
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
    read = service.stream_excursions if q.format == "csv" else service.list_excursions
    rows = read(
        sessions=ctx().sessions,
        principal=current_principal(),
        filters=filters,
        limit=page_limit(q.limit, q.format),
        offset=q.offset,
    )
    name = "excursions" if shipment_id is None else f"shipment-{shipment_id}-excursions"
    return collection(rows, EXCURSION_COLUMNS, q.format, name)


def _signature(given: SignatureIn) -> SignatureInput:
    return SignatureInput(password=given.password, meaning=given.meaning)


@bp.post("/shipments/<int:shipment_id>/handoffs")
@requires(Role.ADMIN, Role.COORDINATOR, Role.COURIER, Role.CLINIC)
@endpoint(
    "Record a signed custody handoff (the chain must be unbroken, the seal the recorded one)",
    body=HandoffCreate,
    status=201,
    response="the shipment",
    returns=out.Shipment,
)
def create_handoff(shipment_id: int) -> tuple[Response, int]:
    body: HandoffCreate = parse_body(HandoffCreate)
    limit_signature(current_principal().username)
    shipment = custody.record_handoff(
        sessions=ctx().sessions,
        shipment_id=shipment_id,
        principal=current_principal(),
        handoff=custody.NewHandoff(
            version=body.version,
            from_party=body.from_party,
            to_party=body.to_party,
            location=body.location,
            seal_id=body.seal_id,
            condition=body.condition,
            notes=body.notes,
            seal_change_reason=body.seal_change_reason,
            signature=_signature(body.signature),
        ),
        request_id=request_id(),
    )
    return jsonify(shipment), 201


@bp.post("/shipments/<int:shipment_id>/receipt")
@requires(Role.CLINIC)
@endpoint(
    "Receive a shipment: COI scan, patient identifiers, seal, decision, signature",
    body=ReceiptCreate,
    status=201,
    response="the shipment",
    returns=out.Shipment,
)
def create_receipt(shipment_id: int) -> tuple[Response, int]:
    body: ReceiptCreate = parse_body(ReceiptCreate)
    limit_signature(current_principal().username)
    app = ctx()
    shipment = custody.record_receipt(
        sessions=app.sessions,
        shipment_id=shipment_id,
        principal=current_principal(),
        receipt=custody.NewReceipt(
            version=body.version,
            coi_scan=body.coi_scan,
            patient=body.patient,
            seal_id=body.seal_id,
            decision=Decision(body.decision),
            reason=body.reason,
            signature=_signature(body.signature),
        ),
        secret_key=app.settings.secret_key,
        request_id=request_id(),
    )
    return jsonify(shipment), 201


@bp.post("/shipments/<int:shipment_id>/cancel")
@requires(Role.ADMIN, Role.COORDINATOR)
@endpoint(
    "Cancel a shipment before delivery",
    body=CancelRequest,
    response="the shipment",
    returns=out.Shipment,
)
def cancel_shipment(shipment_id: int) -> Response:
    body: CancelRequest = parse_body(CancelRequest)
    return jsonify(
        custody.cancel_shipment(
            sessions=ctx().sessions,
            shipment_id=shipment_id,
            principal=current_principal(),
            version=body.version,
            reason=body.reason,
            request_id=request_id(),
        )
    )


@bp.get("/excursions/<int:excursion_id>")
@requires()
@endpoint(
    "Show an excursion with its QA dispositions and their signatures",
    returns=out.ExcursionDetail,
)
def get_excursion(excursion_id: int) -> Response:
    return jsonify(
        custody.get_excursion(
            sessions=ctx().sessions, excursion_id=excursion_id, principal=current_principal()
        )
    )


@bp.post("/excursions/<int:excursion_id>/disposition")
@requires(Role.QA)
@endpoint(
    "QA's signed disposition of an excursion",
    body=DispositionCreate,
    status=201,
    response="the excursion",
    returns=out.ExcursionDetail,
)
def create_disposition(excursion_id: int) -> tuple[Response, int]:
    body: DispositionCreate = parse_body(DispositionCreate)
    limit_signature(current_principal().username)
    app = ctx()
    excursion = custody.record_disposition(
        sessions=app.sessions,
        excursion_id=excursion_id,
        principal=current_principal(),
        disposition=custody.NewDisposition(
            version=body.version,
            decision=Disposition(body.decision),
            reason=body.reason,
            signature=_signature(body.signature),
        ),
        profiles=app.settings.profiles,
        request_id=request_id(),
    )
    return jsonify(excursion), 201


@bp.get("/coi/<string:coi>")
@requires()
@endpoint(
    "The vein-to-vein history of a COI: every leg the caller may see",
    returns=out.CoiHistory,
)
def coi_history(coi: str) -> Response:
    return jsonify(
        service.coi_history(sessions=ctx().sessions, coi=coi, principal=current_principal())
    )
