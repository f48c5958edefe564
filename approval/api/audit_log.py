"""The decision log over the API, for admins: pages of events and a check of the hash chain."""

from __future__ import annotations

from approval import audit
from approval.models import Role

from . import pagination, serialize
from . import review_schemas as rs
from .blueprint import api
from .registry import Reply

ADMIN = (Role.ADMIN,)


@api.route("GET", "/audit", tag="audit", query=rs.AuditQuery, replies={200: rs.AuditPage},
           roles=ADMIN)  # fmt: skip
def list_events(query: rs.AuditQuery) -> Reply:
    """Events newest first, filtered by time, clip, actor or action, a page at a time."""
    scope = "audit"
    key = pagination.decode(scope, query.cursor)
    selection = audit.filtered(
        since=query.since, clip_id=query.clip, actor_id=query.actor, action=query.action
    )
    before = int(key.get("before", 0)) if key is not None else None
    page = audit.newest_first(selection, before=before, size=query.limit)
    following = {"before": page.older} if page.older is not None else None
    return Reply(
        200,
        rs.AuditPage(
            items=[serialize.audit_event(event) for event in page.events],
            next=pagination.next_link(scope, following),
        ),
    )


@api.route("GET", "/audit/verify", tag="audit", replies={200: rs.AuditVerification}, roles=ADMIN)
def verify_log() -> Reply:
    """Walk the whole chain: ok with the count and head hash, or the first broken event."""
    outcome = audit.verify().as_dict()
    return Reply(200, rs.AuditVerification.model_validate(outcome))
