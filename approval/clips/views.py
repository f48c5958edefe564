"""Pages for a tester's own clips."""

from __future__ import annotations

from flask import render_template
from flask_login import current_user
from sqlalchemy import select

from approval.extensions import db
from approval.models import Clip, Role
from approval.web import roles_required

from . import bp


@bp.get("/")
@roles_required(Role.TESTER)
def mine() -> str:
    """The tester's own clips, newest first."""
    clips = db.session.scalars(
        select(Clip).where(Clip.tester_id == current_user.id).order_by(Clip.id.desc()).limit(50)
    ).all()
    return render_template("clips/mine.html", clips=clips)
