"""Taking an uploaded clip's bytes and checking them: the heavy, database-free part of a job.

The server owns every byte anyone is shown. Upload tickets write only to a staging key; here
the staged object is taken (moved) to a key only the server writes, and everything after that
-- size, SHA-256, probe, poster, rendition -- is measured on that copy, so what verification
pins is exactly what reviewers and the public are later served.

A plain library: no Flask, no models, no database. The job passes in what it needs and records
what comes back, so no transaction stays open while bytes are hashed, probed or transcoded.
"""

from __future__ import annotations

import hashlib
import io
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import media, renditions
from .formatting import format_size
from .provenance import Provenance, read_provenance
from .storage import ObjectExists, ObjectNotFound, Storage, StorageError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestPlan:
    """What one attempt at verifying a clip works from (copied out of the row)."""

    clip_id: int
    attempt: int
    staging_key: str | None
    storage_key: str
    content_type: str
    max_bytes: int
    max_seconds: float
    #: GREENLIGHT_PROVENANCE (off, show, require) and the trust anchors' PEM text.
    provenance_mode: str = "show"
    trust_anchors: str | None = None


@dataclass(frozen=True)
class IngestResult:
    """What verification learnt; the transition to `waiting` pins it."""

    size_bytes: int
    sha256: str
    etag: str
    facts: media.MediaFacts
    poster_key: str
    poster_size: int
    poster_etag: str
    rendition: renditions.RenditionFacts | None
    rendition_key: str | None
    rendition_etag: str | None
    #: What the clip's Content Credentials say; None when provenance is off.
    provenance: Provenance | None = None


#: Called between steps with the step's name, so the job can say what it does and keep its lease.
Progress = Callable[[str], None]


def derived_key(storage_key: str, kind: str, attempt: int, suffix: str) -> str:
    """posters/… or renditions/… beside the clip's key; one per attempt, never overwritten."""
    return f"{storage_key.replace('clips/', kind + '/', 1)}-{attempt}{suffix}"


def take_upload(store: Storage, plan: IngestPlan) -> None:
    """Move the staged bytes to the server's own key, once; a retry finds them already there."""
    if plan.staging_key is None:
        return  # taken by an earlier attempt, which recorded that it did
    try:
        store.take(plan.staging_key, plan.storage_key)
    except ObjectExists:
        # An earlier attempt took the bytes and died before saying so; what it took stands,
        # and anything sent to the staging key since is never read.
        log.info("clip %s: bytes were already taken by an earlier attempt", plan.clip_id)
    except ObjectNotFound:
        try:
            store.head(plan.storage_key)
        except ObjectNotFound:
            raise media.MediaRejected("no file was received; upload it again") from None


def verify(store: Storage, plan: IngestPlan, progress: Progress) -> IngestResult:
    """Take, measure, hash and probe the clip; make its poster and, if needed, a rendition.

    Raises MediaRejected (bad media: the reason in words) or StorageError (try again later).
    """
    progress("checking")
    take_upload(store, plan)
    before = store.head(plan.storage_key)
    _check_declared(before.size, before.content_type, plan)
    limits = media.MediaLimits(max_seconds=plan.max_seconds)
    with tempfile.TemporaryDirectory(prefix="greenlight-verify-") as workdir:
        local = Path(workdir) / "original"
        sha256, received = _copy_and_hash(store, plan, local)
        inspection = media.inspect_clip(local, limits)
        credentials = None
        if plan.provenance_mode != "off":
            # Read from the same local copy the probe saw, so the facts match the pinned bytes.
            credentials = read_provenance(local, inspection.facts.container, plan.trust_anchors)
        after = store.head(plan.storage_key)
        if (after.etag, after.size) != (before.etag, before.size) or received != before.size:
            # Only the server writes this key, so this is a storage fault, not the tester's:
            # try again later rather than fail the clip.
            raise StorageError(f"{plan.storage_key} changed while it was being checked")
        poster_key = derived_key(plan.storage_key, "posters", plan.attempt, ".jpg")
        poster = store.put_stream(
            poster_key, io.BytesIO(inspection.poster_jpeg), content_type="image/jpeg"
        )
        rendition = rendition_key = rendition_etag = None
        if not renditions.plays_in_browsers(inspection.facts):
            progress("rendering")
            rendition_key = derived_key(plan.storage_key, "renditions", plan.attempt, ".mp4")
            rendition, rendition_etag = _render(store, local, inspection.facts, rendition_key)
    return IngestResult(
        size_bytes=before.size,
        sha256=sha256,
        etag=before.etag,
        facts=inspection.facts,
        poster_key=poster_key,
        poster_size=poster.size,
        poster_etag=poster.etag,
        rendition=rendition,
        rendition_key=rendition_key,
        rendition_etag=rendition_etag,
        provenance=credentials,
    )


def _check_declared(size: int, content_type: str | None, plan: IngestPlan) -> None:
    if size == 0:
        raise media.MediaRejected("file is empty")
    if size > plan.max_bytes:
        raise media.MediaRejected(
            f"file is {format_size(size)}; the limit is {format_size(plan.max_bytes)}"
        )
    if content_type and content_type != plan.content_type:
        raise media.MediaRejected(
            f"the file arrived as {content_type}, not the declared {plan.content_type}"
        )


def _copy_and_hash(store: Storage, plan: IngestPlan, local: Path) -> tuple[str, int]:
    """Stream the object to a local file for the probe, hashing every byte on the way."""
    digest = hashlib.sha256()
    received = 0
    with local.open("wb") as out:
        for chunk in store.read(plan.storage_key):
            digest.update(chunk)
            out.write(chunk)
            received += len(chunk)
            if received > plan.max_bytes:
                raise media.MediaRejected(
                    f"file is larger than the {format_size(plan.max_bytes)} limit"
                )
    return digest.hexdigest(), received


def _render(
    store: Storage, source: Path, facts: media.MediaFacts, key: str
) -> tuple[renditions.RenditionFacts, str]:
    """Make the browser-playable H.264 rendition and store it; its facts and stored ETag."""
    output = source.with_name("rendition.mp4")
    rendition = renditions.make_rendition(source, output, facts)
    with output.open("rb") as fh:
        stored = store.put_stream(key, fh, content_type="video/mp4")
    if stored.size != rendition.size_bytes:
        raise media.MediaRejected("the playable copy could not be stored whole")
    return rendition, stored.etag


def delete_quietly(store: Storage, keys: list[str | None]) -> None:
    """Remove what a failed or superseded attempt left; a failure here is only logged."""
    for key in keys:
        if key is None:
            continue
        try:
            store.delete(key)
        except Exception:
            log.exception("could not delete %s", key)
