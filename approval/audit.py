"""The decision log: append in the caller's transaction, hash-chain, verify, export.

Each event stores the SHA-256 of its canonical JSON, which includes the previous event's hash.
Appends update the single `audit_head` row first: that row lock (PostgreSQL) or write lock
(SQLite) serialises writers, so two transactions can never chain onto the same event, and ids
are handed out in chain order.

`record` only queues the event on the session; the queue is written when the session commits,
as the last statements before COMMIT. So a request holds the head for those few statements
rather than from its first event to its end: with the head taken at `record`, every decision
waited for the whole of every other request that wrote an event (bench/decisions.py measured
it). An event still lands in the transaction of the change it describes, or not at all.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Row, Select, insert, select, update
from sqlalchemy import event as orm_event
from sqlalchemy.orm import Session

from . import paging
from .clock import utcnow
from .extensions import db
from .models import AuditEvent, AuditHead, Clip, ClipStatus

if TYPE_CHECKING:
    from .models import User

GENESIS_HASH = "0" * 64

#: Every action the app records, with the words pages show for it; the audit page's action
#: filter offers exactly these. A new kind of event belongs here too.
ACTIONS = {
    "clip.created": "upload started",
    "clip.upload_completed": "upload completed",
    "clip.verified": "passed verification",
    "clip.verification_failed": "failed verification",
    "clip.superseded": "replaced by a new version",
    "clip.withdrawn": "withdrawn",
    "clip.claimed": "claimed for review",
    "clip.released": "released to the queue",
    "clip.approval_recorded": "approval recorded",
    "clip.approved": "approved",
    "clip.rejected": "rejected",
    "clip.taken_down": "taken down",
    "clip.reopened": "verdict reopened by its reviewer",
    "decision.reopened": "approval reopened by its reviewer",
    "clip.integrity_failed": "stored bytes no longer match",
    "comment.added": "comment added",
    "clip.dismissed": "failed upload dismissed",
    "clip.provenance_released": "let into the queue despite its Content Credentials",
    "clip.signed_copy_made": "signed copy made for sharing",
    "share_link.created": "share link created",
    "share_link.revoked": "share link revoked",
    "api_token.created": "API token created",
    "api_token.revoked": "API token revoked",
    "user.created": "account created",
    "user.password_link_issued": "set-password link issued",
    "user.password_set": "password set",
    "user.password_changed": "password changed",
    "user.signed_out_everywhere": "signed out everywhere",
    "user.roles_changed": "roles changed",
    "user.deactivated": "account deactivated",
    "user.reactivated": "account reactivated",
    "auth.sign_in_failed": "sign-in failed",
}


def canonical_json(value: Any) -> str:
    """One spelling per value: sorted keys, no spaces, UTF-8 kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(event: AuditEvent | Row[Any]) -> str:
    """SHA-256 of everything in the event but its own id and hash.

    Takes a model or a plain row of audit_events (verify reads rows: twice as fast, and never
    the session's cached copies); both carry the attributes `as_dict` reads.
    """
    fields = AuditEvent.as_dict(cast(AuditEvent, event))
    del fields["id"]
    return hashlib.sha256(canonical_json(fields).encode()).hexdigest()


@dataclass(frozen=True)
class _Queued:
    """An event as `record` was asked for it; its time and place in the chain come at commit."""

    actor_id: int | None
    actor_email: str | None
    action: str
    subject_type: str
    subject_id: int | None
    clip_id: int | None
    clip_sha256: str | None
    state_before: str | None
    state_after: str | None
    reason: str | None
    data: str


_QUEUED = "approval.audit.queued"


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
) -> None:
    """Add one event to the chain when the current transaction commits (the caller commits).

    What the event says is taken now (an actor's email or a clip's hash changed later in the
    same transaction does not leak into it); its time is the moment it is chained, at commit.
    """
    queued = _Queued(
        actor_id=actor.id if actor is not None else None,
        actor_email=actor.email if actor is not None else None,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        clip_id=clip.id if clip is not None else None,
        clip_sha256=clip.sha256 if clip is not None else None,
        state_before=state_before,
        state_after=state_after,
        reason=reason,
        data=canonical_json(data or {}),
    )
    db.session.info.setdefault(_QUEUED, []).append(queued)


@orm_event.listens_for(Session, "before_commit")
def _chain_queued(session: Session) -> None:
    """Write the transaction's events as its last statements, under the head lock."""
    queued: list[_Queued] = session.info.pop(_QUEUED, [])
    if not queued:
        return
    # The UPDATE autoflushes the transaction's own changes first, so the head is taken only
    # once everything else this transaction writes is written.
    prev_hash = session.execute(
        update(AuditHead)
        .where(AuditHead.id == 1)
        .values(event_count=AuditHead.event_count + len(queued))
        .returning(AuditHead.last_hash)
    ).scalar_one()
    occurred_at = utcnow()
    last_event_id = None
    for item in queued:
        row = {
            "occurred_at": occurred_at,
            "actor_id": item.actor_id,
            "actor_email": item.actor_email,
            "action": item.action,
            "subject_type": item.subject_type,
            "subject_id": item.subject_id,
            "clip_id": item.clip_id,
            "state_before": item.state_before,
            "state_after": item.state_after,
            "reason": item.reason,
            "clip_sha256": item.clip_sha256,
            "data": item.data,
            "prev_hash": prev_hash,
        }
        row["hash"] = prev_hash = event_hash(AuditEvent(**row))
        # A plain INSERT, not the ORM's flush: this runs while every other writer waits.
        # One row at a time, because ids must follow the chain.
        last_event_id = session.execute(
            insert(AuditEvent.__table__).values(row).returning(AuditEvent.__table__.c.id)
        ).scalar_one()
    session.execute(
        update(AuditHead)
        .where(AuditHead.id == 1)
        .values(last_hash=prev_hash, last_event_id=last_event_id)
    )


@orm_event.listens_for(Session, "after_rollback")
def _forget_queued(session: Session) -> None:
    session.info.pop(_QUEUED, None)


CHECKPOINT_PREFIX = "greenlight-audit-head"
CHECKPOINT_FORM = f"{CHECKPOINT_PREFIX} seq=N sha256=HASH at=TIME"
_SHA256 = re.compile(r"[0-9a-f]{64}")


class BadCheckpoint(ValueError):
    """A kept head that is neither a SHA-256 nor a checkpoint line."""


@dataclass(frozen=True)
class Checkpoint:
    """A head kept outside the database: the event at position `seq` of the chain had `sha256`.

    `seq` counts events from the start of the chain (1 is the first), so it equals the log's
    event count when the checkpoint was taken; ids may skip numbers, positions do not. Without a
    seq (a bare hash was kept), the hash must appear somewhere in the chain.
    """

    sha256: str
    seq: int | None = None
    at: datetime | None = None

    def line(self) -> str:
        """One line to paste into a ticket or a mail; `audit verify --expect-head` reads it."""
        parts = [CHECKPOINT_PREFIX]
        if self.seq is not None:
            parts.append(f"seq={self.seq}")
        parts.append(f"sha256={self.sha256}")
        if self.at is not None:
            parts.append(f"at={self.at.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}")
        return " ".join(parts)

    def __str__(self) -> str:
        where = f"seq {self.seq}, " if self.seq is not None else ""
        return f"{where}{self.sha256[:12]}…"


def parse_checkpoint(text: str) -> Checkpoint:
    """A kept head as `checkpoint` prints it, or a bare 64-digit SHA-256; BadCheckpoint says why.

    The time is checked for form only: the hash covers the event's time, so a matching hash at
    the right position already proves it.
    """
    value = text.strip()
    if _SHA256.fullmatch(value.lower()):
        return Checkpoint(sha256=value.lower())
    words = value.split()
    if not words or words[0] != CHECKPOINT_PREFIX:
        raise BadCheckpoint(
            f"give the 64-digit SHA-256 of an event, or the line `flask audit checkpoint` "
            f"prints ({CHECKPOINT_FORM})"
        )
    fields: dict[str, str] = {}
    for word in words[1:]:
        key, equals, field_value = word.partition("=")
        if not equals or key not in ("seq", "sha256", "at"):
            raise BadCheckpoint(f"{word[:40]!r} is not part of a checkpoint ({CHECKPOINT_FORM})")
        if key in fields:
            raise BadCheckpoint(f"{key}= is given twice")
        fields[key] = field_value
    if "seq" not in fields or "sha256" not in fields:
        raise BadCheckpoint(f"a checkpoint needs seq= and sha256= ({CHECKPOINT_FORM})")
    if not fields["seq"].isascii() or not fields["seq"].isdigit() or int(fields["seq"]) < 1:
        raise BadCheckpoint(f"seq= must be a whole number from 1, not {fields['seq'][:40]!r}")
    sha256 = fields["sha256"].lower()
    if not _SHA256.fullmatch(sha256):
        raise BadCheckpoint("sha256= must be 64 hexadecimal digits")
    at = None
    if "at" in fields:
        try:
            at = datetime.fromisoformat(fields["at"])
        except ValueError:
            raise BadCheckpoint(
                f"at= must be an ISO 8601 time such as 2026-12-02T20:00:00Z, "
                f"not {fields['at'][:40]!r}"
            ) from None
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at
    return Checkpoint(sha256=sha256, seq=int(fields["seq"]), at=at)


@dataclass(frozen=True)
class Verification:
    ok: bool
    events: int
    head: str
    broken_event_id: int | None = None
    problem: str | None = None
    #: When the newest event was written (None for an empty log or a broken chain).
    head_at: datetime | None = None

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

    def checkpoint(self) -> Checkpoint | None:
        """The head just verified, to keep elsewhere; None when broken or empty."""
        if not self.ok or self.events == 0:
            return None
        return Checkpoint(sha256=self.head, seq=self.events, at=self.head_at)


def verify(batch_size: int = 1000, *, expect: Checkpoint | None = None) -> Verification:
    """Walk the chain from the start; name the first event whose hash or link is wrong.

    With `expect`, a head kept outside the database, the chain must also still pass through it:
    the same hash at the same position. Whoever can rewrite the table and its head can forge a
    chain that verifies on its own, but not one through a hash they never saw.

    One statement reads the events beside the head row, so the walk and the head come from the
    same snapshot even while others append; plain rows (not the session's cached objects) stream
    `batch_size` at a time, so memory stays flat however long the log.
    """
    events = AuditEvent.__table__
    while True:
        result = db.session.execute(
            select(
                events,
                AuditHead.last_hash.label("head_hash"),
                AuditHead.last_event_id.label("head_event_id"),
                AuditHead.event_count.label("head_count"),
            )
            .join_from(events, AuditHead, AuditHead.id == 1)
            .order_by(events.c.id)
            .execution_options(yield_per=batch_size)
        )
        try:
            outcome = _walk(result, expect)
        finally:
            result.close()
        if outcome is not None:
            return outcome
        # No event beside the head row: the log is empty, or the head row is gone. Ask both in
        # one statement; an event that appeared meanwhile means an append won the race.
        state = db.session.execute(
            select(
                AuditHead.last_hash,
                AuditHead.event_count,
                select(AuditEvent.id).exists().label("has_events"),
            ).where(AuditHead.id == 1)
        ).one_or_none()
        if state is None:
            return Verification(False, 0, GENESIS_HASH, None, "the audit_head row is missing")
        if state.has_events:
            continue
        if state.event_count != 0 or state.last_hash != GENESIS_HASH:
            return Verification(
                False,
                0,
                GENESIS_HASH,
                None,
                f"the log is empty but its head counts {state.event_count} events "
                "(events were removed)",
            )
        if expect is not None:
            return Verification(False, 0, GENESIS_HASH, None, _missing(expect, 0))
        return Verification(True, 0, GENESIS_HASH)


def _missing(expect: Checkpoint, count: int) -> str:
    """Why a chain that holds on its own does not pass through the kept head."""
    if expect.seq is None:
        return (
            f"no event has the kept hash {expect.sha256[:12]}…: the log was rewritten from "
            "before that event on, or the hash belongs to another log"
        )
    return (
        f"the log holds {count} events, fewer than the kept head's seq {expect.seq}: events "
        "were removed and the chain rebuilt, or the checkpoint belongs to another log"
    )


def _walk(rows: Iterable[Row[Any]], expect: Checkpoint | None = None) -> Verification | None:
    """Check each event's link and hash, then the head; None when there were no rows."""
    expected_prev = GENESIS_HASH
    count = 0
    last: Row[Any] | None = None
    passed_kept_head = expect is None
    for event in rows:
        count += 1
        if event.head_event_id is not None and event.id > event.head_event_id:
            # record() moves the head in the event's own transaction; this event skipped it.
            return Verification(
                False,
                count,
                expected_prev,
                event.id,
                f"event {event.id} lies beyond the head (event {event.head_event_id}): it was "
                "added without going through the log",
            )
        if event.prev_hash != expected_prev:
            after = f"event {last.id}" if last is not None else "the start of the log"
            return Verification(
                False,
                count,
                expected_prev,
                event.id,
                f"event {event.id} does not follow {after}: an event between them was removed "
                "or inserted, or the one before was rewritten",
            )
        if event_hash(event) != event.hash:
            return Verification(
                False,
                count,
                expected_prev,
                event.id,
                f"event {event.id} was changed after it was written (its hash does not match)",
            )
        if expect is not None and expect.seq == count and event.hash != expect.sha256:
            return Verification(
                False,
                count - 1,
                expected_prev,
                event.id,
                f"event {event.id}, at seq {count}, has hash {event.hash[:12]}…, not the kept "
                f"head's {expect.sha256[:12]}…: events up to and including it were rewritten and "
                "the chain rebuilt",
            )
        if expect is not None and event.hash == expect.sha256 and expect.seq in (None, count):
            passed_kept_head = True
        expected_prev = event.hash
        last = event
    if last is None:
        return None
    if last.head_event_id is not None and last.head_event_id != last.id:
        return Verification(
            False,
            count,
            expected_prev,
            last.head_event_id,
            f"event {last.head_event_id}, the newest according to the head, is missing "
            f"(the log ends at event {last.id}): events were removed from the end",
        )
    if last.head_event_id is None or last.head_hash != expected_prev or last.head_count != count:
        return Verification(
            False,
            count,
            expected_prev,
            None,
            f"the head ({last.head_hash[:12]}…, {last.head_count} events) does not match the "
            f"log ({expected_prev[:12]}…, {count} events): the head was changed",
        )
    if expect is not None and not passed_kept_head:
        return Verification(False, count, expected_prev, None, _missing(expect, count))
    return Verification(True, count, expected_prev, head_at=last.occurred_at)


def head_hash() -> str:
    """The hash of the newest event: write it down elsewhere to pin today's log."""
    value = db.session.scalar(select(AuditHead.last_hash).where(AuditHead.id == 1))
    return value if value is not None else GENESIS_HASH


def event_count() -> int:
    """How many events the head says the log holds (no table scan)."""
    return db.session.scalar(select(AuditHead.event_count).where(AuditHead.id == 1)) or 0


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


def newest_first(
    query: Select[tuple[AuditEvent]], scope: str, *, cursor: str | None = None, size: int = 50
) -> paging.Page[AuditEvent]:
    """One page of `query`, newest first, by keyset on the id (chain order), never OFFSET."""
    return paging.page(scope, query, [AuditEvent.id.desc()], size=size, cursor=cursor)


def clip_timeline(clip_id: int) -> list[AuditEvent]:
    """A clip's own events, oldest first (share links of the clip included)."""
    return list(db.session.scalars(filtered(clip_id=clip_id).order_by(AuditEvent.id)))


def action_label(action: str) -> str:
    """The words pages show for an action; unknown actions show as recorded."""
    return ACTIONS.get(action, action)


def state_label(state: str | None) -> str:
    """A clip state as pages name it ('waiting for review'); other states as recorded."""
    if state is None:
        return "—"
    try:
        return ClipStatus(state).label
    except ValueError:
        return state


def change(event: AuditEvent) -> tuple[str, str] | None:
    """What the event changed, as (before, after) words: a clip's state or a person's roles."""
    if event.state_before is not None or event.state_after is not None:
        return state_label(event.state_before), state_label(event.state_after)
    if event.action == "user.roles_changed":
        data = json.loads(event.data)
        return ", ".join(data.get("before", [])) or "—", ", ".join(data.get("after", [])) or "—"
    return None


def details(event: AuditEvent) -> str:
    """The few facts from an event's data that a reader of the log wants at a glance."""
    data = json.loads(event.data)
    parts = []
    if event.action == "auth.sign_in_failed":
        parts.append(f"tried {data.get('email') or '?'}")
        if data.get("address"):
            parts.append(f"from {data['address']}")
    if event.action == "user.created" and data.get("roles"):
        parts.append(f"roles: {', '.join(data['roles'])}")
    if data.get("new_version"):
        parts.append(f"by clip {data['new_version']}")
    if data.get("previous_version"):
        parts.append(f"new version of clip {data['previous_version']}")
    if data.get("approvals"):
        parts.append(f"approvals: {data['approvals']}")
    if data.get("category"):
        parts.append(f"category: {data['category']}")
    return "; ".join(parts)


EXPORT_FIELDS = (
    "id", "occurred_at", "actor_id", "actor_email", "action", "subject_type", "subject_id",
    "clip_id", "state_before", "state_after", "reason", "clip_sha256", "data", "prev_hash",
    "hash",
)  # fmt: skip
EXPORT_FORMATS = ("jsonl", "csv")
#: What makes a spreadsheet read a cell as a formula (OWASP, "CSV Injection").
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> object:
    """A text cell a spreadsheet would run as a formula, with a ' in front so it shows as text.

    Only the CSV is changed so: the JSON lines keep every field exact, to re-check the hashes.
    """
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def export(query: Select[tuple[AuditEvent]], fmt: str, batch_size: int = 1000) -> Iterator[str]:
    """Stream events as JSON lines or CSV, oldest first.

    A JSON line holds every hashed field and the hash, so a copy can be re-checked offline. The
    CSV is for reading in a spreadsheet: every cell is quoted and text that would start a
    formula gets a ' in front (OWASP's rule), so it is not exact. The cursor is closed even
    when the reader stops early (a download cut off, a closed pipe).
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use jsonl or csv")
    events = db.session.scalars(
        query.order_by(AuditEvent.id).execution_options(yield_per=batch_size)
    )
    try:
        if fmt == "jsonl":
            for event in events:
                yield canonical_json({**event.as_dict(), "hash": event.hash}) + "\n"
            return
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS, quoting=csv.QUOTE_ALL)
        writer.writeheader()
        for event in events:
            row = {**event.as_dict(), "hash": event.hash}
            writer.writerow({name: spreadsheet_safe(value) for name, value in row.items()})
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        if buffer.tell():
            yield buffer.getvalue()
    finally:
        events.close()
