"""Share links: made only for approved clips, looked up by token hash, revoked at once.

A link serves only the bytes that were approved: before any media leaves, the stored object's
size and ETag are compared with what verification recorded.
"""

from __future__ import annotations

import logging
import re
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import contains_eager

from approval import audit
from approval.clock import utcnow
from approval.extensions import db
from approval.models import Clip, ClipStatus, ShareLink, User
from approval.ops import access
from approval.ops.errors import Gone, InvalidInput, NotFound, StateConflict
from approval.ops.served import Media, MediaChanged, ServedObject, served_object
from approval.ops.transitions import lock
from approval.passwords import check_secret, hash_secret
from approval.token_hash import hash_token

log = logging.getLogger(__name__)

#: 32 URL-safe characters: 192 bits from `secrets`.
TOKEN_BYTES = 24
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{20,64}")
MAX_PASSPHRASE_LENGTH = 200
MAX_LABEL_LENGTH = 100


def create_link(
    clip: Clip,
    actor: User,
    *,
    label: str = "",
    expires_at: datetime | None = None,
    passphrase: str | None = None,
    allow_download: bool = False,
) -> tuple[ShareLink, str]:
    """Make a link for an approved clip; returns it and its token, which is never stored."""
    if not access.can_see(clip, actor):
        raise NotFound("There is no such clip.")
    # Under the row lock, so an undo of the approval (ops/reopen.py) and a new link never both
    # commit: one of them sees the other.
    lock(clip)
    if clip.status != ClipStatus.APPROVED:
        raise StateConflict(
            f"Only approved clips can be shared; this clip is {clip.status.label}.", clip
        )
    now = utcnow()
    if expires_at is not None and expires_at <= now:
        raise InvalidInput("The expiry must be in the future.")
    if len(label) > MAX_LABEL_LENGTH:
        raise InvalidInput(f"The label can be at most {MAX_LABEL_LENGTH} characters.", "label")
    if passphrase is not None and len(passphrase) > MAX_PASSPHRASE_LENGTH:
        raise InvalidInput(
            f"The passphrase can be at most {MAX_PASSPHRASE_LENGTH} characters.", "passphrase"
        )
    token = secrets.token_urlsafe(TOKEN_BYTES)
    link = ShareLink(
        clip_id=clip.id,
        token_hash=hash_token(token),
        label=label.strip(),
        created_by_id=actor.id,
        created_at=now,
        expires_at=expires_at,
        allow_download=allow_download,
    )
    if passphrase:
        link.passphrase_hash = hash_secret(passphrase)
    db.session.add(link)
    db.session.flush()
    audit.record(
        "share_link.created",
        actor=actor,
        subject_type="share_link",
        subject_id=link.id,
        clip=clip,
        data={
            "label": link.label,
            "expires_at": expires_at.isoformat() if expires_at else None,
            "passphrase": bool(passphrase),
            "allow_download": allow_download,
        },
    )
    return link, token


def revoke_link(link_id: int, actor: User) -> ShareLink:
    """Revoke a link: every new request to it gets 410 from now on. Revoking twice is fine."""
    link = db.session.get(ShareLink, link_id)
    if link is None or not access.can_see(link.clip, actor):
        raise NotFound(f"There is no share link {link_id} that you manage.")
    result = db.session.execute(
        update(ShareLink)
        .where(ShareLink.id == link.id, ShareLink.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_by_id=actor.id)
        .execution_options(synchronize_session="fetch")
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return link  # already revoked: nothing more to do, nothing more to log
    audit.record(
        "share_link.revoked",
        actor=actor,
        subject_type="share_link",
        subject_id=link.id,
        clip=link.clip,
        data={"label": link.label},
    )
    return link


#: What the public side reads of a link's clip and tester: its state, what the page shows, and
#: the pinned files it may serve. Link, clip and tester have some 80 columns together, and
#: reading them all was most of a request's database time. Any other attribute still loads when
#: asked for, with a query of its own.
_PUBLIC_COLUMNS = (
    contains_eager(ShareLink.clip).load_only(
        Clip.status,
        Clip.tester_id,
        Clip.title,
        Clip.width,
        Clip.height,
        Clip.fps,
        Clip.original_filename,
        Clip.content_type,
        Clip.storage_key,
        Clip.size_bytes,
        Clip.etag,
        Clip.rendition_key,
        Clip.rendition_size,
        Clip.rendition_etag,
        Clip.poster_key,
        Clip.poster_size,
        Clip.poster_etag,
        Clip.signed_key,
        Clip.signed_size,
        Clip.signed_etag,
        Clip.object_versions,
    ),
    contains_eager(ShareLink.clip)
    .contains_eager(Clip.tester)
    .load_only(User.display_name, User.show_name_publicly)
    .lazyload(User.role_rows),
)

#: Built once: SQLAlchemy then works out the statement's cache key once, not on every request.
#: Plain joins filled in as the relationships (contains_eager) cost less to load than eager
#: joins SQLAlchemy aliases itself; every link has a clip and every clip a tester.
_LINK_BY_TOKEN = (
    select(ShareLink)
    .join(ShareLink.clip)
    .join(Clip.tester)
    .where(ShareLink.token_hash == bindparam("token_hash"))
    .options(*_PUBLIC_COLUMNS)
)


def find_link(token: str) -> ShareLink:
    """The live link for a token; NotFound for an unknown one, Gone for a dead one."""
    if not _TOKEN_SHAPE.fullmatch(token):
        raise NotFound("There is nothing here.")
    # One round trip: the link, its clip (whose status says whether the link is live) and the
    # clip's tester (the page may show their name), read on every request so that a revocation
    # or takedown applies to the very next one.
    link = db.session.scalar(_LINK_BY_TOKEN, {"token_hash": hash_token(token)})
    if link is None:
        raise NotFound("There is nothing here.")
    if not is_live(link):
        raise Gone("This clip is no longer available.")
    return link


def is_live(link: ShareLink) -> bool:
    return (
        link.revoked_at is None
        and (link.expires_at is None or link.expires_at > utcnow())
        and link.clip.status == ClipStatus.APPROVED
    )


def check_passphrase(link: ShareLink, passphrase: str) -> bool:
    if link.passphrase_hash is None:
        return True
    if len(passphrase) > MAX_PASSPHRASE_LENGTH:
        return False
    return check_secret(link.passphrase_hash, passphrase)


def approved_object(link: ShareLink, kind: Media = Media.PLAYBACK) -> ServedObject:
    """One of the clip's files, if it is still exactly what was approved; else Gone."""
    try:
        return served_object(link.clip, kind, context={"share_link": link.id})
    except MediaChanged:
        gone = Gone("This clip is no longer available.")
        gone.keeps_evidence = True  # the integrity event is committed with the refusal
        raise gone from None


def count_page_view(link: ShareLink) -> None:
    _increment(link, ShareLink.page_views)


def count_media_start(link: ShareLink) -> None:
    _increment(link, ShareLink.media_starts)


def _increment(link: ShareLink, counter: Any) -> None:
    """Add one in the database itself, so concurrent viewers never lose a count."""
    db.session.execute(
        update(ShareLink)
        .where(ShareLink.id == link.id)
        .values({counter: counter + 1})
        .execution_options(synchronize_session=False)
    )
