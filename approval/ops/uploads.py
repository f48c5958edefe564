"""Uploads: tickets for the browser, bytes through the app, and handing them to verification.

Every way bytes come in -- a presigned POST or pinned PUT straight to S3, the app's own PUT
ticket, the no-JavaScript form -- writes only to the clip's staging key. Nothing that shows or
serves media reads a staging key: when the upload is reported done, the verification job takes
the staged bytes to a key only the server writes and checks that copy (see ingest.py).
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select

from approval.clock import utcnow
from approval.extensions import db, storage
from approval.formatting import format_size
from approval.jobqueue import enqueue_after_commit
from approval.models import Clip, ClipStatus, User
from approval.ops import access, verification, workflow
from approval.ops.errors import InvalidInput, NotFound, StateConflict, TooLarge
from approval.storage import ObjectTooLarge, Spool, UploadTicket

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
    """The storage content type for this filename, or a refusal naming what is accepted."""
    suffix = Path(filename).suffix.lower()
    if suffix not in CONTENT_TYPES:
        shown = f"files ending in {suffix}" if suffix else "files without an extension"
        raise InvalidInput(
            f"{shown.capitalize()} are not accepted; upload an MP4, MOV, WebM or MKV video.",
            "filename",
        )
    return CONTENT_TYPES[suffix]


def check_declared_size(size: int | None) -> None:
    """Refuse early what verification would refuse anyway."""
    limit = current_app.config["MAX_CLIP_BYTES"]
    if size is None:
        return
    if size <= 0:
        raise InvalidInput("file is empty", "size")
    if size > limit:
        raise TooLarge(f"file is {format_size(size)}; the limit is {format_size(limit)}", "size")


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
    content_type: str | None = None,
    previous_id: int | None = None,
) -> Clip:
    """Check what can be checked before any byte moves, then create the clip in `uploading`.

    `content_type`, when the client declares one, must be what the filename is stored as.
    """
    filename = clean_filename(filename)
    stored_as = content_type_for(filename)
    if content_type is not None and content_type != stored_as:
        suffix = Path(filename).suffix.lower()
        raise InvalidInput(
            f"a {suffix} file is stored as {stored_as}; send that or leave content_type out",
            "content_type",
        )
    check_declared_size(size)
    previous = None
    if previous_id is not None:
        try:
            previous = access.own_clip(previous_id, tester)
        except NotFound:
            raise InvalidInput(f"you have no clip {previous_id}", "previous") from None
    return workflow.start_upload(
        tester,
        title=title.strip(),
        prompt=prompt,
        generator=generator.strip(),
        generator_version=generator_version.strip(),
        notes=notes,
        filename=filename,
        content_type=stored_as,
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


def ticket_for(
    clip: Clip,
    *,
    app_put_url: Callable[[int, str], str],
    size: int | None = None,
    sha256: str | None = None,
) -> UploadTicket:
    """A short-lived ticket to send this clip's bytes: straight to S3, or to the app.

    A client that hashed its file first (the CLI) gets, where the storage can, a presigned PUT
    that signs the size and the SHA-256, so the storage itself refuses any other body. Where
    the storage cannot presign, the bytes go to the app: `app_put_url(clip_id, token)` is
    where, a route only the web layer knows.
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
        url=app_put_url(clip.id, token),
        fields={},
        headers={"Content-Type": clip.content_type},
        expires_at=utcnow() + timedelta(seconds=ttl),
    )


def clip_for_ticket(clip_id: int, token: str) -> Clip:
    """The clip an app upload ticket was issued for, or a refusal saying what is wrong."""
    try:
        payload = _serializer().loads(token, max_age=current_app.config["UPLOAD_TICKET_TTL"])
    except SignatureExpired:
        raise InvalidInput("This upload ticket has expired; start the upload again.") from None
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
        raise TooLarge(f"file is larger than the {format_size(limit)} limit", "file") from None


def upload_whole(
    tester: User,
    spool: Spool,
    *,
    filename: str,
    previous_id: int | None = None,
    **details: str,
) -> Clip:
    """The no-JavaScript form: create the clip, store the file it came with, hand it on.

    The form parser has already written the file into a storage spool, so storing it is a
    rename on local disk (an upload on S3) inside the request's transaction: a refused file
    leaves neither the row nor any bytes (adopt keeps nothing it refused, and a spool not
    adopted is removed with the request), and whatever a later failure leaves staged,
    storage garbage collection (ops/storage_gc) sweeps.
    """
    clip = create(tester, filename=filename, previous_id=previous_id, **details)
    limit = current_app.config["MAX_CLIP_BYTES"]
    try:
        storage().adopt(_staging_key(clip), spool, content_type=clip.content_type, max_bytes=limit)
    except ObjectTooLarge:
        raise TooLarge(f"file is larger than the {format_size(limit)} limit", "file") from None
    return complete(clip, tester)


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


def abandoned_uploads(older_than: timedelta) -> list[int]:
    """Clips whose upload never finished (a closed tab), for the cleanup job to fail.

    Clips stuck in `verifying` are not among them: the reaper gives them to another worker.
    """
    cutoff = utcnow() - older_than
    return list(
        db.session.scalars(
            select(Clip.id).where(
                Clip.status == ClipStatus.UPLOADING, Clip.status_changed_at < cutoff
            )
        )
    )


def abandon_upload(clip_id: int) -> list[str | None]:
    """Fail one abandoned upload; returns the keys to delete once that is committed."""
    return verification.fail(clip_id, "the upload was never finished")
