"""The OpenAPI 3.1 document, built from the registry's operations and their pydantic models.

Pydantic writes JSON Schema 2020-12, which OpenAPI 3.1 uses as is; the path, query, body and
reply of every operation come from the declarations the views run under, never a hand-kept copy.
"""

from __future__ import annotations

import re
from functools import cache
from http import HTTPStatus
from typing import Any

from flask import Response, render_template
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from .blueprint import api, bp
from .problems import json_response
from .registry import Operation, Registry
from .schemas import MAX_ID, Problem

REF = "#/components/schemas/{model}"
SECURITY_SCHEMES = {
    "bearerToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "A personal API token (make one on your account page); no CSRF needed.",
    },
    "browserSession": {
        "type": "apiKey",
        "in": "cookie",
        "name": "greenlight_session",
        "description": "The signed-in browser session; unsafe methods need X-CSRFToken too.",
    },
}
#: What every API reply may say of the caller's limit (approval/rate_limits.py writes them).
RATE_LIMIT_HEADERS = {
    "X-RateLimit-Limit": {
        "description": "Calls this account may make per window (GREENLIGHT_API_RATE_LIMIT).",
        "schema": {"type": "integer", "minimum": 0},
    },
    "X-RateLimit-Remaining": {
        "description": "Calls left in the current window.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "X-RateLimit-Reset": {
        "description": "When the window resets, in seconds since the Unix epoch.",
        "schema": {"type": "integer", "minimum": 0},
    },
}
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again; never less than 1.",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}
HEADER_REF = "#/components/headers/{name}"
DESCRIPTION = """\
Upload, review and share AI-generated clips. Every call goes through the same operations as the
pages, and every state change lands in the hash-chained audit log.

Errors are `application/problem+json` (RFC 9457) with a `detail` that says what to do;
validation errors list each bad field in `errors`. Lists are paged by an opaque `cursor`: follow
`next` until it is null.

Each account has one limit on calls per window across its tokens and browsers; replies carry
`X-RateLimit-Limit`, `-Remaining` and `-Reset`, and a 429 says in `Retry-After` how many seconds
to wait."""


def _path(rule: str) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)


def _models(operations: list[Operation]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(Problem, "serialization")]
    for op in operations:
        for model, mode in (
            (op.body, "validation"),
            (op.query, "validation"),
            *((reply, "serialization") for reply in op.replies.values()),
        ):
            if model is not None and (model, mode) not in wanted:
                wanted.append((model, mode))  # type: ignore[arg-type]
    return wanted


def _query_parameters(schema: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(schema.get("required", []))
    parameters = []
    for name, prop in schema.get("properties", {}).items():
        prop = _without_null(prop)
        description = prop.pop("description", None)
        prop.pop("title", None)
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": prop,
        }
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def _without_null(prop: dict[str, Any]) -> dict[str, Any]:
    """A parameter that may be left out: absence stands for null, so null is no value of it."""
    prop = dict(prop)
    options = [option for option in prop.get("anyOf", []) if option != {"type": "null"}]
    if "anyOf" in prop and len(options) == 1:
        del prop["anyOf"]
        prop.update(options[0])
    if prop.get("default", ...) is None:
        del prop["default"]
    return prop


def _path_parameters(op: Operation) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
            "example": 1,
        }
        for name in op.path_params
    ]


def _content(media_type: str, ref: dict[str, Any]) -> dict[str, Any]:
    return {media_type: {"schema": ref}}


def _operation(
    op: Operation, refs: dict[tuple[type[BaseModel], JsonSchemaMode], Any], queries: dict[Any, Any]
) -> dict[str, Any]:
    problem = refs[(Problem, "serialization")]
    responses: dict[str, Any] = {}
    for status, model in sorted(op.replies.items()):
        entry: dict[str, Any] = {"description": HTTPStatus(status).phrase}
        if model is not None:
            entry["content"] = _content("application/json", refs[(model, "serialization")])
        responses[str(status)] = entry
    for status in op.errors:
        entry = {
            "description": HTTPStatus(status).phrase,
            "content": _content("application/problem+json", problem),
        }
        if status == 401:
            entry["headers"] = {
                "WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}
            }
        if status == 429:
            entry["headers"] = {
                name: {"$ref": HEADER_REF.format(name=name)} for name in RETRY_AFTER
            }
        responses[str(status)] = entry
    rates = {name: {"$ref": HEADER_REF.format(name=name)} for name in RATE_LIMIT_HEADERS}
    for entry in responses.values():
        entry["headers"] = {**entry.get("headers", {}), **rates}
    document: dict[str, Any] = {
        "operationId": op.endpoint,
        "tags": [op.tag],
        "summary": op.summary,
        "parameters": _path_parameters(op)
        + (_query_parameters(queries[op.query]) if op.query else []),
        "responses": responses,
    }
    if op.description:
        document["description"] = op.description
    if op.body is not None:
        body_ref = refs[(op.body, "validation")]
        required = any(field.is_required() for field in op.body.model_fields.values())
        document["requestBody"] = {
            "required": required,
            "content": _content("application/json", body_ref),
        }
    if op.public:
        document["security"] = []
    if op.roles:
        roles = " or ".join(role.value for role in op.roles)
        document["description"] = (f"Needs the {roles} role. " + op.description).strip()
    return document


def build(registry: Registry) -> dict[str, Any]:
    """The whole document for every operation in `registry`."""
    wanted = _models(registry.operations)
    refs, definitions = models_json_schema(wanted, ref_template=REF)
    schemas = definitions.get("$defs", {})
    queries = {}
    for op in registry.operations:
        if op.query is not None:
            # Query models are flattened into parameters, not kept as components.
            name = refs[(op.query, "validation")]["$ref"].rsplit("/", 1)[-1]
            queries[op.query] = schemas.pop(name, None) or op.query.model_json_schema(
                ref_template=REF
            )
    paths: dict[str, dict[str, Any]] = {}
    for op in registry.operations:
        paths.setdefault(_path(op.rule), {})[op.method.lower()] = _operation(op, refs, queries)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Greenlight API", "version": "1", "description": DESCRIPTION},
        "servers": [{"url": "/"}],
        "security": [{"bearerToken": []}, {"browserSession": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": SECURITY_SCHEMES,
            "headers": {**RATE_LIMIT_HEADERS, **RETRY_AFTER},
        },
    }


@cache
def document() -> dict[str, Any]:
    """The document, built once per process: the operations do not change while it runs."""
    return build(api)


@bp.get("/api/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3.1 document of /api/v1."""
    response = json_response(document(), 200)
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/api/docs")
def docs() -> str:
    """A browsable view of the document, served from our own files (no CDN)."""
    return render_template("api/docs.html")
