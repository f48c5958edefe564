"""How a clip moves: the transitions table, and the one conditional UPDATE that makes a move.

Each move is an UPDATE that names the states it expects, so two requests racing for one clip
cannot both win: the loser finds no row to change and gets a StateConflict naming who changed
the clip and when. The audit event is written in the same transaction; the caller commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, select, update

from approval import audit
from approval.clock import utcnow
from approval.extensions import db
from approval.models import Clip, ClipStatus, User
from approval.ops import access
from approval.ops.errors import StateConflict


def describe(clip: Clip, viewer: User | None) -> str:
    """What the clip is now, who made it so and when, as this viewer may be told it."""
    who = db.session.get(User, clip.status_changed_by_id) if clip.status_changed_by_id else None
    when = clip.status_changed_at.strftime("%Y-%m-%d %H:%M UTC")
    return f"This clip is {clip.status.label} (by {access.actor_name(who, viewer)}, {when})."


def conflict(clip: Clip, what: str, viewer: User | None) -> StateConflict:
    db.session.refresh(clip)
    return StateConflict(f"Cannot {what}. {describe(clip, viewer)}", clip)


def lock(clip: Clip) -> None:
    """Lock the clip's row until commit and reload it, for steps that check before they write."""
    if db.engine.dialect.name == "postgresql":
        db.session.execute(select(Clip.id).where(Clip.id == clip.id).with_for_update())
    else:
        # SQLite has no row locks: a write that changes nothing takes the database's write lock.
        db.session.execute(
            update(Clip)
            .where(Clip.id == clip.id)
            .values(version=Clip.version)
            .execution_options(synchronize_session=False)
        )
    db.session.refresh(clip)


@dataclass(frozen=True)
class Transition:
    """One move of the state machine, named by the audit action that records it."""

    action: str
    expected: tuple[ClipStatus, ...]
    target: ClipStatus
    #: Completes "Cannot …" when the clip is no longer in an expected state.
    what: str


_S = ClipStatus
#: Every move a clip can make, and the only place that says which states allow it.
TRANSITIONS = {
    step.action: step
    for step in (
        Transition("clip.upload_completed", (_S.UPLOADING,), _S.VERIFYING, "start verification"),
        Transition("clip.verified", (_S.VERIFYING,), _S.WAITING, "finish verification"),
        Transition(
            "clip.verification_failed",
            (_S.UPLOADING, _S.VERIFYING),
            _S.FAILED,
            "mark the clip as failed",
        ),
        Transition("clip.withdrawn", (_S.WAITING,), _S.WITHDRAWN, "withdraw this clip"),
        Transition("clip.claimed", (_S.WAITING, _S.IN_REVIEW), _S.IN_REVIEW, "claim this clip"),
        Transition("clip.released", (_S.IN_REVIEW,), _S.WAITING, "release this clip"),
        Transition("clip.rejected", (_S.IN_REVIEW,), _S.REJECTED, "reject this clip"),
        Transition("clip.approved", (_S.IN_REVIEW,), _S.APPROVED, "approve this clip"),
        Transition("clip.approval_recorded", (_S.IN_REVIEW,), _S.WAITING, "approve this clip"),
        Transition("clip.taken_down", (_S.APPROVED,), _S.TAKEN_DOWN, "take this clip down"),
        # The deciding reviewer takes their verdict back within the undo window (ops/reopen.py).
        Transition("clip.reopened", (_S.APPROVED, _S.REJECTED), _S.WAITING, "reopen this verdict"),
    )
}


def move(
    clip: Clip,
    action: str,
    *,
    actor: User | None,
    where: Iterable[ColumnElement[bool]] = (),
    values: dict[str, Any] | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Make the move TRANSITIONS names `action` atomically, and log it under that name."""
    step = TRANSITIONS[action]
    expected, target, what = step.expected, step.target, step.what
    if len(expected) == 1:
        before = expected[0]  # if the UPDATE matches, this is what the row held
    else:
        # The log must name the state the row really left, not what this session last saw.
        lock(clip)
        before = clip.status
    now = utcnow()
    result = db.session.execute(
        update(Clip)
        .where(Clip.id == clip.id, Clip.status.in_(expected), *where)
        .values(
            status=target,
            status_changed_at=now,
            status_changed_by_id=actor.id if actor is not None else None,
            **(values or {}),
        )
        .execution_options(synchronize_session=False)  # the clip is refreshed just below
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise conflict(clip, what, actor)
    db.session.refresh(clip)
    audit.record(
        action,
        actor=actor,
        subject_type="clip",
        subject_id=clip.id,
        clip=clip,
        state_before=before.value,
        state_after=target.value,
        reason=reason,
        data=data,
    )
