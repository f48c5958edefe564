"""Garbage in storage: the objects nothing needs any more, each with the reason why.

The rule, once, for `flask storage gc` and the periodic cleanup alike. An object is kept while
a clip needs it:

- a staged upload (`incoming/…`) while its clip is uploading or verifying (verification takes it,
  and a retry after a storage fault may come an hour later), and any staged object still inside
  an upload ticket's life (its clip row may not be committed yet);
- a clip's original, poster and playback copy for every status but `failed` (whose objects
  verification deletes itself; a leftover is garbage);
- every poster or playback copy of a clip still verifying, recorded or not: a live attempt
  writes its own before it records them;
- a clip's signed copy for sharing (`signed/…`), which its row records.

Everything else under the prefixes the app writes is garbage once older than the grace period;
objects under other prefixes are not the app's and are never looked at. So is an upload that
was started before the grace period and never finished (a multipart upload under those prefixes
on S3, a temporary file not written to since on disk): its writer, a web host killed
mid-upload say, is gone, and no row can refer to an object that never was.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select

from approval.clock import utcnow
from approval.extensions import db
from approval.models import Clip, ClipStatus
from approval.storage import STAGING_PREFIX, Storage, StoredObject

ORIGINALS_PREFIX = "clips/"
#: Posters and playback copies live beside the original's key: kind/…/<token>-<attempt>.<ext>;
#: a signed copy for sharing is signed/…/<token>-<decision>-<random>.mp4.
DERIVED_KINDS = ("posters", "renditions", "signed")
_DERIVED = re.compile(
    r"^(?:posters|renditions)/(?P<rest>.+)-\d+\.[a-z0-9]+$"
    r"|^signed/(?P<signed>.+?)(?:-\d+-[0-9a-f]+)?\.mp4$"
)

#: Every prefix the app writes under; anything else in storage is not the app's.
APP_PREFIXES = (STAGING_PREFIX, ORIGINALS_PREFIX, *(f"{kind}/" for kind in DERIVED_KINDS))

#: Statuses whose staged upload is still to be taken by verification.
STAGED_STATES = (ClipStatus.UPLOADING, ClipStatus.VERIFYING)


@dataclass(frozen=True)
class Garbage:
    """One object (or unfinished upload) nothing needs, and why."""

    entry: StoredObject
    why: str

    @property
    def key(self) -> str:
        return self.entry.key

    @property
    def size(self) -> int:
        return self.entry.size


@dataclass
class _Needs:
    """What the clip rows say, read once: key → status, and the keys in use."""

    original_status: dict[str, ClipStatus]
    in_use: set[str]
    staged: set[str]

    @classmethod
    def read(cls) -> _Needs:
        needs = cls(original_status={}, in_use=set(), staged=set())
        rows = db.session.execute(
            select(
                Clip.status,
                Clip.staging_key,
                Clip.storage_key,
                Clip.poster_key,
                Clip.rendition_key,
                Clip.signed_key,
            )
        )
        for status, staging, original, poster, rendition, signed in rows:
            needs.original_status[original] = status
            if staging is not None and status in STAGED_STATES:
                needs.staged.add(staging)
            if status != ClipStatus.FAILED:
                needs.in_use.update(key for key in (original, poster, rendition, signed) if key)
        return needs


def find(store: Storage, *, grace: timedelta, now: datetime | None = None) -> Iterator[Garbage]:
    """Every object past the grace period that no clip needs, with the reason."""
    cutoff = (now or utcnow()) - grace
    needs = _Needs.read()
    db.session.rollback()  # no transaction stays open while storage is listed
    for prefix in APP_PREFIXES:
        for item in store.list_keys(prefix):
            if item.modified >= cutoff:
                continue
            why = _why_garbage(item.key, prefix, needs)
            if why is not None:
                yield Garbage(item, why)
    for item in store.list_unfinished_uploads(APP_PREFIXES):
        if item.modified < cutoff:
            yield Garbage(item, "an upload started and never finished (its writer was lost)")


def _why_garbage(key: str, prefix: str, needs: _Needs) -> str | None:
    if prefix == STAGING_PREFIX:
        if key in needs.staged:
            return None
        return "a staged upload no upload waits for (sent after completion, or abandoned)"
    if key in needs.in_use:
        return None
    original = _original_of(key)
    status = needs.original_status.get(original)
    if status == ClipStatus.VERIFYING:
        return None  # a live attempt's poster or copy, not recorded yet
    if status == ClipStatus.FAILED:
        return "its clip failed verification"
    if status is not None and key.startswith("signed/"):
        return "a signed copy its clip does not record"
    if status is not None:
        return "an earlier verification attempt's, replaced by the one its clip records"
    return "no clip refers to it"


def _original_of(key: str) -> str:
    """The original's key a poster or playback copy was made from (the key itself otherwise)."""
    match = _DERIVED.match(key)
    if match is None:
        return key
    return f"{ORIGINALS_PREFIX}{match['rest'] or match['signed']}"


def grace_period() -> timedelta:
    """How old an object must be to count: an upload ticket's life, so that an object written
    for a row not yet committed, or listed after the rows were read, is never taken for garbage."""
    return timedelta(seconds=current_app.config["UPLOAD_TICKET_TTL"])


def collect(store: Storage, *, grace: timedelta, delete: bool) -> list[Garbage]:
    """Find the garbage and, when asked, delete it; returns what was found."""
    found = list(find(store, grace=grace))
    if delete:
        for item in found:
            if item.entry.upload_id is not None:
                store.abort_unfinished_upload(item.entry)
            else:
                store.delete(item.key)
    return found
