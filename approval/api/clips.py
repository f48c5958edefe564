"""Clips over the API: start an upload, get a ticket, report it done, list, read, withdraw,
dismiss a failed one.

The same operations as the upload pages (uploads.create, uploads.ticket_for, uploads.complete,
workflow.withdraw); a view validates, calls one of them, commits once and replies.
"""

from __future__ import annotations

from approval.models import ClipStatus, Role, User
from approval.ops import access, clip_search, dismissals, uploads, workflow
from approval.rate_limits import upload_tickets
from approval.storage import UploadTicket
from approval.unit_of_work import AfterCommit
from approval.web import app_put_url, site_url

from . import schemas as s
from . import serialize
from .blueprint import api
from .problems import ApiError
from .registry import Reply

TESTER = (Role.TESTER,)


def _ticket_out(ticket: UploadTicket) -> s.UploadTicket:
    return s.UploadTicket.model_validate(ticket, from_attributes=True)


@api.route(
    "POST", "/clips", tag="clips", body=s.ClipCreate, replies={201: s.ClipCreated},
    roles=TESTER, errors=(409,), limits=(upload_tickets,),
)  # fmt: skip
def create_clip(user: User, body: s.ClipCreate) -> Reply:
    """Start an upload: the clip's details in, an upload ticket out.

    Send the file's bytes as the ticket says (a presigned S3 POST or PUT, or a PUT to this
    app), then POST to complete_url. Declaring `sha256` gets a PUT whose signature pins the
    size and digest, so S3 itself refuses any other bytes.
    """
    clip = uploads.create(
        user,
        title=body.title,
        filename=body.filename,
        size=body.size,
        prompt=body.prompt,
        generator=body.generator,
        generator_version=body.generator_version,
        notes=body.notes,
        content_type=body.content_type,
        previous_id=body.previous,
    )
    ticket = uploads.ticket_for(clip, app_put_url=app_put_url, size=body.size, sha256=body.sha256)
    created = s.ClipCreated(
        id=clip.id,
        status=clip.status,
        url=serialize.clip_url(clip.id),
        complete_url=site_url("api.complete_clip", clip_id=clip.id),
        upload=_ticket_out(ticket),
    )
    return Reply(201, created)


@api.route(
    "POST", "/clips/<id:clip_id>/ticket", tag="clips", body=s.TicketRequest,
    replies={200: s.UploadTicket}, roles=TESTER, errors=(409,), limits=(upload_tickets,),
)  # fmt: skip
def clip_ticket(user: User, clip_id: int, body: s.TicketRequest) -> Reply:
    """A fresh upload ticket for a retry, while the clip is still uploading."""
    clip = access.own_clip(clip_id, user)
    return Reply(
        200,
        _ticket_out(
            uploads.ticket_for(clip, app_put_url=app_put_url, size=body.size, sha256=body.sha256)
        ),
    )


@api.route(
    "POST", "/clips/<id:clip_id>/complete", tag="clips", replies={202: s.ClipDetail},
    roles=TESTER, errors=(422,),
)  # fmt: skip
def complete_clip(user: User, clip_id: int) -> AfterCommit:
    """Report the upload done: 202 at once, with status `verifying`, while a job checks it.

    Poll the clip's URL: it moves to `waiting` (ready for review) or `failed` with the reason.
    Asking again changes nothing and gives the same answer; asking after the file was refused
    gives 422 with the reason.
    """
    clip = access.own_clip(clip_id, user)
    uploads.complete(clip, user)

    def answer() -> Reply:
        if clip.status == ClipStatus.FAILED:
            raise ApiError(
                422,
                f"The clip was not accepted: {clip.failure_reason}.",
                title="Upload refused",
                clip=clip.id,
                current_status=clip.status.value,
                failure_reason=clip.failure_reason,
            )
        return Reply(202, serialize.clip_detail(clip, user))

    return AfterCommit(answer)


@api.route("GET", "/clips", tag="clips", query=s.ClipQuery, replies={200: s.ClipPage})
def list_clips(user: User, query: s.ClipQuery) -> Reply:
    """Clips, newest first: a tester's own; reviewers and admins see every clip.

    Search with `q` (title or prompt words), `tester_name`, `status` and `sha256` (a prefix);
    they combine, and the `next` link keeps them.
    """
    search = clip_search.parse(
        q=query.q or "",
        tester=query.tester_name or "",
        status=query.status.value if query.status else "",
        sha256=query.sha256 or "",
        tester_id=query.tester,
    )
    page = clip_search.page(
        search, viewer=user, scope="api.clips", cursor=query.cursor, size=query.limit
    )
    return Reply(
        200,
        s.ClipPage(
            items=[serialize.clip_out(clip, user) for clip in page.items],
            next=serialize.next_url(page.next),
        ),
    )


@api.route("GET", "/clips/<id:clip_id>", tag="clips", replies={200: s.ClipDetail})
def get_clip(user: User, clip_id: int) -> Reply:
    """One clip: status, media facts, decisions, and the share links the caller may manage."""
    return Reply(200, serialize.clip_detail(access.visible_clip(clip_id, user), user))


@api.route(
    "POST", "/clips/<id:clip_id>/withdraw", tag="clips", replies={200: s.ClipDetail},
    roles=TESTER, errors=(409,),
)  # fmt: skip
def withdraw_clip(user: User, clip_id: int) -> Reply:
    """Withdraw one's own clip while it still waits for review."""
    clip = access.own_clip(clip_id, user)
    workflow.withdraw(clip, user)
    return Reply(200, serialize.clip_detail(clip, user))


@api.route(
    "POST", "/clips/<id:clip_id>/dismiss", tag="clips", replies={200: s.ClipDetail},
    roles=TESTER, errors=(409,),
)  # fmt: skip
def dismiss_clip(user: User, clip_id: int) -> Reply:
    """Put one's own failed upload out of sight in My clips; 409 for any other clip.

    The clip and its history stay; `dismissed_at` says when it was put away.
    """
    clip = access.own_clip(clip_id, user)
    dismissals.dismiss(clip, user)
    return Reply(200, serialize.clip_detail(clip, user))


@api.route("GET", "/me", tag="account", replies={200: s.Me})
def me(user: User) -> Reply:
    """Who the token or session belongs to, and their roles now."""
    return Reply(200, serialize.me(user))
