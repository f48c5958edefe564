"""Uploads: tickets for the browser, bytes through the app, and verification on the server.

Nothing here trusts the browser or the storage server: whatever a ticket promised, the stored
object is measured, hashed and probed before the clip may enter the review queue.
"""

from __future__ import annotations

import hashlib
import io
import logging
import tempfile
import unicodedata
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select

from . import media, workflow
from .clock import utcnow
from .extensions import db, storage
from .formatting import format_size
from .models import Clip, ClipStatus, User
from .storage import ObjectNotFound, ObjectTooLarge, StorageError, UploadTicket
from .web import site_url
from .workflow import NotFound, StateConflict, VerifiedMedia, WorkflowError

log = logging.getLogger(__name__)

#: The containers we accept, by filename extension, with the content type each is stored as.
CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
}
MAX_FILENAME_LENGTH = 200


class UploadRefused(WorkflowError):
    """The upload cannot go ahead; the message says why in the uploader's words."""

    status_code = 422


class UploadTooLarge(UploadRefused):
    status_code = 413


def clean_filename(name: str) -> str:
    """The last path part, without control characters, at most 200 characters, extension kept."""
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip(" .")
    if len(name) > MAX_FILENAME_LENGTH:
        stem, dot, extension = name.rpartition(".")
        if dot and len(extension) <= 10:
            name = stem[: MAX_FILENAME_LENGTH - len(extension) - 1] + "." + extension
        else:
            name = name[:MAX_FILENAME_LENGTH]
    return name or "clip"


def content_type_for(filename: str) -> str:
    """The storage content type for this filename, or UploadRefused naming what is accepted."""
    suffix = Path(filename).suffix.lower()
    if suffix not in CONTENT_TYPES:
        shown = f"files ending in {suffix}" if suffix else "files without an extension"
        raise UploadRefused(
            f"{shown.capitalize()} are not accepted; upload an MP4, MOV, WebM or MKV video."
        )
    return CONTENT_TYPES[suffix]


def check_declared_size(size: int | None) -> None:
    """Refuse early what verification would refuse anyway."""
    limit = current_app.config["MAX_CLIP_BYTES"]
    if size is None:
        return
    if size <= 0:
        raise UploadRefused("file is empty")
    if size > limit:
        raise UploadTooLarge(f"file is {format_size(size)}; the limit is {format_size(limit)}")


def poster_key_for(clip: Clip) -> str:
    return clip.storage_key.replace("clips/", "posters/", 1) + ".jpg"


def create(
    tester: User,
    *,
    title: str,
    filename: str,
    size: int | None = None,
    prompt: str = "",
    generator: str = "",
    generator_version: str = "",
    notes: str = "",
    previous: Clip | None = None,
) -> Clip:
    """Check what can be checked before any byte moves, then create the clip in `uploading`."""
    filename = clean_filename(filename)
    content_type = content_type_for(filename)
    check_declared_size(size)
    return workflow.start_upload(
        tester,
        title=title.strip(),
        prompt=prompt,
        generator=generator.strip(),
        generator_version=generator_version.strip(),
        notes=notes,
        filename=filename,
        content_type=content_type,
        previous=previous,
    )


# --- tickets -------------------------------------------------------------------------------------


class _ClockSigner(TimestampSigner):
    """Ticket ages come from the app's clock, so tests can expire them without sleeping."""

    def get_timestamp(self) -> int:
        return int(utcnow().timestamp())


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(
        current_app.config["SECRET_KEY"], salt="greenlight-upload", signer=_ClockSigner
    )


def ticket_for(clip: Clip, *, size: int | None = None, sha256: str | None = None) -> UploadTicket:
    """A short-lived ticket to send this clip's bytes: straight to S3, or to the app.

    A client that hashed its file first (the CLI) gets, where the storage can, a presigned PUT
    that signs the size and the SHA-256, so the storage itself refuses any other body.
    """
    if clip.status != ClipStatus.UPLOADING:
        raise StateConflict("This clip's upload is finished; start a new upload.", clip)
    ttl = current_app.config["UPLOAD_TICKET_TTL"]
    limit = current_app.config["MAX_CLIP_BYTES"]
    if size and sha256 is not None:
        pinned = storage().presigned_put(
            clip.storage_key,
            content_type=clip.content_type,
            size=size,
            sha256_hex=sha256.lower(),
            expires_in=ttl,
        )
        if pinned is not None:
            return pinned
    direct = storage().presigned_post(
        clip.storage_key, content_type=clip.content_type, max_bytes=limit, expires_in=ttl
    )
    if direct is not None:
        return direct
    token = _serializer().dumps({"clip": clip.id, "key": clip.storage_key})
    return UploadTicket(
        method="PUT",
        url=site_url("clips.receive", clip_id=clip.id, ticket=token),
        fields={},
        headers={"Content-Type": clip.content_type},
        expires_at=utcnow() + timedelta(seconds=ttl),
    )


def clip_for_ticket(clip_id: int, token: str) -> Clip:
    """The clip an app upload ticket was issued for, or a refusal saying what is wrong."""
    try:
        payload = _serializer().loads(token, max_age=current_app.config["UPLOAD_TICKET_TTL"])
    except SignatureExpired:
        raise UploadRefused("This upload ticket has expired; start the upload again.") from None
    except BadSignature:
        raise NotFound("There is no such upload.") from None
    clip = db.session.get(Clip, clip_id)
    if clip is None or payload != {"clip": clip.id, "key": clip.storage_key}:
        raise NotFound("There is no such upload.")
    return clip


def receive(clip: Clip, stream: BinaryIO) -> None:
    """Stream the request body into storage in chunks; memory stays flat whatever the size."""
    if clip.status != ClipStatus.UPLOADING:
        raise StateConflict("This clip's upload is finished; start a new upload.", clip)
    limit = current_app.config["MAX_CLIP_BYTES"]
    try:
        storage().put_stream(
            clip.storage_key, stream, content_type=clip.content_type, max_bytes=limit
        )
    except ObjectTooLarge:
        raise UploadTooLarge(f"file is larger than the {format_size(limit)} limit") from None


# --- verification --------------------------------------------------------------------------------


def complete(clip: Clip, actor: User) -> Clip:
    """The upload is reported done: verify the stored bytes, then queue or fail the clip.

    Idempotent: a second report while (or after) the first is handled changes nothing.
    Commits, because the clip must show `verifying` to others while its bytes are checked.
    """
    if not clip.is_owned_by(actor):
        raise NotFound("There is no such clip.")
    if clip.status != ClipStatus.UPLOADING:
        return clip
    workflow.begin_verification(clip, actor)
    db.session.commit()
    try:
        verified = _verify(clip)
    except media.MediaRejected as exc:
        abandon(clip, exc.reason)
        return clip
    except StorageError:
        log.exception("storage failed while verifying clip %s", clip.id)
        abandon(clip, "the file could not be read back from storage; upload it again")
        return clip
    workflow.pass_verification(clip, verified)
    db.session.commit()
    return clip


def abandon(clip: Clip, reason: str) -> None:
    """Delete whatever bytes the clip left and mark it failed with the reason."""
    for key in (clip.storage_key, poster_key_for(clip)):
        try:
            storage().delete(key)
        except StorageError:
            log.exception("could not delete %s of failed clip %s", key, clip.id)
    workflow.fail_verification(clip, reason)
    db.session.commit()


def _verify(clip: Clip) -> VerifiedMedia:
    """Measure, hash and probe the stored object; raise MediaRejected with the reason."""
    store = storage()
    limit = current_app.config["MAX_CLIP_BYTES"]
    try:
        before = store.head(clip.storage_key)
    except ObjectNotFound:
        raise media.MediaRejected("no file was received; upload it again") from None
    if before.size == 0:
        raise media.MediaRejected("file is empty")
    if before.size > limit:
        raise media.MediaRejected(
            f"file is {format_size(before.size)}; the limit is {format_size(limit)}"
        )
    if before.content_type and before.content_type != clip.content_type:
        raise media.MediaRejected(
            f"the file arrived as {before.content_type}, not the declared {clip.content_type}"
        )
    limits = media.MediaLimits(max_seconds=float(current_app.config["MAX_CLIP_SECONDS"]))
    with tempfile.NamedTemporaryFile(prefix="greenlight-verify-") as local:
        digest = hashlib.sha256()
        received = 0
        for chunk in store.read(clip.storage_key):
            digest.update(chunk)
            local.write(chunk)
            received += len(chunk)
            if received > limit:
                raise media.MediaRejected(f"file is larger than the {format_size(limit)} limit")
        local.flush()
        sha256 = digest.hexdigest()
        _refuse_known_rejection(clip, sha256)
        inspection = media.inspect_clip(Path(local.name), limits)
    after = store.head(clip.storage_key)
    if (after.etag, after.size) != (before.etag, before.size) or received != before.size:
        raise media.MediaRejected("the file changed while it was being checked; upload it again")
    poster_key = poster_key_for(clip)
    store.put_stream(poster_key, io.BytesIO(inspection.poster_jpeg), content_type="image/jpeg")
    facts = inspection.facts
    return VerifiedMedia(
        size_bytes=before.size,
        sha256=sha256,
        etag=before.etag,
        container=facts.container,
        codec=facts.codec,
        width=facts.width,
        height=facts.height,
        duration_seconds=facts.duration,
        fps=facts.fps,
        has_audio=facts.has_audio,
        poster_key=poster_key,
    )


def _refuse_known_rejection(clip: Clip, sha256: str) -> None:
    """The very same bytes were rejected before: say so instead of queueing them again."""
    earlier = db.session.scalar(
        select(Clip)
        .where(Clip.sha256 == sha256, Clip.status == ClipStatus.REJECTED)
        .order_by(Clip.id)
        .limit(1)
    )
    if earlier is None:
        return
    if earlier.tester_id == clip.tester_id:
        raise media.MediaRejected(
            f"this exact file was already rejected as “{earlier.title}”: {earlier.decision_reason}"
        )
    raise media.MediaRejected("this exact file was already rejected by a reviewer")


def cleanup_abandoned(older_than: timedelta) -> int:
    """Fail clips whose upload or check never finished (a closed tab, a killed worker)."""
    cutoff = utcnow() - older_than
    stale = db.session.scalars(
        select(Clip).where(
            Clip.status.in_([ClipStatus.UPLOADING, ClipStatus.VERIFYING]),
            Clip.status_changed_at < cutoff,
        )
    ).all()
    for clip in stale:
        try:
            abandon(clip, "the upload was never finished")
        except StateConflict:
            db.session.rollback()  # it finished after all, in the meantime
    return len(stale)
