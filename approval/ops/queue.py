"""Reading the review queue: counts, filtered keyset pages, neighbours. Nothing here writes.

"Available" means what a reviewer could claim: waiting, or in review under a lapsed lease (the
lease ran out, so the clip is back in its old place). Each kind is read with its own query on
ix_clips_queue (status, submitted_at, id), so a page costs a short index range scan whether
100 or 100,000 clips are waiting; the two short lists are merged in Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, tuple_
from sqlalchemy.orm import selectinload

from approval import paging
from approval.extensions import db
from approval.models import Clip, ClipStatus, Decision, User

PAGE_SIZE = 50

#: Age filter choices: value → (label, minimum age).
AGES: dict[str, tuple[str, timedelta]] = {
    "1h": ("Over an hour", timedelta(hours=1)),
    "1d": ("Over a day", timedelta(days=1)),
    "3d": ("Over 3 days", timedelta(days=3)),
    "7d": ("Over a week", timedelta(days=7)),
}


#: Content Credentials filter choices: provenance state → label.
PROVENANCE_STATES: dict[str, str] = {
    "intact": "Intact, from a trusted signer",
    "untrusted": "Signer not trusted",
    "altered": "Changed after signing",
    "invalid": "Invalid",
    "absent": "None",
    "refused": "Not read",
}


@dataclass(frozen=True)
class Filters:
    tester_id: int | None = None
    generator: str = ""
    age: str = ""
    provenance: str = ""

    @property
    def active(self) -> bool:
        return bool(self.tester_id or self.generator or self.age or self.provenance)

    def conditions(self, now: datetime) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.tester_id:
            found.append(Clip.tester_id == self.tester_id)
        if self.generator:
            found.append(Clip.generator.icontains(self.generator, autoescape=True))
        if self.age in AGES:
            found.append(Clip.submitted_at <= now - AGES[self.age][1])
        if self.provenance in PROVENANCE_STATES:
            found.append(Clip.provenance_state == self.provenance)
        return found

    def as_args(self) -> dict[str, Any]:
        """The filters as query-string arguments, for links that keep them."""
        args: dict[str, Any] = {"tester": self.tester_id, "generator": self.generator}
        args["age"] = self.age
        args["provenance"] = self.provenance
        return {key: value for key, value in args.items() if value}


@dataclass(frozen=True)
class Counts:
    waiting: int  # including lapsed leases: they are back in the queue
    in_review: int  # live leases only
    oldest_submitted_at: datetime | None

    def as_json(self, now: datetime) -> dict[str, Any]:
        oldest = self.oldest_submitted_at
        return {
            "waiting": self.waiting,
            "in_review": self.in_review,
            "oldest_submitted_at": oldest.isoformat() if oldest else None,
            "oldest_age_seconds": int((now - oldest).total_seconds()) if oldest else None,
        }


def _lapsed(now: datetime) -> ColumnElement[bool]:
    return and_(Clip.status == ClipStatus.IN_REVIEW, Clip.claim_expires_at <= now)


def _waiting() -> ColumnElement[bool]:
    # A clip held for missing Content Credentials waits, but out of reviewers' reach.
    return and_(Clip.status == ClipStatus.WAITING, Clip.provenance_held.is_(False))


def available_kinds(now: datetime) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    return _waiting(), _lapsed(now)


def available(now: datetime) -> ColumnElement[bool]:
    """What a reviewer could claim: waiting, or in review under a lapsed lease."""
    return or_(*available_kinds(now))


def counts(now: datetime) -> Counts:
    """How many clips are available and in review, and when the oldest available one came in."""
    waiting, oldest = db.session.execute(
        select(func.count(), func.min(Clip.submitted_at)).where(_waiting())
    ).one()
    live, lapsed, oldest_lapsed = db.session.execute(
        select(
            func.count().filter(Clip.claim_expires_at > now),
            func.count().filter(Clip.claim_expires_at <= now),
            func.min(Clip.submitted_at).filter(Clip.claim_expires_at <= now),
        ).where(Clip.status == ClipStatus.IN_REVIEW)
    ).one()
    candidates = [moment for moment in (oldest, oldest_lapsed) if moment is not None]
    return Counts(waiting + lapsed, live, min(candidates) if candidates else None)


def matching(filters: Filters, now: datetime) -> int:
    """How many available clips match the filters (only asked when filters are set)."""
    return sum(
        db.session.scalar(
            select(func.count()).select_from(Clip).where(kind, *filters.conditions(now))
        )
        or 0
        for kind in available_kinds(now)
    )


def _key(clip: Clip) -> tuple[datetime, int]:
    assert clip.submitted_at is not None  # every available clip passed verification
    return clip.submitted_at, clip.id


def page(
    filters: Filters, now: datetime, *, cursor: str | None = None, size: int | None = None
) -> paging.Page[Clip]:
    """One page of available clips, oldest first, after or before a cursor (keyset)."""
    kinds = [select(Clip).where(kind, *filters.conditions(now)) for kind in available_kinds(now)]
    order = [Clip.submitted_at, Clip.id]
    return paging.page("review.queue", kinds, order, size=size or PAGE_SIZE, cursor=cursor)


def neighbours(
    clip: Clip, now: datetime, filters: Filters | None = None
) -> tuple[Clip | None, Clip | None]:
    """The available clips just before and just after this one in the (filtered) queue."""
    if clip.submitted_at is None:
        return None, None
    position = tuple_(Clip.submitted_at, Clip.id)
    here = (clip.submitted_at, clip.id)
    earlier: list[Clip] = []
    later: list[Clip] = []
    conditions = filters.conditions(now) if filters is not None else []
    for kind in available_kinds(now):
        base = select(Clip).where(kind, *conditions).limit(1)
        earlier.extend(
            db.session.scalars(
                base.where(position < here).order_by(Clip.submitted_at.desc(), Clip.id.desc())
            )
        )
        later.extend(
            db.session.scalars(base.where(position > here).order_by(Clip.submitted_at, Clip.id))
        )
    return (
        max(earlier, key=_key) if earlier else None,
        min(later, key=_key) if later else None,
    )


def being_reviewed(now: datetime) -> list[Clip]:
    """Clips under a live lease, with who holds them: a handful, one per active reviewer."""
    return list(
        db.session.scalars(
            select(Clip)
            .where(Clip.status == ClipStatus.IN_REVIEW, Clip.claim_expires_at > now)
            .options(selectinload(Clip.claimed_by))
            .order_by(Clip.submitted_at, Clip.id)
        )
    )


def judged_by(reviewer: User, clip_ids: list[int]) -> set[int]:
    """Which of these clips the reviewer already gave a verdict on (four-eyes review)."""
    if not clip_ids:
        return set()
    return set(
        db.session.scalars(
            select(Decision.clip_id).where(
                Decision.reviewer_id == reviewer.id,
                Decision.clip_id.in_(clip_ids),
                Decision.reopened_at.is_(None),
            )
        )
    )
