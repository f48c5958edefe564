"""Bodies and replies of the review operations: claims and decisions (see schemas.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from .schemas import (
    Body,
    ClipDetail,
    ClipOut,
    DecisionOut,
    Id,
    LongText,
    Out,
    Query,
    text,
)


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
    comment_ids: Annotated[list[Id], Field(max_length=100)] = []
    """Comments of this clip a rejection points at (see the comments operations)."""
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


class DecisionsQuery(Query):
    cursor: Annotated[str, Field(max_length=500)] | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 30


class MyDecision(Out):
    clip: ClipOut
    decision: DecisionOut
    reopened_at: datetime | None
    """When the reviewer took this verdict back; it no longer counts (null while it stands)."""
    undo_until: datetime | None
    """Until when POST /review/clips/{id}/reopen may take it back (null: no longer possible)."""


class MyDecisionPage(Out):
    items: list[MyDecision]
    next: str | None
    """The next page, or null at the end."""


class Reopened(Out):
    clip: ClipDetail
    decision: DecisionOut
    """The verdict taken back: kept on record, no longer counted."""
