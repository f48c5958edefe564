"""The decision log: append in the caller's transaction, hash-chain, verify, export.

Each event stores the SHA-256 of its canonical JSON, which includes the previous event's hash.
Appends update the single `audit_head` row first: that row lock (PostgreSQL) or write lock
(SQLite) serialises writers, so two transactions can never chain onto the same event.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, select, update

from .clock import utcnow
from .extensions import db
from .models import AuditEvent, AuditHead, Clip

if TYPE_CHECKING:
    from .models import User

GENESIS_HASH = "0" * 64


def canonical_json(value: Any) -> str:
    """One spelling per value: sorted keys, no spaces, UTF-8 kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(event: AuditEvent) -> str:
    """SHA-256 of everything in the event but its own id and hash."""
    fields = event.as_dict()
    del fields["id"]
    return hashlib.sha256(canonical_json(fields).encode()).hexdigest()


def record(
    action: str,
    *,
    actor: User | None,
    subject_type: str,
    subject_id: int | None = None,
    clip: Clip | None = None,
    state_before: str | None = None,
    state_after: str | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the chain inside the current transaction (the caller commits)."""
    head = db.session.execute(
        update(AuditHead)
        .where(AuditHead.id == 1)
        .values(event_count=AuditHead.event_count + 1)
        .returning(AuditHead.last_hash)
    ).one()
    event = AuditEvent(
        occurred_at=utcnow(),
        actor_id=actor.id if actor is not None else None,
        actor_email=actor.email if actor is not None else None,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        clip_id=clip.id if clip is not None else None,
        state_before=state_before,
        state_after=state_after,
        reason=reason,
        clip_sha256=clip.sha256 if clip is not None else None,
        data=canonical_json(data or {}),
        prev_hash=head.last_hash,
    )
    event.hash = event_hash(event)
    db.session.add(event)
    db.session.flush()
    db.session.execute(
        update(AuditHead)
        .where(AuditHead.id == 1)
        .values(last_hash=event.hash, last_event_id=event.id)
    )
    return event


@dataclass(frozen=True)
class Verification:
    ok: bool
    events: int
    head: str
    broken_event_id: int | None = None
    problem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        if self.ok:
            return {"ok": True, "events": self.events, "head": self.head}
        return {
            "ok": False,
            "events": self.events,
            "head": self.head,
            "broken_event": self.broken_event_id,
            "problem": self.problem,
        }


def verify(batch_size: int = 1000) -> Verification:
    """Walk the chain from the start; name the first event whose hash or link is wrong."""
    expected_prev = GENESIS_HASH
    count = 0
    query = select(AuditEvent).order_by(AuditEvent.id).execution_options(yield_per=batch_size)
    for event in db.session.scalars(query):
        count += 1
        if event.prev_hash != expected_prev:
            return Verification(
                False,
                count,
                expected_prev,
                event.id,
                f"event {event.id} does not follow the event before it (an event was removed "
                "or inserted)",
            )
        if event_hash(event) != event.hash:
            return Verification(
                False,
                count,
                expected_prev,
                event.id,
                f"event {event.id} was changed after it was written (its hash does not match)",
            )
        expected_prev = event.hash
    head = db.session.get(AuditHead, 1)
    if head is None or head.last_hash != expected_prev or head.event_count != count:
        return Verification(
            False,
            count,
            expected_prev,
            None,
            "the chain's head does not match its last event (events were removed from the end)",
        )
    return Verification(True, count, expected_prev)


def head_hash() -> str:
    """The hash of the newest event: write it down elsewhere to pin today's log."""
    head = db.session.get(AuditHead, 1)
    return head.last_hash if head is not None else GENESIS_HASH


def filtered(
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    clip_id: int | None = None,
    actor_id: int | None = None,
    action: str | None = None,
) -> Select[tuple[AuditEvent]]:
    """A query over the log with the filters the audit page, API and export share."""
    query = select(AuditEvent)
    if since is not None:
        query = query.where(AuditEvent.occurred_at >= since)
    if until is not None:
        query = query.where(AuditEvent.occurred_at < until)
    if clip_id is not None:
        query = query.where(AuditEvent.clip_id == clip_id)
    if actor_id is not None:
        query = query.where(AuditEvent.actor_id == actor_id)
    if action:
        query = query.where(AuditEvent.action == action)
    return query


EXPORT_FIELDS = (
    "id", "occurred_at", "actor_id", "actor_email", "action", "subject_type", "subject_id",
    "clip_id", "state_before", "state_after", "reason", "clip_sha256", "data", "prev_hash",
    "hash",
)  # fmt: skip


def export(query: Select[tuple[AuditEvent]], fmt: str) -> Iterator[str]:
    """Stream events as JSON lines or CSV, oldest first."""
    events = db.session.scalars(query.order_by(AuditEvent.id).execution_options(yield_per=1000))
    if fmt == "jsonl":
        for event in events:
            yield canonical_json({**event.as_dict(), "hash": event.hash}) + "\n"
        return
    if fmt != "csv":
        raise ValueError(f"unknown export format {fmt!r}; use jsonl or csv")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS)
    writer.writeheader()
    for event in events:
        writer.writerow({**event.as_dict(), "hash": event.hash})
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()
