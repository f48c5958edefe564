"""The clip state machine: the only code that changes a clip's status.

    uploading → verifying → waiting → in_review → approved → taken_down
                    ↓          ↓          ↓   ↘ rejected → (superseded by a new version)
                  failed    withdrawn  waiting (released, expired, or one of several approvals)

Each transition is a conditional UPDATE that names the states it expects, so two requests racing
for one clip cannot both win: the loser finds no row to change and gets a StateConflict naming
who changed the clip and when. The audit event is written in the same transaction; the caller
commits once. A new version that fails verification lets go of the rejected clip it was meant to
replace, so the tester can try again. Decisions and takedowns also write the tester's notification
in that transaction; its mail goes out only after the commit (see notifications.py).

Lock order, to stay free of deadlocks on PostgreSQL: a transaction locks clip rows first (only
ever one it may wait for, the rest with SKIP LOCKED) and the audit head last.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, and_, exists, func, select, update
from sqlalchemy.orm import lazyload

from approval import audit
from approval.clock import utcnow
from approval.config import rejection_categories
from approval.extensions import db
from approval.models import (
    DECIDED_STATES,
    STEP_QUEUED,
    Clip,
    ClipStatus,
    Decision,
    Role,
    User,
    Verdict,
)
from approval.ops import notifications, queue
from approval.ops.errors import InvalidInput, NotAllowed, NotFound, StateConflict


@dataclass(frozen=True)
class VerifiedMedia:
    """What verification learnt about the stored bytes; the approval pins them."""

    size_bytes: int
    sha256: str
    etag: str
    container: str
    codec: str
    width: int
    height: int
    duration_seconds: float
    fps: float
    has_audio: bool
    poster_key: str | None
    poster_size: int | None = None
    poster_etag: str | None = None
    pixel_format: str | None = None
    #: Set when the original does not play in browsers as it is; reviewers watch this.
    rendition_key: str | None = None
    rendition_size: int | None = None
    rendition_sha256: str | None = None
    rendition_etag: str | None = None
    rendition_codec: str | None = None


def new_storage_key(kind: str = "clips") -> str:
    """A random object key; never derived from anything the user sent."""
    token = secrets.token_hex(16)
    return f"{kind}/{token[:2]}/{token}"


def _describe(clip: Clip) -> str:
    who = db.session.get(User, clip.status_changed_by_id) if clip.status_changed_by_id else None
    by = f" by {who.display_name}" if who else ""
    when = clip.status_changed_at.strftime("%Y-%m-%d %H:%M UTC")
    return f"This clip is {clip.status.label} ({by.strip() or 'by the system'}, {when})."


def _conflict(clip: Clip, what: str) -> StateConflict:
    db.session.refresh(clip)
    return StateConflict(f"Cannot {what}. {_describe(clip)}", clip)


def _lock(clip: Clip) -> None:
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
    )
}


def _transition(
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
        _lock(clip)
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
        raise _conflict(clip, what)
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


# --- uploads -------------------------------------------------------------------------------------


def start_upload(
    tester: User,
    *,
    title: str,
    prompt: str = "",
    generator: str = "",
    generator_version: str = "",
    notes: str = "",
    filename: str = "",
    content_type: str = "application/octet-stream",
    previous: Clip | None = None,
) -> Clip:
    """Create a clip in `uploading`, with a fresh storage key, optionally as a new version."""
    if not tester.has_role(Role.TESTER):
        raise NotAllowed("Only testers can upload clips.")
    version = 1
    if previous is not None:
        if not previous.is_owned_by(tester):
            raise NotFound("There is no such clip.")
        _lock(previous)
        if previous.status != ClipStatus.REJECTED:
            raise StateConflict(
                "Only a rejected clip can be replaced by a new version. " + _describe(previous),
                previous,
            )
        newer = db.session.scalar(
            select(Clip)
            .where(Clip.previous_version_id == previous.id)
            .execution_options(populate_existing=True)
        )
        if newer is not None:
            raise StateConflict(
                f"This clip already has a newer version (version {newer.version}, "
                f"{newer.status.label}).",
                previous,
            )
        version = previous.version + 1
    clip = Clip(
        tester_id=tester.id,
        previous_version_id=previous.id if previous is not None else None,
        version=version,
        title=title,
        prompt=prompt,
        generator=generator,
        generator_version=generator_version,
        notes=notes,
        original_filename=filename,
        content_type=content_type,
        status=ClipStatus.UPLOADING,
        status_changed_at=utcnow(),
        status_changed_by_id=tester.id,
        storage_key=new_storage_key(),
        staging_key=new_storage_key("incoming"),
    )
    db.session.add(clip)
    db.session.flush()
    audit.record(
        "clip.created",
        actor=tester,
        subject_type="clip",
        subject_id=clip.id,
        clip=clip,
        state_after=ClipStatus.UPLOADING.value,
        data={"title": title, "version": version, "previous_version": clip.previous_version_id},
    )
    return clip


def begin_verification(clip: Clip, actor: User) -> None:
    """uploading → verifying: the upload is reported done; the bytes get checked next."""
    _transition(
        clip,
        "clip.upload_completed",
        actor=actor,
        values={"pipeline_step": STEP_QUEUED},
    )


def pass_verification(clip: Clip, media: VerifiedMedia) -> None:
    """verifying → waiting: the bytes passed every check and enter the review queue."""
    now = utcnow()
    values = {
        "size_bytes": media.size_bytes,
        "sha256": media.sha256,
        "etag": media.etag,
        "container": media.container,
        "codec": media.codec,
        "width": media.width,
        "height": media.height,
        "duration_seconds": media.duration_seconds,
        "fps": media.fps,
        "has_audio": media.has_audio,
        "poster_key": media.poster_key,
        "poster_size": media.poster_size,
        "poster_etag": media.poster_etag,
        "pixel_format": media.pixel_format,
        "rendition_key": media.rendition_key,
        "rendition_size": media.rendition_size,
        "rendition_sha256": media.rendition_sha256,
        "rendition_etag": media.rendition_etag,
        "rendition_codec": media.rendition_codec,
        "submitted_at": now,
        "failure_reason": None,
        "pipeline_step": None,
        "job_lease_until": None,
        "job_error": None,
        "staging_key": None,
    }
    _transition(
        clip,
        "clip.verified",
        actor=None,
        values=values,
        data={
            "size": media.size_bytes,
            "width": media.width,
            "height": media.height,
            "rendition_sha256": media.rendition_sha256,
        },
    )
    previous = clip.previous_version
    if previous is not None:
        audit.record(
            "clip.superseded",
            actor=clip.tester,
            subject_type="clip",
            subject_id=previous.id,
            clip=previous,
            state_before=previous.status.value,
            state_after=previous.status.value,
            data={"new_version": clip.id},
        )


def fail_verification(clip: Clip, reason: str) -> None:
    """uploading|verifying → failed: the clip never reaches a reviewer."""
    _transition(
        clip,
        "clip.verification_failed",
        actor=None,
        # A version that never reached the queue superseded nothing: let go of the rejected
        # clip, so the tester can upload another version of it (the link is unique).
        values={
            "failure_reason": reason,
            "previous_version_id": None,
            "pipeline_step": None,
            "job_lease_until": None,
        },
        reason=reason,
        data={"previous_version": clip.previous_version_id} if clip.previous_version_id else None,
    )


def withdraw(clip: Clip, tester: User) -> None:
    """waiting → withdrawn, by the clip's own tester, before any reviewer takes it."""
    if not clip.is_owned_by(tester):
        raise NotFound("There is no such clip.")
    _transition(
        clip,
        "clip.withdrawn",
        actor=tester,
    )


# --- review --------------------------------------------------------------------------------------


def _lease() -> timedelta:
    return timedelta(seconds=current_app.config["CLAIM_LEASE_SECONDS"])


def claimable(reviewer: User, now: datetime) -> ColumnElement[bool]:
    """Waiting (or with a lapsed lease), not the reviewer's own, not already judged by them."""
    return and_(
        queue.available(now),
        Clip.tester_id != reviewer.id,
        ~exists().where(Decision.clip_id == Clip.id, Decision.reviewer_id == reviewer.id),
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
    reviewer: User, *, besides: Clip | None = None, lock: bool = False
) -> Clip | None:
    """The oldest clip this reviewer could claim now, without claiming it.

    Waiting clips and lapsed leases are looked up separately: each lookup then walks
    ix_clips_queue in order and stops at its first row, where one query with an OR would sort
    every waiting clip (150 ms at 100,000 of them). With `lock` on PostgreSQL each candidate is
    locked FOR UPDATE SKIP LOCKED, so concurrent reviewers are steered to different rows.
    """
    now = utcnow()
    kinds = (
        Clip.status == ClipStatus.WAITING,
        and_(Clip.status == ClipStatus.IN_REVIEW, Clip.claim_expires_at <= now),
    )
    found: list[Clip] = []
    for kind in kinds:
        query = (
            select(Clip)
            .where(kind, claimable(reviewer, now))
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


def claim_next(reviewer: User) -> Clip | None:
    """Claim the oldest claimable clip under a lease; None when the queue is empty.

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
        clip = next_claimable(reviewer, lock=True)
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
    if _has_judged(clip, reviewer):
        raise StateConflict(
            "You already gave your verdict on this clip; another reviewer has to give theirs.",
            clip,
        )
    _claim(clip, reviewer, utcnow())


def _has_judged(clip: Clip, reviewer: User) -> bool:
    return bool(
        db.session.scalar(
            select(exists().where(Decision.clip_id == clip.id, Decision.reviewer_id == reviewer.id))
        )
    )


def _claim(clip: Clip, reviewer: User, now: datetime) -> None:
    lapsed_from = clip.claimed_by_id if clip.status == ClipStatus.IN_REVIEW else None
    _transition(
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
        raise _conflict(clip, "renew your claim")
    db.session.refresh(clip)
    return expires


def release(clip: Clip, reviewer: User) -> None:
    """in_review → waiting: give the clip back without deciding."""
    _transition(
        clip,
        "clip.released",
        actor=reviewer,
        where=[Clip.claimed_by_id == reviewer.id],
        values={"claimed_by_id": None, "claim_expires_at": None},
    )


def check_timecode(clip: Clip, timecode: float | None) -> None:
    """A timecode, if given, is a real number of seconds within the clip."""
    if timecode is None:
        return
    if not math.isfinite(timecode) or timecode < 0:
        raise InvalidInput("The timecode must be a number of seconds from 0.", "timecode")
    if clip.duration_seconds is not None and timecode > clip.duration_seconds:
        raise InvalidInput(
            f"The timecode must lie within the clip (0 to {clip.duration_seconds:g} seconds).",
            "timecode",
        )


def _check_rejection(category: str | None, reason: str | None) -> None:
    """A rejection needs a known category and a reason; say which is missing, field by field."""
    categories = rejection_categories()
    errors = {}
    if category is None:
        errors["category"] = "required to reject"
    elif category not in categories:
        errors["category"] = f"use one of {', '.join(categories)}"
    if reason is None:
        errors["reason"] = "required to reject; the tester reads it"
    if errors:
        listed = "; ".join(f"{field}: {message}" for field, message in errors.items())
        raise InvalidInput(f"The rejection is incomplete: {listed}.", errors=errors)


def check_played_seconds(played: float | None) -> float | None:
    """A reported play time is a finite number of seconds from 0; anything else is dropped."""
    if played is None:
        return None
    if not math.isfinite(played) or played < 0:
        raise InvalidInput("The played time must be a number of seconds from 0.")
    return round(played, 3)


def served_hashes(clip: Clip) -> dict[str, str | None]:
    """SHA-256 of each file a reviewer or the public is served for this clip."""
    return {"original": clip.sha256, "rendition": clip.rendition_sha256}


def _check_claim(clip: Clip, reviewer: User, now: datetime) -> None:
    """Refuse a verdict unless this reviewer holds a live claim, saying what stands in the way."""
    if clip.claimed_by_id == reviewer.id and clip.claim_is_live(now):
        return
    if clip.status in DECIDED_STATES:
        raise StateConflict(f"This clip was already decided. {_describe(clip)}", clip)
    if clip.claim_is_live(now):
        raise StateConflict(f"Another reviewer is reviewing this clip. {_describe(clip)}", clip)
    if _has_judged(clip, reviewer):
        raise StateConflict(
            "You already gave your verdict on this clip; another reviewer has to give theirs.",
            clip,
        )
    raise StateConflict(
        f"Claim the clip before deciding; your claim may have lapsed. {_describe(clip)}", clip
    )


def decide(
    clip: Clip,
    reviewer: User,
    verdict: Verdict,
    *,
    category: str | None = None,
    reason: str | None = None,
    timecode: float | None = None,
    played_seconds: float | None = None,
) -> Decision:
    """Record a verdict under a live claim; enough approvals approve, any rejection rejects.

    `played_seconds` is how much of the clip the reviewer's player reported playing (None
    from the API); the audit event keeps it beside the hashes of every file they were served.
    """
    if clip.is_owned_by(reviewer):
        raise NotAllowed("You cannot decide on a clip you uploaded.")
    if not reviewer.has_role(Role.REVIEWER):
        raise NotAllowed("Only reviewers can decide on clips.")
    reason = (reason or "").strip() or None
    if verdict == Verdict.REJECT:
        _check_rejection(category, reason)
        check_timecode(clip, timecode)
    else:
        category = timecode = None  # an approval points at nothing in particular
    played_seconds = check_played_seconds(played_seconds)

    now = utcnow()
    # Judge the claim on what the row says now; the UPDATE below re-checks it atomically.
    db.session.refresh(clip)
    _check_claim(clip, reviewer, now)

    approvals = 1 + (
        db.session.scalar(
            select(func.count())
            .select_from(Decision)
            .where(Decision.clip_id == clip.id, Decision.verdict == Verdict.APPROVE)
        )
        or 0
    )
    holds_claim = [Clip.claimed_by_id == reviewer.id, Clip.claim_expires_at > now]
    released = {"claimed_by_id": None, "claim_expires_at": None}
    data = {
        "decision": verdict.value,
        "category": category,
        "timecode": timecode,
        "played_seconds": played_seconds,
        # What the reviewer was shown, so the log proves what was watched and what is shared.
        "served_sha256": served_hashes(clip),
    }
    if verdict == Verdict.REJECT:
        _transition(
            clip,
            "clip.rejected",
            actor=reviewer,
            where=holds_claim,
            values={
                **released,
                "decided_at": now,
                "decided_by_id": reviewer.id,
                "decision_category": category,
                "decision_reason": reason,
                "decision_timecode": timecode,
            },
            reason=reason,
            data=data,
        )
        notifications.clip_rejected(clip)
    elif approvals >= current_app.config["APPROVALS_REQUIRED"]:
        _transition(
            clip,
            "clip.approved",
            actor=reviewer,
            where=holds_claim,
            values={**released, "decided_at": now, "decided_by_id": reviewer.id},
            data={**data, "approvals": approvals},
        )
        notifications.clip_approved(clip)
    else:
        # One of several approvals: back to its place in the queue for the next reviewer.
        _transition(
            clip,
            "clip.approval_recorded",
            actor=reviewer,
            where=holds_claim,
            values=released,
            data={**data, "approvals": approvals},
        )
    # After the transition: its row lock settles races before a second verdict is written.
    decision = Decision(
        clip_id=clip.id,
        reviewer_id=reviewer.id,
        verdict=verdict,
        category=category,
        reason=reason,
        timecode=timecode,
        played_seconds=played_seconds,
        created_at=now,
    )
    db.session.add(decision)
    db.session.flush()
    return decision


def decide_and_claim_next(
    clip: Clip,
    reviewer: User,
    verdict: Verdict,
    *,
    category: str | None = None,
    reason: str | None = None,
    timecode: float | None = None,
    played_seconds: float | None = None,
) -> tuple[Decision, Clip | None]:
    """Decide, then claim the next clip in the same transaction, so the reviewer moves on."""
    decision = decide(
        clip,
        reviewer,
        verdict,
        category=category,
        reason=reason,
        timecode=timecode,
        played_seconds=played_seconds,
    )
    return decision, claim_next(reviewer)


def take_down(clip: Clip, admin: User, reason: str) -> None:
    """approved → taken_down: every share link stops working with the next request."""
    if not admin.has_role(Role.ADMIN):
        raise NotAllowed("Only admins can take clips down.")
    reason = reason.strip()
    if not reason:
        raise InvalidInput("Give a reason for the takedown.")
    now = utcnow()
    _transition(
        clip,
        "clip.taken_down",
        actor=admin,
        values={"taken_down_at": now, "taken_down_by_id": admin.id, "takedown_reason": reason},
        reason=reason,
    )
    notifications.clip_taken_down(clip)
