"""The review queue and the review page: claim, decide, release.

Each POST view validates its form, calls one workflow operation, commits once and redirects;
a refused step raises a workflow error, which errors.py turns into a page after rolling back.
CSRFProtect checks the token of every POST before a view runs (a bad one gets 400), so the
button-only actions send the token and have nothing else to validate.
"""

from __future__ import annotations

from flask import Response, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response as BaseResponse

from approval.clock import utcnow
from approval.config import rejection_categories
from approval.extensions import db
from approval.models import VERIFIED_STATES, Clip, ClipStatus, Role, Verdict
from approval.ops import claims, comments, known_bytes, people, reopen, workflow
from approval.ops import queue as reads
from approval.web import roles_required

from . import bp
from .forms import QueueFilterForm, RejectForm

#: How often the open review page renews its lease; a lost request or two does no harm.
RENEW_EVERY_SECONDS = 60
EMPTY_QUEUE = "No clips waiting — nice work."
EMPTY_FILTERED = "No more waiting clips match these filters."


@bp.get("/")
@roles_required(Role.REVIEWER)
def queue() -> str:
    """Clips waiting for review, oldest first, a keyset page at a time, with filters."""
    now = utcnow()
    form = QueueFilterForm(formdata=request.args, testers=people.testers())
    filters = form.filters() if form.validate() else reads.Filters()
    page = reads.page(filters, now, cursor=request.args.get("cursor"))
    return render_template(
        "review/queue.html",
        form=form,
        filters=filters,
        page=page,
        counts=reads.counts(now),
        matching=reads.matching(filters, now) if filters.active else None,
        being_reviewed=reads.being_reviewed(now),
        judged=reads.judged_by(current_user, [clip.id for clip in page.items]),
        held=claims.current_claim(current_user),
        now=now,
    )


@bp.get("/counts")
@roles_required(Role.REVIEWER)
def counts() -> Response:
    """The queue's live numbers as JSON, polled by the queue page."""
    now = utcnow()
    response = jsonify(reads.counts(now).as_json(now))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/next", endpoint="next")
@roles_required(Role.REVIEWER)
def review_next() -> BaseResponse:
    """Claim the oldest clip nobody is reviewing (among the queue's filters) and open it."""
    filters = _filters()
    clip = claims.claim_next(current_user, filters)
    return _open(clip, filters)


def _filters() -> reads.Filters:
    """The queue's filters as the address carries them from page to page; bad ones are dropped.

    The queue page shows what is wrong with a filter; pages reached from it only keep good ones.
    """
    form = QueueFilterForm(formdata=request.args, testers=people.testers())
    return form.filters() if form.validate() else reads.Filters()


def _open(clip: Clip | None, filters: reads.Filters) -> BaseResponse:
    if clip is None:
        flash(EMPTY_QUEUE if not filters.active else EMPTY_FILTERED, "success")
        return redirect(url_for("review.queue", **filters.as_args()))
    return redirect(url_for("review.clip", clip_id=clip.id, **filters.as_args()))


@bp.get("/<int:clip_id>", endpoint="clip")
@roles_required(Role.REVIEWER)
def review_clip(clip_id: int) -> str:
    """One clip to review: player, facts, earlier versions, and the decision forms."""
    clip = db.get_or_404(Clip, clip_id)
    return _render_clip(clip, _reject_form(clip))


def _reject_form(clip: Clip) -> RejectForm:
    return RejectForm(duration=clip.duration_seconds, comments=comments.threads(clip))


def _render_clip(clip: Clip, reject_form: RejectForm) -> str:
    now = utcnow()
    filters = _filters()
    mine = clip.claimed_by_id == current_user.id and clip.claim_is_live(now)
    previous, following = reads.neighbours(clip, now, filters)
    upcoming = claims.next_claimable(current_user, besides=clip)
    own = reopen.standing(clip, current_user)
    latest = reopen.latest_offer(current_user, now)
    return render_template(
        "review/clip.html",
        clip=clip,
        mine=mine,
        held=None if mine else claims.current_claim(current_user),
        claimable=clip.status in VERIFIED_STATES and claims.can_claim(clip, current_user, now),
        previous=previous,
        following=following,
        filters=filters.as_args(),
        upcoming=upcoming,
        versions=clip.earlier_versions(),
        earlier_copies=known_bytes.earlier_copies(clip, current_user),
        reject_form=reject_form,
        categories=rejection_categories(),
        # The Undo buttons: for this clip's own verdict, and for the one just given elsewhere.
        undo_here=reopen.offer(own, now) if own is not None else None,
        undo_latest=latest if latest is not None and latest[0].clip_id != clip.id else None,
        renew_seconds=max(
            5, min(RENEW_EVERY_SECONDS, current_app.config["CLAIM_LEASE_SECONDS"] // 3)
        ),
        now=now,
    )


@bp.post("/<int:clip_id>/claim")
@roles_required(Role.REVIEWER)
def claim(clip_id: int) -> BaseResponse:
    """Start reviewing this particular clip."""
    clip = db.get_or_404(Clip, clip_id)
    claims.claim(clip, current_user)
    return redirect(url_for("review.clip", clip_id=clip.id, **_filters().as_args()))


@bp.post("/<int:clip_id>/renew")
@roles_required(Role.REVIEWER)
def renew(clip_id: int) -> Response:
    """Extend the lease while the review page stays open (called by review.js)."""
    clip = db.get_or_404(Clip, clip_id)
    expires = claims.renew_claim(clip, current_user)
    return jsonify(expires_at=expires.isoformat())


@bp.post("/<int:clip_id>/release")
@roles_required(Role.REVIEWER)
def release(clip_id: int) -> BaseResponse:
    """Give the clip back to the queue without deciding."""
    clip = db.get_or_404(Clip, clip_id)
    claims.release(clip, current_user)
    flash(f"“{clip.title}” is back in the queue.", "success")
    return redirect(url_for("review.queue", **_filters().as_args()))


@bp.post("/<int:clip_id>/approve")
@roles_required(Role.REVIEWER)
def approve(clip_id: int) -> BaseResponse:
    """Approve the clip, then open the next one."""
    clip = db.get_or_404(Clip, clip_id)
    filters = _filters()
    _, upcoming = workflow.decide_and_claim_next(
        clip, current_user, Verdict.APPROVE, filters=filters, played_seconds=_played_seconds()
    )
    flash(f"“{clip.title}”: {_outcome(clip)}.", "success")
    return _open(upcoming, filters)


@bp.post("/<int:clip_id>/reject")
@roles_required(Role.REVIEWER)
def reject(clip_id: int) -> BaseResponse | tuple[str, int]:
    """Reject the clip with a category and a reason, then open the next one."""
    clip = db.get_or_404(Clip, clip_id)
    form = _reject_form(clip)
    if not form.validate_on_submit():
        return _render_clip(clip, form), 422
    filters = _filters()
    _, upcoming = workflow.decide_and_claim_next(
        clip,
        current_user,
        Verdict.REJECT,
        filters=filters,
        category=form.category.data,
        reason=form.reason.data,
        timecode=form.timecode.data,
        played_seconds=_played_seconds(),
        comment_ids=form.comment_ids.data or [],
    )
    flash(f"“{clip.title}”: rejected.", "success")
    return _open(upcoming, filters)


def _played_seconds() -> float | None:
    """How much of the clip the page's player played, as the page reported it (or None)."""
    raw = request.form.get("played_seconds", "").strip()
    if not raw:
        return None  # no JavaScript, or nothing reported
    try:
        return float(raw)
    except ValueError:
        raise workflow.InvalidInput("The played time must be a number of seconds from 0.") from None


def _outcome(clip: Clip) -> str:
    if clip.status == ClipStatus.APPROVED:
        return "approved"
    required = current_app.config["APPROVALS_REQUIRED"]
    return f"your approval is recorded; it needs {required} approvals from different reviewers"


@bp.get("/decisions")
@roles_required(Role.REVIEWER)
def decisions() -> str:
    """My decisions: the reviewer's own verdicts, newest first, with Undo while it is open."""
    now = utcnow()
    page = reopen.mine(current_user, cursor=request.args.get("cursor"))
    return render_template(
        "review/decisions.html",
        page=page,
        offers={decision.id: reopen.offer(decision, now) for decision in page.items},
        categories=rejection_categories(),
        now=now,
    )


@bp.post("/<int:clip_id>/reopen")
@roles_required(Role.REVIEWER)
def reopen_decision(clip_id: int) -> BaseResponse:
    """Take back one's own verdict within the undo window, and review the clip again."""
    clip = db.get_or_404(Clip, clip_id)
    decision = reopen.reopen(clip, current_user, reclaim=True)
    verdict = "approval" if decision.verdict == Verdict.APPROVE else "rejection"
    again = " The clip is yours to review again." if clip.claimed_by_id == current_user.id else ""
    flash(f"“{clip.title}”: your {verdict} is undone.{again}", "success")
    return redirect(url_for("review.clip", clip_id=clip.id, **_filters().as_args()))
