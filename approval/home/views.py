"""The front door: send each person to their own page; report health."""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Response, current_app, jsonify, redirect, url_for
from flask_login import current_user
from sqlalchemy import text
from werkzeug.wrappers import Response as BaseResponse

from approval.extensions import db, limiter, storage
from approval.jobqueue import queue_health
from approval.models import Role
from approval.storage import StorageError

from . import bp

log = logging.getLogger(__name__)


@bp.get("/")
def index() -> BaseResponse:
    """Admins land on the clip browser, reviewers on the queue, testers on their clips."""
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    if current_user.has_role(Role.ADMIN):
        return redirect(url_for("admin.clips"))
    if current_user.has_role(Role.REVIEWER):
        return redirect(url_for("review.queue"))
    return redirect(url_for("clips.mine"))


@bp.get("/favicon.ico")
@limiter.exempt
def favicon() -> Response:
    """The icon browsers ask for on their own, at the address they ask (an SVG; all take it)."""
    assert current_app.static_folder is not None  # the factory always sets one
    icon = (Path(current_app.static_folder) / "favicon.svg").read_bytes()
    # No caching header of its own: to a signed-in caller it is private, no-store like every
    # answer (approval/cache_headers.py); browsers keep favicons in a cache of their own.
    return Response(icon, mimetype="image/svg+xml")


@bp.get("/healthz")
@limiter.exempt
def healthz() -> tuple[Response, int]:
    """{"database": "ok", "storage": "ok", "queue": "ok", …} with 200, or 503 naming what failed."""
    report: dict[str, str] = {}
    try:
        db.session.execute(text("SELECT 1"))
        report["database"] = "ok"
    except Exception as exc:  # any failure is the report's content, not a crash
        log.warning("health check: database failed: %s", exc)
        db.session.rollback()
        report["database"] = "unreachable"
    try:
        storage().check()
        report["storage"] = "ok"
    except StorageError as exc:
        log.warning("health check: storage failed: %s", exc)
        report["storage"] = "unreachable"
    healthy = all(value == "ok" for value in report.values())
    # The queue is reported, and counts when unreachable (uploads could not be verified); an
    # old or missing worker heartbeat is shown, not failed on: the web itself still works.
    queue = queue_health()
    healthy = healthy and queue["queue"] == "ok"
    return jsonify({**report, **queue}), 200 if healthy else 503
