"""Two versions of a clip side by side, played in step (the players are kept in sync by
static/js/compare.js)."""

from __future__ import annotations

from flask import render_template
from flask_login import current_user, login_required

from approval.inputs import query_id
from approval.models import VERIFIED_STATES
from approval.ops import versions

from . import bp


@bp.get("/<int:clip_id>/compare")
@login_required
def compare(clip_id: int) -> str:
    """The earlier version on the left leads; the later one follows its play, pause and seeks."""
    earlier, later = versions.comparable_pair(clip_id, query_id("with"), current_user)
    return render_template(
        "clips/compare.html",
        clip_id=clip_id,
        lead=earlier,
        follow=later,
        playable=VERIFIED_STATES,
    )
