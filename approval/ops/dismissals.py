"""Putting a failed upload out of sight in My clips. The clip, its bytes' record and its log stay.

Dismissing is not a state change: a failed clip stays failed (the transitions table does not
know it); it only gains `dismissed_at`, and the log says who put it away and when.
"""

from __future__ import annotations

from approval import audit
from approval.clock import utcnow
from approval.models import Clip, ClipStatus, User
from approval.ops.errors import NotFound, StateConflict
from approval.ops.transitions import lock


def dismiss(clip: Clip, tester: User) -> None:
    """Hide one's own failed upload from My clips; anything else, or a second time, is refused."""
    if not clip.is_owned_by(tester):
        raise NotFound(f"You have no clip {clip.id}.")
    lock(clip)  # two dismissals at once: the second waits, then finds it done
    if clip.status != ClipStatus.FAILED:
        raise StateConflict(
            f"Only an upload that failed can be dismissed; this clip is {clip.status.label}.",
            clip,
        )
    if clip.dismissed_at is not None:
        raise StateConflict("This upload is already dismissed.", clip)
    clip.dismissed_at = utcnow()
    audit.record(
        "clip.dismissed",
        actor=tester,
        subject_type="clip",
        subject_id=clip.id,
        clip=clip,
        reason=clip.failure_reason,
    )
