"""Share links: made only for approved clips, looked up by token hash, revoked at once.

A link serves only the bytes that were approved: before any media leaves, the stored object's
size and ETag are compared with what verification recorded.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update

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


@dataclass(frozen=True, slots=True)
class PublicClip:
    """A shared clip as the public side reads it: its state, what the page shows and its pinned
    files, which ops/served.py checks as it checks a Clip's. Read afresh on every request."""

    id: int
    status: ClipStatus
    title: str
    width: int | None
    height: int | None
    fps: float | None
    original_filename: str
    content_type: str
    storage_key: str
    size_bytes: int | None
    etag: str | None
    rendition_key: str | None
    rendition_size: int | None
    rendition_etag: str | None
    poster_key: str | None
    poster_size: int | None
    poster_etag: str | None
    signed_key: str | None
    signed_size: int | None
    signed_etag: str | None
    object_versions: str | None
    #: The tester's name where they chose to show it publicly, else None.
    by: str | None

    #: Clip's own rule, not a copy of it: it reads only the columns above.
    playback_content_type = property(Clip.playback_content_type.fget)


@dataclass(frozen=True, slots=True)
class PublicLink:
    """A share link and its clip as the public side reads them, columns only (see find_link)."""

    id: int
    clip_id: int
    expires_at: datetime | None
    revoked_at: datetime | None
    passphrase_hash: str | None
    allow_download: bool
    clip: PublicClip


_LINK_FIELDS = ("id", "clip_id", "expires_at", "revoked_at", "passphrase_hash", "allow_download")
#: Every PublicClip field but `by`, each a Clip column of the same name.
_CLIP_FIELDS = tuple(f.name for f in fields(PublicClip) if f.name != "by")

#: Link, clip and tester in one round trip, as plain columns: building three mapped objects
#: (identity map, loader state, lazy attributes) from the same row was most of a share
#: request's time in SQLAlchemy. Built once, so SQLAlchemy works out its cache key once. Plain
#: joins: every link has a clip and every clip a tester.
_LINK_BY_TOKEN = (
    select(
        *(getattr(ShareLink, name) for name in _LINK_FIELDS),
        *(getattr(Clip, name) for name in _CLIP_FIELDS),
        User.display_name,
        User.show_name_publicly,
    )
    .join(ShareLink.clip)
    .join(Clip.tester)
    .where(ShareLink.token_hash == bindparam("token_hash"))
)


def find_link(token: str) -> PublicLink:
    """The live link for a token; NotFound for an unknown one, Gone for a dead one."""
    if not _TOKEN_SHAPE.fullmatch(token):
        raise NotFound("There is nothing here.")
    # Read on every request, so that a revocation, an expiry or a takedown applies to the very
    # next one. On a connection of its own in autocommit, outside the request's transaction:
    # the statement sees what is committed when it runs, as the transaction's first statement
    # would, without a BEGIN and a COMMIT around it: a request that only reads (nearly every
    # one: counts and recorded versions are written once) sends the SELECT alone, after the
    # pool's pre-ping.
    # What a request does write (ops/served.py, the counters below) goes in its transaction.
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        row = conn.execute(_LINK_BY_TOKEN, {"token_hash": hash_token(token)}).one_or_none()
    if row is None:
        raise NotFound("There is nothing here.")
    values = tuple(row)
    link_end = len(_LINK_FIELDS)
    clip_end = link_end + len(_CLIP_FIELDS)
    display_name, show_name = values[clip_end:]
    clip = PublicClip(*values[link_end:clip_end], by=display_name if show_name else None)
    link = PublicLink(*values[:link_end], clip=clip)
    if not is_live(link):
        raise Gone("This clip is no longer available.")
    return link


def is_live(link: ShareLink | PublicLink) -> bool:
    """Whether a link serves anything: neither revoked nor expired, and its clip approved."""
    return (
        link.revoked_at is None
        and (link.expires_at is None or link.expires_at > utcnow())
        and link.clip.status == ClipStatus.APPROVED
    )


def check_passphrase(link: PublicLink, passphrase: str) -> bool:
    if link.passphrase_hash is None:
        return True
    if len(passphrase) > MAX_PASSPHRASE_LENGTH:
        return False
    return check_secret(link.passphrase_hash, passphrase)


def approved_object(link: PublicLink, kind: Media = Media.PLAYBACK) -> ServedObject:
    """One of the clip's files, if it is still exactly what was approved; else Gone."""
    try:
        return served_object(link.clip, kind, context={"share_link": link.id})
    except MediaChanged:
        gone = Gone("This clip is no longer available.")
        gone.keeps_evidence = True  # the integrity event is committed with the refusal
        raise gone from None


def count_page_view(link: PublicLink) -> None:
    _increment(link, ShareLink.page_views)


def count_media_start(link: PublicLink) -> None:
    _increment(link, ShareLink.media_starts)


def _increment(link: PublicLink, counter: Any) -> None:
    """Add one in the database itself, so concurrent viewers never lose a count."""
    db.session.execute(
        update(ShareLink)
        .where(ShareLink.id == link.id)
        .values({counter: counter + 1})
        .execution_options(synchronize_session=False)
    )
