"""Queries and replies of the audit log operations (see schemas.py)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from .schemas import (
    Id,
    Out,
    Query,
    UtcDatetime,
)


class AuditQuery(Query):
    since: UtcDatetime | None = None
    """Events at or after this moment (ISO 8601 with a UTC offset)."""
    clip: Id | None = None
    actor: Id | None = None
    action: Annotated[str, StringConstraints(pattern=r"^[a-z_.]{1,50}$")] | None = None
    cursor: Annotated[str, Field(max_length=500)] | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 50


class AuditVerifyQuery(Query):
    expect_head: Annotated[str, Field(max_length=300)] | None = None
    """A head kept outside the database: the line `flask audit checkpoint` prints, or just the
    event's SHA-256. The chain must still pass through it (the same hash at the same seq)."""


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
    checkpoint: str | None = None
    """When the chain holds: its head as a line to keep outside the database, for expect_head."""
