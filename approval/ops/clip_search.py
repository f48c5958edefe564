"""Finding clips: search by words of the title or prompt, the tester, the status, a SHA-256 prefix.

Read by the admin clip browser and the API's clip list. Newest first by id, a keyset page at
a time (approval.paging): no OFFSET and no COUNT, so a page costs the same at any depth. Words
match anywhere in the title or prompt, each word on its own and with LIKE's wildcards taken
literally; a SHA-256 prefix is hex only and at least 4 characters, so it narrows to a handful.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, or_, select

from approval import paging
from approval.models import Clip, ClipStatus, User
from approval.ops import access
from approval.ops.errors import InvalidInput

#: The browser shows this many clips to a page.
PAGE_SIZE = 50
MAX_TEXT = 200
MAX_TESTER = 254
MIN_SHA256_PREFIX = 4
HEX = re.compile(r"[0-9a-f]*")


@dataclass(frozen=True)
class Search:
    """What to look for; empty fields match everything."""

    words: tuple[str, ...] = ()
    tester: str = ""
    tester_id: int | None = None
    status: ClipStatus | None = None
    sha256: str = ""

    @property
    def active(self) -> bool:
        return bool(self.words or self.tester or self.tester_id or self.status or self.sha256)

    def conditions(self) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        for word in self.words:
            found.append(
                or_(
                    Clip.title.icontains(word, autoescape=True),
                    Clip.prompt.icontains(word, autoescape=True),
                )
            )
        if self.tester:
            people = select(User.id).where(
                or_(
                    User.display_name.icontains(self.tester, autoescape=True),
                    User.email.icontains(self.tester, autoescape=True),
                )
            )
            found.append(Clip.tester_id.in_(people))
        if self.tester_id is not None:
            found.append(Clip.tester_id == self.tester_id)
        if self.status is not None:
            found.append(Clip.status == self.status)
        if self.sha256:
            found.append(Clip.sha256.startswith(self.sha256, autoescape=True))
        return found


def _text(value: str, field: str, limit: int, errors: dict[str, str]) -> str:
    value = value.strip()
    if len(value) > limit:
        errors[field] = f"at most {limit} characters"
    elif "\x00" in value:
        errors[field] = "must not contain NUL characters"
    return value


def parse(
    *,
    q: str = "",
    tester: str = "",
    status: str = "",
    sha256: str = "",
    tester_id: int | None = None,
) -> Search:
    """A search from what someone typed; InvalidInput naming each field that cannot be used."""
    errors: dict[str, str] = {}
    q = _text(q, "q", MAX_TEXT, errors)
    tester = _text(tester, "tester", MAX_TESTER, errors)
    prefix = sha256.strip().lower()
    if prefix and (not HEX.fullmatch(prefix) or not MIN_SHA256_PREFIX <= len(prefix) <= 64):
        errors["sha256"] = (
            f"give at least {MIN_SHA256_PREFIX} and at most 64 hexadecimal characters "
            "(0-9, a-f) of the SHA-256"
        )
    state: ClipStatus | None = None
    if status.strip():
        try:
            state = ClipStatus(status.strip())
        except ValueError:
            errors["status"] = f"use one of {', '.join(s.value for s in ClipStatus)}"
    if errors:
        listed = "; ".join(f"{field}: {message}" for field, message in errors.items())
        raise InvalidInput(f"The search cannot be used: {listed}.", errors=errors)
    return Search(
        words=tuple(dict.fromkeys(q.split())),
        tester=tester,
        tester_id=tester_id,
        status=state,
        sha256=prefix,
    )


def query(search: Search, viewer: User | None = None) -> Select[tuple[Clip]]:
    """The clips matching the search that this viewer may list (None: every clip)."""
    selected = select(Clip).where(*search.conditions())
    if viewer is not None and not access.is_staff(viewer):
        selected = selected.where(Clip.tester_id == viewer.id)  # testers list their own
    return selected


def page(
    search: Search,
    *,
    viewer: User | None = None,
    scope: str = "admin.clips",
    cursor: str | None = None,
    size: int | None = None,
) -> paging.Page[Clip]:
    """One page of matching clips, newest first, after or before a cursor."""
    return paging.page(
        scope, query(search, viewer), [Clip.id.desc()], size=size or PAGE_SIZE, cursor=cursor
    )
