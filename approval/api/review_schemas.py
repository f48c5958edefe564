"""Bodies and replies of the review, share-link and audit operations (see schemas.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints

from .schemas import (
    Body,
    ClipDetail,
    DecisionOut,
    Id,
    LongText,
    Out,
    Query,
    ShortText,
    UtcDatetime,
    text,
)

# --- review --------------------------------------------------------------------------------------


class DecisionCreate(Body):
    """A verdict on a clip the caller holds a live claim on."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"decision": "approve"},
                {
                    "decision": "reject",
                    "category": "quality",
                    "reason": "The ball melts into the table at the end.",
                    "timecode": 1.5,
                },
            ]
        }
    )

    decision: Literal["approve", "reject"]
    category: Annotated[str, text(50)] | None = None
    """Required for a rejection: one of the configured rejection categories."""
    reason: LongText | None = None
    """Required for a rejection; the tester reads it."""
    timecode: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    """Seconds into the clip a rejection points at."""
    claim_next: bool = False
    """Claim the next clip in the same step, as the review page does."""


class DecisionResult(Out):
    clip: ClipDetail
    decision: DecisionOut
    next: ClipDetail | None
    """The clip claimed next, when claim_next was asked for and the queue is not empty."""


class ClaimRenewed(Out):
    clip: int
    expires_at: datetime


# --- share links ---------------------------------------------------------------------------------


class ShareLinkCreate(Body):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"label": "press preview", "expires_in": 604800}]}
    )

    label: ShortText = ""
    expires_in: Annotated[int, Field(ge=60, le=365 * 86400)] | None = None
    """Seconds until the link stops working; null or absent: it never expires."""
    passphrase: Annotated[str, text(200, min_length=1)] | None = None
    allow_download: bool = False


class ShareLinkCreated(Out):
    """The new link. Its URL holds the token, which is shown only this once."""

    id: int
    url: str
    expires_at: datetime | None
    label: str
    clip: int
    allow_download: bool
    has_passphrase: bool


# --- audit ---------------------------------------------------------------------------------------


class AuditQuery(Query):
    since: UtcDatetime | None = None
    """Events at or after this moment (ISO 8601 with a UTC offset)."""
    clip: Id | None = None
    actor: Id | None = None
    action: Annotated[str, StringConstraints(pattern=r"^[a-z_.]{1,50}$")] | None = None
    cursor: Annotated[str, Field(max_length=500)] | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 50


class AuditEventOut(Out):
    """One event with every field its hash covers, and the hash."""

    id: int
    occurred_at: str
    """As hashed: ISO 8601 in UTC with microseconds."""
    actor_id: int | None
    actor_email: str | None
    action: str
    subject_type: str
    subject_id: int | None
    clip_id: int | None
    state_before: str | None
    state_after: str | None
    reason: str | None
    clip_sha256: str | None
    data: str
    """Canonical JSON, exactly as hashed."""
    prev_hash: str
    hash: str


class AuditPage(Out):
    items: list[AuditEventOut]
    """Newest first."""
    next: str | None


class AuditVerification(Out):
    ok: bool
    events: int
    head: str
    """SHA-256 of the newest event (or of the point where the chain broke)."""
    broken_event: int | None = None
    problem: str | None = None
