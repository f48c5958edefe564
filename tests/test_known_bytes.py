"""Moderation memory: bytes the gate refused once stay refused, and copies are pointed out.

Refused bytes are those of a rejected or taken-down clip, and the copy made for playback of
one (what its reviewers and the public actually watched, which its tester can download). A new
upload whose bytes match another tester's earlier clip is queued, and reviewers and admins are
shown that clip; the uploader is told nothing about anybody else's clip.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from approval.extensions import db
from approval.extensions import storage as app_storage
from approval.models import Clip, ClipStatus, Role, User, Verdict
from approval.ops import claims, workflow
from tests.plugins.api import bearer
from tests.plugins.uploads import direct_upload
from tests.plugins.web import SignIn

MakeUser = Callable[..., User]
MakeClip = Callable[..., Clip]
MakeVideo = Callable[..., Path]
SMALL = {"seconds": 1.0, "width": 320, "height": 180}


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def newest_clip() -> Clip:
    clip = db.session.scalars(select(Clip).order_by(Clip.id.desc()).limit(1)).one()
    db.session.refresh(clip)
    return clip


def waiting_count() -> int:
    return (
        db.session.scalar(
            select(func.count()).select_from(Clip).where(Clip.status == ClipStatus.WAITING)
        )
        or 0
    )


@pytest.fixture
def uploader(signed_in: SignIn, app: Flask, make_user: MakeUser) -> Callable[[User], FlaskClient]:
    """A signed-in browser of its own for a tester."""
    return lambda user: signed_in(user, client=app.test_client())


# --- refused: the bytes of a taken-down clip ----------------------------------------------------


def test_a_taken_down_clips_bytes_are_refused_to_its_tester_with_the_reason(
    uploader: Callable[[User], FlaskClient],
    tester: User,
    make_clip: MakeClip,
    make_video: MakeVideo,
) -> None:
    path = make_video(**SMALL)
    make_clip(ClipStatus.TAKEN_DOWN, tester=tester, title="Surf", sha256=sha256_of(path))
    answer = direct_upload(uploader(tester), path, title="Surf again").get_json()
    assert answer["status"] == "failed"
    assert "already taken down" in answer["failure_reason"]
    assert "Rights complaint" in answer["failure_reason"]  # the takedown's own reason
    assert waiting_count() == 0


def test_a_taken_down_clips_bytes_are_refused_to_another_tester_without_names(
    uploader: Callable[[User], FlaskClient],
    make_user: MakeUser,
    make_clip: MakeClip,
    make_video: MakeVideo,
) -> None:
    path = make_video(**SMALL)
    admin = make_user(Role.ADMIN, display_name="Ada Admin")
    make_clip(ClipStatus.TAKEN_DOWN, admin=admin, title="Secret title", sha256=sha256_of(path))
    answer = direct_upload(uploader(make_user(Role.TESTER)), path).get_json()
    assert answer["status"] == "failed"
    assert "taken down" in answer["failure_reason"]
    for private in ("Ada Admin", "Secret title", "Rights complaint"):
        assert private not in answer["failure_reason"]
    assert waiting_count() == 0


# --- refused: the copy for playback of a refused clip -------------------------------------------


def _rendered_upload(client: FlaskClient, make_video: MakeVideo) -> Clip:
    """Upload an HEVC clip, which browsers cannot play, so verification makes an H.264 copy."""
    path = make_video("hevc.mp4", codec="libx265", **SMALL)
    assert direct_upload(client, path, title="HEVC").get_json()["status"] == "waiting"
    clip = newest_clip()
    assert clip.rendition_key
    assert clip.rendition_sha256
    return clip


def _copy_for_playback(clip: Clip, directory: Path) -> Path:
    """The rendition's bytes, as its tester can download them from their clip's page."""
    assert clip.rendition_key is not None
    path = directory / "downloaded.mp4"
    path.write_bytes(b"".join(app_storage().read(clip.rendition_key)))
    assert sha256_of(path) == clip.rendition_sha256
    return path


@pytest.mark.parametrize("refusal", ["rejected", "taken down"])
def test_the_copy_for_playback_of_a_refused_clip_is_refused_too(
    refusal: str,
    app: Flask,
    uploader: Callable[[User], FlaskClient],
    tester: User,
    make_user: MakeUser,
    make_video: MakeVideo,
    tmp_path: Path,
) -> None:
    browser = uploader(tester)
    clip = _rendered_upload(browser, make_video)
    reviewer = make_user(Role.REVIEWER)
    claims.claim(clip, reviewer)
    if refusal == "rejected":
        workflow.decide(clip, reviewer, Verdict.REJECT, category="quality", reason="Too dark")
    else:
        app.config["APPROVALS_REQUIRED"] = 1
        workflow.decide(clip, reviewer, Verdict.APPROVE)
        workflow.take_down(clip, make_user(Role.ADMIN), "Rights complaint")
    db.session.commit()
    copy = _copy_for_playback(clip, tmp_path)

    answer = direct_upload(browser, copy, title="The same, re-encoded by us").get_json()
    assert answer["status"] == "failed"
    assert f"already {refusal}" in answer["failure_reason"]
    assert ("Too dark" if refusal == "rejected" else "Rights complaint") in answer["failure_reason"]
    assert waiting_count() == 0


# --- pointed out: the same bytes as another tester's earlier clip -------------------------------


@pytest.fixture
def copied(
    uploader: Callable[[User], FlaskClient],
    make_user: MakeUser,
    make_clip: MakeClip,
    make_video: MakeVideo,
) -> tuple[Clip, Clip]:
    """Ann's approved clip, then Ben's upload of the very same bytes: (Ann's, Ben's)."""
    path = make_video(**SMALL)
    ann = make_user(Role.TESTER, display_name="Ann Artist")
    first = make_clip(ClipStatus.APPROVED, tester=ann, title="Ann's wave", sha256=sha256_of(path))
    ben = make_user(Role.TESTER, display_name="Ben Borrower")
    assert direct_upload(uploader(ben), path, title="My wave").get_json()["status"] == "waiting"
    return first, newest_clip()


def test_reviewers_see_that_an_upload_has_the_same_bytes_as_another_testers_clip(
    copied: tuple[Clip, Clip], signed_in: SignIn, reviewer: User
) -> None:
    first, second = copied
    page = signed_in(reviewer).get(f"/review/{second.id}").get_data(as_text=True)
    assert "Same bytes as" in page
    assert f'href="/review/{first.id}"' in page
    for shown in ("Ann&#39;s wave", "Ann Artist", "approved"):
        assert shown in page


def test_admins_see_it_on_the_clip_page(
    copied: tuple[Clip, Clip], signed_in: SignIn, admin: User
) -> None:
    first, second = copied
    page = signed_in(admin).get(f"/clips/{second.id}").get_data(as_text=True)
    assert "Same bytes as" in page
    assert f'href="/clips/{first.id}"' in page
    assert "Ann Artist" in page


def test_the_uploader_is_told_nothing_of_the_other_clip(
    copied: tuple[Clip, Clip], app: Flask, signed_in: SignIn
) -> None:
    _, second = copied
    page = signed_in(second.tester, client=app.test_client()).get(f"/clips/{second.id}")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Same bytes" not in text
    assert "Ann Artist" not in text
    api = app.test_client().get(f"/api/v1/clips/{second.id}", headers=bearer(second.tester))
    assert api.get_json()["same_bytes"] == []


def test_the_api_names_the_earlier_clip_to_reviewers(
    copied: tuple[Clip, Clip], app: Flask, reviewer: User
) -> None:
    first, second = copied
    body = app.test_client().get(f"/api/v1/clips/{second.id}", headers=bearer(reviewer)).get_json()
    (match,) = body["same_bytes"]
    assert (match["id"], match["status"], match["part"]) == (first.id, "approved", "original")
    assert match["tester"]["name"] == "Ann Artist"
    assert match["url"].endswith(f"/api/v1/clips/{first.id}")


def test_the_earlier_clip_does_not_point_at_the_later_copy(
    copied: tuple[Clip, Clip], signed_in: SignIn, reviewer: User
) -> None:
    first, _ = copied
    assert "Same bytes as" not in signed_in(reviewer).get(f"/review/{first.id}").get_data(
        as_text=True
    )


def test_a_match_with_another_testers_copy_for_playback_says_so(
    uploader: Callable[[User], FlaskClient],
    make_user: MakeUser,
    make_video: MakeVideo,
    signed_in: SignIn,
    reviewer: User,
    tmp_path: Path,
) -> None:
    first = _rendered_upload(
        uploader(make_user(Role.TESTER, display_name="Ann Artist")), make_video
    )
    copy = _copy_for_playback(first, tmp_path)
    ben = uploader(make_user(Role.TESTER))
    assert direct_upload(ben, copy, title="Mine").get_json()["status"] == "waiting"
    second = newest_clip()
    page = signed_in(reviewer).get(f"/review/{second.id}").get_data(as_text=True)
    assert "Same bytes as the copy for playback of" in page
    assert f'href="/review/{first.id}"' in page


def test_the_same_testers_own_earlier_bytes_are_no_copy(
    uploader: Callable[[User], FlaskClient],
    tester: User,
    make_clip: MakeClip,
    make_video: MakeVideo,
    signed_in: SignIn,
    reviewer: User,
) -> None:
    path = make_video(**SMALL)
    make_clip(ClipStatus.APPROVED, tester=tester, sha256=sha256_of(path))
    assert direct_upload(uploader(tester), path).get_json()["status"] == "waiting"
    page = signed_in(reviewer).get(f"/review/{newest_clip().id}").get_data(as_text=True)
    assert "Same bytes as" not in page
