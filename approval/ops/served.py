"""What may be served for a clip, checked against what verification pinned.

Every place media is served -- the reviewer's player, posters, renditions, share pages and
downloads -- asks here first. An object whose size or ETag no longer matches the pinned one is
refused, and the first refusal per object and observation writes one audit event.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from approval import audit
from approval.extensions import db, storage
from approval.models import VERIFIED_STATES, AuditEvent, Clip
from approval.ops.errors import Gone, NotFound
from approval.storage import ObjectInfo, ObjectNotFound

log = logging.getLogger(__name__)


class MediaChanged(Gone):
    """The stored object is not the one verification pinned; nobody is served it."""

    #: The refusal's audit event must outlive the refusal: the error handler commits it.
    keeps_evidence = True


class Media(enum.Enum):
    PLAYBACK = "playback"  # what players show: the rendition if there is one, else the original
    ORIGINAL = "original"  # the uploaded file itself: downloads
    POSTER = "poster"
    SIGNED = "signed"  # the approved copy signed with the deployment's C2PA key: share links


@dataclass(frozen=True)
class ServedObject:
    key: str
    info: ObjectInfo
    content_type: str
    filename: str | None


def pinned(clip: Clip, kind: Media) -> tuple[str, int | None, str | None, str, str | None]:
    """The key, pinned size and ETag, content type and download name of one of clip's files."""
    if kind is Media.POSTER:
        if clip.poster_key is None:
            raise NotFound("This clip has no poster.")
        return clip.poster_key, clip.poster_size, clip.poster_etag, "image/jpeg", None
    if kind is Media.SIGNED and clip.signed_key is not None:
        stem = clip.original_filename.rsplit(".", 1)[0] or "clip"
        return clip.signed_key, clip.signed_size, clip.signed_etag, "video/mp4", f"{stem}.mp4"
    if kind is Media.SIGNED:
        kind = Media.PLAYBACK  # not signed (yet, or no key configured): what reviewers watched
    if kind is Media.PLAYBACK and clip.rendition_key is not None:
        stem = clip.original_filename.rsplit(".", 1)[0] or "clip"
        return (
            clip.rendition_key,
            clip.rendition_size,
            clip.rendition_etag,
            "video/mp4",
            f"{stem}.mp4",
        )
    return clip.storage_key, clip.size_bytes, clip.etag, clip.content_type, clip.original_filename


def served_object(
    clip: Clip, kind: Media, *, context: dict[str, Any] | None = None
) -> ServedObject:
    """The object to serve, if it is still exactly what was verified; else MediaChanged."""
    if clip.status not in VERIFIED_STATES:
        raise NotFound("This clip has nothing to show yet.")
    key, size, etag, content_type, filename = pinned(clip, kind)
    try:
        info = storage().head(key)
    except ObjectNotFound:
        info = None
    # Posters of clips verified before posters were pinned carry no ETag: size-less rows only.
    if info is not None and (size is None or info.size == size) and (etag in (None, info.etag)):
        return ServedObject(key, info, content_type, filename)
    observed = {"key": key, "size": info.size, "etag": info.etag} if info else {"key": key}
    if info is None:
        observed["missing"] = True
    log.warning("clip %s: stored %s differs from the verified one: %s", clip.id, kind, observed)
    record_integrity_failure(clip, observed, context or {})
    raise MediaChanged("This clip's file has changed since it was checked, so it is not shown.")


def record_integrity_failure(clip: Clip, observed: dict[str, Any], context: dict[str, Any]) -> None:
    """One audit event per clip and observed object, so repeated requests do not flood the log.

    Flushed only; the request is refused right after, and its error handler commits this event
    (MediaChanged.keeps_evidence) where other refusals roll back.
    """
    seen = db.session.scalar(
        select(AuditEvent.id).where(
            AuditEvent.action == "clip.integrity_failed",
            AuditEvent.clip_id == clip.id,
            AuditEvent.data.contains(audit.canonical_json(observed)[1:-1]),
        )
    )
    if seen is not None:
        return
    audit.record(
        "clip.integrity_failed",
        actor=None,
        subject_type="clip",
        subject_id=clip.id,
        clip=clip,
        reason="the stored object no longer matches the verified size and ETag",
        data={"observed": observed, **context},
    )
