"""What may be served for a clip, checked against what verification pinned.

Every place media is served -- the reviewer's player, posters, renditions, share pages and
downloads -- asks here first. An object whose size or ETag no longer matches the pinned one is
refused, and the first refusal per object and observation writes one audit event.

How the check is made depends on what the store guarantees. Nothing a client can write is ever
served (uploads land on staging keys only, see ops/uploads.py), so the check is against the
server's own keys being changed behind its back. Where the bucket keeps versions, the first
check that passes records the object's VersionId, and from then on every URL names it: S3
serves exactly those bytes or nothing, whatever is written to the key later, and the check
needs no round trip. Elsewhere (disk, a bucket without versioning) the object is looked at on
every request: one stat() on disk, whose file the bytes are then read from; a HEAD on S3.
"""

from __future__ import annotations

import enum
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from sqlalchemy import select

from approval import audit
from approval.extensions import db, storage
from approval.models import VERIFIED_STATES, AuditEvent, Clip
from approval.ops.errors import Gone, NotFound
from approval.storage import ObjectInfo, ObjectNotFound, Storage

if TYPE_CHECKING:
    from approval.ops.sharing import PublicClip  # which imports this module

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


#: What the checks read of a clip: a Clip, or the columns a share link reads of one
#: (ops/sharing.PublicClip, the same names). What they write goes to the Clip; see `_mapped`.
Pinned: TypeAlias = "Clip | PublicClip"


@dataclass(frozen=True)
class ServedObject:
    key: str
    info: ObjectInfo
    content_type: str
    filename: str | None


def pinned(clip: Pinned, kind: Media) -> tuple[str, int | None, str | None, str, str | None]:
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
    clip: Pinned, kind: Media, *, context: dict[str, Any] | None = None
) -> ServedObject:
    """The object to serve, if it is still exactly what was verified; else MediaChanged."""
    if clip.status not in VERIFIED_STATES:
        raise NotFound("This clip has nothing to show yet.")
    key, size, etag, content_type, filename = pinned(clip, kind)
    store = storage()
    version = object_versions(clip).get(pin_name(store, key, etag)) if etag else None
    if version is not None and size is not None and etag is not None:
        # A version that passed the check below: S3 serves those bytes or none.
        info = ObjectInfo(size=size, etag=etag, content_type=None, version_id=version)
        return ServedObject(key, info, content_type, filename)
    try:
        info = store.stat(key)
    except ObjectNotFound:
        info = None
    # Posters of clips verified before posters were pinned carry no ETag: size-less rows only.
    if info is not None and (size is None or info.size == size) and (etag in (None, info.etag)):
        if info.version_id is not None and size is not None and etag is not None:
            _record_version(clip, store, pin_name(store, key, etag), info.version_id)
        return ServedObject(key, info, content_type, filename)
    observed = {"key": key, "size": info.size, "etag": info.etag} if info else {"key": key}
    if info is None:
        observed["missing"] = True
    log.warning("clip %s: stored %s differs from the verified one: %s", clip.id, kind, observed)
    record_integrity_failure(clip, observed, context or {})
    raise MediaChanged("This clip's file has changed since it was checked, so it is not shown.")


def object_versions(clip: Pinned) -> dict[str, str]:
    """The VersionIds recorded for clip's files, by storage and key (see Clip.object_versions)."""
    try:
        found = json.loads(clip.object_versions or "{}")
    except ValueError:
        return {}
    if not isinstance(found, dict):
        return {}
    return {str(name): str(version) for name, version in found.items()}


def pin_name(store: Storage, key: str, etag: str) -> str:
    """What a recorded version is filed under: the storage, the key and the pinned ETag.

    A version means nothing in another bucket the objects were copied to, and stands only for
    the bytes it was checked against: should the pinned ETag ever change, it is not used.
    """
    return f"{store.url} {key} {etag}"


def _record_version(checked: Pinned, store: Storage, name: str, version_id: str) -> None:
    """Remember the version just checked, for the clip's current files only.

    Written with the request's commit; two first requests at once write the same thing.
    """
    clip = _mapped(checked)
    files = (
        (clip.storage_key, clip.etag),
        (clip.rendition_key, clip.rendition_etag),
        (clip.poster_key, clip.poster_etag),
        (clip.signed_key, clip.signed_etag),
    )
    current = {pin_name(store, key, etag) for key, etag in files if key and etag}
    versions = {pin: v for pin, v in object_versions(clip).items() if pin in current}
    versions[name] = version_id
    clip.object_versions = json.dumps(versions, sort_keys=True)


def record_integrity_failure(
    checked: Pinned, observed: dict[str, Any], context: dict[str, Any]
) -> None:
    """One audit event per clip and observed object, so repeated requests do not flood the log.

    Flushed only; the request is refused right after, and its error handler commits this event
    (MediaChanged.keeps_evidence) where other refusals roll back.
    """
    clip = _mapped(checked)
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


def _mapped(clip: Pinned) -> Clip:
    """The Clip itself, in the request's session, for the rare check that writes something.

    Share links read only a clip's columns (ops/sharing.find_link); a first play that records
    a version, or a refusal that records evidence, loads the clip whole, once.
    """
    if isinstance(clip, Clip):
        return clip
    mapped = db.session.get(Clip, clip.id)
    if mapped is None:  # deleted between the two reads: nothing left to write to
        raise NotFound("There is nothing here.")
    return mapped
