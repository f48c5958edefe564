"""Input no database column can hold, refused before any view reads it.

PostgreSQL stores no id past its INTEGER columns; a query that carries one fails inside the
database, as a 500. Pages refuse them here, once for every view: a path id that cannot exist
does not match its route (404), and the views that read ids or dates from the query string read
them through `query_id` and the bounded form fields in approval/forms.py.

The API reads its input through its own strict schemas (see approval/api/schemas.py) and answers
problem+json, so it is left to them.
"""

from __future__ import annotations

from flask import Flask, abort, request
from werkzeug.routing import IntegerConverter, Map

#: The largest id an INTEGER primary key holds. Every row a path or a filter names by number has
#: one (audit events, whose ids are BIGINT, are reached only through signed cursors).
MAX_ID = 2**31 - 1


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


def install(app: Flask) -> None:
    """Bound `int` in every route; call before the blueprints add their rules."""
    app.url_map.converters["int"] = BoundedIntConverter
