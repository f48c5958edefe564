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


def sees_who_reviewed(viewer: User | None) -> bool:
    """Whether this viewer may learn who reviewed, claimed, decided or shared a clip: staff only.

    Testers never learn reviewers' identities, on a page, in the API or in a refusal's text;
    they are told "a reviewer" instead.
    """
    return viewer is not None and is_staff(viewer)


def may_learn_who_acted(viewer: User | None, actor_id: int | None) -> bool:
    """Whether this viewer may be told who took a step: staff always, anyone their own steps."""
    if actor_id is None:  # the system acted: nothing to hide
        return True
    return sees_who_reviewed(viewer) or (viewer is not None and viewer.id == actor_id)


def actor_name(actor: User | None, viewer: User | None) -> str:
    """Who took a step, as this viewer may be told it: a name, "a reviewer" or "the system"."""
    if actor is None:
        return "the system"
    if may_learn_who_acted(viewer, actor.id):
        return actor.display_name
    return "a reviewer" if actor.has_role(Role.REVIEWER) else "an administrator"


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
