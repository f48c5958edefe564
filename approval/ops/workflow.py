"""The clip state machine: the only code that changes a clip's status.

    uploading → verifying → waiting → in_review → approved → taken_down
                    ↓          ↓          ↓   ↘ rejected → (superseded by a new version)
                  failed    withdrawn  waiting (released, expired, or one of several approvals)

Each move is a conditional UPDATE from the table in transitions.py, so two requests racing for
one clip cannot both win; claims.py holds the reviewers' leases. The audit event is written in
the same transaction; the caller commits once. A new version that fails verification lets go of
the rejected clip it was meant to replace, so the tester can try again. Decisions and takedowns
also write the tester's notification in that transaction; its mail goes out only after the
commit (see notifications.py).

Lock order, to stay free of deadlocks on PostgreSQL: a transaction locks clip rows first (only
ever one it may wait for, the rest with SKIP LOCKED) and the audit head last.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import func, select, update

from approval import audit
from approval.clock import utcnow
from approval.config import rejection_categories
from approval.extensions import db
from approval.jobqueue import enqueue_after_commit
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
from approval.ops import claims, comments, notifications, queue
from approval.ops.errors import InvalidInput, NotAllowed, NotFound, StateConflict
from approval.ops.transitions import describe, lock, move


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
    #: Content Credentials (approval/provenance.py): the record as JSON, its state, and whether
    #: GREENLIGHT_PROVENANCE=require holds the clip out of the queue.
    provenance: str | None = None
    provenance_state: str | None = None
    provenance_held: bool = False


def new_storage_key(kind: str = "clips") -> str:
    """A random object key; never derived from anything the user sent."""
    token = secrets.token_hex(16)
    return f"{kind}/{token[:2]}/{token}"


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
        lock(previous)
        if previous.status != ClipStatus.REJECTED:
            raise StateConflict(
                "Only a rejected clip can be replaced by a new version. "
                + describe(previous, tester),
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
    move(
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
        "provenance": media.provenance,
        "provenance_state": media.provenance_state,
        "provenance_held": media.provenance_held,
        "submitted_at": now,
        "failure_reason": None,
        "pipeline_step": None,
        "job_lease_until": None,
        "job_error": None,
        "staging_key": None,
    }
    move(
        clip,
        "clip.verified",
        actor=None,
        values=values,
        data={
            "size": media.size_bytes,
            "width": media.width,
            "height": media.height,
            "rendition_sha256": media.rendition_sha256,
            "provenance": media.provenance_state,
            "provenance_held": media.provenance_held,
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
    move(
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
    move(
        clip,
        "clip.withdrawn",
        actor=tester,
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
        raise StateConflict(f"This clip was already decided. {describe(clip, reviewer)}", clip)
    if clip.claim_is_live(now):
        raise StateConflict(
            f"Another reviewer is reviewing this clip. {describe(clip, reviewer)}", clip
        )
    if claims.has_judged(clip, reviewer):
        raise StateConflict(
            "You already gave your verdict on this clip; another reviewer has to give theirs.",
            clip,
        )
    raise StateConflict(
        f"Claim the clip before deciding; your claim may have lapsed. {describe(clip, reviewer)}",
        clip,
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
    comment_ids: Sequence[int] = (),
) -> Decision:
    """Record a verdict under a live claim; enough approvals approve, any rejection rejects.

    `played_seconds` is how much of the clip the reviewer's player reported playing (None
    from the API); the audit event keeps it beside the hashes of every file they were served.
    A rejection may cite comments of the clip (`comment_ids`); an approval cites none.
    """
    if clip.is_owned_by(reviewer):
        raise NotAllowed("You cannot decide on a clip you uploaded.")
    if not reviewer.has_role(Role.REVIEWER):
        raise NotAllowed("Only reviewers can decide on clips.")
    reason = (reason or "").strip() or None
    if verdict == Verdict.REJECT:
        _check_rejection(category, reason)
        check_timecode(clip, timecode)
        cited = comments.cited(clip, comment_ids)
    else:
        category = timecode = None  # an approval points at nothing in particular
        cited = []
    played_seconds = check_played_seconds(played_seconds)

    now = utcnow()
    # Judge the claim on what the row says now; the UPDATE below re-checks it atomically.
    if verdict == Verdict.APPROVE and current_app.config["APPROVALS_REQUIRED"] > 1:
        # The count below must not race an earlier approval being reopened (ops/reopen.py
        # locks the row too), or one standing approval could approve a four-eyes clip.
        lock(clip)
    else:
        db.session.refresh(clip)
    _check_claim(clip, reviewer, now)

    approvals = 1 + (
        db.session.scalar(
            select(func.count())
            .select_from(Decision)
            .where(
                Decision.clip_id == clip.id,
                Decision.verdict == Verdict.APPROVE,
                Decision.reopened_at.is_(None),  # a verdict taken back no longer counts
            )
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
    if cited:
        data["comments"] = [comment.id for comment in cited]
    if verdict == Verdict.REJECT:
        move(
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
        notifications.clip_rejected(clip, cited)
    elif approvals >= current_app.config["APPROVALS_REQUIRED"]:
        move(
            clip,
            "clip.approved",
            actor=reviewer,
            where=holds_claim,
            values={**released, "decided_at": now, "decided_by_id": reviewer.id},
            data={**data, "approvals": approvals},
        )
        notifications.clip_approved(clip)
        if current_app.config.get("C2PA_SIGNING_IDENTITY") is not None:
            from approval.jobs import sign_approved_clip  # jobs imports this module

            enqueue_after_commit(db.session(), sign_approved_clip, clip.id)
    else:
        # One of several approvals: back to its place in the queue for the next reviewer.
        move(
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
        comments=cited,
    )
    db.session.add(decision)
    db.session.flush()
    return decision


def decide_and_claim_next(
    clip: Clip,
    reviewer: User,
    verdict: Verdict,
    *,
    filters: queue.Filters | None = None,
    **options: Any,
) -> tuple[Decision, Clip | None]:
    """Decide (taking decide's options), then claim the next clip the queue's filters select."""
    decision = decide(clip, reviewer, verdict, **options)
    return decision, claims.claim_next(reviewer, filters)


def release_provenance_hold(clip: Clip, admin: User, reason: str) -> None:
    """Let a clip held under GREENLIGHT_PROVENANCE=require into the queue; the reason is logged."""
    if not admin.has_role(Role.ADMIN):
        raise NotAllowed("Only admins can let held clips through.")
    reason = reason.strip()
    if not reason:
        raise InvalidInput("Give a reason for letting the clip through.", "reason")
    # Conditional, so two admins letting the same clip through log it once.
    released = db.session.execute(
        update(Clip)
        .where(
            Clip.id == clip.id,
            Clip.status == ClipStatus.WAITING,
            Clip.provenance_held.is_(True),
        )
        .values(provenance_held=False)
        .execution_options(synchronize_session=False)
    )
    if released.rowcount != 1:  # type: ignore[attr-defined]
        raise StateConflict("This clip is not held for its Content Credentials.", clip)
    db.session.refresh(clip)
    audit.record(
        "clip.provenance_released",
        actor=admin,
        subject_type="clip",
        subject_id=clip.id,
        clip=clip,
        state_before=clip.status.value,
        state_after=clip.status.value,
        reason=reason,
        data={"provenance": clip.provenance_state},
    )


def take_down(clip: Clip, admin: User, reason: str) -> None:
    """approved → taken_down: every share link stops working with the next request."""
    if not admin.has_role(Role.ADMIN):
        raise NotAllowed("Only admins can take clips down.")
    reason = reason.strip()
    if not reason:
        raise InvalidInput("Give a reason for the takedown.")
    now = utcnow()
    move(
        clip,
        "clip.taken_down",
        actor=admin,
        values={"taken_down_at": now, "taken_down_by_id": admin.id, "takedown_reason": reason},
        reason=reason,
    )
    notifications.clip_taken_down(clip)
