"""Claims: a reviewer's lease on one clip at a time, taken, renewed and given back.

"Claimable" is what the queue calls available (ops.queue.available), less the reviewer's own
clips and those they already judged. A lease that runs out puts the clip back in its place.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import ColumnElement, and_, exists, select, update
from sqlalchemy.orm import lazyload

from approval.clock import utcnow
from approval.extensions import db
from approval.models import Clip, ClipStatus, Decision, Role, User
from approval.ops import queue, transitions
from approval.ops.errors import NotAllowed, StateConflict


def _lease() -> timedelta:
    return timedelta(seconds=current_app.config["CLAIM_LEASE_SECONDS"])


def claimable(reviewer: User, now: datetime) -> ColumnElement[bool]:
    """Waiting (or with a lapsed lease), not the reviewer's own, not already judged by them."""
    return and_(
        queue.available(now),
        Clip.tester_id != reviewer.id,
        ~exists().where(
            Decision.clip_id == Clip.id,
            Decision.reviewer_id == reviewer.id,
            Decision.reopened_at.is_(None),  # a reopened verdict may be given again
        ),
    )


def can_claim(clip: Clip, reviewer: User, now: datetime) -> bool:
    """Whether this reviewer could claim this clip now (asked by the database, as claim does)."""
    return bool(
        db.session.scalar(select(Clip.id).where(Clip.id == clip.id, claimable(reviewer, now)))
    )


def current_claim(reviewer: User) -> Clip | None:
    """The clip this reviewer holds a live lease on, if any."""
    return db.session.scalar(
        select(Clip)
        .where(
            Clip.status == ClipStatus.IN_REVIEW,
            Clip.claimed_by_id == reviewer.id,
            Clip.claim_expires_at > utcnow(),
        )
        .order_by(Clip.claim_expires_at.desc())
        .limit(1)
    )


def next_claimable(
    reviewer: User,
    *,
    besides: Clip | None = None,
    lock: bool = False,
    filters: queue.Filters | None = None,
) -> Clip | None:
    """The oldest clip this reviewer could claim now (among those `filters` select), unclaimed.

    Waiting clips and lapsed leases are looked up separately: each lookup then walks
    ix_clips_queue in order and stops at its first row, where one query with an OR would sort
    every waiting clip (150 ms at 100,000 of them). With `lock` on PostgreSQL each candidate is
    locked FOR UPDATE SKIP LOCKED, so concurrent reviewers are steered to different rows.
    """
    now = utcnow()
    kinds = queue.available_kinds(now)
    conditions = filters.conditions(now) if filters is not None else []
    found: list[Clip] = []
    for kind in kinds:
        query = (
            select(Clip)
            .where(kind, claimable(reviewer, now), *conditions)
            .order_by(Clip.submitted_at, Clip.id)
            .limit(1)
            .options(lazyload(Clip.tester))  # no join: lock and sort only clips rows
            .execution_options(populate_existing=True)
        )
        if besides is not None:
            query = query.where(Clip.id != besides.id)
        if lock and db.engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True, of=Clip)
        found.extend(db.session.scalars(query))
    return min(found, key=lambda clip: (clip.submitted_at, clip.id), default=None)


def claim_next(reviewer: User, filters: queue.Filters | None = None) -> Clip | None:
    """Claim the oldest claimable clip (that the filters select); None when there is none.

    PostgreSQL hands concurrent reviewers different rows with FOR UPDATE SKIP LOCKED. SQLite has
    one writer at a time: two reviewers may pick the same row, but the conditional UPDATE lets
    one win; the loser now holds the write lock, so its next look sees the current queue.
    """
    if not reviewer.has_role(Role.REVIEWER):
        raise NotAllowed("Only reviewers can claim clips.")
    held = current_claim(reviewer)
    if held is not None:
        return held
    attempts = 10
    for attempt in range(attempts):
        clip = next_claimable(reviewer, lock=True, filters=filters)
        if clip is None:
            return None
        try:
            _claim(clip, reviewer, utcnow())
        except StateConflict:  # another reviewer took it first: look again
            if attempt == attempts - 1:
                raise
            continue
        return clip
    return None  # not reached: the last attempt returns or raises


def claim(clip: Clip, reviewer: User) -> None:
    """Take a lease on this clip (waiting, or in review with a lapsed lease); one at a time."""
    if not reviewer.has_role(Role.REVIEWER):
        raise NotAllowed("Only reviewers can claim clips.")
    if clip.is_owned_by(reviewer):
        raise NotAllowed("You cannot review a clip you uploaded.")
    held = current_claim(reviewer)
    if held is not None and held.id == clip.id:
        return  # a second press of the same button
    if held is not None:
        raise StateConflict(
            f"You are already reviewing “{held.title}”. Decide on it or release it first.", held
        )
    if has_judged(clip, reviewer):
        raise StateConflict(
            "You already gave your verdict on this clip; another reviewer has to give theirs.",
            clip,
        )
    _claim(clip, reviewer, utcnow())


def has_judged(clip: Clip, reviewer: User) -> bool:
    return bool(
        db.session.scalar(
            select(
                exists().where(
                    Decision.clip_id == clip.id,
                    Decision.reviewer_id == reviewer.id,
                    Decision.reopened_at.is_(None),
                )
            )
        )
    )


def _claim(clip: Clip, reviewer: User, now: datetime) -> None:
    lapsed_from = clip.claimed_by_id if clip.status == ClipStatus.IN_REVIEW else None
    transitions.move(
        clip,
        "clip.claimed",
        actor=reviewer,
        where=[claimable(reviewer, now)],
        values={"claimed_by_id": reviewer.id, "claim_expires_at": now + _lease()},
        data={"lapsed_claim_of": lapsed_from} if lapsed_from else None,
    )


def renew_claim(clip: Clip, reviewer: User) -> datetime:
    """Extend this reviewer's live lease (the review page calls this while it stays open)."""
    now = utcnow()
    expires = now + _lease()
    result = db.session.execute(
        update(Clip)
        .where(
            Clip.id == clip.id,
            Clip.status == ClipStatus.IN_REVIEW,
            Clip.claimed_by_id == reviewer.id,
            Clip.claim_expires_at > now,
        )
        .values(claim_expires_at=expires)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise transitions.conflict(clip, "renew your claim", reviewer)
    db.session.refresh(clip)
    return expires


def release(clip: Clip, reviewer: User) -> None:
    """in_review → waiting: give the clip back without deciding."""
    transitions.move(
        clip,
        "clip.released",
        actor=reviewer,
        where=[Clip.claimed_by_id == reviewer.id],
        values={"claimed_by_id": None, "claim_expires_at": None},
    )
