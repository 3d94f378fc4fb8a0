"""Refuse NUL characters in any request text before it reaches a view.

SQLite stores a NUL in text, PostgreSQL refuses it with an error the views would turn into
a 500. No coldchain field has a use for it, so it is a 400 naming the field, on every engine.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request

from coldchain.api.errors import ApiError
from coldchain.api.jsonbody import request_json
from coldchain.domain.errors import ValidationError

NUL = "\x00"


def _refuse(field: str) -> ValidationError:
    return ValidationError(
        f"{field}: text must not contain a NUL character", field=field, code="nul-byte"
    )


def first_nul(value: Any, path: str = "") -> str | None:
    """Return the dotted path of the first string with a NUL in a JSON value, or None.

    A NUL in an object's key names the object (the key itself cannot be named faithfully).
    """
    if isinstance(value, str):
        return path if NUL in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if NUL in str(key):
                return path or str(key).replace(NUL, "")
            found = first_nul(item, f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = first_nul(item, f"{path}.{index}" if path else str(index))
            if found is not None:
                return found
    return None


def register_nul_check(app: Flask) -> None:
    """Check the path, query string, form fields and JSON body of every request."""

    @app.before_request
    def _check() -> None:
        if NUL in request.path:
            raise _refuse("path")
        for source in (request.args, request.form):
            for key, value in source.items(multi=True):
                if NUL in key or NUL in value:
                    raise _refuse(key.replace(NUL, "") or "query")
        if request.is_json:
            try:
                body = request_json()
            except ApiError:
                return  # refused by the view that reads the body, in its own words
            found = first_nul(body)
            if found is not None:
                raise _refuse(found)
