"""Reading a tester's own clips (My clips). Nothing writes.

Newest first by id, a keyset page at a time (approval.paging); the API's searchable list is
ops/clip_search.py.
"""

from __future__ import annotations

from sqlalchemy import select

from approval import paging
from approval.models import Clip, User

#: My clips shows this many to a page.
PAGE_SIZE = 20


def own(tester: User, *, cursor: str | None = None) -> paging.Page[Clip]:
    """The tester's own clips, newest first, a page at a time."""
    query = select(Clip).where(Clip.tester_id == tester.id)
    return paging.page("clips.mine", query, [Clip.id.desc()], size=PAGE_SIZE, cursor=cursor)
