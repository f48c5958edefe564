"""Opaque cursors: a signed keyset, so pages never skip or repeat and cannot be forged.

A cursor is the URL-safe serialisation of a small JSON keyset, signed with the app's secret and
the list it belongs to; a changed or foreign cursor is refused with 400 instead of being guessed
at. The `next` link keeps the request's filters and carries the cursor of the following page.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, request
from itsdangerous import BadSignature, URLSafeSerializer

from approval.web import site_url

from .problems import ApiError

DEFAULT_LIMIT = 50
MAX_LIMIT = 100


def _serializer(scope: str) -> URLSafeSerializer:
    return URLSafeSerializer(
        current_app.config["SECRET_KEY"], salt=f"greenlight-api-cursor:{scope}"
    )


def encode(scope: str, key: dict[str, Any]) -> str:
    return _serializer(scope).dumps(key)


def decode(scope: str, cursor: str | None) -> dict[str, Any] | None:
    """The keyset inside a cursor from `next`, or 400 when it was changed or made elsewhere."""
    if cursor is None:
        return None
    try:
        key = _serializer(scope).loads(cursor)
    except BadSignature:
        key = None
    if not isinstance(key, dict):
        message = (
            "this cursor was not issued for this list, or it was changed; follow the `next` "
            "link as given, or drop the cursor to start from the first page"
        )
        raise ApiError(
            400,
            f"cursor: {message}.",
            title="Bad cursor",
            errors=[{"field": "cursor", "message": message}],
        )
    return key


def next_link(scope: str, key: dict[str, Any] | None) -> str | None:
    """The absolute URL of the following page (same filters), or None at the end."""
    if key is None:
        return None
    args = {name: value for name, value in request.args.items() if name != "cursor"}
    args["cursor"] = encode(scope, key)
    return site_url(str(request.endpoint), **(request.view_args or {}), **args)
