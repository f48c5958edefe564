"""The review queue."""

from __future__ import annotations

from flask import render_template
from sqlalchemy import func, select

from approval.extensions import db
from approval.models import Clip, ClipStatus, Role
from approval.web import roles_required

from . import bp


@bp.get("/")
@roles_required(Role.REVIEWER)
def queue() -> str:
    """Clips waiting for review, oldest first."""
    waiting = db.session.scalar(
        select(func.count()).select_from(Clip).where(Clip.status == ClipStatus.WAITING)
    )
    return render_template("review/queue.html", waiting=waiting)
