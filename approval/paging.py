"""One keyset pager: pages that never skip or repeat, behind opaque cursors nobody can forge.

A page is read with `WHERE (key columns) > (the last row's key)`, never OFFSET, so it costs an
index range scan however deep it is. The key must be unique (end it with the id) or rows that
tie would be skipped. A cursor is that key and a direction, serialised and signed with the
app's secret and a salt naming its list: a cursor that was changed, made up or issued for
another list is refused with BadCursor, which pages show as 400 and the API as a problem.

Several selects can share one page (the queue reads each kind of available clip on its own
index): each is read with the same key and limit, and the rows are merged by the key.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import ColumnElement, Select, and_, or_, tuple_
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import UnaryExpression

from approval.extensions import db

T = TypeVar("T")

BAD_CURSOR = (
    "this cursor was not issued for this list, or it was changed; follow the `next` link as "
    "given, or drop the cursor to start from the first page"
)


class BadCursor(Exception):
    """A cursor that was changed, malformed or issued for another list."""

    field = "cursor"

    def __init__(self) -> None:
        super().__init__(BAD_CURSOR)


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    #: Cursor of the following page, or None on the last one.
    next: str | None
    #: Cursor of the preceding page, or None on the first one.
    previous: str | None


@dataclass(frozen=True)
class _Key:
    column: ColumnElement[Any]
    descending: bool

    @classmethod
    def of(cls, order: Any) -> _Key:
        """A column (ascending) or `column.desc()` / `column.asc()`."""
        if isinstance(order, UnaryExpression) and order.modifier in (
            operators.desc_op,
            operators.asc_op,
        ):
            return cls(order.element, order.modifier is operators.desc_op)  # type: ignore[arg-type]
        return cls(order, False)

    def value(self, item: Any) -> Any:
        return getattr(item, str(self.column.key))

    def parse(self, raw: Any) -> Any:
        """A value from a cursor, as the column holds it; BadCursor if it cannot be one."""
        stored = self.column.type
        # A TypeDecorator (UTCDateTime) does not pass on its underlying type's python_type.
        expected = getattr(stored, "impl_instance", stored).python_type
        if expected is datetime and isinstance(raw, str):
            try:
                moment = datetime.fromisoformat(raw)
            except ValueError:
                raise BadCursor() from None
            if moment.tzinfo is not None:
                return moment
        elif isinstance(raw, expected) and not isinstance(raw, bool):
            return raw
        raise BadCursor()


def _serializer(scope: str) -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=f"greenlight-cursor:{scope}")


def encode(scope: str, key: Sequence[Any], *, backwards: bool = False) -> str:
    """The cursor of the page after (or before) the row whose ordering key is `key`."""
    return _serializer(scope).dumps({"key": [_json(v) for v in key], "back": backwards})


def _cursor(scope: str, keys: Sequence[_Key], item: Any, *, backwards: bool) -> str:
    return encode(scope, [key.value(item) for key in keys], backwards=backwards)


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _decode(scope: str, keys: Sequence[_Key], cursor: str) -> tuple[list[Any], bool]:
    try:
        payload = _serializer(scope).loads(cursor)
    except BadSignature:
        raise BadCursor() from None
    if not isinstance(payload, dict) or not isinstance(payload.get("back"), bool):
        raise BadCursor()
    values = payload.get("key")
    if not isinstance(values, list) or len(values) != len(keys):
        raise BadCursor()
    return [key.parse(raw) for key, raw in zip(keys, values, strict=True)], payload["back"]


def _beyond(keys: Sequence[_Key], values: Sequence[Any], backwards: bool) -> ColumnElement[bool]:
    """Rows strictly after the key in reading order (before it when reading backwards)."""
    later = [key.descending == backwards for key in keys]  # True: ">" reads onwards
    if len(set(later)) == 1:
        columns = [key.column for key in keys]
        left = columns[0] if len(columns) == 1 else tuple_(*columns)
        right = values[0] if len(values) == 1 else tuple(values)
        return left > right if later[0] else left < right
    # Mixed directions cannot use a row comparison: spell it out, column by column.
    terms = []
    for index, key in enumerate(keys):
        step = key.column > values[index] if later[index] else key.column < values[index]
        ties = [keys[i].column == values[i] for i in range(index)]
        terms.append(and_(*ties, step))
    return or_(*terms)


def _compare(keys: Sequence[_Key], backwards: bool, left: Any, right: Any) -> int:
    for key in keys:
        a, b = key.value(left), key.value(right)
        if a != b:
            return (-1 if a < b else 1) * (-1 if key.descending != backwards else 1)
    return 0


def page(
    scope: str,
    selects: Select[tuple[T]] | Sequence[Select[tuple[T]]],
    order: Sequence[Any],
    *,
    size: int,
    cursor: str | None = None,
) -> Page[T]:
    """One page of the select(s) in `order`, after or before `cursor`, with the next cursors."""
    keys = [_Key.of(column) for column in order]
    values, backwards = _decode(scope, keys, cursor) if cursor else (None, False)
    parts = [selects] if isinstance(selects, Select) else list(selects)
    ordering = [
        key.column.desc() if key.descending != backwards else key.column.asc() for key in keys
    ]
    rows: list[T] = []
    for query in parts:
        if values is not None:
            query = query.where(_beyond(keys, values, backwards))
        rows.extend(db.session.scalars(query.order_by(*ordering).limit(size + 1)))
    if len(parts) > 1:
        rows.sort(key=functools.cmp_to_key(functools.partial(_compare, keys, backwards)))
    more = len(rows) > size
    items = rows[:size]
    if backwards:
        items.reverse()
    # Past a cursor there is a page on the side we came from (the cursor's own row was on it),
    # so that side needs no query of its own.
    onwards, back = (values is not None, more) if backwards else (more, values is not None)
    return Page(
        items,
        next=_cursor(scope, keys, items[-1], backwards=False) if items and onwards else None,
        previous=_cursor(scope, keys, items[0], backwards=True) if items and back else None,
    )
