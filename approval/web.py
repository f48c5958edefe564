"""Small pieces every blueprint shares: role checks, safe redirects, headers, template helpers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import IO, Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

from flask import (
    Flask,
    Request,
    abort,
    current_app,
    flash,
    has_request_context,
    request,
    url_for,
)
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from werkzeug.exceptions import RequestEntityTooLarge

from . import audit, cache_headers, log_redaction
from .clock import utcnow
from .config import rejection_categories
from .extensions import db, storage
from .formatting import format_size, frame_timecode
from .media import format_duration
from .models import VERIFIED_STATES, ClipStatus, Role
from .ops import access
from .ops.errors import Refused
from .storage import Spool, StorageError

P = ParamSpec("P")
R = TypeVar("R")


def roles_required(*roles: Role) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Signed-in users holding any of these roles pass; others get 403, anonymous sign-in."""

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        @login_required
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
            if not any(current_user.has_role(role) for role in roles):
                abort(403)
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


def undo_refused(exc: Refused) -> int:
    """Roll back whatever the refused step began; returns the status to answer with.

    Views that render a refusal their own way (on a form, in JSON) call this, or show_refusal;
    a refusal they let through is rolled back by the error handler instead.
    """
    db.session.rollback()
    return exc.status_code


def show_refusal(
    exc: Refused, form: FlaskForm | None = None, *, default_field: str | None = None
) -> int:
    """Undo what the refused step began and show why; returns the status to answer with.

    Each field the refusal names gets its message on the form (or `default_field` when the
    form has no such field); without a form, or a field to put it on, the message is flashed.
    """
    status = undo_refused(exc)
    placed = False
    if form is not None:
        for name, message in (exc.errors or {default_field or "": exc.message}).items():
            field = form._fields.get(name) or form._fields.get(default_field or "")
            if field is not None:
                field.errors = (
                    [*field.errors, message] if isinstance(field.errors, list) else [message]
                )
                placed = True
    if not placed:
        flash(exc.message, "error")
    return status


def safe_next(target: str | None) -> str | None:
    """`target` if it is a path on this site, else None (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(ch) < 32 for ch in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def site_url(endpoint: str, **values: Any) -> str:
    """An absolute URL on SITE_URL, built from the route, inside a request or not (CLI)."""
    if has_request_context():
        path = url_for(endpoint, **values)
    else:
        with current_app.test_request_context():
            path = url_for(endpoint, **values)
    return str(current_app.config["SITE_URL"]) + path


def app_put_url(clip_id: int, ticket: str) -> str:
    """Where an upload ticket sends the bytes when the storage cannot take them directly."""
    return site_url("clips.receive", clip_id=clip_id, ticket=ticket)


def password_link_url(token: str) -> str:
    """The absolute set-password URL, built from SITE_URL so the CLI can print it too."""
    return site_url("auth.set_password", token=token)


def client_address() -> str | None:
    """The client's address as seen after ProxyFix (if configured)."""
    return request.remote_addr


def relative_time(moment: datetime | None, now: datetime | None = None) -> str:
    """'3 minutes ago', 'in 2 days': coarse and friendly; the exact time goes in a title."""
    if moment is None:
        return "—"
    seconds = int(((now or utcnow()) - moment).total_seconds())
    future = seconds < 0
    seconds = abs(seconds)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            text = f"{count} {unit}{'s' if count != 1 else ''}"
            return f"in {text}" if future else f"{text} ago"
    return "just now"


def exact_time(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


#: Endpoints whose request body is a whole clip; every other request stays small.
LARGE_BODY_ENDPOINTS = frozenset({"clips.upload", "clips.receive"})


def allow_large_bodies() -> None:
    """Raise the body limit for clip uploads only (must run before CSRF reads the form)."""
    if request.endpoint in LARGE_BODY_ENDPOINTS:
        extra = 1 << 20 if request.endpoint == "clips.upload" else 0  # room for the form fields
        # One byte more: where the server marks its input terminated (gunicorn does), Werkzeug
        # reads up to this limit and answers 413 to the read that finds the end, which would
        # refuse a file of exactly MAX_CLIP_BYTES. Storage refuses a byte over the limit itself.
        request.max_content_length = current_app.config["MAX_CLIP_BYTES"] + extra + 1


#: Endpoints whose form files are written into storage's own spools, not the temp folder.
SPOOLED_ENDPOINTS = frozenset({"clips.upload"})
#: File parts one such form may carry: each spool is an open file until the request ends, and
#: Werkzeug's parser, which kept small parts in memory, would take up to a thousand.
MAX_SPOOLED_FILES = 10


class SpoolingRequest(Request):
    """Flask's request; on the upload form, each file part is written into a storage spool.

    The form parser would write the file to the system's temporary folder, and the view then
    copy it into storage: every byte twice. Spooled where storage keeps its own temporary
    files (on local disk: beside the objects), the view's adopt() renames it into place.
    Every spool the view does not adopt is removed when the request closes, however it ended
    (refused, too large, the client gone or stalled mid-body).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spools: list[Spool] = []

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        if self.endpoint not in SPOOLED_ENDPOINTS:
            return super()._get_file_stream(
                total_content_length, content_type, filename, content_length
            )
        if len(self.spools) >= MAX_SPOOLED_FILES:
            raise RequestEntityTooLarge(
                f"This form takes one video at a time, and at most {MAX_SPOOLED_FILES} files in "
                "all. Upload the others one by one; nothing was changed."
            )
        spool = storage().spool()
        self.spools.append(spool)
        return spool

    def close(self) -> None:
        """Close the files, as Werkzeug does, and remove every spool nothing adopted."""
        try:
            super().close()
        finally:
            for spool in self.spools:
                spool.close()


def spooled(stream: IO[bytes]) -> Spool:
    """The spool a file part of a SPOOLED_ENDPOINTS form was written into."""
    if not isinstance(stream, Spool):
        raise TypeError(f"{request.endpoint}: the form's file was not spooled (SPOOLED_ENDPOINTS)")
    return stream


def refuse_overlong_forms() -> None:
    """413 for a chunked form body past the limit, instead of parsing a cut-off form.

    Werkzeug reads a urlencoded body in one go and, with no Content-Length to refuse it by,
    stops quietly at the limit: the form would lose its tail (often the CSRF token, so a
    misleading "Form expired"). Read it here with one byte to spare, and measure. Multipart
    bodies are parsed piece by piece and already get 413 at the limit; the API reads its own.
    """
    if (
        request.content_length is not None
        or request.mimetype != "application/x-www-form-urlencoded"
        or request.max_content_length is None
        or request.path.startswith("/api/")
    ):
        return
    limit = request.max_content_length
    request.max_content_length = limit + 1
    # Kept, so the form is parsed from these bytes, not from the consumed stream.
    if len(request.get_data(cache=True)) > limit:
        abort(413)
    request.max_content_length = limit


def storage_origin() -> str:
    """The origin media and uploads come from when storage hands out URLs ('' for disk)."""
    cached = current_app.extensions.get("greenlight_storage_origin")
    if cached is None:
        try:
            url = storage().read_url("probe/origin", expires_in=60)
        except StorageError:
            url = None
        cached = "" if url is None else "{0.scheme}://{0.netloc}".format(urlsplit(url))
        current_app.extensions["greenlight_storage_origin"] = cached
    return str(cached)


def content_security_policy() -> str:
    """Only what our pages use: our own files, plus the storage origin for media and uploads."""
    origin = storage_origin()
    extra = f" {origin}" if origin else ""
    return (
        f"default-src 'self'; img-src 'self' data:{extra}; media-src 'self'{extra}; "
        f"connect-src 'self'{extra}; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    )


def _security_headers(response: Any) -> Any:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Content-Security-Policy", content_security_policy())
    return response


def register_web_helpers(app: Flask) -> None:
    app.request_class = SpoolingRequest
    app.after_request(_security_headers)
    cache_headers.install(app)
    log_redaction.install(app)
    app.jinja_env.globals.update(
        Role=Role,
        ClipStatus=ClipStatus,
        verified_states=VERIFIED_STATES,
        format_size=format_size,
        format_duration=format_duration,
        frame_timecode=frame_timecode,
        # Pages ask the API's question: may this viewer learn who reviewed, decided, shared?
        sees_who_reviewed=access.sees_who_reviewed,
        actor_name=access.actor_name,
    )

    @app.context_processor
    def categories() -> dict[str, Any]:
        return {"categories": rejection_categories()}

    app.jinja_env.filters.update(
        relative_time=relative_time,
        exact_time=exact_time,
        # Clip timelines and the admin audit page both speak of events the same way.
        audit_action=audit.action_label,
        audit_change=audit.change,
        audit_details=audit.details,
    )
