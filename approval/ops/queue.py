"""Reading the review queue: counts, filtered keyset pages, neighbours. Nothing here writes.

"Available" means what a reviewer could claim: waiting, or in review under a lapsed lease (the
lease ran out, so the clip is back in its old place). Each kind is read with its own query on
ix_clips_queue (status, submitted_at, id), so a page costs a short index range scan whether
100 or 100,000 clips are waiting; the two short lists are merged in Python.

Counts cost the same at any length too: clips are counted one by one up to EXACT_UP_TO, along
the same index, and beyond that the queue gives an estimate (PostgreSQL's planner's row
estimate for the same filter) or, where there is none (SQLite), says "more than 1,000". A Tally
carries which of the three a number is, so nobody shows an estimate as if it were exact.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select, tuple_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import selectinload
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, Executable

from approval import paging
from approval.extensions import db
from approval.models import Clip, ClipStatus, Decision, User

PAGE_SIZE = 50

#: Up to this many clips a count is exact; past it, an estimate or "more than". Counting stops
#: after this many index entries, so the queue page costs the same at 1,000 and at 100,000.
EXACT_UP_TO = 1000

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


class Precision(enum.StrEnum):
    """How much a Tally's number can be trusted."""

    EXACT = "exact"
    ESTIMATE = "estimate"  # the database planner's row estimate: shown as "about 120,000"
    MORE_THAN = "more_than"  # only that there are more than this many: "more than 1,000"


@dataclass(frozen=True)
class Tally:
    """A number of clips as the queue can know it cheaply: exact, an estimate, or a floor."""

    value: int
    precision: Precision = Precision.EXACT

    @property
    def exact(self) -> bool:
        return self.precision is Precision.EXACT

    @property
    def one(self) -> bool:
        """Exactly one: the singular noun ("1 clip"), where anything else takes the plural."""
        return self.exact and self.value == 1

    @property
    def label(self) -> str:
        """The number as people are shown it: "7", "about 120,000", "more than 1,000"."""
        if self.precision is Precision.ESTIMATE:
            return f"about {_two_figures(self.value):,}"
        if self.precision is Precision.MORE_THAN:
            return f"more than {self.value:,}"
        return f"{self.value:,}"

    def as_json(self, name: str) -> dict[str, Any]:
        return {
            name: self.value,
            f"{name}_precision": self.precision.value,
            f"{name}_label": self.label,
        }


def _two_figures(number: int) -> int:
    """An estimate rounded to two significant figures: more digits would claim a precision
    the planner's statistics do not have."""
    digits = len(str(abs(number)))
    return number if digits <= 2 else int(round(number, 2 - digits))


@dataclass(frozen=True)
class Counts:
    waiting: Tally  # including lapsed leases: they are back in the queue
    in_review: int  # live leases only: at most one per reviewer, so counted exactly
    oldest_submitted_at: datetime | None

    def as_json(self, now: datetime) -> dict[str, Any]:
        oldest = self.oldest_submitted_at
        return {
            **self.waiting.as_json("waiting"),
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


def _live(now: datetime) -> ColumnElement[bool]:
    return and_(Clip.status == ClipStatus.IN_REVIEW, Clip.claim_expires_at > now)


def _in_queue_order(kind: ColumnElement[bool], *conditions: ColumnElement[bool]) -> Select[Any]:
    return select(Clip.id).where(kind, *conditions).order_by(Clip.submitted_at, Clip.id)


def _count_up_to(query: Select[Any], most: int) -> int:
    """How many rows the query gives, counting no further than `most`.

    The query is in ix_clips_queue's order, so this is a range scan of at most `most` entries:
    an unbounded COUNT(*) would read every waiting clip on every visit to the queue.
    """
    return db.session.scalar(select(func.count()).select_from(query.limit(most).subquery())) or 0


class _Explain(Executable, ClauseElement):
    """EXPLAIN (FORMAT JSON) of a select, run like any statement (its parameters bound)."""

    inherit_cache = False

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement


@compiles(_Explain, "postgresql")
def _compile_explain(element: _Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return "EXPLAIN (FORMAT JSON) " + compiler.process(element.statement, **kw)


def _estimate(query: Select[Any]) -> int | None:
    """PostgreSQL's planner's row estimate for the query (from its statistics, no rows read);
    None on SQLite, which has no such figure for one value of a column."""
    if db.session.get_bind().dialect.name != "postgresql":
        return None
    plan = db.session.scalar(_Explain(query))
    return int(plan[0]["Plan"]["Plan Rows"])


def _oldest(kind: ColumnElement[bool]) -> datetime | None:
    """The first clip's submitted_at in queue order: one index seek, not a MIN over them all."""
    return db.session.scalar(
        select(Clip.submitted_at).where(kind).order_by(Clip.submitted_at, Clip.id).limit(1)
    )


def _tally(found: int, estimate: Callable[[], int | None] | None = None) -> Tally:
    """`found` rows counted up to EXACT_UP_TO + 1: exact within the cap, else an estimate that
    agrees with what was counted, else a floor."""
    if found <= EXACT_UP_TO:
        return Tally(found)
    guess = estimate() if estimate is not None else None
    if guess is not None and guess > EXACT_UP_TO:
        return Tally(guess, Precision.ESTIMATE)
    return Tally(EXACT_UP_TO, Precision.MORE_THAN)


def counts(now: datetime) -> Counts:
    """How many clips are available and in review, and when the oldest available one came in.

    Available clips are counted exactly up to EXACT_UP_TO; past that the figure is an estimate
    (PostgreSQL) or a floor (SQLite), and says so. Either way the cost does not grow with the
    queue. Live leases are one per reviewer at most, read on ix_clips_leases.
    """
    kinds = available_kinds(now)
    found = sum(_count_up_to(_in_queue_order(kind), EXACT_UP_TO + 1) for kind in kinds)
    waiting = _tally(found, lambda: _estimate(select(Clip.id).where(available(now))))
    live = db.session.scalar(select(func.count()).select_from(Clip).where(_live(now))) or 0
    candidates = [moment for moment in map(_oldest, kinds) if moment is not None]
    return Counts(waiting, live, min(candidates) if candidates else None)


def matching(filters: Filters, now: datetime) -> Tally:
    """How many available clips match the filters (only asked when filters are set).

    Exact up to EXACT_UP_TO, "more than" past it: the planner's guess for a text filter is
    too rough to call an estimate.
    """
    conditions = filters.conditions(now)
    return _tally(
        sum(
            _count_up_to(_in_queue_order(kind, *conditions), EXACT_UP_TO + 1)
            for kind in available_kinds(now)
        )
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
            .where(_live(now))
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
