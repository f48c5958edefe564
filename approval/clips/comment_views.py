"""Comment threads on a clip's pages: the panel both pages include, and its two POST forms.

The clip page and the review page include templates/clips/_comments.html, which asks
`comment_panel(clip)` for its threads and forms. A comment or reply posts here, commits once and
redirects back to the page it came from, at the new comment; a refused one shows that page again
(422) with the message beside the field and the input kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import g, redirect, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response as BaseResponse
from wtforms import FloatField, TextAreaField
from wtforms.validators import Optional

from approval.models import COMMENT_MAX_CHARS, VERIFIED_STATES, Clip, Comment, Role
from approval.ops import access, comments
from approval.ops.errors import Refused
from approval.web import show_refusal

from . import bp

BODY_HINT = f"Up to {COMMENT_MAX_CHARS:,} characters. The clip's tester and its reviewers read it."
NOT_A_NUMBER = "Give a number of seconds, e.g. 1.5."


class SecondsField(FloatField):
    """Seconds into the clip, refused in words that say what to type."""

    def process_formdata(self, valuelist: list[Any]) -> None:
        try:
            super().process_formdata(valuelist)
        except ValueError:
            raise ValueError(NOT_A_NUMBER) from None


class CommentForm(FlaskForm):
    """A new thread: words, and optionally where in the clip (at, or at to until)."""

    class Meta:
        csrf = False  # CSRFProtect checks every POST; the page sends the token itself

    body = TextAreaField("Comment", description=BODY_HINT, render_kw={"rows": 3})
    at = SecondsField(
        "At (seconds)",
        validators=[Optional()],
        description="Optional: the moment the comment is about.",
    )
    until = SecondsField(
        "Until (seconds)",
        validators=[Optional()],
        description="Optional: where the stretch ends, after “at”.",
    )

    def __init__(self, *args: Any, duration: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, prefix="comment", **kwargs)
        bounds = {"type": "number", "step": "0.01", "min": "0", "inputmode": "decimal"}
        if duration is not None:
            bounds["max"] = f"{duration:g}"
        for name in ("at", "until"):
            self[name].render_kw = bounds


class ReplyForm(FlaskForm):
    """An answer in one thread; its fields are prefixed with the thread, one form per thread."""

    class Meta:
        csrf = False  # CSRFProtect checks every POST; the page sends the token itself

    body = TextAreaField("Reply", description=BODY_HINT, render_kw={"rows": 2})

    def __init__(self, *args: Any, thread_id: int, **kwargs: Any) -> None:
        super().__init__(*args, prefix=f"reply-{thread_id}", **kwargs)


@dataclass
class Failed:
    """The form a refused POST brought, so the page shown again keeps its input and errors."""

    thread_id: int | None
    form: FlaskForm


@dataclass
class Panel:
    """What the comments include needs: threads, and a form for each place one can write."""

    clip: Clip
    threads: list[Comment]
    may_comment: bool
    new_form: CommentForm
    reply_forms: dict[int, ReplyForm] = field(default_factory=dict)

    @property
    def shown(self) -> bool:
        return self.may_comment or bool(self.threads)


def comment_panel(clip: Clip) -> Panel:
    """The threads of the clip and the forms, with a refused form's input where it belongs."""
    failed: Failed | None = g.get("comment_failed")
    threads = comments.threads(clip)
    new_form = CommentForm(formdata=None, duration=clip.duration_seconds)
    if failed is not None and failed.thread_id is None:
        new_form = failed.form  # type: ignore[assignment]
    reply_forms = {}
    for thread in threads:
        reply_forms[thread.id] = (
            failed.form  # type: ignore[assignment]
            if failed is not None and failed.thread_id == thread.id
            else ReplyForm(formdata=None, thread_id=thread.id)
        )
    return Panel(
        clip=clip,
        threads=threads,
        may_comment=clip.status in VERIFIED_STATES and access.can_see(clip, current_user),
        new_form=new_form,
        reply_forms=reply_forms,
    )


@bp.app_context_processor
def _panel_helper() -> dict[str, Any]:
    return {"comment_panel": comment_panel}


def _back_to_review() -> bool:
    """Whether the form came from the review page (and the poster may open it)."""
    return request.form.get("back") == "review" and current_user.has_role(Role.REVIEWER)


def _back(clip: Clip, comment: Comment) -> BaseResponse:
    endpoint = "review.clip" if _back_to_review() else "clips.detail"
    return redirect(url_for(endpoint, clip_id=clip.id, _anchor=f"comment-{comment.id}"))


def _again(clip: Clip, failed: Failed, status: int) -> tuple[str, int]:
    """The page the form came from, showing the refused form as it was sent."""
    # Imported here: both page modules register on their blueprints when first imported.
    from approval.review.views import review_clip

    from .views import detail

    g.comment_failed = failed
    page = review_clip(clip.id) if _back_to_review() else detail(clip.id)
    return page, status


@bp.post("/<int:clip_id>/comments")
@login_required
def add_comment(clip_id: int) -> BaseResponse | tuple[str, int]:
    """Start a thread on the clip, at a moment or a stretch of it."""
    clip = access.visible_clip(clip_id, current_user)
    form = CommentForm(duration=clip.duration_seconds)
    if not form.validate():
        return _again(clip, Failed(None, form), 422)
    try:
        comment = comments.add_comment(
            clip, current_user, form.body.data or "", form.at.data, form.until.data
        )
    except Refused as exc:
        status = show_refusal(exc, form, default_field="body")
        return _again(clip, Failed(None, form), status)
    return _back(clip, comment)


@bp.post("/<int:clip_id>/comments/<int:comment_id>/replies")
@login_required
def reply_to_comment(clip_id: int, comment_id: int) -> BaseResponse | tuple[str, int]:
    """Answer in a thread of the clip."""
    clip = access.visible_clip(clip_id, current_user)
    first = comments.visible_comment(clip, comment_id, current_user)
    form = ReplyForm(thread_id=comment_id)
    try:
        answer = comments.reply(first, current_user, form.body.data or "")
    except Refused as exc:
        status = show_refusal(exc, form, default_field="body")
        return _again(clip, Failed(first.thread_id or first.id, form), status)
    return _back(clip, answer)
