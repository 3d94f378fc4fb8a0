"""Health, Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

from flask import Blueprint, Flask, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from coldchain.api import responses as out
from coldchain.api.common import ctx
from coldchain.api.openapi import build_openapi, endpoint
from coldchain.ingest.mqtturl import parse_mqtt_url
from coldchain.ingest.status import IngestHealth, read_ingest_health
from coldchain.services.shipments import count_open_excursions
from coldchain.store.counters import read_counts

bp = Blueprint("system", __name__)

COUNTERS = {
    "messages": ("coldchain_messages", "MQTT messages processed by the ingest workers"),
    "batches": ("coldchain_batches", "batches committed by the ingest workers"),
    "readings_stored": ("coldchain_readings_stored", "readings stored"),
    "readings_duplicate": ("coldchain_readings_duplicate", "duplicate readings ignored"),
    "batch_us": ("coldchain_batch_seconds", "time spent storing batches before commit, s"),
}


class StoreCollector(Collector):
    """Read the ingest counters from the database at each scrape (exact across workers)."""

    def __init__(self, sessions: sessionmaker[Session]):
        self.sessions = sessions

    def collect(self) -> Iterator[Metric]:
        with self.sessions() as session:
            counts = read_counts(session.connection())
        for key, (name, doc) in COUNTERS.items():
            value = counts.get(key, 0)
            yield CounterMetricFamily(name, doc, value=value / 1e6 if key == "batch_us" else value)
        letters = CounterMetricFamily(
            "coldchain_dead_letters", "refused payloads by reason", labels=["reason"]
        )
        for key, value in sorted(counts.items()):
            if key.startswith("dead_letters:"):
                letters.add_metric([key.split(":", 1)[1]], value)
        yield letters
        open_ = GaugeMetricFamily(
            "coldchain_excursions_open", "open excursions by kind", labels=["kind"]
        )
        by_kind = count_open_excursions(sessions=self.sessions)
        for kind in ("HIGH", "LOW", "SIGNAL_LOSS"):
            open_.add_metric([kind], by_kind.get(kind, 0))
        yield open_


def register_metrics(app: Flask) -> None:
    """Give the app its own registry (several apps may live in one test process)."""
    registry = CollectorRegistry()
    registry.register(StoreCollector(app.extensions["coldchain"].sessions))
    app.extensions["coldchain_metrics"] = registry


def _broker_state() -> str:
    try:
        address = parse_mqtt_url(str(ctx().settings["mqtt_url"]))
        with socket.create_connection((address.host, address.port), timeout=1.0):
            return "ok"
    except (OSError, ValueError) as exc:
        return f"unreachable: {exc}"


def _database_state() -> str:
    try:
        with ctx().engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return "ok"
    except Exception as exc:  # noqa: BLE001 - any failure is the state we report
        return f"error: {type(exc).__name__}"


def _ingest_health() -> IngestHealth:
    settings = ctx().settings
    directory = str(settings["ingest_status_dir"])
    if not directory:
        return IngestHealth("not reported (ingest.status_dir is empty)", {}, False)
    return read_ingest_health(Path(directory), stale_s=float(settings["ingest_status_stale_s"]))


@bp.get("/healthz")
@endpoint(
    "Database, broker and ingest workers' state (no authentication)",
    response="healthy",
    responses={503: "degraded: the body says which part is failing"},
    returns=out.Health,
)
def healthz() -> tuple[Response, int]:
    database, broker, ingest = _database_state(), _broker_state(), _ingest_health()
    healthy = database == "ok" and broker == "ok" and not ingest.failing
    body = {
        "status": "ok" if healthy else "degraded",
        "database": database,
        "broker": broker,
        # The workers' own account (their status files): they may fail to commit while
        # this process reaches the database fine.
        "ingest": ingest.summary,
        "ingest_workers": ingest.workers,
    }
    return jsonify(body), 200 if healthy else 503


@bp.get("/metrics")
@endpoint("Prometheus metrics (text exposition format)")
def metrics() -> Response:
    registry = current_app.extensions["coldchain_metrics"]
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


@bp.get("/api/v1/openapi.json")
@endpoint("This OpenAPI document, generated from the code")
def openapi() -> Response:
    return jsonify(build_openapi(current_app))
