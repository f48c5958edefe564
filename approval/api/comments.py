"""Comments over the API: a clip's threads, a new comment at a timecode, a reply."""

from __future__ import annotations

from approval.models import Comment, User
from approval.ops import access, comments

from . import comment_schemas as cs
from .blueprint import api
from .registry import Reply
from .serialize import actor


def comment_out(comment: Comment, viewer: User) -> cs.CommentOut:
    return cs.CommentOut(**_fields(comment, viewer))


def thread_out(comment: Comment, viewer: User) -> cs.CommentThread:
    return cs.CommentThread(
        **_fields(comment, viewer),
        replies=[comment_out(answer, viewer) for answer in comment.replies],
    )


def _fields(comment: Comment, viewer: User) -> dict[str, object]:
    return {
        "id": comment.id,
        "clip": comment.clip_id,
        "thread": comment.thread_id,
        "at": comment.at_seconds,
        "until": comment.until_seconds,
        "body": comment.body,
        "author": actor(comment.author, viewer),
        "author_name": access.actor_name(comment.author, viewer),
        "by_tester": comment.author_id == comment.clip.tester_id,
        "created_at": comment.created_at,
    }


@api.route(
    "GET", "/clips/<id:clip_id>/comments", tag="comments", replies={200: cs.CommentThreads}
)  # fmt: skip
def list_comments(user: User, clip_id: int) -> Reply:
    """The clip's comment threads, oldest first, each with its replies."""
    clip = access.visible_clip(clip_id, user)
    threads = [thread_out(thread, user) for thread in comments.threads(clip)]
    return Reply(200, cs.CommentThreads(clip=clip.id, items=threads))


@api.route(
    "POST", "/clips/<id:clip_id>/comments", tag="comments", body=cs.CommentCreate,
    replies={201: cs.CommentThread}, errors=(409,),
)  # fmt: skip
def add_comment(user: User, clip_id: int, body: cs.CommentCreate) -> Reply:
    """Start a thread on a verified clip, at a moment or a stretch of it.

    422 names the field: a time outside the clip (`at`, `until`), an empty or too long `body`.
    409 while the clip's file is not checked yet.
    """
    clip = access.visible_clip(clip_id, user)
    comment = comments.add_comment(clip, user, body.body, body.at, body.until)
    return Reply(201, thread_out(comment, user))


@api.route(
    "POST", "/clips/<id:clip_id>/comments/<id:comment_id>/replies", tag="comments",
    body=cs.ReplyCreate, replies={201: cs.CommentOut}, errors=(409,),
)  # fmt: skip
def reply_to_comment(user: User, clip_id: int, comment_id: int, body: cs.ReplyCreate) -> Reply:
    """Answer in a thread of the clip; 404 for a comment on a clip one may not see."""
    clip = access.visible_clip(clip_id, user)
    first = comments.visible_comment(clip, comment_id, user)
    return Reply(201, comment_out(comments.reply(first, user, body.body), user))
