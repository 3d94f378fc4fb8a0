"""Describe each endpoint where it is defined, and build the OpenAPI 3 document from the app."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, request
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from coldchain.api.errors import ApiError
from coldchain.api.jsonbody import request_json

F = TypeVar("F", bound=Callable[..., Any])

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": "string"},
            },
            "required": ["code", "message"],
        }
    },
}


def endpoint(
    summary: str,
    *,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: str = "OK",
    status: int = 200,
    csv: bool = False,
) -> Callable[[F], F]:
    """Attach the OpenAPI description of a view: its summary, body and query models."""

    def decorate(view: F) -> F:
        view.__openapi__ = {  # type: ignore[attr-defined]
            "summary": summary,
            "body": body,
            "query": query,
            "response": response,
            "status": status,
            "csv": csv,
        }
        return view

    return decorate


def _first_error(exc: PydanticValidationError) -> tuple[str | None, str]:
    error = exc.errors()[0]
    field = ".".join(str(p) for p in error["loc"]) or None
    return field, f"{field}: {error['msg']}" if field else error["msg"]


def parse_body(model: type[BaseModel]) -> Any:
    """Validate the JSON body against a model; a 400 names the first bad field."""
    data = request_json()
    if not isinstance(data, dict):
        raise ApiError(
            400, "invalid-json", f"the body must be a JSON object, not {type(data).__name__}"
        )
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        field, message = _first_error(exc)
        raise ApiError(400, "invalid", message, field) from None


def parse_query(model: type[BaseModel]) -> Any:
    """Validate the query string against a model; a 400 names the first bad parameter."""
    try:
        return model.model_validate(request.args.to_dict())
    except PydanticValidationError as exc:
        field, message = _first_error(exc)
        raise ApiError(400, "invalid", message, field) from None


_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")


def build_openapi(app: Flask) -> dict[str, Any]:
    """Walk the app's routes and emit the OpenAPI 3.1 document of every described endpoint."""
    paths: dict[str, dict[str, Any]] = {}
    components: dict[str, Any] = {
        "schemas": {"Error": ERROR_SCHEMA},
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    }
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        view = app.view_functions.get(rule.endpoint)
        meta = getattr(view, "__openapi__", None)
        if meta is None:
            continue
        path = _PARAM.sub(r"{\2}", rule.rule)
        parameters = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "integer" if conv == "int" else "string"},
            }
            for conv, name in _PARAM.findall(rule.rule)
        ]
        if meta["query"] is not None:
            schema = meta["query"].model_json_schema(ref_template="#/components/schemas/{model}")
            for name, prop in schema.get("properties", {}).items():
                parameters.append(
                    {
                        "name": name,
                        "in": "query",
                        "required": name in schema.get("required", []),
                        "schema": prop,
                        "description": prop.get("description", ""),
                    }
                )
        if meta["csv"]:
            parameters.append(
                {
                    "name": "format",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "enum": ["json", "csv"]},
                }
            )
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operation: dict[str, Any] = {
                "summary": meta["summary"],
                "operationId": rule.endpoint.replace(".", "_"),
                "parameters": parameters,
                "responses": {
                    str(meta["status"]): {"description": meta["response"]},
                    "4XX": {
                        "description": "error",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                        },
                    },
                },
            }
            roles = getattr(view, "__openapi_roles__", None)
            if roles is not None:
                operation["security"] = [{"bearer": []}]
                operation["x-roles"] = roles
            if meta["body"] is not None:
                model = meta["body"]
                schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components["schemas"].update(schema.pop("$defs", {}))
                components["schemas"][model.__name__] = schema
                operation["requestBody"] = {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": f"#/components/schemas/{model.__name__}"}
                        }
                    },
                }
            paths.setdefault(path, {})[method.lower()] = operation
    from coldchain import __version__

    return {
        "openapi": "3.1.0",
        "info": {"title": "coldchain API", "version": __version__},
        "paths": paths,
        "components": components,
    }
