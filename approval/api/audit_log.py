"""The decision log over the API, for admins: pages of events and a check of the hash chain."""

from __future__ import annotations

from approval import audit
from approval.models import Role

from . import audit_schemas as aus
from . import serialize
from .blueprint import api
from .problems import field_error
from .registry import Reply

ADMIN = (Role.ADMIN,)


@api.route("GET", "/audit", tag="audit", query=aus.AuditQuery, replies={200: aus.AuditPage},
           roles=ADMIN)  # fmt: skip
def list_events(query: aus.AuditQuery) -> Reply:
    """Events newest first, filtered by time, clip, actor or action, a page at a time."""
    selection = audit.filtered(
        since=query.since, clip_id=query.clip, actor_id=query.actor, action=query.action
    )
    page = audit.newest_first(selection, "api.audit", cursor=query.cursor, size=query.limit)
    return Reply(
        200,
        aus.AuditPage(
            items=[serialize.audit_event(event) for event in page.items],
            next=serialize.next_url(page.next),
        ),
    )


@api.route("GET", "/audit/verify", tag="audit", query=aus.AuditVerifyQuery,
           replies={200: aus.AuditVerification}, roles=ADMIN, errors=(422,))  # fmt: skip
def verify_log(query: aus.AuditVerifyQuery) -> Reply:
    """Walk the whole chain: ok with the count and head hash, or the first broken event.

    With expect_head, the chain must also still pass through that kept head; a value that is
    neither a checkpoint line nor a SHA-256 gets 422.
    """
    expect = None
    if query.expect_head is not None:
        try:
            expect = audit.parse_checkpoint(query.expect_head)
        except audit.BadCheckpoint as exc:
            raise field_error(422, "expect_head", str(exc)) from None
    result = audit.verify(expect=expect)
    outcome = result.as_dict()
    checkpoint = result.checkpoint()
    if checkpoint is not None:
        outcome["checkpoint"] = checkpoint.line()
    return Reply(200, aus.AuditVerification.model_validate(outcome))
