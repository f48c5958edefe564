"""Error pages for people and problem+json for the API: never a stack trace."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger(__name__)

MESSAGES = {
    400: ("Bad request", "The request could not be understood."),
    403: ("Not allowed", "Your account does not have access to this page."),
    404: ("Not found", "There is nothing here. The link may be wrong or out of date."),
    405: ("Method not allowed", "This address does not accept that kind of request."),
    409: ("Conflict", "Someone else changed this first."),
    410: ("Gone", "This is no longer available."),
    413: ("Too large", "What you sent is larger than this service accepts."),
    429: ("Too many attempts", "Too many attempts in a short time. Please wait and try again."),
    500: ("Something went wrong", "An error on our side stopped this request. Nothing changed."),
}


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


def error_page(status: int, detail: str | None = None, title: str | None = None) -> Response:
    default_title, default_detail = MESSAGES.get(status, ("Error", ""))
    if wants_problem_json():
        return problem(status, detail or default_detail, title)
    html = render_template(
        "errors/error.html",
        status=status,
        title=title or default_title,
        detail=detail or default_detail,
    )
    return Response(html, status=status)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> Response:
        return error_page(
            400,
            "This form has expired or was not sent from this site. Go back, reload the page "
            "and try again; nothing was changed.",
            "Form expired",
        )

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        detail = exc.description if status not in MESSAGES or _custom(exc) else None
        response = error_page(status, detail)
        valid_methods = getattr(exc, "valid_methods", None)
        if valid_methods:
            response.headers["Allow"] = ", ".join(valid_methods)
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_page(500)

    @app.errorhandler(InternalServerError)
    def internal(exc: InternalServerError) -> Response:
        return error_page(500)


def _custom(exc: HTTPException) -> bool:
    """True when the code raised the error with its own description, worth showing."""
    return exc.description != type(exc).description
