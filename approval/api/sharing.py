"""Share links over the API: make one for an approved clip (its URL shown once), revoke one."""

from __future__ import annotations

from datetime import timedelta

from approval.clock import utcnow
from approval.models import User
from approval.ops import access, sharing
from approval.web import site_url

from . import sharing_schemas as ss
from .blueprint import api
from .registry import Reply


@api.route(
    "POST", "/clips/<id:clip_id>/share-links", tag="sharing", body=ss.ShareLinkCreate,
    replies={201: ss.ShareLinkCreated}, errors=(409,),
)  # fmt: skip
def create_share_link(user: User, clip_id: int, body: ss.ShareLinkCreate) -> Reply:
    """Make a public link to an approved clip; its URL appears only in this reply."""
    clip = access.visible_clip(clip_id, user)
    expires_at = utcnow() + timedelta(seconds=body.expires_in) if body.expires_in else None
    link, token = sharing.create_link(
        clip,
        user,
        label=body.label,
        expires_at=expires_at,
        passphrase=body.passphrase,
        allow_download=body.allow_download,
    )
    created = ss.ShareLinkCreated(
        id=link.id,
        url=site_url("sharing.page", token=token),
        expires_at=link.expires_at,
        label=link.label,
        clip=clip.id,
        allow_download=link.allow_download,
        has_passphrase=link.passphrase_hash is not None,
    )
    return Reply(201, created)


@api.route("DELETE", "/share-links/<id:link_id>", tag="sharing", replies={204: None})
def revoke_share_link(user: User, link_id: int) -> Reply:
    """Revoke a link: every new request to it gets 410 from now on. Revoking twice is fine."""
    sharing.revoke_link(link_id, user)
    return Reply(204)
