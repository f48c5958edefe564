"""What the gate remembers of bytes it has seen before, by their SHA-256.

Two rules live here. Bytes that were refused once (a rejected or taken-down clip's original, the
copy made for playback of one, which its reviewers and the public watched and its tester can
download, or its signed copy for sharing) are refused again at verification. Bytes that match
another tester's earlier clip are queued, and reviewers and admins are pointed at that clip; the
uploader learns nothing of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import ColumnElement, or_, select

from approval.extensions import db
from approval.media import MediaRejected
from approval.models import Clip, ClipStatus, User
from approval.ops import access

#: Statuses whose bytes may not come back into the queue.
REFUSED_STATES = (ClipStatus.REJECTED, ClipStatus.TAKEN_DOWN)

#: Enough earlier copies for a reviewer to see a pattern; a page never lists more.
SHOWN_MATCHES = 10


class Part(StrEnum):
    """Which of an earlier clip's objects carried the bytes."""

    ORIGINAL = "original"
    PLAYBACK_COPY = "playback_copy"


@dataclass(frozen=True)
class SameBytes:
    """An earlier clip with the very same bytes, and which of its objects had them."""

    clip: Clip
    part: Part


def _carrying(sha256: str) -> ColumnElement[bool]:
    return or_(Clip.sha256 == sha256, Clip.rendition_sha256 == sha256, Clip.signed_sha256 == sha256)


def _part(clip: Clip, sha256: str) -> Part:
    # A signed copy is made from what players were given, so it counts as a playback copy.
    return Part.ORIGINAL if clip.sha256 == sha256 else Part.PLAYBACK_COPY


def refuse_again(clip: Clip, sha256: str) -> None:
    """Raise MediaRejected when these very bytes were rejected or taken down before.

    The clip's own tester is told which clip and why; anyone else only that it happened, and
    never by whom.
    """
    earlier = db.session.scalar(
        select(Clip)
        .where(_carrying(sha256), Clip.status.in_(REFUSED_STATES), Clip.id != clip.id)
        .order_by(Clip.id)
        .limit(1)
    )
    if earlier is None:
        return
    taken_down = earlier.status == ClipStatus.TAKEN_DOWN
    verb = "taken down" if taken_down else "rejected"
    if _part(earlier, sha256) == Part.ORIGINAL:
        already = f"this exact file was already {verb}"
    else:
        already = f"this file is the copy made for playback of a clip already {verb}"
    if earlier.tester_id == clip.tester_id:
        why = earlier.takedown_reason if taken_down else earlier.decision_reason
        raise MediaRejected(f"{already} as “{earlier.title}”: {why}")
    raise MediaRejected(f"{already} by {'an admin' if taken_down else 'a reviewer'}")


def earlier_copies(clip: Clip, viewer: User) -> list[SameBytes]:
    """Other testers' earlier clips whose original or playback copy has this clip's bytes.

    Only staff are told; for anyone else (the uploader included) the answer is empty.
    """
    if clip.sha256 is None or not access.is_staff(viewer):
        return []
    earlier = db.session.scalars(
        select(Clip)
        .where(_carrying(clip.sha256), Clip.id < clip.id, Clip.tester_id != clip.tester_id)
        .order_by(Clip.id)
        .limit(SHOWN_MATCHES)
    )
    return [SameBytes(match, _part(match, clip.sha256)) for match in earlier]
