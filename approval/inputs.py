"""Input no database column can hold, refused before any view reads it.

PostgreSQL stores no NUL character in text and no id past its INTEGER columns; a query that
carries either fails inside the database, as a 500. Pages refuse both here, once for every view:
a path id that cannot exist does not match its route (404), an address with a NUL character
names nothing (404), a NUL character in the query or a form field gets a 400 page, and the
views that read ids or dates from the query string read them through `query_id` and the
bounded form fields in approval/forms.py.

The API reads its input through its own strict schemas (see approval/api/schemas.py) and answers
problem+json, so it is left to them.
"""

from __future__ import annotations

from collections.abc import Iterator

from flask import Flask, Response, abort, request
from werkzeug.routing import IntegerConverter, Map

from .error_pages import error_page, wants_problem_json
from .models import MAX_ID

__all__ = ["MAX_ID", "BoundedIntConverter", "install", "query_id"]


#: Bodies a browser form sends; their fields are checked. Any other body is left unread here.
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
#: Views that stream a raw body themselves (a clip's bytes): never parsed as a form here.
RAW_BODY_ENDPOINTS = frozenset({"clips.receive"})


class BoundedIntConverter(IntegerConverter):
    """Werkzeug's `int`, up to MAX_ID: a larger number cannot be a row, so the route is a 404."""

    def __init__(
        self,
        map: Map,
        fixed_digits: int = 0,
        min: int | None = None,
        max: int | None = MAX_ID,
        signed: bool = False,
    ) -> None:
        super().__init__(map, fixed_digits, min, max, signed)


def query_id(name: str) -> int | None:
    """The query parameter `name` as an id; None when absent, 404 when no row could have it.

    "Could have it" as for an id in a path: ASCII digits, 1 to MAX_ID.
    """
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    # At most ten digits reach int(), which refuses (ValueError) strings past 4,300 of them.
    fits = len(raw) <= len(str(MAX_ID)) and raw.isascii() and raw.isdigit()
    if not fits or not 1 <= int(raw) <= MAX_ID:
        abort(404, description=f"There is nothing numbered “{_shown(raw)}” here ({name}).")
    return int(raw)


def _shown(text: str) -> str:
    """A piece of what was sent, short and without the control characters it may carry."""
    return "".join(ch if ch.isprintable() else "?" for ch in text[:40])


def _named_values() -> Iterator[tuple[str, str]]:
    """(where, value) for each query parameter and form field of the request."""
    for name, values in request.args.lists():
        for value in (name, *values):
            yield f"the query parameter “{_shown(name)}”", value
    # A form body is parsed once and kept (CSRFProtect and the view read the same parse), so
    # reading it here costs nothing extra; a clip's raw bytes are never touched.
    if request.mimetype not in FORM_TYPES or request.endpoint in RAW_BODY_ENDPOINTS:
        return
    for name, values in request.form.lists():
        for value in (name, *values):
            yield f"the field “{_shown(name)}”", value
    for name, file in request.files.items(multi=True):
        yield f"the name of the file in “{_shown(name)}”", file.filename or ""


def refuse_nul_characters() -> Response | None:
    """Answer with a page in the site's layout when a request to a page carries a NUL character.

    No column stores one, and a query that carries one fails in the database. In the address it
    names nothing there could be (404, as for any unknown token); in the query or a form field
    it is a 400 naming the field. The API refuses them field by field through its schemas, so
    its requests pass through untouched.
    """
    if wants_problem_json():
        return None
    if any(isinstance(v, str) and "\x00" in v for v in (request.view_args or {}).values()):
        return error_page(404)
    for where, value in _named_values():
        if "\x00" in value:
            return error_page(
                400,
                f"{where[0].upper()}{where[1:]} contains a NUL character (code 0), which "
                "cannot be stored. Remove it and send again; nothing was changed.",
                "Unusable character",
            )
    return None


def install(app: Flask) -> None:
    """Bound `int` in every route, and refuse NUL characters before any page view runs.

    Call before the blueprints register (their rules take the converter as they are added) and
    after CSRFProtect, so that a form body is parsed where it would be parsed anyway.
    """
    app.url_map.converters["int"] = BoundedIntConverter
    app.before_request(refuse_nul_characters)
