"""Uploads: tickets for the browser, bytes through the app, and handing them to verification.

Every way bytes come in -- a presigned POST or pinned PUT straight to S3, the app's own PUT
ticket, the no-JavaScript form -- writes only to the clip's staging key. Nothing that shows or
serves media reads a staging key: when the upload is reported done, the verification job takes
the staged bytes to a key only the server writes and checks that copy (see ingest.py).
"""

from __future__ import annotations

import logging
import unicodedata
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select

from approval import ingest
from approval.clock import utcnow
from approval.extensions import db, storage
from approval.formatting import format_size
from approval.jobqueue import enqueue_after_commit
from approval.models import Clip, ClipStatus, User
from approval.ops import verification, workflow
from approval.ops.workflow import NotFound, StateConflict, WorkflowError
from approval.storage import ObjectTooLarge, UploadTicket
from approval.web import site_url

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
STAGING_PREFIX = "incoming/"


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
    staging_key = _staging_key(clip)
    if size and sha256 is not None:
        pinned = storage().presigned_put(
            staging_key,
            content_type=clip.content_type,
            size=size,
            sha256_hex=sha256.lower(),
            expires_in=ttl,
        )
        if pinned is not None:
            return pinned
    direct = storage().presigned_post(
        staging_key, content_type=clip.content_type, max_bytes=limit, expires_in=ttl
    )
    if direct is not None:
        return direct
    token = _serializer().dumps({"clip": clip.id, "key": staging_key})
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
    if clip is None or not isinstance(payload, dict) or payload.get("clip") != clip.id:
        raise NotFound("There is no such upload.")
    if clip.status != ClipStatus.UPLOADING:
        # A ticket we signed for this clip, used after its upload was done: verification has
        # forgotten the staging key by now, so say what happened (409), not "no such upload".
        raise StateConflict("This clip's upload is finished; start a new upload.", clip)
    if payload.get("key") != clip.staging_key:
        raise NotFound("There is no such upload.")
    return clip


def _staging_key(clip: Clip) -> str:
    if clip.staging_key is None:  # taken by verification already
        raise StateConflict("This clip's upload is finished; start a new upload.", clip)
    return clip.staging_key


def receive(clip: Clip, stream: BinaryIO) -> None:
    """Stream the request body to the staging key in chunks; memory stays flat whatever the size.

    The bytes become visible only if the clip is still `uploading` once the last one arrived:
    a slow PUT that is overtaken by "upload done" is refused (409) and leaves nothing behind.
    """
    if clip.status != ClipStatus.UPLOADING:
        raise StateConflict("This clip's upload is finished; start a new upload.", clip)
    limit = current_app.config["MAX_CLIP_BYTES"]
    clip_id, staging_key, content_type = clip.id, _staging_key(clip), clip.content_type
    # End the read that found the clip: no transaction stays open while the body streams in,
    # and the check below must see a completion that committed meanwhile (on SQLite an open
    # read keeps its old snapshot).
    db.session.rollback()

    def still_uploading() -> None:
        status = db.session.scalar(
            select(Clip.status).where(Clip.id == clip_id).execution_options(populate_existing=True)
        )
        db.session.rollback()  # end the read: the rename below must not wait on a transaction
        if status != ClipStatus.UPLOADING:
            raise StateConflict("This clip's upload is finished; start a new upload.", clip)

    try:
        storage().put_stream(
            staging_key,
            stream,
            content_type=content_type,
            max_bytes=limit,
            guard=still_uploading,
        )
    except ObjectTooLarge:
        raise UploadTooLarge(f"file is larger than the {format_size(limit)} limit") from None


# --- handing over to verification ---------------------------------------------------------------


def complete(clip: Clip, actor: User) -> Clip:
    """The upload is reported done: the clip shows `verifying` and a job checks its bytes.

    Answers at once; the job is enqueued only when the caller's transaction commits.
    Idempotent: a second report while (or after) the first is handled changes nothing.
    """
    if not clip.is_owned_by(actor):
        raise NotFound("There is no such clip.")
    if clip.status != ClipStatus.UPLOADING:
        return clip
    workflow.begin_verification(clip, actor)
    from approval.jobs import verify_clip  # jobs imports this module

    enqueue_after_commit(db.session(), verify_clip, clip.id)
    return clip


def abandon(clip: Clip, reason: str) -> list[str | None]:
    """Mark an upload failed with the reason; returns the keys to delete after the commit."""
    return verification.fail(clip.id, reason)


def delete_objects(keys: list[str | None]) -> None:
    """Remove a failed upload's bytes (after the commit that failed it)."""
    ingest.delete_quietly(storage(), keys)


def cleanup_abandoned(older_than: timedelta) -> int:
    """Fail clips whose upload never finished (a closed tab), then delete their partial bytes.

    Clips stuck in `verifying` are not failed here: the reaper gives them to another worker.
    """
    cutoff = utcnow() - older_than
    stale = db.session.scalars(
        select(Clip.id).where(Clip.status == ClipStatus.UPLOADING, Clip.status_changed_at < cutoff)
    ).all()
    for clip_id in stale:
        try:
            keys = verification.fail(clip_id, "the upload was never finished")
            db.session.commit()
        except StateConflict:
            db.session.rollback()  # it finished after all, in the meantime
            continue
        delete_objects(keys)
    return len(stale)


def delete_stale_staging() -> int:
    """Delete staged objects older than a ticket's life that no uploading clip waits for.

    These are bytes sent with a ticket after its upload was completed (or never completed):
    nobody reads them, and nobody should pay to keep them.
    """
    ttl = timedelta(seconds=current_app.config["UPLOAD_TICKET_TTL"])
    cutoff = utcnow() - ttl
    store = storage()
    removed = 0
    for item in store.list_keys(STAGING_PREFIX):
        if item.modified >= cutoff:
            continue
        waiting = db.session.scalar(
            select(Clip.id).where(Clip.staging_key == item.key, Clip.status == ClipStatus.UPLOADING)
        )
        if waiting is None:
            store.delete(item.key)
            removed += 1
    db.session.rollback()
    return removed
