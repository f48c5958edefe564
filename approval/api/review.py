"""Reviewing over the API: claim, renew, release, decide; the review pages' workflow calls."""

from __future__ import annotations

from approval.clock import utcnow
from approval.models import Role, User, Verdict
from approval.ops import access, claims, reopen, workflow

from . import review_schemas as rs
from . import schemas as s
from . import serialize
from .blueprint import api
from .registry import Reply

REVIEWER = (Role.REVIEWER,)


@api.route(
    "POST", "/review/claim", tag="review", replies={200: s.ClipDetail, 204: None},
    roles=REVIEWER, errors=(409,),
)  # fmt: skip
def claim_next(user: User) -> Reply:
    """Claim the oldest clip nobody is reviewing (or the one already held); 204 when none wait."""
    clip = claims.claim_next(user)
    if clip is None:
        return Reply(204)
    return Reply(200, serialize.clip_detail(clip, user))


@api.route(
    "POST", "/review/<id:clip_id>/claim", tag="review", replies={200: s.ClipDetail},
    roles=REVIEWER, errors=(409,),
)  # fmt: skip
def claim_clip(user: User, clip_id: int) -> Reply:
    """Claim this particular clip (one claim at a time; never one's own)."""
    clip = access.visible_clip(clip_id, user)
    claims.claim(clip, user)
    return Reply(200, serialize.clip_detail(clip, user))


@api.route(
    "POST", "/review/<id:clip_id>/renew", tag="review", replies={200: rs.ClaimRenewed},
    roles=REVIEWER, errors=(409,),
)  # fmt: skip
def renew_claim(user: User, clip_id: int) -> Reply:
    """Extend one's live claim on the clip, as the open review page does."""
    clip = access.visible_clip(clip_id, user)
    expires = claims.renew_claim(clip, user)
    return Reply(200, rs.ClaimRenewed(clip=clip.id, expires_at=expires))


@api.route(
    "POST", "/review/<id:clip_id>/release", tag="review", replies={200: s.ClipDetail},
    roles=REVIEWER, errors=(409,),
)  # fmt: skip
def release_clip(user: User, clip_id: int) -> Reply:
    """Give a claimed clip back to the queue without deciding."""
    clip = access.visible_clip(clip_id, user)
    claims.release(clip, user)
    return Reply(200, serialize.clip_detail(clip, user))


@api.route(
    "POST", "/clips/<id:clip_id>/decision", tag="review", body=rs.DecisionCreate,
    replies={200: rs.DecisionResult}, roles=REVIEWER, errors=(409,),
)  # fmt: skip
def decide(user: User, clip_id: int, body: rs.DecisionCreate) -> Reply:
    """Approve or reject a clip one holds a live claim on.

    409 when the clip was decided meanwhile (the reply names the decision that won) or the
    claim lapsed. With claim_next, the next clip is claimed in the same step.
    """
    clip = access.visible_clip(clip_id, user)
    verdict = Verdict(body.decision)
    options = {
        "category": body.category,
        "reason": body.reason,
        "timecode": body.timecode,
        "comment_ids": body.comment_ids,
    }
    upcoming = None
    if body.claim_next:
        decision, upcoming = workflow.decide_and_claim_next(clip, user, verdict, **options)
    else:
        decision = workflow.decide(clip, user, verdict, **options)
    result = rs.DecisionResult(
        clip=serialize.clip_detail(clip, user),
        decision=serialize.decision_out(decision, user),
        next=serialize.clip_detail(upcoming, user) if upcoming is not None else None,
    )
    return Reply(200, result)


@api.route(
    "GET", "/review/decisions", tag="review", query=rs.DecisionsQuery,
    replies={200: rs.MyDecisionPage}, roles=REVIEWER,
)  # fmt: skip
def my_decisions(user: User, query: rs.DecisionsQuery) -> Reply:
    """One's own verdicts, newest first (reopened ones too), with until when each can be undone."""
    now = utcnow()
    page = reopen.mine(user, cursor=query.cursor, size=query.limit)
    items = [
        rs.MyDecision(
            clip=serialize.clip_out(decision.clip, user),
            decision=serialize.decision_out(decision, user),
            reopened_at=decision.reopened_at,
            undo_until=reopen.offer(decision, now),
        )
        for decision in page.items
    ]
    return Reply(200, rs.MyDecisionPage(items=items, next=serialize.next_url(page.next)))


@api.route(
    "POST", "/review/clips/<id:clip_id>/reopen", tag="review", replies={200: rs.Reopened},
    roles=REVIEWER, errors=(409,),
)  # fmt: skip
def reopen_decision(user: User, clip_id: int) -> Reply:
    """Take back one's own verdict on a clip within the undo window (10 minutes by default).

    The verdict stays on record but no longer counts; a clip it decided goes back to
    `waiting`. 409 after the window, once a share link exists, or when another reviewer has
    decided since; 404 when the caller has no standing verdict on the clip.
    """
    clip = access.visible_clip(clip_id, user)
    decision = reopen.reopen(clip, user)
    return Reply(
        200,
        rs.Reopened(
            clip=serialize.clip_detail(clip, user), decision=serialize.decision_out(decision, user)
        ),
    )
