"""Serving exactly the verified bytes, without asking storage on every request where it can.

A bucket that keeps versions lets the first successful check pin the object's VersionId; from
then on URLs name it and S3 serves those bytes or nothing. Everywhere else every request checks,
and on disk the bytes are read from the very file that was checked. Revocation and takedown are
read from the database on every request, pinned or not.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from botocore.stub import Stubber
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from approval.delivery import serve_object
from approval.extensions import db
from approval.extensions import storage as app_storage
from approval.models import AuditEvent, Clip, ClipStatus, Role, ShareLink, User
from approval.ops import sharing, workflow
from approval.ops.served import object_versions, pin_name
from approval.storage import ObjectChanged, S3Storage, Storage
from tests.plugins.storage import S3_BACKENDS, s3_client_for

MakeUser = Callable[..., User]
MakeClip = Callable[..., Clip]
CONTENT = bytes(range(256)) * 40  # 10,240 bytes with a recognisable pattern
SWAPPED = b"not the approved bytes" * 100

s3_only = pytest.mark.parametrize("storage_backend", S3_BACKENDS, indirect=True)


@pytest.fixture
def app(app_factory: Callable[..., Flask], storage_url: str) -> Iterator[Flask]:
    app = app_factory(STORAGE_URL=storage_url)
    with app.app_context():
        yield app


def turn_on_versioning(status: str = "Enabled") -> Any:
    store = app_storage()
    assert isinstance(store, S3Storage)
    client = s3_client_for(store)
    client.put_bucket_versioning(Bucket=store.bucket, VersioningConfiguration={"Status": status})
    return client


@pytest.fixture
def versioned(app: Flask) -> Any:
    """The app's bucket keeps versions (before any clip is stored); a plain client to it."""
    return turn_on_versioning()


def fetch(client: FlaskClient, path: str) -> tuple[int, bytes]:
    """GET as a browser: follow a storage redirect over HTTP; the final status and body."""
    response = client.get(path)
    if response.status_code != 302:
        return response.status_code, response.get_data()
    followed = requests.get(response.headers["Location"], timeout=30)
    return followed.status_code, followed.content


def overwrite(key: str, content: bytes = SWAPPED) -> None:
    """What someone with write access to the bucket or directory could do behind our back."""
    app_storage().put_stream(key, io.BytesIO(content), content_type="video/mp4")


def integrity_events() -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.action == "clip.integrity_failed")
    return list(db.session.scalars(query))


def shared(make_clip: MakeClip, tester: User) -> tuple[Clip, str]:
    clip = make_clip(ClipStatus.APPROVED, tester=tester, content=CONTENT)
    _, token = sharing.create_link(clip, tester)
    db.session.commit()
    return clip, token


# --- a bucket that keeps versions ----------------------------------------------------------------


@s3_only
def test_the_first_check_pins_the_version_and_urls_name_it(
    app: Flask, versioned: Any, make_clip: MakeClip, tester: User
) -> None:
    clip, token = shared(make_clip, tester)
    version = app_storage().head(clip.storage_key).version_id
    response = app.test_client().get(f"/s/{token}/media")
    assert version is not None
    assert parse_qs(urlsplit(response.headers["Location"]).query)["versionId"] == [version]
    assert version in object_versions(db.session.get(Clip, clip.id)).values()


@s3_only
def test_bytes_written_over_a_pinned_key_are_never_served(
    app: Flask, versioned: Any, make_clip: MakeClip, tester: User
) -> None:
    clip, token = shared(make_clip, tester)
    viewer = app.test_client()
    assert fetch(viewer, f"/s/{token}/media") == (200, CONTENT)  # checked once, pinned
    overwrite(clip.storage_key)
    later = app.test_client()
    assert (fetch(later, f"/s/{token}/media"), later.get(f"/s/{token}").status_code) == (
        (200, CONTENT),
        200,
    )


@s3_only
def test_bytes_written_over_the_key_before_the_first_check_are_refused(
    app: Flask, versioned: Any, make_clip: MakeClip, tester: User
) -> None:
    clip, token = shared(make_clip, tester)
    overwrite(clip.storage_key)
    viewer = app.test_client()
    assert (viewer.get(f"/s/{token}/media").status_code, viewer.get(f"/s/{token}").status_code) == (
        410,
        410,
    )
    assert len(integrity_events()) == 1
    assert object_versions(db.session.get(Clip, clip.id)) == {}


@s3_only
def test_a_pinned_version_that_was_deleted_serves_nothing_else(
    app: Flask, versioned: Any, make_clip: MakeClip, tester: User
) -> None:
    clip, token = shared(make_clip, tester)
    viewer = app.test_client()
    fetch(viewer, f"/s/{token}/media")
    store = app_storage()
    assert isinstance(store, S3Storage)
    pinned = object_versions(db.session.get(Clip, clip.id))
    version = pinned[pin_name(store, clip.storage_key, str(clip.etag))]
    versioned.delete_object(Bucket=store.bucket, Key=clip.storage_key, VersionId=version)
    overwrite(clip.storage_key)
    status, body = fetch(app.test_client(), f"/s/{token}/media")
    assert (status, SWAPPED in body) == (404, False)


@s3_only
def test_revocation_stops_a_pinned_link_at_once(
    app: Flask, versioned: Any, make_clip: MakeClip, tester: User
) -> None:
    _, token = shared(make_clip, tester)
    viewer = app.test_client()
    for path in (f"/s/{token}", f"/s/{token}/media", f"/s/{token}/poster"):
        assert viewer.get(path).status_code in (200, 302)
    link = db.session.scalars(select(ShareLink)).one()
    sharing.revoke_link(link.id, tester)
    db.session.commit()
    statuses = [viewer.get(p).status_code for p in (f"/s/{token}", f"/s/{token}/media")]
    assert [*statuses, viewer.get(f"/s/{token}/poster").status_code] == [410, 410, 410]


@s3_only
def test_takedown_stops_a_pinned_link_at_once(
    app: Flask, versioned: Any, make_clip: MakeClip, tester: User, make_user: MakeUser
) -> None:
    clip, token = shared(make_clip, tester)
    viewer = app.test_client()
    assert viewer.get(f"/s/{token}/media").status_code == 302
    workflow.take_down(clip, make_user(Role.ADMIN), "rights complaint")
    db.session.commit()
    statuses = [viewer.get(p).status_code for p in (f"/s/{token}", f"/s/{token}/media")]
    assert [*statuses, viewer.get(f"/s/{token}/poster").status_code] == [410, 410, 410]


@s3_only
@pytest.mark.parametrize(
    "recorded",
    [
        lambda clip: json.dumps({f"s3://another-bucket {clip.storage_key} {clip.etag}": "v1"}),
        lambda clip: "{not json",
        lambda clip: json.dumps(["a list"]),
    ],
    ids=["another storage", "not json", "not a map"],
)
def test_a_version_recorded_for_another_storage_or_garbled_is_not_trusted(
    app: Flask,
    versioned: Any,
    make_clip: MakeClip,
    tester: User,
    recorded: Callable[[Clip], str],
) -> None:
    clip, token = shared(make_clip, tester)
    clip.object_versions = recorded(clip)
    db.session.commit()
    overwrite(clip.storage_key)
    assert app.test_client().get(f"/s/{token}/media").status_code == 410


@s3_only
def test_a_version_of_another_key_serves_nothing(
    app: Flask, versioned: Any, make_clip: MakeClip, tester: User
) -> None:
    """Even a pin naming another object's version (which served.py never records) cannot
    serve that object's bytes: S3 looks the version up under the key it is asked for."""
    clip, token = shared(make_clip, tester)
    other = app_storage().put_stream(
        "clips/zz/other", io.BytesIO(SWAPPED), content_type="video/mp4"
    )
    pin = pin_name(app_storage(), clip.storage_key, str(clip.etag))
    clip.object_versions = json.dumps({pin: other.version_id})
    db.session.commit()
    status, body = fetch(app.test_client(), f"/s/{token}/media")
    assert (status == 200, SWAPPED in body) == (False, False)


@s3_only
def test_a_version_stands_only_for_the_etag_it_was_checked_against(
    app: Flask, versioned: Any, make_clip: MakeClip, tester: User
) -> None:
    """Should the pinned facts of a key ever change, its recorded version is not used: the
    bytes served are the ones the database now pins, checked afresh."""
    clip, token = shared(make_clip, tester)
    assert fetch(app.test_client(), f"/s/{token}/media") == (200, CONTENT)  # version recorded
    replaced = app_storage().put_stream(
        clip.storage_key, io.BytesIO(SWAPPED), content_type="video/mp4"
    )
    clip.size_bytes, clip.etag = replaced.size, replaced.etag
    db.session.commit()
    assert fetch(app.test_client(), f"/s/{token}/media") == (200, SWAPPED)


# --- everywhere else: checked on every request ----------------------------------------------------


def test_without_versions_nothing_is_pinned_and_every_request_checks(
    app: Flask, make_clip: MakeClip, tester: User
) -> None:
    """On disk, and in a bucket whose versioning `flask storage init` turned on and someone
    suspended since (as a store that refuses versioning keeps none)."""
    if isinstance(app_storage(), S3Storage):
        turn_on_versioning("Suspended")
    clip, token = shared(make_clip, tester)
    viewer = app.test_client()
    assert fetch(viewer, f"/s/{token}/media") == (200, CONTENT)
    assert db.session.get(Clip, clip.id).object_versions is None
    overwrite(clip.storage_key)
    assert (viewer.get(f"/s/{token}/media").status_code, viewer.get(f"/s/{token}").status_code) == (
        410,
        410,
    )


@s3_only
@pytest.mark.parametrize(
    ("reported", "pinned"), [("3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY", True), ("null", False)]
)
def test_a_null_version_pins_nothing(storage: Storage, reported: str, pinned: bool) -> None:
    """S3 reports "null" for an object written while versioning was off or suspended; the
    next such write replaces it, so it is no pin. (moto leaves the header out instead.)"""
    assert isinstance(storage, S3Storage)
    answer = {"ContentLength": 3, "ETag": '"abc"', "VersionId": reported}
    with Stubber(storage._client) as stub:  # S3's own answer, which moto does not give
        stub.add_response("head_object", answer, {"Bucket": storage.bucket, "Key": "clips/ab/n"})
        version = storage.head("clips/ab/n").version_id
    assert version == (reported if pinned else None)


@s3_only
@pytest.mark.parametrize("version", ["null", "", "a b", "x" * 1025, "v1\r\nX-Evil: 1"])
def test_read_url_refuses_what_is_not_a_version_id(storage: Storage, version: str) -> None:
    with pytest.raises(ValueError, match="version"):
        storage.read_url("clips/ab/key", expires_in=60, version_id=version)


@s3_only
def test_a_url_naming_a_version_gets_that_version(storage: Storage) -> None:
    assert isinstance(storage, S3Storage)
    s3_client_for(storage).put_bucket_versioning(
        Bucket=storage.bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    first = storage.put_stream("clips/ab/v", io.BytesIO(CONTENT), content_type="video/mp4")
    storage.put_stream("clips/ab/v", io.BytesIO(SWAPPED), content_type="video/mp4")
    url = storage.read_url("clips/ab/v", expires_in=60, version_id=first.version_id)
    assert url is not None
    assert requests.get(url, timeout=30).content == CONTENT


@s3_only
def test_a_presigned_url_is_reused_only_briefly_and_only_for_the_same_answer(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signing is most of a redirect's cost, so a URL is handed out again for a tenth of its
    lifetime: it then expires sooner than a fresh one would, never later."""
    assert isinstance(storage, S3Storage)
    signed: list[dict[str, Any]] = []
    sign = storage._client.generate_presigned_url  # botocore's own, counted

    def counted(*args: Any, **kwargs: Any) -> str:
        signed.append(kwargs["Params"])
        return str(sign(*args, **kwargs))

    monkeypatch.setattr(storage._client, "generate_presigned_url", counted)
    now = [1000.0]
    monkeypatch.setattr("approval.storage.s3._clock", lambda: now[0])
    first = storage.read_url("clips/ab/u", expires_in=300, disposition="inline")
    again = storage.read_url("clips/ab/u", expires_in=300, disposition="inline")
    storage.read_url("clips/ab/u", expires_in=300, disposition="attachment")
    storage.read_url("clips/ab/u", expires_in=300, disposition="inline", version_id="v2")
    now[0] += 30
    storage.read_url("clips/ab/u", expires_in=300, disposition="inline")
    assert (again == first, len(signed)) == (True, 4)


def test_a_read_naming_an_etag_refuses_other_bytes(storage: Storage) -> None:
    """On disk the open file itself is compared; on S3 the server refuses (If-Match)."""
    first = storage.put_stream("clips/ab/e", io.BytesIO(CONTENT), content_type="video/mp4")
    assert b"".join(storage.read("clips/ab/e", etag=first.etag)) == CONTENT
    storage.put_stream("clips/ab/e", io.BytesIO(SWAPPED), content_type="video/mp4")
    with pytest.raises(ObjectChanged):
        b"".join(storage.read("clips/ab/e", 0, 99, etag=first.etag))


@pytest.mark.parametrize("storage_backend", ["local"], indirect=True)
def test_a_file_replaced_after_its_check_is_never_streamed(app: Flask) -> None:
    """The stat said these bytes; if the file is swapped before it is opened, nothing is sent."""
    key = "clips/ab/checked"
    checked = app_storage().put_stream(key, io.BytesIO(CONTENT), content_type="video/mp4")

    @app.get("/_checked_then_served")
    def checked_then_served() -> Any:
        return serve_object(key, info=checked, content_type="video/mp4")

    overwrite(key)
    response = app.test_client().get("/_checked_then_served", headers={"Range": "bytes=0-99"})
    assert (response.status_code, SWAPPED[:100] in response.get_data()) == (503, False)
