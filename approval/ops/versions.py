"""Versions of one clip: which two may be put side by side, and by whom."""

from __future__ import annotations

from approval.models import Clip, User
from approval.ops import access
from approval.ops.errors import NotFound


def first_version(clip: Clip) -> Clip:
    """The version the chain started from (the clip itself when it is the first)."""
    earlier = clip.earlier_versions()
    return earlier[-1] if earlier else clip


def comparable_pair(clip_id: int, other_id: int | None, viewer: User) -> tuple[Clip, Clip]:
    """Two versions of one clip that this viewer sees, the earlier first; else NotFound.

    Whoever sees a clip sees its whole chain (one tester uploads every version), so a clip
    outside the chain is refused as not found, never as "not yours".
    """
    clip = access.visible_clip(clip_id, viewer)
    if other_id is None:
        raise NotFound("Say which version to compare with (with=<clip id>).", "with")
    other = access.visible_clip(other_id, viewer)
    if other.id == clip.id:
        raise NotFound("Choose another version to compare this one with.", "with")
    if first_version(other).id != first_version(clip).id:
        raise NotFound(f"Clip {other.id} is not a version of clip {clip.id}.", "with")
    earlier, later = sorted((clip, other), key=lambda version: version.version)
    return earlier, later
