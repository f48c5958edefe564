"""Bodies and replies of the comment operations: threads at timecodes (see schemas.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import ConfigDict, Field

from approval.models import COMMENT_MAX_CHARS

from .schemas import Body, Out, Person, text

CommentBody = Annotated[str, text(COMMENT_MAX_CHARS)]
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class CommentCreate(Body):
    """A new thread on a verified clip, at a moment, over a stretch, or on the whole clip."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"body": "The hand has six fingers here.", "at": 1.5},
                {"body": "The background flickers.", "at": 0.5, "until": 1.25},
            ]
        }
    )

    body: CommentBody
    """1 to 2,000 characters once stripped of surrounding space."""
    at: Seconds | None = None
    """Seconds into the clip the comment is about: 0 to the clip's duration."""
    until: Seconds | None = None
    """Where the stretch ends: after `at`, within the clip; needs `at`."""


class ReplyCreate(Body):
    """An answer in a thread; a reply to a reply joins the thread's first comment."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"body": "Fixed in version 2."}]})

    body: CommentBody
    """1 to 2,000 characters once stripped of surrounding space."""


class CommentOut(Out):
    id: int
    clip: int
    thread: int | None
    """The thread's first comment; null for that first comment itself."""
    at: float | None
    """Seconds into the clip; null for replies and for comments on the whole clip."""
    until: float | None
    body: str
    author: Person | None
    """Null for testers when a reviewer or an admin wrote it: they never learn who."""
    author_name: str
    """Who wrote it as the caller may be told: a name, or "a reviewer"."""
    by_tester: bool
    """Whether the clip's own tester wrote it."""
    created_at: datetime


class CommentThread(CommentOut):
    replies: list[CommentOut]
    """Oldest first."""


class CommentThreads(Out):
    clip: int
    items: list[CommentThread]
    """The clip's threads, oldest first."""
