"""The verification job's database steps: take an attempt, say progress, finish, fail, retry.

Huey delivers a job at most once, so the clip row itself says whether a job holds it: an
attempt starts only by a conditional UPDATE that takes the lease (`job_lease_until`) of a clip
still `verifying` whose lease is free or lapsed. A worker killed mid-job leaves its lease to
lapse, and the periodic reaper enqueues the clip again; two attempts that overlap both finish
through workflow's conditional transition, so exactly one moves the clip and logs it.

Nothing here commits; the job commits after each step, and never holds a transaction open
across hashing, probing or transcoding.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update

from approval.clock import utcnow
from approval.extensions import db
from approval.ingest import IngestPlan, IngestResult, derived_key
from approval.models import STEP_CHECKING, Clip, ClipStatus
from approval.ops import known_bytes, workflow

#: A transient failure is retried after 30 s, then twice as long each time, at most an hour.
FIRST_RETRY_SECONDS = 30
LONGEST_RETRY_SECONDS = 3600


def start_attempt(
    clip_id: int,
    *,
    lease_seconds: int,
    max_bytes: int,
    max_seconds: float,
    provenance_mode: str = "show",
    trust_anchors: str | None = None,
) -> IngestPlan | None:
    """Take the clip's job lease; None when it is not verifying or another attempt holds it."""
    now = utcnow()
    result = db.session.execute(
        update(Clip)
        .where(
            Clip.id == clip_id,
            Clip.status == ClipStatus.VERIFYING,
            or_(Clip.job_lease_until.is_(None), Clip.job_lease_until <= now),
        )
        .values(
            job_lease_until=now + timedelta(seconds=lease_seconds),
            job_attempts=Clip.job_attempts + 1,
            pipeline_step=STEP_CHECKING,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    clip = db.session.scalars(
        select(Clip).where(Clip.id == clip_id).execution_options(populate_existing=True)
    ).one()
    return IngestPlan(
        clip_id=clip.id,
        attempt=clip.job_attempts,
        staging_key=clip.staging_key,
        storage_key=clip.storage_key,
        content_type=clip.content_type,
        max_bytes=max_bytes,
        max_seconds=max_seconds,
        provenance_mode=provenance_mode,
        trust_anchors=trust_anchors,
    )


def report_step(clip_id: int, step: str, *, lease_seconds: int) -> None:
    """Say what the job is doing now, and keep its lease for another full term."""
    db.session.execute(
        update(Clip)
        .where(Clip.id == clip_id, Clip.status == ClipStatus.VERIFYING)
        .values(pipeline_step=step, job_lease_until=utcnow() + timedelta(seconds=lease_seconds))
        .execution_options(synchronize_session=False)
    )


def finish(plan: IngestPlan, result: IngestResult) -> bool:
    """verifying → waiting with the verified facts; False if another attempt got there first.

    Raises MediaRejected when the very bytes were rejected or taken down before.
    """
    clip = db.session.get(Clip, plan.clip_id, populate_existing=True)
    if clip is None or clip.status != ClipStatus.VERIFYING:
        return False
    known_bytes.refuse_again(clip, result.sha256)
    facts = result.facts
    rendition = result.rendition
    verified = workflow.VerifiedMedia(
        size_bytes=result.size_bytes,
        sha256=result.sha256,
        etag=result.etag,
        container=facts.container,
        codec=facts.codec,
        width=facts.width,
        height=facts.height,
        duration_seconds=facts.duration,
        fps=facts.fps,
        has_audio=facts.has_audio,
        poster_key=result.poster_key,
        poster_size=result.poster_size,
        poster_etag=result.poster_etag,
        pixel_format=facts.pix_fmt,
        rendition_key=result.rendition_key,
        rendition_size=rendition.size_bytes if rendition else None,
        rendition_sha256=rendition.sha256 if rendition else None,
        rendition_etag=result.rendition_etag,
        rendition_codec=rendition.codec if rendition else None,
        **_provenance_fields(plan, result),
    )
    try:
        workflow.pass_verification(clip, verified)
    except workflow.StateConflict:
        return False
    return True


def _provenance_fields(plan: IngestPlan, result: IngestResult) -> dict[str, Any]:
    """What verification stores of the credentials; under `require`, whether to hold the clip."""
    found = result.provenance
    if found is None:
        return {}
    return {
        "provenance": found.to_json(),
        "provenance_state": found.state,
        "provenance_held": plan.provenance_mode == "require" and not found.vouched,
    }


def fail(clip_id: int, reason: str) -> list[str | None]:
    """verifying → failed with the reason; returns the keys to delete once that is committed."""
    clip = db.session.get(Clip, clip_id, populate_existing=True)
    if clip is None or clip.status not in (ClipStatus.UPLOADING, ClipStatus.VERIFYING):
        return []
    keys = [clip.staging_key, clip.storage_key, *_derived_keys(clip)]
    workflow.fail_verification(clip, reason)
    return keys


def _derived_keys(clip: Clip) -> list[str | None]:
    """Every poster and rendition key any attempt on this clip may have written."""
    keys: list[str | None] = []
    for attempt in range(1, clip.job_attempts + 1):
        keys.append(derived_key(clip.storage_key, "posters", attempt, ".jpg"))
        keys.append(derived_key(clip.storage_key, "renditions", attempt, ".mp4"))
    return keys


def postpone(clip_id: int, error: str) -> int:
    """Keep the clip verifying after a transient failure; returns the delay before the retry."""
    clip = db.session.get(Clip, clip_id, populate_existing=True)
    attempts = clip.job_attempts if clip is not None else 1
    delay = min(FIRST_RETRY_SECONDS * 2 ** max(attempts - 1, 0), LONGEST_RETRY_SECONDS)
    db.session.execute(
        update(Clip)
        .where(Clip.id == clip_id, Clip.status == ClipStatus.VERIFYING)
        .values(
            job_error=error[:2000],
            # The lease runs until the retry, so the reaper does not enqueue it sooner.
            job_lease_until=utcnow() + timedelta(seconds=delay),
        )
        .execution_options(synchronize_session=False)
    )
    return delay


def stalled(*, grace_seconds: int, limit: int = 500) -> list[int]:
    """Clips verifying with no live job: a lapsed lease, or none taken within the grace time."""
    now = utcnow()
    return list(
        db.session.scalars(
            select(Clip.id)
            .where(
                Clip.status == ClipStatus.VERIFYING,
                or_(
                    Clip.job_lease_until <= now,
                    and_(
                        Clip.job_lease_until.is_(None),
                        Clip.status_changed_at <= now - timedelta(seconds=grace_seconds),
                    ),
                ),
            )
            .order_by(Clip.id)
            .limit(limit)
        )
    )
