"""The inbox: one's notifications, newest first, marking them read, and the digest opt-in."""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Response as BaseResponse

from approval.forms import ActionForm
from approval.models import Notification
from approval.ops import notifications
from approval.ops.errors import Refused
from approval.web import show_refusal

from . import bp
from .forms import DigestForm

log = logging.getLogger(__name__)


@bp.get("/")
@login_required
def index() -> str:
    """One's notifications, newest first, with the unread ones marked."""
    page = notifications.recent(current_user, cursor=request.args.get("cursor"))
    return render_template(
        "inbox/index.html",
        page=page,
        kinds=notifications.KINDS,
        link_path=_link_path,
        action_form=ActionForm(),
        digest_form=DigestForm(wants_queue_digest=current_user.wants_queue_digest),
        mail_on=bool(current_app.config.get("SMTP_URL")),
    )


@bp.post("/<int:notification_id>/read")
@login_required
def mark_read(notification_id: int) -> BaseResponse:
    """Mark one notification read."""
    if ActionForm().validate_on_submit():
        notifications.mark_read(current_user, notification_id)
    return redirect(url_for("inbox.index"))


@bp.post("/read-all")
@login_required
def mark_all_read() -> BaseResponse:
    """Mark every notification read."""
    if ActionForm().validate_on_submit():
        count = notifications.mark_read(current_user)
        flash(
            f"{count} notification{'s' if count != 1 else ''} marked as read."
            if count
            else "Nothing was unread.",
            "success",
        )
    return redirect(url_for("inbox.index"))


@bp.post("/preferences")
@login_required
def preferences() -> BaseResponse:
    """Opt in to or out of the reviewers' daily queue digest."""
    form = DigestForm()
    if form.validate_on_submit():
        wanted = bool(form.wants_queue_digest.data)
        try:
            notifications.set_digest(current_user, wanted)
        except Refused as exc:
            show_refusal(exc)
        else:
            flash(
                "You will get the daily queue digest." if wanted else "No more queue digests.",
                "success",
            )
    return redirect(url_for("inbox.index"))


@bp.app_context_processor
def _unread() -> dict[str, Any]:
    """The header's unread count and the audit page's address, on every page."""
    count = 0
    if current_user and current_user.is_authenticated:
        try:
            count = notifications.unread_count(current_user)
        except SQLAlchemyError:  # an error page after a failed transaction must still render
            log.warning("unread count unavailable", exc_info=True)
    return {"unread_count": count}


def _link_path(notification: Notification) -> str | None:
    """Where a notification points in the app: the clip (at its timecode) or the queue."""
    pointed = notifications.target(notification)
    if pointed is None:
        return None
    return url_for(pointed.endpoint, **pointed.values) + pointed.anchor
