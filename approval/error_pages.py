"""Error pages for people and problem+json for the API: never a stack trace."""

from __future__ import annotations

import logging
import math
import time

from flask import Flask, Response, current_app, jsonify, render_template, request
from flask_limiter.errors import RateLimitExceeded
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError

from approval.models import User
from approval.ops import access
from approval.ops.errors import Refused, StateConflict
from approval.paging import BadCursor

from .extensions import db, limiter
from .formatting import format_size
from .log_redaction import redact
from .storage import StorageError
from .web import LARGE_BODY_ENDPOINTS

log = logging.getLogger(__name__)

MESSAGES = {
    400: ("Bad request", "The request could not be understood."),
    401: ("Sign-in needed", "Sign in, or send a valid API token, to use this."),
    403: ("Not allowed", "Your account does not have access to this page."),
    404: ("Not found", "There is nothing here. The link may be wrong or out of date."),
    405: ("Method not allowed", "This address does not accept that kind of request."),
    408: ("Too slow", "The request did not arrive in time, so nothing was changed."),
    409: ("Conflict", "Someone else changed this first."),
    410: ("Gone", "This is no longer available."),
    413: ("Too large", "What you sent is larger than this service accepts."),
    415: ("Unsupported media type", "Send this request's body in a format it accepts."),
    422: ("Check the input", "Some of what was sent cannot be used; see the details."),
    429: ("Too many attempts", "Too many attempts in a short time. Please wait and try again."),
    500: ("Something went wrong", "An error on our side stopped this request. Nothing changed."),
    503: ("Unavailable", "A service this needs is not answering. Please try again shortly."),
}

DATABASE_UNAVAILABLE = (
    "The database is not answering right now, so nothing was changed. Please try again in a minute."
)
STORAGE_UNAVAILABLE = (
    "Clip storage is not answering right now, so nothing was changed. Please try again in a minute."
)


def wants_problem_json() -> bool:
    return request.path.startswith("/api/")


def problem(status: int, detail: str, title: str | None = None, **extra: object) -> Response:
    """An RFC 9457 problem document."""
    body = {"type": "about:blank", "title": title or MESSAGES.get(status, ("Error", ""))[0]}
    body.update(status=status, detail=detail, **extra)
    response = jsonify(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    return response


REFUSAL_TITLES = {
    403: "Not allowed",
    404: "Not found",
    409: "Already changed",
    422: "Check the input",
}


def refusal_problem(exc: Refused) -> Response:
    """A refusal as problem+json: each field at fault in `errors[]`, a conflict's clip state."""
    extra: dict[str, object] = {}
    detail = exc.message
    if exc.errors:
        extra["errors"] = [{"field": f, "message": m} for f, m in exc.errors.items()]
        if exc.field is not None and len(exc.errors) == 1:
            detail = f"{exc.field}: {exc.message}"
    if isinstance(exc, StateConflict) and exc.status is not None:
        shown = access.may_learn_who_acted(_viewer(), exc.changed_by)
        extra.update(
            clip=exc.clip_id,
            current_status=exc.status.value,
            changed_at=exc.changed_at.isoformat() if exc.changed_at else None,
            changed_by=exc.changed_by if shown else None,
        )
    return problem(exc.status_code, detail, REFUSAL_TITLES.get(exc.status_code), **extra)


def _viewer() -> User | None:
    """The signed-in caller (a token's owner, for the API), if any."""
    user = current_user._get_current_object()  # type: ignore[attr-defined]
    return user if isinstance(user, User) else None


#: What a share link's outsider reads when it cannot play: (heading, what to do), by status.
SHARE_LINK_MESSAGES = {
    404: (
        "This link does not work",
        "Check that you have the whole link, or ask the person who sent it to you for a new one.",
    ),
    403: (
        "Not available through this link",
        "Open the link itself and type the passphrase if you were given one, or ask the "
        "person who sent it.",
    ),
    410: (
        "This link no longer works",
        "It may have expired or been withdrawn. If you still need the clip, ask the person who "
        "sent you the link for a new one.",
    ),
}


#: The rest (too many passphrases, a store that is away): what happened says when to come back.
SHARE_LINK_OTHER_ADVICE = "If it goes on, ask the person who sent you the link."


def _share_link_page(status: int, title: str, detail: str) -> str | None:
    """The outsiders' page for anything that goes wrong behind a share link (/s/...).

    Whoever follows a share link has no account here: the page says what happened and what to
    do, in the share pages' own frame, with no sign-in link or start page (None elsewhere).
    """
    if not request.path.startswith("/s/"):
        return None
    heading, advice = SHARE_LINK_MESSAGES.get(status, (title, SHARE_LINK_OTHER_ADVICE))
    if status == 403:  # the default text speaks of accounts
        detail = "This link does not allow that, or needs its passphrase first."
    return render_template(
        "sharing/unavailable.html", heading=heading, detail=detail, advice=advice
    )


def error_page(status: int, detail: str | None = None, title: str | None = None) -> Response:
    default_title, default_detail = MESSAGES.get(status, ("Error", ""))
    if wants_problem_json():
        return problem(status, detail or default_detail, title)
    shared = _share_link_page(status, title or default_title, detail or default_detail)
    if shared is not None:
        return Response(shared, status=status)
    html = render_template(
        "errors/error.html",
        status=status,
        title=title or default_title,
        detail=detail or default_detail,
    )
    return Response(html, status=status)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(Refused)
    def refused(exc: Refused) -> Response:
        # The refused step may have written part of its work; none of it may stay -- except a
        # refusal that logged why (a changed file), whose audit event is the point.
        if exc.keeps_evidence:
            db.session.commit()
        else:
            db.session.rollback()
        if wants_problem_json():
            return refusal_problem(exc)
        return error_page(exc.status_code, exc.message, REFUSAL_TITLES.get(exc.status_code))

    @app.errorhandler(BadCursor)
    def bad_cursor(exc: BadCursor) -> Response:
        return error_page(
            400,
            "This page link was changed or belongs to another list. Go back to the first page "
            "and follow its links as given.",
            "Bad page link",
        )

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> Response:
        return error_page(
            400,
            "This form has expired or was not sent from this site. Go back, reload the page "
            "and try again; nothing was changed.",
            "Form expired",
        )

    @app.errorhandler(RateLimitExceeded)
    def too_many(exc: RateLimitExceeded) -> Response:
        # Flask-Limiter's own text is the rule ("5 per 1 minute"); say when to come back instead.
        wait = _seconds_until_reset()
        # A person is told about their attempts; a program, about its requests.
        what = "requests" if wants_problem_json() else "attempts"
        response = error_page(
            429,
            f"Too many {what} in a short time. Please try again {in_words(wait)}.",
            f"Too many {what}",
        )
        response.headers["Retry-After"] = str(wait)
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        detail = exc.description if status not in MESSAGES or _custom(exc) else None
        if status == 413 and detail is None:
            detail = _too_large()
        response = error_page(status, detail)
        valid_methods = getattr(exc, "valid_methods", None)
        if valid_methods:
            response.headers["Allow"] = ", ".join(valid_methods)
        return response

    @app.errorhandler(StorageError)
    def storage_unavailable(exc: StorageError) -> Response:
        # Storage hung or down: say so and let the client come back; nothing stays half-done.
        return _unavailable("storage", exc, STORAGE_UNAVAILABLE, "Storage unavailable")

    @app.errorhandler(OperationalError)
    def database_unavailable(exc: OperationalError) -> Response:
        # The database went away (restart, failover, killed connection): nothing was changed,
        # and the same request a little later will most likely work.
        return _unavailable("database", exc, DATABASE_UNAVAILABLE, "Database unavailable")

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, redact(request.path))
        _rollback_quietly()
        return error_page(500)

    @app.errorhandler(InternalServerError)
    def internal(exc: InternalServerError) -> Response:
        _rollback_quietly()
        return error_page(500)


def _too_large() -> str:
    """What the refused body was measured against: a clip's limit, or an ordinary form's."""
    if request.endpoint in LARGE_BODY_ENDPOINTS:
        kind, limit = "clips", current_app.config["MAX_CLIP_BYTES"]
    else:
        kind, limit = "forms", current_app.config["MAX_CONTENT_LENGTH"]
    return (
        f"What you sent is larger than this service accepts ({kind}: at most {format_size(limit)})."
    )


def _seconds_until_reset() -> int:
    """Seconds until the breached limit lets this client in again (at least one)."""
    limit = limiter.current_limit
    if limit is None:
        return 60
    # From the store's own reset time: RequestLimit.reset_at adds a second to it, which made a
    # fresh minute's window read 61 seconds. Never 0, which tells a client to come straight back.
    resets, _ = limit.window
    return max(1, math.ceil(resets - time.time()))


def in_words(seconds: int) -> str:
    """'in 40 seconds', 'in 2 minutes', 'in about an hour': a wait as people say it."""
    if seconds < 60:
        return f"in {seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return f"in {minutes} minute{'s' if minutes != 1 else ''}"
    hours = round(minutes / 60)
    return "in about an hour" if hours == 1 else f"in about {hours} hours"


def _unavailable(what: str, exc: Exception, detail: str, title: str) -> Response:
    """503 with Retry-After: a service this request needs is away, and nothing was changed."""
    log.warning("%s failed on %s %s: %s", what, request.method, redact(request.path), exc)
    _rollback_quietly()
    response = error_page(503, detail, title)
    response.headers["Retry-After"] = "30"
    return response


def _rollback_quietly() -> None:
    """End a failed transaction so the error page itself (its user loader) can use the session.

    After a killed database connection even the rollback can fail; the page must still render.
    """
    try:
        db.session.rollback()
    except Exception:
        log.warning("rollback after an error failed; discarding the session", exc_info=True)
        db.session.remove()


def _custom(exc: HTTPException) -> bool:
    """True when the code raised the error with its own description, worth showing."""
    return exc.description != type(exc).description
