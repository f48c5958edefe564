"""Reading a tester's own clips (My clips). Nothing writes.

Newest first by id, a keyset page at a time (approval.paging); the API's searchable list is
ops/clip_search.py.
"""

from __future__ import annotations

from sqlalchemy import func, select

from approval import paging
from approval.extensions import db
from approval.models import Clip, User

#: My clips shows this many to a page.
PAGE_SIZE = 20


def own(
    tester: User, *, cursor: str | None = None, with_dismissed: bool = False
) -> paging.Page[Clip]:
    """The tester's own clips, newest first, a page at a time; dismissed uploads if asked."""
    query = select(Clip).where(Clip.tester_id == tester.id)
    if not with_dismissed:
        query = query.where(Clip.dismissed_at.is_(None))
    return paging.page("clips.mine", query, [Clip.id.desc()], size=PAGE_SIZE, cursor=cursor)


def dismissed_count(tester: User) -> int:
    """How many of the tester's failed uploads are dismissed (hidden from My clips)."""
    query = select(func.count()).where(Clip.tester_id == tester.id, Clip.dismissed_at.is_not(None))
    return db.session.scalar(query) or 0
