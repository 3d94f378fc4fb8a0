"""Describe each endpoint where it is defined, and build the OpenAPI 3 document from the app."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, request
from pydantic import BaseModel, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from coldchain.api.errors import ApiError
from coldchain.api.jsonbody import request_json
from coldchain.api.schemas import MAX_ID

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
    responses: dict[int, str] | None = None,
    returns: Any = None,
    media_type: str = "application/json",
) -> Callable[[F], F]:
    """Attach the OpenAPI description of a view: summary, body, query and response models.

    `returns` is the JSON body's model (coldchain.api.responses), or `list[Model]`, sent as
    `media_type` (a JSON type: application/json, or e.g. application/ld+json);
    `responses` adds other statuses that answer with the same body (e.g. 503 for /healthz).
    """

    def decorate(view: F) -> F:
        view.__openapi__ = {  # type: ignore[attr-defined]
            "summary": summary,
            "body": body,
            "query": query,
            "response": response,
            "status": status,
            "csv": csv,
            "responses": responses or {},
            "returns": returns,
            "media_type": media_type,
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
    for name, values in request.args.lists():
        # `?status=a&status=b` has no single meaning: refuse it rather than pick one.
        if len(values) > 1:
            raise ApiError(400, "invalid", f"{name}: given {len(values)} times, once at most", name)
    try:
        return model.model_validate(request.args.to_dict())
    except PydanticValidationError as exc:
        field, message = _first_error(exc)
        raise ApiError(400, "invalid", message, field) from None


_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")


def _success(
    meta: dict[str, Any], parameters: list[dict[str, Any]], components: dict[str, Any]
) -> dict[str, Any]:
    """The success response of an operation: its JSON schema, and its export formats."""
    response: dict[str, Any] = {"description": meta["response"]}
    content: dict[str, Any] = {}
    if meta["returns"] is not None:
        schema = TypeAdapter(meta["returns"]).json_schema(
            ref_template="#/components/schemas/{model}", mode="serialization"
        )
        components["schemas"].update(schema.pop("$defs", {}))
        if "title" in schema and "properties" in schema:
            components["schemas"][schema["title"]] = schema
            schema = {"$ref": f"#/components/schemas/{schema['title']}"}
        content[meta.get("media_type", "application/json")] = {"schema": schema}
    formats: dict[str, Any] = next((p["schema"] for p in parameters if p["name"] == "format"), {})
    choices = set(formats.get("enum", [])) | {
        option.get("const") for option in formats.get("anyOf", [])
    }
    if "csv" in choices:
        content["text/csv"] = {"schema": {"type": "string"}}
    if "jsonl" in choices:
        content["application/x-ndjson"] = {"schema": {"type": "string"}}
    if content:
        response["content"] = content
    return response


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
                "schema": (
                    {"type": "integer", "minimum": 1, "maximum": MAX_ID}
                    if conv == "int"
                    else {"type": "string"}
                ),
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
        if meta["csv"] and not any(p["name"] == "format" for p in parameters):
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
                    str(meta["status"]): _success(meta, parameters, components),
                    "4XX": {
                        "description": "error",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                        },
                    },
                },
            }
            for status, description in meta["responses"].items():
                operation["responses"][str(status)] = {
                    **_success(meta, parameters, components),
                    "description": description,
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
