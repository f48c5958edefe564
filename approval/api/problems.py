"""Refusals as RFC 9457 problem documents, and reading JSON bodies and query strings strictly.

Every refusal names what was wrong in words a person can act on; validation errors list each bad
field. Nothing here changes state, so a refused request changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from flask import Response, current_app, request
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from werkzeug.exceptions import RequestEntityTooLarge

from approval.error_pages import problem
from approval.formatting import format_size

M = TypeVar("M", bound=BaseModel)

#: JSON bodies are metadata only; a clip's bytes go to its upload ticket's URL, never here.
MAX_BODY_BYTES = 64 * 1024
JSON_TYPES = ("application/json",)


class ApiError(Exception):
    """A refused API request; rendered as application/problem+json."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        errors: list[dict[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title
        self.errors = errors
        self.headers = dict(headers or {})
        self.extra = extra

    def response(self) -> Response:
        extra = dict(self.extra)
        if self.errors is not None:
            extra["errors"] = self.errors
        response = problem(self.status, self.detail, self.title, **extra)
        response.headers.update(self.headers)
        return response


def field_error(status: int, field: str, message: str, *, title: str | None = None) -> ApiError:
    """A refusal that points at one field of the request."""
    return ApiError(
        status,
        f"{field}: {message}",
        title=title or "Check the input",
        errors=[{"field": field, "message": message}],
    )


def _location(loc: Iterable[int | str]) -> str:
    return ".".join(str(part) for part in loc) or "(body)"


def _message(error: ErrorDetails, allowed: Iterable[str]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"unknown field; this endpoint takes {', '.join(sorted(allowed))}"
    if kind == "missing":
        return "required"
    if kind == "model_type":
        return "the body must be a JSON object"
    return error["msg"][0].lower() + error["msg"][1:]


def _field_errors(exc: ValidationError, model: type[BaseModel]) -> list[dict[str, str]]:
    allowed = [field.alias or name for name, field in model.model_fields.items()]
    return [
        {"field": _location(error["loc"]), "message": _message(error, allowed)}
        for error in exc.errors(include_url=False, include_input=False)
    ]


def _summary(errors: list[dict[str, str]]) -> str:
    listed = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return f"{listed}{more}."


def read_body() -> bytes:
    """The raw request body, refused with 413 past MAX_BODY_BYTES before most of it is read."""
    too_large = ApiError(
        413,
        f"The request body is larger than {format_size(MAX_BODY_BYTES)}, the most this API "
        "takes. Send a clip's bytes to its upload ticket's URL, not to the API.",
        title="Too large",
    )
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise too_large
    # Bounds chunked bodies too. Werkzeug's limited stream stops quietly at its limit and
    # raises only on a further read, so allow one byte more and measure what came.
    request.max_content_length = MAX_BODY_BYTES + 1
    try:
        data = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise too_large from None
    if len(data) > MAX_BODY_BYTES:
        raise too_large
    return data


def parse_body(model: type[M]) -> M:
    """The JSON body as `model`: 415 for another type, 400 for bad JSON, 422 for bad fields."""
    raw = read_body()
    if not raw.strip():
        raw = b"{}"  # no body: every required field is then reported missing
    elif request.mimetype not in JSON_TYPES:
        shown = request.mimetype or "no Content-Type"
        raise ApiError(
            415,
            f"Send the body as JSON with the header Content-Type: application/json (got {shown}).",
            title="Unsupported media type",
        )
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        broken = [e for e in exc.errors(include_url=False) if e["type"] == "json_invalid"]
        if broken:
            reason = broken[0]["msg"].removeprefix("Invalid JSON: ")
            raise ApiError(
                400, f"The body is not valid JSON: {reason}.", title="Malformed JSON"
            ) from None
        errors = _field_errors(exc, model)
        raise ApiError(
            422, f"The request has invalid fields: {_summary(errors)}", title="Check the input",
            errors=errors,
        ) from None  # fmt: skip


def parse_query(model: type[M] | None) -> M | None:
    """The query string as `model` (400 naming each bad parameter); none allowed without one."""
    args = request.args
    allowed = list(model.model_fields) if model is not None else []
    repeated = [name for name in args if len(args.getlist(name)) > 1]
    unknown = [name for name in args if name not in allowed]
    errors = [{"field": name, "message": "give this parameter once"} for name in repeated]
    takes = f"this endpoint takes {', '.join(allowed)}" if allowed else "this endpoint takes none"
    errors += [{"field": name, "message": f"unknown parameter; {takes}"} for name in unknown]
    if errors:
        raise ApiError(
            400, f"Bad query parameters: {_summary(errors)}", title="Check the query", errors=errors
        )
    if model is None:
        return None
    try:
        return model.model_validate(args.to_dict())
    except ValidationError as exc:
        errors = _field_errors(exc, model)
        raise ApiError(
            400, f"Bad query parameters: {_summary(errors)}", title="Check the query", errors=errors
        ) from None


def json_response(body: Any, status: int) -> Response:
    response = current_app.response_class(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        status=status,
        mimetype="application/json",
    )
    response.headers["Cache-Control"] = "no-store"
    return response
