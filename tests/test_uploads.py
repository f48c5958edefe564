"""Uploads on every storage backend: tickets, both paths, verification and every bad input."""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from approval.extensions import db
from approval.models import AuditEvent, Clip, ClipStatus, Role, User, Verdict
from approval.ops import claims, workflow
from tests.plugins.factories import FrozenClock
from tests.plugins.snapshot import nothing_changed, stored_objects
from tests.plugins.uploads import SITE, complete, direct_upload, send, start_direct
from tests.plugins.web import SignIn, csrf_token

MakeUser = Callable[..., User]
Login = Callable[..., Any]


@pytest.fixture
def app(app_factory: Callable[..., Flask], storage_url: str) -> Iterator[Flask]:
    """Every test here runs on each backend: local, S3 in-process, S3 over real HTTP."""
    app = app_factory(STORAGE_URL=storage_url)
    with app.app_context():
        yield app


@pytest.fixture
def browser(app: Flask, signed_in: SignIn, tester: User) -> FlaskClient:
    """The shared tester, signed in on a client of its own, on the backend under test."""
    return signed_in(tester, client=app.test_client())


def queue_size() -> int:
    return (
        db.session.scalar(
            select(func.count()).select_from(Clip).where(Clip.status == ClipStatus.WAITING)
        )
        or 0
    )


# --- the good path ------------------------------------------------------------------------------


def test_direct_upload_reaches_the_queue_with_its_facts(
    browser: FlaskClient, make_video: Callable[..., Path]
) -> None:
    response = direct_upload(browser, make_video("clip.mp4", seconds=2.0))
    assert response.status_code == 202
    assert response.get_json()["status"] == "waiting"
    clip = db.session.scalars(select(Clip)).one()
    assert (clip.width, clip.height, clip.codec, clip.container) == (1920, 1080, "h264", "mp4")
    assert clip.duration_seconds == pytest.approx(2.0, abs=0.1)
    assert len(clip.sha256 or "") == 64
    assert stored_objects() == sorted([clip.storage_key, clip.poster_key])


def test_ticket_for_s3_is_a_presigned_post_with_size_and_type_conditions(
    browser: FlaskClient, storage_backend: str
) -> None:
    if storage_backend == "local":
        pytest.skip("local storage takes the bytes through the app")
    started = start_direct(browser, "clip.mp4", 1000).get_json()
    upload = started["upload"]
    assert upload["method"] == "POST"
    policy = json.loads(base64.b64decode(upload["fields"]["policy"]))
    conditions = policy["conditions"]
    assert ["content-length-range", 1, 1 << 30] in conditions
    assert {"Content-Type": "video/mp4"} in conditions or [
        "eq",
        "$Content-Type",
        "video/mp4",
    ] in conditions
    clip = db.session.get(Clip, started["clip"])
    assert clip is not None
    # The ticket writes only to the staging key, never to the key that is later served.
    assert clip.staging_key is not None
    assert clip.staging_key.startswith("incoming/")
    assert clip.staging_key in json.dumps(conditions)
    assert clip.storage_key not in json.dumps(conditions)
    assert "clip.mp4" not in clip.staging_key


def test_plain_form_upload_streams_through_the_app(
    browser: FlaskClient, make_video: Callable[..., Path]
) -> None:
    path = make_video("plain.mov")
    with path.open("rb") as handle:
        response = browser.post(
            "/clips/new",
            data={
                "title": "Plain",
                "file": (handle, "plain.mov"),
                "csrf_token": csrf_token(browser, "/clips/new"),
            },
            content_type="multipart/form-data",
        )
    assert response.status_code == 302
    clip = db.session.scalars(select(Clip)).one()
    assert clip.status == ClipStatus.WAITING
    assert clip.container == "mov"
    assert clip.content_type == "video/quicktime"


def test_completion_twice_is_idempotent(
    browser: FlaskClient, make_video: Callable[..., Path]
) -> None:
    path = make_video()
    first = direct_upload(browser, path)
    clip_id = db.session.scalars(select(Clip.id)).one()
    second = complete(browser, clip_id)
    assert first.get_json()["status"] == second.get_json()["status"] == "waiting"
    verified = db.session.scalar(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "clip.verified")
    )
    assert verified == 1


def test_webm_and_mkv_are_accepted(browser: FlaskClient, make_video: Callable[..., Path]) -> None:
    for name in ("clip.webm", "clip.mkv"):
        response = direct_upload(browser, make_video(name, codec="libvpx-vp9"), name=name)
        assert response.get_json()["status"] == "waiting", response.get_json()


# --- bad input: each gets its reason, and leaves no queue entry and no stray object ------------


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("empty", "file is empty"),
        ("text", "not a video container we accept"),
        ("truncated", "damaged or truncated"),
        ("audio_only", "no video stream found"),
    ],
)
def test_bad_files_fail_verification_and_leave_nothing(
    browser: FlaskClient, make_media_file: Callable[..., Path], kind: str, reason: str
) -> None:
    path = make_media_file(kind)
    name = path.name if path.suffix in (".mp4", ".mov", ".mkv", ".webm") else "renamed.mp4"
    body = path.read_bytes()
    if not body:
        with nothing_changed():
            started = start_direct(browser, name, 0)
        assert started.status_code == 422
        assert "file is empty" in started.get_json()["errors"]["file"][0]
        assert db.session.scalar(select(func.count()).select_from(Clip)) == 0
        return
    response = direct_upload(browser, path, name=name)
    result = response.get_json()
    assert result["status"] == "failed"
    assert reason in result["failure_reason"]
    assert queue_size() == 0
    assert stored_objects() == []


def test_png_renamed_mp4_is_refused(
    browser: FlaskClient, make_media_file: Callable[..., Path]
) -> None:
    response = direct_upload(browser, make_media_file("png"), name="picture.mp4")
    assert response.get_json()["status"] == "failed"
    assert stored_objects() == []


@pytest.mark.parametrize("name", ["picture.png", "notes.txt", "no-extension"])
def test_files_that_are_not_video_by_name_are_refused_before_upload(
    browser: FlaskClient, name: str
) -> None:
    with nothing_changed():
        response = start_direct(browser, name, 1000)
    assert response.status_code == 422
    assert (
        "not accepted; upload an MP4, MOV, WebM or MKV video"
        in response.get_json()["errors"]["file"][0]
    )
    assert db.session.scalar(select(func.count()).select_from(Clip)) == 0


def test_declared_size_over_the_limit_is_refused_up_front(browser: FlaskClient) -> None:
    with nothing_changed():
        response = start_direct(browser, "huge.mp4", int(1.4 * (1 << 30)))
    assert response.status_code == 413
    assert response.get_json()["errors"]["file"] == ["file is 1.4 GB; the limit is 1 GB"]


def test_lying_about_size_is_caught_by_verification(
    app: Flask, browser: FlaskClient, make_video: Callable[..., Path]
) -> None:
    body = make_video().read_bytes()
    app.config["MAX_CLIP_BYTES"] = len(body) - 1
    started = start_direct(browser, "clip.mp4", 100).get_json()
    status = send(browser, started["upload"], body, "clip.mp4")
    if status in (200, 201, 204):  # moto does not enforce content-length-range; we do
        result = complete(browser, started["clip"]).get_json()
        assert result["status"] == "failed"
        assert "the limit is" in result["failure_reason"]
    else:
        assert status in (400, 413)
    assert stored_objects() == []
    assert queue_size() == 0


def test_plain_form_over_the_limit_gets_413_before_reading(
    app: Flask, browser: FlaskClient
) -> None:
    app.config["MAX_CLIP_BYTES"] = 1000
    token = csrf_token(browser, "/clips/new")
    with nothing_changed():
        response = browser.post(
            "/clips/new",
            data={"title": "Big", "file": (io.BytesIO(b"x" * 3_000_000), "big.mp4"),
                  "csrf_token": token},
            content_type="multipart/form-data",
        )  # fmt: skip
    assert response.status_code == 413
    assert "at most 1000 bytes" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Clip)) == 0


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"title": "x" * 10_000}, "title", "between 1 and 200"),
        ({"title": ""}, "title", "required"),
        ({"prompt": "p" * 4001}, "prompt", "longer than 4000"),
    ],
)
def test_bad_details_are_refused_field_by_field(
    browser: FlaskClient, fields: dict[str, str], field: str, message: str
) -> None:
    with nothing_changed():
        response = start_direct(browser, "clip.mp4", 1000, **fields)
    assert response.status_code == 400
    assert message in " ".join(response.get_json()["errors"][field])
    assert db.session.scalar(select(func.count()).select_from(Clip)) == 0


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("../../etc/passwd.mp4", "passwd.mp4"),
        ("a" * 300 + ".mp4", "a" * 196 + ".mp4"),
        ("C:\\Users\\me\\clip.mp4", "clip.mp4"),
    ],
)
def test_filenames_are_sanitised_and_never_used_as_keys(
    browser: FlaskClient, name: str, kept: str
) -> None:
    started = start_direct(browser, name, 1000)
    assert started.status_code == 201
    clip = db.session.get(Clip, started.get_json()["clip"])
    assert clip is not None
    assert clip.original_filename == kept
    assert clip.storage_key.startswith("clips/")
    assert "passwd" not in clip.storage_key


def test_script_in_title_prompt_and_filename_is_escaped(
    browser: FlaskClient, make_video: Callable[..., Path]
) -> None:
    script = "<script>alert(1)</script>"
    direct_upload(
        browser, make_video(), name=f"{script}.mp4", title=f"T {script}", prompt=f"P {script}"
    )
    clip = db.session.scalars(select(Clip)).one()
    for page in ("/clips/", f"/clips/{clip.id}"):
        html = browser.get(page).get_data(as_text=True)
        assert script not in html
        assert "&lt;script&gt;" in html


def test_completion_of_someone_elses_or_unknown_clip_is_404(
    app: Flask, browser: FlaskClient, signed_in: SignIn
) -> None:
    started = start_direct(browser, "clip.mp4", 1000).get_json()
    other = signed_in(Role.TESTER, client=app.test_client())
    with nothing_changed():
        assert complete(other, started["clip"]).status_code == 404
        assert complete(browser, 999_999).status_code == 404
    assert db.session.get(Clip, started["clip"]).status == ClipStatus.UPLOADING


def test_expired_app_ticket_is_refused(
    app: Flask, browser: FlaskClient, clock: FrozenClock, storage_backend: str
) -> None:
    if storage_backend != "local":
        pytest.skip("S3 enforces its own presigned expiry (moto does not; verification still runs)")
    started = start_direct(browser, "clip.mp4", 10).get_json()
    clock.advance(seconds=app.config["UPLOAD_TICKET_TTL"] + 1)
    with nothing_changed():
        status = browser.put(started["upload"]["url"].removeprefix(SITE), data=b"0123456789")
    assert status.status_code == 422
    assert "expired" in status.get_data(as_text=True)
    assert stored_objects() == []


def test_forged_app_ticket_is_404(browser: FlaskClient, storage_backend: str) -> None:
    if storage_backend != "local":
        pytest.skip("only local storage takes bytes through the app")
    started = start_direct(browser, "clip.mp4", 10).get_json()
    with nothing_changed():
        response = browser.put(f"/clips/{started['clip']}/upload?ticket=forged", data=b"x")
    assert response.status_code == 404


def test_retry_gets_a_fresh_ticket_for_the_same_clip(browser: FlaskClient) -> None:
    started = start_direct(browser, "clip.mp4", 10).get_json()
    again = browser.post(
        started["ticket_url"], headers={"X-CSRFToken": csrf_token(browser, "/clips/new")}
    )
    assert again.status_code == 200
    assert again.get_json()["clip"] == started["clip"]


# --- versions, withdrawal, My clips --------------------------------------------------------------


def test_rejected_clip_can_be_replaced_by_a_new_version(
    browser: FlaskClient, tester: User, make_clip: Callable[..., Clip],
    make_video: Callable[..., Path],
) -> None:  # fmt: skip
    rejected = make_clip(ClipStatus.REJECTED, tester=tester)
    body = make_video().read_bytes()
    data = {"title": "Fixed", "filename": "v2.mp4", "size": str(len(body)),
            "csrf_token": csrf_token(browser, "/clips/new")}  # fmt: skip
    started = browser.post(f"/clips/direct?previous={rejected.id}", data=data).get_json()
    send(browser, started["upload"], body, "v2.mp4")
    complete(browser, started["clip"])
    new = db.session.get(Clip, started["clip"])
    assert new is not None
    assert (new.previous_version_id, new.version, new.status) == (
        rejected.id, 2, ClipStatus.WAITING
    )  # fmt: skip
    assert "clip.superseded" in db.session.scalars(select(AuditEvent.action)).all()


@pytest.mark.parametrize("status", [ClipStatus.WAITING, ClipStatus.APPROVED, ClipStatus.FAILED])
def test_only_rejected_clips_take_a_new_version(
    browser: FlaskClient, tester: User, make_clip: Callable[..., Clip], status: ClipStatus
) -> None:
    clip = make_clip(status, tester=tester)
    data = {"title": "v2", "filename": "v2.mp4", "size": "10",
            "csrf_token": csrf_token(browser, "/clips/new")}  # fmt: skip
    with nothing_changed():
        response = browser.post(f"/clips/direct?previous={clip.id}", data=data)
    assert response.status_code == 409


def test_the_same_bytes_as_a_rejected_clip_are_refused(
    browser: FlaskClient, make_user: MakeUser, make_video: Callable[..., Path]
) -> None:
    path = make_video()
    direct_upload(browser, path, title="first")
    clip = db.session.scalars(select(Clip)).one()
    reviewer = make_user(Role.REVIEWER)
    claims.claim(clip, reviewer)
    workflow.decide(clip, reviewer, Verdict.REJECT, category="quality", reason="Too dark")
    db.session.commit()
    again = direct_upload(browser, path, title="again").get_json()
    assert again["status"] == "failed"
    assert "already rejected" in again["failure_reason"]
    assert "Too dark" in again["failure_reason"]
    assert queue_size() == 0


def test_withdraw_a_waiting_clip(
    browser: FlaskClient, tester: User, make_clip: Callable[..., Clip]
) -> None:
    clip = make_clip(ClipStatus.WAITING, tester=tester)
    page = f"/clips/{clip.id}"
    response = browser.post(f"{page}/withdraw", data={"csrf_token": csrf_token(browser, page)})
    assert response.status_code == 302
    db.session.refresh(clip)
    assert clip.status == ClipStatus.WITHDRAWN


def test_withdraw_after_a_reviewer_took_it_is_409(
    browser: FlaskClient, tester: User, make_clip: Callable[..., Clip]
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, tester=tester)
    page = f"/clips/{clip.id}"
    data = {"csrf_token": csrf_token(browser, page)}
    with nothing_changed():
        response = browser.post(f"{page}/withdraw", data=data)
    assert response.status_code == 409
    assert "in review" in response.get_data(as_text=True)


def test_my_clips_lists_own_clips_newest_first_with_pages(
    browser: FlaskClient, tester: User, make_clip: Callable[..., Clip]
) -> None:
    for n in range(25):
        make_clip(ClipStatus.WAITING, tester=tester, title=f"Mine {n}")
    make_clip(ClipStatus.WAITING, title="Somebody else's")
    first = browser.get("/clips/").get_data(as_text=True)
    assert first.index("Mine 24") < first.index("Mine 5")
    assert "Mine 4<" not in first
    assert "Somebody else" not in first
    older = re.search(r'href="([^"]+)">Older clips', first)
    assert older is not None
    second = browser.get(older.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert "Mine 4" in second


def test_rejection_reason_is_shown_in_my_clips(
    browser: FlaskClient, tester: User, make_clip: Callable[..., Clip]
) -> None:
    make_clip(ClipStatus.REJECTED, tester=tester)
    assert "Too blurry" in browser.get("/clips/").get_data(as_text=True)


@pytest.mark.parametrize("path", ["/clips/{id}", "/clips/{id}/media", "/clips/{id}/poster"])
def test_other_testers_clips_answer_404(
    browser: FlaskClient, make_clip: Callable[..., Clip], path: str
) -> None:
    clip = make_clip(ClipStatus.WAITING)
    with nothing_changed():
        assert browser.get(path.format(id=clip.id)).status_code == 404


def test_cleanup_fails_abandoned_uploads(
    app: Flask, browser: FlaskClient, clock: FrozenClock
) -> None:
    started = start_direct(browser, "clip.mp4", 10).get_json()
    clock.advance(hours=25)
    result = app.test_cli_runner().invoke(args=["clips", "cleanup"])
    assert "1 abandoned upload cleaned up" in result.output
    clip = db.session.get(Clip, started["clip"])
    assert clip is not None
    assert (clip.status, clip.failure_reason) == (
        ClipStatus.FAILED,
        "the upload was never finished",
    )
