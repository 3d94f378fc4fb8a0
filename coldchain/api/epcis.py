"""GS1 EPCIS 2.0 exports: a shipment's events, or those of every leg of a COI."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response

from coldchain.api import responses as out
from coldchain.api.auth import current_principal, requires
from coldchain.api.common import ctx
from coldchain.api.openapi import endpoint
from coldchain.services import epcis as service

bp = Blueprint("epcis", __name__, url_prefix="/api/v1")

# JSON-LD is what EPCIS 2.0 documents are; it is JSON, so any JSON client reads it too.
MEDIA_TYPE = "application/ld+json"


@bp.get("/shipments/<int:shipment_id>/epcis")
@requires()
@endpoint(
    "A shipment's GS1 EPCIS 2.0 document: commissioning, custody, receipt, temperatures",
    response="the EPCIS document (JSON-LD)",
    returns=out.EpcisDocument,
    media_type=MEDIA_TYPE,
)
def shipment_epcis(shipment_id: int) -> Response:
    return _document(
        service.shipment_epcis(
            sessions=ctx().sessions,
            shipment_id=shipment_id,
            principal=current_principal(),
            base_uri=str(ctx().settings["epcis_base_uri"]),
        )
    )


@bp.get("/coi/<string:coi>/epcis")
@requires()
@endpoint(
    "One GS1 EPCIS 2.0 document of every leg of a COI the caller may see",
    response="the EPCIS document (JSON-LD)",
    returns=out.EpcisDocument,
    media_type=MEDIA_TYPE,
)
def coi_epcis(coi: str) -> Response:
    return _document(
        service.coi_epcis(
            sessions=ctx().sessions,
            coi=coi,
            principal=current_principal(),
            base_uri=str(ctx().settings["epcis_base_uri"]),
        )
    )


def _document(document: dict[str, Any]) -> Response:
    return Response(json.dumps(document), mimetype=MEDIA_TYPE)
