"""Reading lists of clips: a tester's own (My clips) and the API's filtered list. Nothing writes.

Both are newest first by id, a keyset page at a time (approval.paging).
"""

from __future__ import annotations

from sqlalchemy import func, select

from approval import paging
from approval.extensions import db
from approval.models import Clip, ClipStatus, User
from approval.ops import access

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


def listed(
    user: User,
    *,
    tester_id: int | None = None,
    status: ClipStatus | None = None,
    cursor: str | None = None,
    size: int,
) -> paging.Page[Clip]:
    """Clips this person may list, newest first, optionally of one tester or in one state."""
    query = select(Clip)
    if not access.is_staff(user):  # the staff list every clip; testers their own
        query = query.where(Clip.tester_id == user.id)
    if tester_id is not None:
        query = query.where(Clip.tester_id == tester_id)
    if status is not None:
        query = query.where(Clip.status == status)
    return paging.page("api.clips", query, [Clip.id.desc()], size=size, cursor=cursor)
