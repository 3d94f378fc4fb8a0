"""Map domain and request errors to the contract's JSON error shape; never leak a trace."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from coldchain.domain.errors import (
    AuthenticationError,
    ConflictError,
    DomainError,
    NotFoundError,
    PermissionDeniedError,
)

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error raised by an adapter with its HTTP status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers or {}


def error_response(status: int, code: str, message: str, field: str | None = None) -> Response:
    """Return `{"error": {"code", "message", "field"?}}` with the status."""
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    response = jsonify(error=body)
    response.status_code = status
    return response


# Error codes of HTTP errors whose Werkzeug names are not the words the API uses.
HTTP_CODES = {413: "payload-too-large"}


def _status_of(exc: DomainError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConflictError):
        return 409
    if isinstance(exc, PermissionDeniedError):
        return 403
    if isinstance(exc, AuthenticationError):
        return 401
    return 400


def register_error_handlers(app: Flask) -> None:
    """Install the handlers on the app."""

    @app.errorhandler(ApiError)
    def _api(exc: ApiError) -> Response:
        response = error_response(exc.status, exc.code, exc.message, exc.field)
        response.headers.update(exc.headers)
        return response

    @app.errorhandler(DomainError)
    def _domain(exc: DomainError) -> Response | tuple[str, int]:
        if _is_page(request.path):
            return render_template("error.html", error=exc), _status_of(exc)
        return error_response(_status_of(exc), exc.code, exc.message, exc.field)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response | tuple[str, int]:
        if _is_page(request.path):
            return render_template("error.html", error=exc), exc.code or 500
        code = HTTP_CODES.get(exc.code or 500) or (exc.name or "error").lower().replace(" ", "-")
        message = exc.description or exc.name
        if exc.code == 413:
            message = f"the body is larger than the limit of {request.max_content_length} bytes"
        response = error_response(exc.code or 500, code, message)
        if exc.code == 405 and exc.valid_methods:  # type: ignore[attr-defined]
            response.headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response | tuple[str, int]:
        log.exception("unhandled error")
        if _is_page(request.path):
            return render_template("error.html", error=None), 500
        return error_response(500, "internal", "internal error; it has been logged")


def _is_page(path: str) -> bool:
    """A web page (HTML errors) rather than the API or a machine endpoint (JSON errors)."""
    return not path.startswith(("/api/", "/healthz", "/metrics"))
