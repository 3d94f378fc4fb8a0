"""The Flask application factory."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.routing import IntegerConverter, Map

from coldchain.api import alerts, audit, epcis, fleet, scorecards, shipments, system
from coldchain.api.common import AppContext
from coldchain.api.errors import register_error_handlers
from coldchain.api.nul import register_nul_check
from coldchain.api.ratelimit import register_rate_limits
from coldchain.api.schemas import MAX_ID
from coldchain.config import Settings, load_settings
from coldchain.store.engine import make_engine, make_sessions
from coldchain.web import register_web


def create_app(
    test_config: Mapping[str, Any] | None = None, settings: Settings | None = None
) -> Flask:
    """Build the app; `test_config` overrides settings (e.g. database_url) for tests."""
    settings = settings or load_settings()
    if test_config:
        settings = settings.with_overrides(test_config)
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        JSON_SORT_KEYS=False,
        MAX_CONTENT_LENGTH=int(settings["http_max_body_bytes"]),
    )
    engine = make_engine(settings.database_url)
    app.extensions["coldchain"] = AppContext(settings, engine, make_sessions(engine))
    app.url_map.converters["int"] = RecordId
    register_request_id(app)
    register_error_handlers(app)
    register_nul_check(app)
    register_rate_limits(app)
    app.register_blueprint(shipments.bp)
    app.register_blueprint(fleet.bp)
    app.register_blueprint(system.bp)
    app.register_blueprint(audit.bp)
    app.register_blueprint(alerts.bp)
    app.register_blueprint(epcis.bp)
    app.register_blueprint(scorecards.bp)
    register_web(
        app, [alerts.bp, shipments.bp, fleet.bp, system.bp, audit.bp, epcis.bp, scorecards.bp]
    )
    system.register_metrics(app)
    return app


class RecordId(IntegerConverter):
    """An id in a path: 1 to 2**31 - 1, what the tables hold; any other is not found."""

    def __init__(self, url_map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min", 1)
        kwargs.setdefault("max", MAX_ID)
        super().__init__(url_map, *args, **kwargs)


def register_request_id(app: Flask) -> None:
    """Tag each request with an id (echoed in X-Request-Id) for logs and, later, the audit."""

    @app.before_request
    def _assign() -> None:
        g.request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex

    @app.after_request
    def _echo(response: Response) -> Response:
        response.headers["X-Request-Id"] = g.get("request_id", "")
        return response
