"""A reviewer's own verdicts: the "My decisions" list and the undo window.

A verdict is never edited or deleted. Reopening marks it (Decision.reopened_at) so it no longer
counts, and, when it was the verdict that decided the clip, moves the clip back to `waiting`
through the state machine ("clip.reopened"). It is allowed only to the reviewer who gave it,
within REOPEN_WINDOW_SECONDS of giving it, and while nobody made a share link: once a link may
have been passed on, the approval it rests on must stand.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import exists, select
from sqlalchemy.orm import selectinload

from approval import audit, paging
from approval.clock import utcnow
from approval.extensions import db
from approval.models import Clip, ClipStatus, Decision, ShareLink, User, Verdict
from approval.ops import claims, notifications
from approval.ops.errors import NotFound, StateConflict
from approval.ops.transitions import lock, move

#: My decisions shows this many verdicts to a page.
PAGE_SIZE = 30


def window() -> timedelta:
    """How long after a verdict its reviewer may take it back."""
    return timedelta(seconds=current_app.config["REOPEN_WINDOW_SECONDS"])


def undo_until(decision: Decision) -> datetime:
    """The moment the undo window of this verdict closes."""
    return decision.created_at + window()


def undoable(decision: Decision, now: datetime) -> bool:
    """Whether the verdict still stands and its undo window is open (links aside)."""
    return decision.reopened_at is None and now <= undo_until(decision)


def _has_share_link(clip_id: int) -> bool:
    return bool(db.session.scalar(select(exists().where(ShareLink.clip_id == clip_id))))


def offer(decision: Decision, now: datetime) -> datetime | None:
    """When the Undo button for this verdict expires, or None when there is no way back."""
    if not undoable(decision, now) or _has_share_link(decision.clip_id):
        return None
    return undo_until(decision)


def standing(clip: Clip, reviewer: User) -> Decision | None:
    """The reviewer's verdict on this clip that still counts, if any."""
    return db.session.scalar(
        select(Decision).where(
            Decision.clip_id == clip.id,
            Decision.reviewer_id == reviewer.id,
            Decision.reopened_at.is_(None),
        )
    )


def latest_offer(reviewer: User, now: datetime) -> tuple[Decision, datetime] | None:
    """The reviewer's newest verdict that can still be undone, and until when (for one-key A)."""
    decision = db.session.scalar(
        select(Decision)
        .where(
            Decision.reviewer_id == reviewer.id,
            Decision.reopened_at.is_(None),
            Decision.created_at >= now - window(),
        )
        .order_by(Decision.id.desc())
        .limit(1)
    )
    if decision is None:
        return None
    until = offer(decision, now)
    return (decision, until) if until is not None else None


def mine(
    reviewer: User, *, cursor: str | None = None, size: int | None = None
) -> paging.Page[Decision]:
    """The reviewer's own verdicts, newest first, a keyset page at a time (reopened ones too)."""
    query = (
        select(Decision)
        .where(Decision.reviewer_id == reviewer.id)
        .options(selectinload(Decision.clip))
    )
    return paging.page(
        "review.decisions", query, [Decision.id.desc()], size=size or PAGE_SIZE, cursor=cursor
    )


def _check(clip: Clip, decision: Decision, now: datetime) -> None:
    """Refuse, saying why, unless this verdict may still be taken back."""
    if now > undo_until(decision):
        closes = undo_until(decision).strftime("%H:%M UTC")
        minutes = int(window().total_seconds() // 60)
        raise StateConflict(
            f"The undo window closed at {closes}, {minutes} minutes after your verdict; "
            "the verdict stands.",
            clip,
        )
    if _has_share_link(clip.id):
        raise StateConflict(
            "A share link to this clip exists, so the verdict stands: the clip may already "
            "have been passed on.",
            clip,
        )
    if clip.next_version is not None:
        raise StateConflict(
            "The tester has already uploaded a new version; the verdict stands.", clip
        )


def reopen(clip: Clip, reviewer: User, *, reclaim: bool = False) -> Decision:
    """Take back one's own standing verdict within the window; the clip waits for review again.

    With `reclaim` (the review page), the reviewer is put back on the clip: the claim that
    claim-next gave them meanwhile is released, and this clip is claimed, so the one-key
    Approve has a way back to the very same review.
    """
    decision = standing(clip, reviewer)
    if decision is None:
        raise NotFound(f"You have no standing verdict on clip {clip.id} to undo.")
    lock(clip)
    db.session.refresh(decision)  # a second undo racing this one waited on the lock
    if decision.reopened_at is not None:
        raise NotFound(f"You have no standing verdict on clip {clip.id} to undo.")
    now = utcnow()
    _check(clip, decision, now)
    verdict = "approval" if decision.verdict == Verdict.APPROVE else "rejection"
    data = {"decision": decision.id, "verdict": decision.verdict.value}
    if clip.status in (ClipStatus.APPROVED, ClipStatus.REJECTED):
        if clip.decided_by_id != reviewer.id:
            raise StateConflict(
                "Another reviewer has decided on this clip since; your verdict stands.", clip
            )
        move(
            clip,
            "clip.reopened",
            actor=reviewer,
            where=[Clip.decided_by_id == reviewer.id],
            values={
                "decided_at": None,
                "decided_by_id": None,
                "decision_category": None,
                "decision_reason": None,
                "decision_timecode": None,
                # A signed copy names the approval it was made for: undone, it is history.
                "signed_key": None,
                "signed_size": None,
                "signed_sha256": None,
                "signed_etag": None,
            },
            data=data,
        )
        notifications.clip_reopened(clip, verdict)
    elif clip.status in (ClipStatus.WAITING, ClipStatus.IN_REVIEW):
        # One of several approvals: the clip never left the queue, only the count changes.
        audit.record(
            "decision.reopened",
            actor=reviewer,
            subject_type="clip",
            subject_id=clip.id,
            clip=clip,
            state_before=clip.status.value,
            state_after=clip.status.value,
            data=data,
        )
    else:
        raise StateConflict(f"This clip is {clip.status.label} now, so the verdict stands.", clip)
    decision.reopened_at = now
    db.session.flush()
    if reclaim:
        held = claims.current_claim(reviewer)
        if held is not None and held.id != clip.id:
            claims.release(held, reviewer)
        if clip.status == ClipStatus.WAITING:
            claims.claim(clip, reviewer)
    return decision
