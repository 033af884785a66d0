"""The OpenAPI 3.1 document, generated from the routes' own pydantic models.

Every model a route validates or answers with becomes a component schema
(``model_json_schema`` with ``ref_template="#/components/schemas/{model}"``, all at once
so shared models are defined once); path and query models become parameters. The error
shape and the statuses every route may answer (400, 401, 403, 413, 415, 503) are added
from what the route declares, so a client generated from this document knows them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from gateway.api.auth import CHALLENGE
from gateway.api.errors import DESCRIPTIONS, ErrorBody
from gateway.api.registry import IDEMPOTENCY_KEY, Route

REF = "#/components/schemas/{model}"
PREFIX = "/api/v1"
Schema = dict[str, Any]


def document(routes: Sequence[Route], *, version: str, tags: Sequence[tuple[str, str]]) -> Schema:
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorBody, "serialization")]
    for route in routes:
        for model in (route.path_params, route.query, route.body):
            if model is not None:
                wanted.append((model, "validation"))
        wanted.append((route.response, "serialization"))
    refs, top = models_json_schema(list(dict.fromkeys(wanted)), ref_template=REF)
    components: dict[str, Schema] = top.get("$defs", {})

    def ref(model: type[BaseModel], mode: JsonSchemaMode) -> Schema:
        return dict(refs[(model, mode)])

    def fields(model: type[BaseModel]) -> Schema:
        name = refs[(model, "validation")]["$ref"].rsplit("/", 1)[1]
        return components[name]

    paths: dict[str, dict[str, Schema]] = {}
    for route in routes:
        parameters = [
            *_parameters(route.path_params, "path", fields),
            *_parameters(route.query, "query", fields),
        ]
        if route.idempotent:
            parameters.append(
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": "Repeat a request with the same key and its effect "
                    "happens once (per token and operation).",
                    "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY},
                }
            )
        operation: Schema = {
            "operationId": route.operation_id,
            "tags": [route.tag],
            "summary": route.summary,
            "parameters": parameters,
            "responses": {
                str(route.status): {
                    "description": route.summary or "OK",
                    "content": {
                        "application/json": {"schema": ref(route.response, "serialization")}
                    },
                },
                **_errors(route, ref(ErrorBody, "serialization")),
            },
            "security": [{"bearer": []}] if route.scope is not None else [],
        }
        if route.description:
            operation["description"] = route.description
        if route.scope is not None:
            operation["x-scope"] = route.scope
            operation["description"] = f"{route.description}\n\nScope: `{route.scope}`.".strip()
        if route.body is not None:
            operation["requestBody"] = {
                "required": bool(fields(route.body).get("required")),
                "content": {"application/json": {"schema": ref(route.body, "validation")}},
            }
        paths.setdefault(PREFIX + route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Messenger gateway API",
            "version": version,
            "description": "Contacts, processes and tasks, messages and operators of the "
            "gateway. See docs/api.md.",
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": name, "description": text} for name, text in tags],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token from `api.tokens` in the config.",
                }
            },
        },
    }


def _parameters(model: type[BaseModel] | None, where: str, fields: Any) -> list[Schema]:
    if model is None:
        return []
    schema = fields(model)
    required = set(schema.get("required", ()))
    out = []
    for name, prop in schema.get("properties", {}).items():
        prop = _without_null(prop)
        parameter: Schema = {
            "name": name,
            "in": where,
            "required": where == "path" or name in required,
            "schema": prop,
        }
        if "description" in prop:
            parameter["description"] = prop["description"]
        out.append(parameter)
    return out


def _without_null(prop: Schema) -> Schema:
    """An optional parameter is one left out, never ``null``: drop the ``null`` branch
    pydantic adds to ``X | None`` (a query string cannot carry a JSON null)."""
    branches = prop.get("anyOf")
    if not branches:
        return prop
    kept = [b for b in branches if b.get("type") != "null"]
    rest = {k: v for k, v in prop.items() if k != "anyOf" and not (k == "default" and v is None)}
    if len(kept) == 1:
        return {**kept[0], **rest}
    return {**rest, "anyOf": kept}


def _errors(route: Route, body: Schema) -> dict[str, Schema]:
    statuses = {400}  # an unknown query parameter, at least
    if route.scope is not None:
        statuses |= {401, 403, 503}
    if route.body is not None:
        statuses |= {413, 415}
    statuses |= set(route.errors)
    out: dict[str, Schema] = {}
    for status in sorted(statuses):
        entry: Schema = {
            "description": DESCRIPTIONS.get(status, "Error."),
            "content": {"application/json": {"schema": body}},
        }
        if status == 401:
            entry["headers"] = {
                "WWW-Authenticate": {
                    "description": f'`{CHALLENGE}` (with `error="invalid_token"` for an '
                    "unknown token).",
                    "schema": {"type": "string"},
                }
            }
        out[str(status)] = entry
    return out
