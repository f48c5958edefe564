"""Who may see and do what: the one place that says it, asked alike by pages, API and CLI.

A clip someone may not see is reported as not found, so ids of others' clips reveal nothing.
"""

from __future__ import annotations

from approval.extensions import db
from approval.models import Clip, Role, User
from approval.ops.errors import NotFound


def is_staff(user: User) -> bool:
    """Reviewers and admins: they see every clip and manage every clip's share links."""
    return user.has_role(Role.REVIEWER) or user.has_role(Role.ADMIN)


def can_see(clip: Clip, user: User) -> bool:
    """A clip's tester sees it, and so does the staff; whoever sees a clip manages its links."""
    return clip.is_owned_by(user) or is_staff(user)


def visible_clip(clip_id: int, user: User) -> Clip:
    """The clip if this user may see it, else NotFound."""
    clip = db.session.get(Clip, clip_id)
    if clip is None or not can_see(clip, user):
        raise NotFound(f"There is no clip {clip_id} that you can see.")
    return clip


def own_clip(clip_id: int, user: User) -> Clip:
    """The clip if this user uploaded it, else NotFound."""
    clip = db.session.get(Clip, clip_id)
    if clip is None or not clip.is_owned_by(user):
        raise NotFound(f"You have no clip {clip_id}.")
    return clip
