"""`flask storage gc` and the periodic cleanup: what no clip needs goes, what a clip needs stays.

Every test runs on each backend (local disk, S3 in-process, S3 over real HTTP). Objects are
stamped with the real time by storage, so the app's clock is moved past the grace period.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask

from approval import jobs
from approval.extensions import db
from approval.extensions import storage as app_storage
from approval.ingest import derived_key
from approval.models import Clip, ClipStatus
from approval.storage import LocalStorage, StoredObject
from tests.plugins.factories import FrozenClock
from tests.plugins.snapshot import collect_garbage, stored_objects
from tests.plugins.storage import s3_client_for

MakeClip = Callable[..., Clip]


@pytest.fixture
def app(app_factory: Callable[..., Flask], storage_url: str) -> Iterator[Flask]:
    app = app_factory(STORAGE_URL=storage_url)
    with app.app_context():
        app_storage().init(cors_origins=[])
        yield app


def put(key: str, body: bytes = b"bytes") -> str:
    app_storage().put_stream(key, io.BytesIO(body), content_type="video/mp4")
    return key


def past_grace(app: Flask, clock: FrozenClock) -> None:
    """Move the app's clock beyond an upload ticket's life after the objects' real stamps."""
    ttl = app.config["UPLOAD_TICKET_TTL"]
    clock.now = max(clock.now, datetime.now(UTC)) + timedelta(seconds=ttl + 60)


@dataclass
class Seeded:
    keep: set[str] = field(default_factory=set)
    garbage: dict[str, str] = field(default_factory=dict)  # key → a word of the reason
    uploading: str = ""  # the staged object of an upload still in progress


@pytest.fixture
def seeded(make_clip: MakeClip) -> Seeded:
    """A clip of every status with its objects, and each kind of garbage beside them."""
    seeded = Seeded()
    for status in (
        ClipStatus.WAITING,
        ClipStatus.IN_REVIEW,
        ClipStatus.APPROVED,
        ClipStatus.REJECTED,
        ClipStatus.TAKEN_DOWN,
        ClipStatus.WITHDRAWN,
    ):
        clip = make_clip(status, content=f"{status.value} bytes".encode())
        assert clip.poster_key is not None
        seeded.keep |= {clip.storage_key, clip.poster_key}
        # A playback copy it records, and an earlier attempt's it does not.
        clip.rendition_key = put(derived_key(clip.storage_key, "renditions", 2, ".mp4"))
        seeded.keep.add(clip.rendition_key)
        earlier = put(derived_key(clip.storage_key, "renditions", 1, ".mp4"))
        seeded.garbage[earlier] = "earlier verification attempt"
    # An approved clip's signed copy for sharing, and one no row records.
    signed = make_clip(ClipStatus.APPROVED, content=b"signed original")
    assert signed.poster_key is not None
    signed.signed_key = put(signed.storage_key.replace("clips/", "signed/", 1) + ".mp4")
    seeded.keep |= {signed.storage_key, signed.poster_key, signed.signed_key}
    seeded.garbage[put("signed/zz/" + "2" * 32 + ".mp4")] = "no clip refers to it"
    uploading = make_clip(ClipStatus.UPLOADING)
    assert uploading.staging_key is not None
    seeded.uploading = put(uploading.staging_key)
    seeded.keep.add(seeded.uploading)
    # Verifying: its staged upload waits to be taken (a retry may come an hour later), and a
    # live attempt's poster exists before the row records it.
    verifying = make_clip(ClipStatus.VERIFYING)
    assert verifying.staging_key is not None
    seeded.keep.add(put(verifying.staging_key))
    seeded.keep.add(put(verifying.storage_key))
    seeded.keep.add(put(derived_key(verifying.storage_key, "posters", 1, ".jpg")))
    failed = make_clip(ClipStatus.FAILED)
    seeded.garbage[put(failed.storage_key)] = "failed verification"
    seeded.garbage[put("incoming/ab/abandoned")] = "staged upload no upload waits for"
    seeded.garbage[put("clips/zz/" + "0" * 32)] = "no clip refers to it"
    seeded.garbage[put("posters/zz/" + "1" * 32 + "-1.jpg")] = "no clip refers to it"
    seeded.keep.add(put("elsewhere/not-ours.txt"))  # not under a prefix the app writes
    db.session.commit()
    assert set(stored_objects()) == seeded.keep | set(seeded.garbage)
    return seeded


def test_gc_finds_exactly_the_garbage_and_deletes_only_it(
    app: Flask, seeded: Seeded, clock: FrozenClock
) -> None:
    past_grace(app, clock)
    assert collect_garbage(delete=False) == sorted(seeded.garbage)
    assert set(stored_objects()) == seeded.keep | set(seeded.garbage)  # a dry run deletes nothing
    assert collect_garbage() == sorted(seeded.garbage)
    assert set(stored_objects()) == seeded.keep
    assert collect_garbage() == []


def test_nothing_younger_than_an_upload_tickets_life_is_garbage(seeded: Seeded) -> None:
    assert collect_garbage() == []
    assert set(stored_objects()) == seeded.keep | set(seeded.garbage)


def test_the_command_is_a_dry_run_that_says_why_then_deletes_with_delete(
    app: Flask, seeded: Seeded, clock: FrozenClock
) -> None:
    past_grace(app, clock)
    dry = app.test_cli_runner().invoke(args=["storage", "gc"])
    assert dry.exit_code == 0, dry.output
    for key, why in seeded.garbage.items():
        (line,) = [line for line in dry.output.splitlines() if line.startswith(key + "\t")]
        assert why in line
    for key in seeded.keep:
        assert key not in dry.output
    assert f"{len(seeded.garbage)} objects" in dry.output
    assert "would be deleted; run with --delete" in dry.output
    assert set(stored_objects()) == seeded.keep | set(seeded.garbage)

    done = app.test_cli_runner().invoke(args=["storage", "gc", "--delete"])
    assert done.exit_code == 0, done.output
    assert f"{len(seeded.garbage)} objects deleted" in done.output
    assert set(stored_objects()) == seeded.keep


def test_the_periodic_cleanup_runs_the_same_collection(
    app: Flask, seeded: Seeded, clock: FrozenClock
) -> None:
    past_grace(app, clock)
    clock.now += timedelta(days=1)  # and the upload in progress was abandoned a day ago
    jobs.cleanup.call_local()
    assert set(stored_objects()) == seeded.keep - {seeded.uploading}


def _start_unfinished_upload(key: str, body: bytes = b"p" * (5 << 20)) -> str:
    """A multipart upload with one part sent and never completed: its writer lost mid-way."""
    store: Any = app_storage()
    client = s3_client_for(store)
    upload_id = client.create_multipart_upload(Bucket=store.bucket, Key=key)["UploadId"]
    client.upload_part(Bucket=store.bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=body)
    return str(upload_id)


def _unfinished() -> set[str]:
    store: Any = app_storage()
    listed = s3_client_for(store).list_multipart_uploads(Bucket=store.bucket)
    return {upload["Key"] for upload in listed.get("Uploads", [])}


@pytest.mark.parametrize("storage_backend", ["s3-inprocess", "s3-server"], indirect=True)
def test_an_upload_its_writer_never_finished_is_aborted_after_the_grace_period(
    app: Flask, seeded: Seeded, clock: FrozenClock
) -> None:
    lost = "incoming/cd/" + "3" * 32
    _start_unfinished_upload(lost)
    _start_unfinished_upload("elsewhere/their-upload")  # not under a prefix the app writes
    # moto dates every upload 2010-11-10, so here each is past the grace period at once (the
    # test on disk below shows a young one kept).
    past_grace(app, clock)

    dry = app.test_cli_runner().invoke(args=["storage", "gc"])
    assert dry.exit_code == 0, dry.output
    (line,) = [line for line in dry.output.splitlines() if line.startswith(lost + "\t")]
    assert "5.0 MB" in line or "5 MB" in line, line  # the parts' bytes, which cost storage
    assert "never finished" in line
    assert _unfinished() == {lost, "elsewhere/their-upload"}

    done = app.test_cli_runner().invoke(args=["storage", "gc", "--delete"])
    assert done.exit_code == 0, done.output
    assert _unfinished() == {"elsewhere/their-upload"}
    assert set(stored_objects()) == seeded.keep
    assert collect_garbage() == []


@pytest.mark.parametrize("storage_backend", ["local"], indirect=True)
def test_a_temporary_file_its_writer_never_renamed_is_removed_after_the_grace_period(
    app: Flask, seeded: Seeded, clock: FrozenClock
) -> None:
    store = app_storage()
    assert isinstance(store, LocalStorage)
    # What a web host killed mid-upload leaves: a form's spool, or an object half-copied.
    lost = store.root / ".tmp" / "spool-lost.part"
    lost.write_bytes(b"half a clip")
    assert collect_garbage(delete=False) == []  # within an upload ticket's life: still written
    past_grace(app, clock)

    dry = app.test_cli_runner().invoke(args=["storage", "gc"])
    assert dry.exit_code == 0, dry.output
    (line,) = [
        line for line in dry.output.splitlines() if line.startswith(".tmp/spool-lost.part\t")
    ]
    assert "never finished" in line
    assert lost.exists()
    done = app.test_cli_runner().invoke(args=["storage", "gc", "--delete"])
    assert done.exit_code == 0, done.output
    assert not lost.exists()
    assert set(stored_objects()) == seeded.keep
    assert collect_garbage() == []


@pytest.mark.parametrize("storage_backend", ["local"], indirect=True)
def test_a_temporary_file_outside_the_storage_folder_is_never_removed(app: Flask) -> None:
    store = app_storage()
    for name in ("../escape.part", "", ".hidden"):
        with pytest.raises(ValueError, match="not a temporary file"):
            store.abort_unfinished_upload(StoredObject(f".tmp/{name}", 0, datetime.now(UTC), name))


@pytest.mark.parametrize("storage_backend", ["local"], indirect=True)
def test_init_removes_temporary_files_a_day_old_and_leaves_what_is_not_its_own(
    app: Flask, clock: FrozenClock
) -> None:
    store = app_storage()
    assert isinstance(store, LocalStorage)
    tmp = store.root / ".tmp"
    stale, young, foreign = tmp / "put-old.part", tmp / "spool-new.part", tmp / ".keep"
    for path in (stale, young, foreign):
        path.write_bytes(b"x")
    day_and_more = time.time() - 25 * 3600
    for path in (stale, foreign):
        os.utime(path, (day_and_more, day_and_more))
    assert "removed 1 stale partial upload(s)" in store.init(cors_origins=[])
    assert (stale.exists(), young.exists(), foreign.exists()) == (False, True, True)
    past_grace(app, clock)  # garbage collection takes the young one too, never the dot file
    assert collect_garbage() == [".tmp/spool-new.part"]
    assert foreign.exists()
