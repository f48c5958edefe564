"""The database steps of signing an approval into a copy: what to sign, and recording it.

The job (approval/jobs.py) does the heavy part between these, outside any transaction: it reads
the approved bytes, checks them against the pinned SHA-256, signs them in the confined child and
stores the copy. Nothing here commits.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import exists, select, update

from approval import audit
from approval.clock import utcnow
from approval.extensions import db
from approval.models import AuditEvent, Clip, ClipStatus, Decision, Verdict
from approval.provenance_signing import ApprovalClaim


@dataclass(frozen=True)
class SigningPlan:
    clip_id: int
    source_key: str
    #: The SHA-256 verification pinned for source_key: what reviewers watched and approved.
    source_sha256: str
    target_key: str
    title: str
    claim: ApprovalClaim
    #: When the approval being signed was given; a copy is recorded only for that approval.
    decided_at: datetime


def plan(clip_id: int) -> SigningPlan | None:
    """What to sign for an approved clip; None when it is not approved or already signed."""
    clip = db.session.get(Clip, clip_id, populate_existing=True)
    if clip is None or clip.status != ClipStatus.APPROVED or clip.signed_key is not None:
        return None
    assert clip.sha256 is not None
    assert clip.decided_at is not None
    decision_id = db.session.scalar(
        select(Decision.id)
        .where(
            Decision.clip_id == clip.id,
            Decision.verdict == Verdict.APPROVE,
            Decision.reopened_at.is_(None),
        )
        .order_by(Decision.id.desc())
        .limit(1)
    )
    approval_hash = db.session.scalar(
        select(AuditEvent.hash)
        .where(AuditEvent.clip_id == clip.id, AuditEvent.action == "clip.approved")
        .order_by(AuditEvent.id.desc())
        .limit(1)
    )
    if decision_id is None or approval_hash is None:
        return None
    # The rendition path gets the same assertion, on the copy players are given.
    source_key, source_sha256 = clip.storage_key, clip.sha256
    if clip.rendition_key is not None and clip.rendition_sha256 is not None:
        source_key, source_sha256 = clip.rendition_key, clip.rendition_sha256
    return SigningPlan(
        clip_id=clip.id,
        source_key=source_key,
        source_sha256=source_sha256,
        # One key per attempt: two jobs for one clip (an undo, then a new approval) never write
        # over the copy the other recorded.
        target_key=(
            f"{clip.storage_key.replace('clips/', 'signed/', 1)}"
            f"-{decision_id}-{secrets.token_hex(4)}.mp4"
        ),
        title=clip.original_filename or "clip.mp4",
        claim=ApprovalClaim(
            decision_id=decision_id,
            approved_at=clip.decided_at.isoformat(),
            original_sha256=clip.sha256,
            # The hash of the approval's own audit event: the head of the chain at approval.
            audit_head=approval_hash,
        ),
        decided_at=clip.decided_at,
    )


def unsigned(*, older_than: timedelta, limit: int = 500) -> list[int]:
    """Approved clips with no signed copy though approved longer ago than a job should take."""
    cutoff = utcnow() - older_than
    return list(
        db.session.scalars(
            select(Clip.id)
            .where(
                Clip.status == ClipStatus.APPROVED,
                Clip.signed_key.is_(None),
                Clip.decided_at <= cutoff,
            )
            .order_by(Clip.id)
            .limit(limit)
        )
    )


def record(signing: SigningPlan, *, size: int, sha256: str, etag: str) -> bool:
    """Pin the stored signed copy and log its SHA-256; False if another attempt got there first."""
    done = db.session.execute(
        update(Clip)
        .where(
            Clip.id == signing.clip_id,
            Clip.status == ClipStatus.APPROVED,
            Clip.signed_key.is_(None),
            Clip.decided_at == signing.decided_at,
            # The approval the copy names still stands (it was not undone meanwhile).
            exists().where(
                Decision.id == signing.claim.decision_id, Decision.reopened_at.is_(None)
            ),
        )
        .values(
            signed_key=signing.target_key, signed_size=size, signed_sha256=sha256, signed_etag=etag
        )
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        return False
    clip = db.session.get(Clip, signing.clip_id, populate_existing=True)
    assert clip is not None
    audit.record(
        "clip.signed_copy_made",
        actor=None,
        subject_type="clip",
        subject_id=clip.id,
        clip=clip,
        state_before=clip.status.value,
        state_after=clip.status.value,
        data={
            "signed_sha256": sha256,
            "size": size,
            "decision_id": signing.claim.decision_id,
            "source_sha256": signing.source_sha256,
        },
    )
    return True


def approved_on(signed_sha256: str) -> date | None:
    """The day the copy with these bytes was approved, if it is a signed copy still approved."""
    decided = db.session.scalar(
        select(Clip.decided_at).where(
            Clip.signed_sha256 == signed_sha256, Clip.status == ClipStatus.APPROVED
        )
    )
    return decided.date() if decided is not None else None
