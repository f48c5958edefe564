"""Comments at timecodes: threads on a verified clip, logged and notified, never edited.

Who may comment is who may see the clip (its tester and the staff, see access.py). A comment
sits at a moment of the clip, over a range (at to until) or on the clip as a whole; a reply
joins its thread's first comment and has no time of its own. Each one writes an audit event in
the caller's transaction and tells the other side: a reviewer's words go to the tester, a
tester's reply to the reviewers of that thread.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from approval import audit
from approval.clock import utcnow
from approval.extensions import db
from approval.models import COMMENT_MAX_CHARS, MAX_ID, VERIFIED_STATES, Clip, Comment, User
from approval.ops import access, notifications
from approval.ops.errors import InvalidInput, NotFound, StateConflict


def check_body(body: str) -> str:
    """The comment's words, stripped: 1 to COMMENT_MAX_CHARS characters, no NUL."""
    body = body.strip()
    if not body:
        raise InvalidInput("The comment is empty: write what you want to say.", "body")
    if "\x00" in body:
        raise InvalidInput(
            "The comment contains a NUL character (code 0), which cannot be stored.", "body"
        )
    if len(body) > COMMENT_MAX_CHARS:
        raise InvalidInput(
            f"A comment can be at most {COMMENT_MAX_CHARS:,} characters; this one has "
            f"{len(body):,}. Split it into a thread of replies.",
            "body",
        )
    return body


def _within(clip: Clip, seconds: float, field: str, what: str) -> float:
    duration = clip.duration_seconds or 0.0
    if not math.isfinite(seconds) or not 0 <= seconds <= duration:
        raise InvalidInput(
            f"The {what} must lie within the clip: 0 to {duration:g} seconds.", field
        )
    return round(seconds, 3)


def check_times(
    clip: Clip, at_seconds: float | None, until_seconds: float | None
) -> tuple[float | None, float | None]:
    """A moment (and optional end) within the clip, the end after the start."""
    if at_seconds is None:
        if until_seconds is not None:
            raise InvalidInput("An end time needs a start time (at) as well.", "until")
        return None, None
    at = _within(clip, at_seconds, "at", "time")
    if until_seconds is None:
        return at, None
    until = _within(clip, until_seconds, "until", "end time")
    if until <= at:
        raise InvalidInput("The end time must come after the start time.", "until")
    return at, until


def _check_may_comment(clip: Clip, author: User) -> None:
    if not access.can_see(clip, author):
        raise NotFound(f"There is no clip {clip.id} that you can see.")
    if clip.status not in VERIFIED_STATES:
        raise StateConflict(
            f"Comments open once the file is checked; this clip is {clip.status.label}.", clip
        )


def _record(comment: Comment, clip: Clip, author: User) -> None:
    db.session.add(comment)
    db.session.flush()
    audit.record(
        "comment.added",
        actor=author,
        subject_type="comment",
        subject_id=comment.id,
        clip=clip,
        data={
            "comment": comment.id,
            "thread": comment.thread_id,
            "at": comment.at_seconds,
            "until": comment.until_seconds,
            "body": comment.body,
        },
    )


def add_comment(
    clip: Clip,
    author: User,
    body: str,
    at_seconds: float | None = None,
    until_seconds: float | None = None,
) -> Comment:
    """Start a thread on a verified clip, at a moment or over a range (or on the whole clip)."""
    _check_may_comment(clip, author)
    body = check_body(body)
    at, until = check_times(clip, at_seconds, until_seconds)
    comment = Comment(
        clip_id=clip.id,
        author_id=author.id,
        at_seconds=at,
        until_seconds=until,
        body=body,
        created_at=utcnow(),
    )
    comment.author = author
    _record(comment, clip, author)
    _notify(clip, author, comment, thread=None)
    return comment


def reply(thread_first_comment: Comment, author: User, body: str) -> Comment:
    """Answer in a thread; a reply to a reply joins the thread's first comment."""
    first = thread_first_comment
    if first.thread_id is not None:
        first = db.session.get_one(Comment, first.thread_id)
    clip = first.clip
    _check_may_comment(clip, author)
    body = check_body(body)
    answer = Comment(
        clip_id=clip.id, author_id=author.id, thread_id=first.id, body=body, created_at=utcnow()
    )
    answer.author = author
    _record(answer, clip, author)
    _notify(clip, author, answer, thread=first)
    return answer


def visible_comment(clip: Clip, comment_id: int, user: User) -> Comment:
    """A comment of this clip that the user may see, else NotFound."""
    comment = db.session.get(Comment, comment_id) if 0 < comment_id <= MAX_ID else None
    if comment is None or comment.clip_id != clip.id or not access.can_see(clip, user):
        raise NotFound(f"There is no comment {comment_id} on this clip that you can see.")
    return comment


def threads(clip: Clip) -> list[Comment]:
    """The clip's threads, each first comment oldest first with its replies in order."""
    return list(
        db.session.scalars(
            select(Comment)
            .where(Comment.clip_id == clip.id, Comment.thread_id.is_(None))
            .options(selectinload(Comment.replies))
            .order_by(Comment.id)
        )
    )


def cited(clip: Clip, comment_ids: Iterable[int]) -> list[Comment]:
    """The comments a rejection points at, all of this clip; any other id is refused."""
    wanted = sorted(set(comment_ids))
    if not wanted:
        return []
    found = (
        list(
            db.session.scalars(
                select(Comment)
                .where(Comment.clip_id == clip.id, Comment.id.in_(wanted))
                .order_by(Comment.id)
            )
        )
        if all(0 < i <= MAX_ID for i in wanted)
        else []
    )
    missing = sorted(set(wanted) - {c.id for c in found})
    if missing:
        listed = ", ".join(str(i) for i in missing)
        raise InvalidInput(
            f"A rejection can point only at comments on this clip; not at {listed}.",
            "comment_ids",
        )
    return found


# --- who hears of it ------------------------------------------------------------------------------


def _where(comment: Comment, thread: Comment | None) -> str:
    first = thread or comment
    if first.at_seconds is None:
        return ""
    moment = notifications.timecode(first.at_seconds)
    if first.until_seconds is not None:
        moment += f" to {notifications.timecode(first.until_seconds)}"
    return f" at {moment}"


def _notify(clip: Clip, author: User, comment: Comment, thread: Comment | None) -> None:
    """A reviewer's words go to the tester; a tester's reply to the reviewers in its thread."""
    verb = "replied" if thread is not None else "commented"
    if not clip.is_owned_by(author):
        told: Sequence[User] = [clip.tester]
    elif thread is not None:
        told = _others_in_thread(thread, author)
    else:
        told = []
    for person in told:
        who = access.actor_name(author, person)
        notifications.comment_added(person, clip, who, verb, _where(comment, thread), comment.body)


def _others_in_thread(thread: Comment, author: User) -> list[User]:
    people = {thread.author_id: thread.author}
    for answer in thread.replies:
        people.setdefault(answer.author_id, answer.author)
    return [
        person
        for person_id, person in sorted(people.items())
        if person_id != author.id and access.is_staff(person) and person.active
    ]
