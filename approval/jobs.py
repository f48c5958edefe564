"""Huey tasks: verify uploads, send mail, and the periodic digest, cleanup and reaper.

Each task runs in an app context of its own (a database session of its own), calls the
operations, and commits. Side effects -- deleting objects, mailing -- come after the commit
they follow from. Every task is idempotent: Huey may deliver one twice (the reaper re-enqueues
what looks lost), and running verify twice for a clip makes one transition and one set of
audit events.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from flask import current_app
from huey import crontab
from sqlalchemy.exc import SQLAlchemyError

from . import ingest, outbox
from .extensions import db, storage
from .jobqueue import huey, job_app, once_per_period, record_heartbeat
from .media import MediaRejected
from .ops import signing, verification
from .ops.errors import StateConflict
from .provenance_signing import SigningFailed, sign_approved_copy
from .storage import StorageError

log = logging.getLogger(__name__)

#: Mail that could not be sent is tried again after 30 s, 1, 2, 4 … minutes, at most an hour
#: apart, this many times; then it is given up and logged (it stays in the inbox).
MAIL_ATTEMPTS = 8


@contextmanager
def _job_context() -> Iterator[None]:
    """A fresh app context (and so a fresh session) that rolls back whatever is left over."""
    with job_app().app_context():
        try:
            yield
        finally:
            db.session.rollback()
            db.session.remove()


# --- verification --------------------------------------------------------------------------------


@huey.task()
def verify_clip(clip_id: int) -> None:
    """Take, verify and prepare a clip whose upload is done; see ops/verification.py."""
    with _job_context():
        run_verification(clip_id)


def run_verification(clip_id: int) -> None:
    """One attempt: lease, heavy work outside any transaction, then pass, fail or retry."""
    config = current_app.config
    lease = int(config["JOB_LEASE_SECONDS"])
    try:
        plan = verification.start_attempt(
            clip_id,
            lease_seconds=lease,
            max_bytes=config["MAX_CLIP_BYTES"],
            max_seconds=float(config["MAX_CLIP_SECONDS"]),
            provenance_mode=config["PROVENANCE"],
            trust_anchors=config["C2PA_TRUST_ANCHORS_PEM"],
        )
        db.session.commit()
    except SQLAlchemyError:
        log.exception("clip %s: could not start verification; the reaper will retry", clip_id)
        return
    if plan is None:
        return  # not verifying any more, or another attempt holds it

    def progress(step: str) -> None:
        verification.report_step(clip_id, step, lease_seconds=lease)
        db.session.commit()

    store = storage()
    try:
        result = ingest.verify(store, plan, progress)
        if not verification.finish(plan, result):
            db.session.rollback()
            ingest.delete_quietly(store, [result.poster_key, result.rendition_key])
            return
        db.session.commit()
    except MediaRejected as exc:
        db.session.rollback()
        _fail(clip_id, exc.reason)
    except (StorageError, SQLAlchemyError, OSError) as exc:
        db.session.rollback()
        _postpone(clip_id, exc)


# --- signing approvals into shared copies --------------------------------------------------------


#: A storage or database fault while signing is tried again a minute later, a few times; bad
#: media is not (run_signing logs it and returns). Signing twice records one copy.
SIGNING_RETRIES = 5


@huey.task(retries=SIGNING_RETRIES, retry_delay=60)
def sign_approved_clip(clip_id: int) -> None:
    """Make the approved clip's signed copy for sharing; see ops/signing.py."""
    with _job_context():
        run_signing(clip_id)


def run_signing(clip_id: int) -> None:
    """Read the approved bytes, check them, sign them in the child, store and pin the copy."""
    identity = current_app.config.get("C2PA_SIGNING_IDENTITY")
    if identity is None:
        return
    work = signing.plan(clip_id)
    db.session.rollback()  # no transaction stays open while bytes are read and signed
    if work is None:
        return
    store = storage()
    with tempfile.TemporaryDirectory(prefix="greenlight-signing-") as tmp:
        local, copy_path = Path(tmp) / "approved", Path(tmp) / "signed.mp4"
        digest = hashlib.sha256()
        with local.open("wb") as out:
            for chunk in store.read(work.source_key):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != work.source_sha256:
            # Serving refuses these bytes too (ops/served.py); never sign what was not approved.
            log.error("clip %s: approved bytes changed; no signed copy made", clip_id)
            return
        try:
            copy = sign_approved_copy(local, copy_path, identity, work.claim, title=work.title)
        except (SigningFailed, MediaRejected) as exc:
            log.error("clip %s: could not sign the approved copy: %s", clip_id, exc)
            return
        with copy.path.open("rb") as fh:
            stored = store.put_stream(work.target_key, fh, content_type="video/mp4")
    if signing.record(work, size=stored.size, sha256=copy.sha256, etag=stored.etag):
        db.session.commit()
    else:  # another attempt recorded its copy, or the approval was undone meanwhile
        db.session.rollback()
        ingest.delete_quietly(store, [work.target_key])


@once_per_period(3600)
@huey.periodic_task(crontab(minute="41"))
def sign_unsigned_approvals() -> None:
    """Sign again what a lost job or a killed worker left approved without a signed copy."""
    with _job_context():
        if current_app.config.get("C2PA_SIGNING_IDENTITY") is None:
            return
        for clip_id in signing.unsigned(older_than=timedelta(minutes=10)):
            log.info("clip %s: approved without a signed copy; signing it again", clip_id)
            sign_approved_clip(clip_id)


def _fail(clip_id: int, reason: str) -> None:
    keys = verification.fail(clip_id, reason)
    db.session.commit()
    ingest.delete_quietly(storage(), keys)


def _postpone(clip_id: int, exc: Exception) -> None:
    """A transient fault: the clip stays verifying and is tried again later."""
    log.warning("clip %s: verification postponed: %s", clip_id, exc)
    try:
        delay = verification.postpone(clip_id, f"{type(exc).__name__}: {exc}")
        db.session.commit()
    except SQLAlchemyError:
        db.session.rollback()
        log.exception("clip %s: could not record the retry; the reaper will pick it up", clip_id)
        return
    verify_clip.schedule((clip_id,), delay=delay)


# --- mail ----------------------------------------------------------------------------------------


@huey.task()
def send_mail(notification_ids: list[int], attempt: int = 1) -> None:
    """Mail these notifications; retry the ones that failed with backoff, then give up."""
    with _job_context():
        report = outbox.send_pending(notification_ids, retry=attempt > 1)
    if not report.failed:
        return
    if attempt >= MAIL_ATTEMPTS:
        log.error(
            "giving up mailing notifications %s after %s attempts: %s",
            notification_ids,
            attempt,
            report.last_error,
        )
        return
    delay = min(
        verification.FIRST_RETRY_SECONDS * 2 ** (attempt - 1), verification.LONGEST_RETRY_SECONDS
    )
    send_mail.schedule((notification_ids, attempt + 1), delay=delay)


# --- periodic ------------------------------------------------------------------------------------


@huey.periodic_task(crontab(minute="*"))
def heartbeat() -> None:
    """Tell /healthz that a worker is alive (every host's, so not once per period)."""
    record_heartbeat()


@once_per_period(60)
@huey.periodic_task(crontab(minute="*"))
def reap_stalled_verifications() -> None:
    """Enqueue again every verifying clip whose job vanished (worker killed, enqueue lost)."""
    with _job_context():
        grace = int(current_app.config["JOB_LEASE_SECONDS"])
        for clip_id in verification.stalled(grace_seconds=grace):
            log.info("clip %s: its verification job vanished; enqueueing it again", clip_id)
            verify_clip(clip_id)


@once_per_period(3600)
@huey.periodic_task(crontab(minute="17"))
def cleanup() -> None:
    """Close uploads abandoned for a day, then delete what storage holds that no clip needs."""
    from approval.ops import storage_gc

    with _job_context():
        cleanup_abandoned(timedelta(hours=24))
        for item in storage_gc.collect(storage(), grace=storage_gc.grace_period(), delete=True):
            log.info("deleted %s: %s", item.key, item.why)


def cleanup_abandoned(older_than: timedelta) -> int:
    """Fail each upload left unfinished, one commit each, then delete its partial bytes."""
    from approval.ops import uploads

    stale = uploads.abandoned_uploads(older_than)
    for clip_id in stale:
        try:
            keys = uploads.abandon_upload(clip_id)
            db.session.commit()
        except StateConflict:
            db.session.rollback()  # it finished after all, in the meantime
            continue
        ingest.delete_quietly(storage(), keys)
    return len(stale)


@once_per_period(600)
@huey.periodic_task(crontab(minute="*/10"))
def retry_mail() -> None:
    """Mail whatever is still unsent and due a retry (a lost job, a restart)."""
    with _job_context():
        outbox.send_pending()


@once_per_period(86400)
@huey.periodic_task(crontab(minute="0", hour="7"))
def queue_digest() -> None:
    """The reviewers' daily digest of the queue."""
    from approval.ops import notifications

    with _job_context():
        notifications.queue_digest()
        db.session.commit()
