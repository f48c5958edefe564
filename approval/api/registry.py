"""Routes that describe themselves: one decorator registers the view and its OpenAPI operation.

Each operation names its body and query models, the replies it may give and the roles it needs.
The wrapper authenticates, checks roles, parses the query and body, calls the view and renders
its reply, refusing any reply the operation did not declare: the document is built from the very
declarations the views run under, so the two cannot drift apart.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import wraps
from typing import Any

from flask import Blueprint, Response
from pydantic import BaseModel
from werkzeug.routing import BaseConverter, ValidationError

from approval.models import Role
from approval.rate_limits import api_calls
from approval.unit_of_work import AfterCommit

from . import auth
from .problems import json_response, parse_body, parse_query
from .schemas import MAX_ID


def _up_to(limit: int) -> str:
    """A regex for the decimal numbers 1 to limit, without leading zeros."""
    digits = str(limit)
    shorter = rf"[1-9][0-9]{{0,{len(digits) - 2}}}"
    same_length = []
    for position, digit in enumerate(digits):
        rest = len(digits) - position - 1
        low = "1" if position == 0 else "0"
        if int(digit) > int(low):
            same_length.append(rf"{digits[:position]}[{low}-{int(digit) - 1}][0-9]{{{rest}}}")
    same_length.append(digits)
    return "|".join([shorter, *same_length])


class IdConverter(BaseConverter):
    """A database id in a path: 1 to 2**31-1; anything else does not match (404)."""

    # The bound is in the pattern, not only in to_python: Werkzeug answers a ValidationError
    # there with 405 when another method shares the path (GET and POST on a clip's comments).
    regex = _up_to(MAX_ID)

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > MAX_ID:
            raise ValidationError()
        return number

    def to_url(self, value: Any) -> str:
        return str(int(value))


@dataclass(frozen=True)
class Reply:
    """What a view answers: a declared status and the model instance (None for 204)."""

    status: int
    body: BaseModel | None = None


@dataclass(frozen=True)
class Operation:
    method: str
    rule: str
    endpoint: str
    tag: str
    summary: str
    description: str
    replies: Mapping[int, type[BaseModel] | None]
    errors: tuple[int, ...]
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    roles: tuple[Role, ...] = ()
    public: bool = False
    #: Rate limits beyond the API's own (GREENLIGHT_API_RATE_LIMIT), checked after sign-in.
    limits: tuple[Callable[[Any], Any], ...] = ()

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"<(?:\w+:)?(\w+)>", self.rule)


class Registry:
    """The API's operations, in registration order, bound to one blueprint."""

    def __init__(self, bp: Blueprint, prefix: str) -> None:
        self.bp = bp
        self.prefix = prefix
        self.operations: list[Operation] = []

    def route(
        self,
        method: str,
        rule: str,
        *,
        tag: str,
        replies: Mapping[int, type[BaseModel] | None],
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        roles: tuple[Role, ...] = (),
        errors: tuple[int, ...] = (),
        public: bool = False,
        limits: tuple[Callable[[Any], Any], ...] = (),
    ) -> Callable[[Callable[..., Reply]], Callable[..., Response]]:
        """Register `view` at prefix + rule for `method`, described by the rest."""

        def decorator(view: Callable[..., Reply]) -> Callable[..., Response]:
            doc = inspect.cleandoc(view.__doc__ or "")
            summary, _, description = doc.partition("\n")
            operation = Operation(
                method=method,
                rule=self.prefix + rule,
                endpoint=view.__name__,
                tag=tag,
                summary=summary.strip(),
                description=description.strip(),
                replies=dict(replies),
                errors=_errors_for(errors, body=body, query=query, public=public, rule=rule),
                body=body,
                query=query,
                roles=roles,
                public=public,
                limits=limits,
            )
            handler = _handler(operation, view)
            self.bp.add_url_rule(
                operation.rule, endpoint=view.__name__, view_func=handler, methods=[method]
            )
            self.operations.append(operation)
            return handler

        return decorator


def _errors_for(
    errors: tuple[int, ...],
    *,
    body: type[BaseModel] | None,
    query: type[BaseModel] | None,
    public: bool,
    rule: str,
) -> tuple[int, ...]:
    """The refusals an operation can give: its own, plus those its shape implies."""
    # Unknown or repeated query parameters, at the least; and every caller has a rate limit.
    implied = set(errors) | {400, 429}
    if not public:
        implied |= {401, 403}
    if body is not None:
        implied |= {413, 415, 422}
    if "<" in rule:
        implied.add(404)
    return tuple(sorted(implied))


def _handler(
    operation: Operation, view: Callable[..., Reply]
) -> Callable[..., Response | AfterCommit]:
    takes = inspect.signature(view).parameters

    @wraps(view)  # the view's name: Flask-Limiter files each operation's limits under it
    def with_input(**kwargs: Any) -> Reply:
        query = parse_query(operation.query)
        if operation.query is not None:
            kwargs["query"] = query
        if operation.body is not None:
            kwargs["body"] = parse_body(operation.body)
        return view(**kwargs)

    # Checked once the caller is known (so per account), before any of the input is read.
    limited = api_calls(with_input)
    for limit in operation.limits:
        limited = limit(limited)

    @wraps(view)
    def handler(**path: Any) -> Response | AfterCommit:
        kwargs: dict[str, Any] = dict(path)
        if not operation.public:
            user = auth.authenticate()
            auth.require_roles(user, operation.roles)
            if "user" in takes:
                kwargs["user"] = user
        reply = limited(**kwargs)
        if isinstance(reply, AfterCommit):
            build = reply.build
            return AfterCommit(lambda: render(operation, build()))  # type: ignore[arg-type]
        return render(operation, reply)

    return handler


def render(operation: Operation, reply: Reply) -> Response:
    """The reply as JSON, if the operation declared this status with this model."""
    declared = operation.replies.get(reply.status, ...)
    if declared is ...:
        matches = False
    elif declared is None:
        matches = reply.body is None
    else:
        matches = isinstance(reply.body, declared)
    if not matches:
        raise TypeError(
            f"{operation.endpoint} answered {reply.status} with {type(reply.body).__name__}, "
            "which its operation does not declare"
        )
    if reply.body is None:
        response = Response(status=reply.status)
        response.headers["Cache-Control"] = "no-store"
        return response
    return json_response(reply.body.model_dump(mode="json", exclude_unset=True), reply.status)
