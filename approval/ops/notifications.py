"""Notifications: who hears about what, the inbox's reads, and the reviewers' daily digest.

`notify` writes the row inside the caller's transaction and asks the outbox to mail it once
that transaction commits (see outbox.py); the decision never waits on, or fails with, mail.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update

from approval import outbox, paging
from approval.clock import utcnow
from approval.config import rejection_categories
from approval.extensions import db
from approval.models import MAX_ID, Clip, Comment, Notification, Role, User, UserRole
from approval.ops import queue
from approval.ops.errors import NotAllowed, NotFound

#: Notification kinds, with how the inbox names them.
KINDS = {
    "clip.approved": "Approved",
    "clip.rejected": "Rejected",
    "clip.taken_down": "Taken down",
    "comment.added": "Comment",
    "clip.reopened": "Back in review",
    "queue.digest": "Queue digest",
}
#: A digest goes out at most this often, so a cron job that runs twice sends once.
DIGEST_INTERVAL = timedelta(hours=20)


# --- writing -------------------------------------------------------------------------------------


def notify(user: User, kind: str, clip: Clip | None, subject: str, body: str) -> Notification:
    """Add a notification to the current transaction; it is mailed once that commits."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")
    notification = Notification(
        user_id=user.id,
        clip_id=clip.id if clip is not None else None,
        kind=kind,
        subject=subject[:200],
        body=body,
        created_at=utcnow(),
        email_attempts=0,
    )
    db.session.add(notification)
    db.session.flush()
    outbox.mail_after_commit(db.session, notification.id)
    return notification


def timecode(seconds: float) -> str:
    """A point in a clip as a player shows it: 0:01.5, with tenths only when there are any."""
    tenths = round(seconds * 10)
    whole, tenth = divmod(tenths, 10)
    minutes, secs = divmod(whole, 60)
    return f"{minutes}:{secs:02d}" + (f".{tenth}" if tenth else "")


def _quoted(clip: Clip) -> str:
    version = f" (version {clip.version})" if clip.version > 1 else ""
    return f"“{clip.title}”{version}"


def clip_approved(clip: Clip) -> Notification:
    """Tell the tester their clip was approved."""
    return notify(
        clip.tester,
        "clip.approved",
        clip,
        f"Approved: {clip.title}",
        f"{_quoted(clip)} was approved. You can now make share links for it.",
    )


def clip_rejected(clip: Clip, cited: Sequence[Comment] = ()) -> Notification:
    """Tell the tester their clip was rejected, and why (with the comments it points at)."""
    category = rejection_categories().get(
        clip.decision_category or "", clip.decision_category or ""
    )
    moment = ""
    if clip.decision_timecode is not None:
        moment = f" The reviewer points at {timecode(clip.decision_timecode)}."
    moment += _cited(cited)
    return notify(
        clip.tester,
        "clip.rejected",
        clip,
        f"Rejected: {clip.title}",
        f"{_quoted(clip)} was rejected ({category}): {clip.decision_reason}{moment}\n"
        "You can upload a new version from the clip's page.",
    )


def _cited(cited: Sequence[Comment]) -> str:
    """ " See the comments at 0:00.3 and 0:01.", in the order of the clip."""
    if not cited:
        return ""
    timed = sorted(c.at_seconds for c in cited if c.at_seconds is not None)
    places = [timecode(seconds) for seconds in timed]
    if len(timed) < len(cited):
        places.append("on the whole clip")
    listed = places[0] if len(places) == 1 else f"{', '.join(places[:-1])} and {places[-1]}"
    noun = "comment" if len(cited) == 1 else "comments"
    return f" See the {noun} at {listed}." if timed else f" See the {noun} {listed}."


def clip_taken_down(clip: Clip) -> Notification:
    """Tell the tester their approved clip was taken down; its links no longer work."""
    return notify(
        clip.tester,
        "clip.taken_down",
        clip,
        f"Taken down: {clip.title}",
        f"{_quoted(clip)} was taken down: {clip.takedown_reason}\nIts share links no longer work.",
    )


def comment_added(
    user: User, clip: Clip, who: str, verb: str, moment: str, words: str
) -> Notification:
    """Tell someone of a comment or reply on a clip they take part in (see ops/comments.py)."""
    who = who[:1].upper() + who[1:]
    return notify(
        user,
        "comment.added",
        clip,
        f"{who} {verb} on {clip.title}",
        f"{who} {verb} on {_quoted(clip)}{moment}:\n{words}",
    )


def clip_reopened(clip: Clip, verdict: str) -> Notification:
    """Tell the tester a reviewer took their verdict back: the clip waits for review again."""
    return notify(
        clip.tester,
        "clip.reopened",
        clip,
        f"Back in review: {clip.title}",
        f"A reviewer took back their {verdict} of {_quoted(clip)} within the undo window. "
        "It is waiting for review again.",
    )


# --- reading -------------------------------------------------------------------------------------


def unread_count(user: User) -> int:
    """How many of this person's notifications are unread."""
    return (
        db.session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.user_id == user.id, Notification.read_at.is_(None))
        )
        or 0
    )


def recent(user: User, *, cursor: str | None = None, size: int = 30) -> paging.Page[Notification]:
    """This person's notifications, newest first, a keyset page at a time."""
    query = select(Notification).where(Notification.user_id == user.id)
    return paging.page("inbox", query, [Notification.id.desc()], size=size, cursor=cursor)


def mark_read(user: User, notification_id: int | None = None) -> int:
    """Mark one notification (or all of them) read; returns how many changed.

    Someone else's notification is NotFound, like anything else of others'; one's own that is
    read already changes nothing.
    """
    query = update(Notification).where(
        Notification.user_id == user.id, Notification.read_at.is_(None)
    )
    if notification_id is not None:
        note = (
            db.session.get(Notification, notification_id) if 0 < notification_id <= MAX_ID else None
        )
        if note is None or note.user_id != user.id:
            raise NotFound(f"You have no notification {notification_id}.")
        query = query.where(Notification.id == notification_id)
    result = db.session.execute(
        query.values(read_at=utcnow()).execution_options(synchronize_session="fetch")
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Target:
    """Where a notification points: a route (for the web layer to build) and an anchor."""

    endpoint: str
    values: dict[str, int]
    anchor: str = ""


def target(notification: Notification) -> Target | None:
    """The clip (at its timecode, for a rejection) or the queue; None for neither."""
    if notification.kind == "queue.digest":
        return Target("review.queue", {})
    clip = notification.clip
    if clip is None:
        return None
    anchor = ""
    if notification.kind == "clip.rejected" and clip.decision_timecode is not None:
        anchor = f"#t={clip.decision_timecode:.1f}"
    elif notification.kind == "comment.added":
        anchor = "#comments"
    return Target("clips.detail", {"clip_id": clip.id}, anchor)


# --- the reviewers' digest -----------------------------------------------------------------------


def _age(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return "less than a minute"


def queue_digest(now: datetime | None = None) -> list[Notification]:
    """One digest for each opted-in reviewer not sent one lately; none when the queue is empty."""
    now = now or utcnow()
    state = queue.counts(now)
    if state.waiting.value == 0 or state.oldest_submitted_at is None:
        return []
    reviewers = db.session.scalars(
        select(User)
        .join(UserRole, UserRole.user_id == User.id)
        .where(
            UserRole.role == Role.REVIEWER,
            User.active.is_(True),
            User.wants_queue_digest.is_(True),
            or_(User.last_digest_at.is_(None), User.last_digest_at <= now - DIGEST_INTERVAL),
        )
        .order_by(User.id)
    ).all()
    oldest = state.oldest_submitted_at
    # The label, not the number: past a thousand the queue only estimates ("about 120,000").
    clips = "1 clip is" if state.waiting.one else f"{state.waiting.label} clips are"
    body = (
        f"{clips} waiting for review. The oldest has waited "
        f"{_age((now - oldest).total_seconds())} (since {oldest:%Y-%m-%d %H:%M} UTC)."
    )
    if state.in_review:
        body += f" {state.in_review} {'is' if state.in_review == 1 else 'are'} being reviewed now."
    subject = f"Review queue: {state.waiting.label} waiting"
    made = []
    for reviewer in reviewers:
        reviewer.last_digest_at = now
        made.append(notify(reviewer, "queue.digest", None, subject, body))
    return made


def set_digest(user: User, wanted: bool) -> None:
    """Opt in to (or out of) the daily queue digest; only reviewers can opt in."""
    if wanted and not user.has_role(Role.REVIEWER):
        raise NotAllowed("Only reviewers can get the queue digest.", "wants_queue_digest")
    user.wants_queue_digest = wanted
