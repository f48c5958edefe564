"""The JSON API under /api/v1, its OpenAPI document and docs page, and `flask tokens`."""

from __future__ import annotations

from flask import Flask, Response

from approval.extensions import csrf, db
from approval.paging import BAD_CURSOR, BadCursor

from . import audit_log, clips, comments, openapi, review, sharing  # noqa: F401  # routes register on bp
from .blueprint import api, bp
from .commands import tokens_cli
from .problems import ApiError
from .registry import IdConverter

__all__ = ["api", "bp", "init_app"]


def init_app(app: Flask) -> None:
    """Register the API blueprint, its error handling and the `flask tokens` commands."""
    app.url_map.converters["id"] = IdConverter
    # Bearer calls carry no cookies, so CSRF means nothing to them; session calls are checked
    # by the API's own authentication instead (X-CSRFToken), after it knows which kind it is.
    csrf.exempt(bp)
    app.register_blueprint(bp)
    app.cli.add_command(tokens_cli)


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError) -> Response:
    """A refused API request: nothing it may have begun is kept."""
    db.session.rollback()
    return exc.response()


@bp.errorhandler(BadCursor)
def _bad_cursor(exc: BadCursor) -> Response:
    """A cursor the API did not issue for this list: 400, pointing at the `cursor` field."""
    db.session.rollback()
    return ApiError(
        400,
        f"cursor: {BAD_CURSOR}.",
        title="Bad cursor",
        errors=[{"field": exc.field, "message": BAD_CURSOR}],
    ).response()
