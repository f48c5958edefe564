"""Clips browsers cannot play as they are (HEVC, AV1 in MKV) play in Chromium as renditions.

The clip goes through the real pipeline (staging key, the verify job, the PyAV rendition), then
a reviewer watches and approves it in Chromium and the public share page plays it too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from approval.extensions import db
from approval.extensions import storage as app_storage
from approval.models import AuditEvent, Clip, ClipStatus, Decision, Role, User
from approval.ops import claims, sharing, uploads

from .conftest import Site

MakeVideo = Callable[..., Path]

SOURCES = {
    "hevc-mp4": {"name": "clip.mp4", "codec": "libx265", "audio": True},
    "av1-mkv": {"name": "clip.mkv", "codec": "libsvtav1", "audio": False},
}


def _ready(page: Any) -> float:
    page.wait_for_function(
        "() => { const v = document.getElementById('player'); return v && v.readyState >= 1; }"
    )
    return float(page.evaluate("() => document.getElementById('player').duration"))


def _verified_clip(site: Site, tester: User, path: Path) -> Clip:
    """Upload as the app would, through the staging key; the job runs on commit (tests)."""
    with site.app.app_context():
        person = db.session.get(User, tester.id)
        assert person is not None
        clip = uploads.create(person, title="Strange codec", filename=path.name)
        db.session.commit()
        with path.open("rb") as body:
            uploads.receive(clip, body)
        uploads.complete(clip, person)
        db.session.commit()
        clip = db.session.get(Clip, clip.id, populate_existing=True)
        assert clip is not None
        db.session.expunge(clip)
        return clip


def _claim(site: Site, clip: Clip, reviewer: User) -> None:
    with site.app.app_context():
        claims.claim(db.session.get(Clip, clip.id), db.session.get(User, reviewer.id))
        db.session.commit()


@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_a_rendition_plays_for_the_reviewer_and_the_public(
    site: Site, chromium: Any, make_video: MakeVideo, kind: str
) -> None:
    source = SOURCES[kind]
    try:
        path = make_video(
            source["name"], seconds=2.0, width=640, height=360, codec=source["codec"],
            audio=source["audio"],
        )  # fmt: skip
    except Exception as exc:  # an encoder this PyAV build lacks
        pytest.skip(f"cannot encode {source['codec']} here: {exc}")
    tester = site.user(Role.TESTER, email="tess@example.com", name="Tess")
    reviewer = site.user(Role.REVIEWER, email="rey@example.com", name="Rey")
    clip = _verified_clip(site, tester, path)
    assert (clip.status, clip.rendition_codec) == (ClipStatus.WAITING, "h264")
    _claim(site, clip, reviewer)

    page = site.new_page(chromium)
    site.sign_in(page, reviewer)
    page.goto(f"{site.url}/review/{clip.id}")
    duration = _ready(page)
    assert abs(duration - (clip.duration_seconds or 0)) < 0.1
    assert page.is_hidden("#player-error")
    page.wait_for_function("() => !document.getElementById('approve-button').disabled")
    page.evaluate("() => document.getElementById('player').play()")
    page.wait_for_function("() => document.getElementById('player').currentTime > 0.5")
    page.evaluate("() => document.getElementById('player').pause()")
    site.shot(page, f"review-{kind}")
    with page.expect_navigation():
        page.click("#approve-button")

    with site.app.app_context():
        decision = db.session.scalars(select(Decision).where(Decision.clip_id == clip.id)).one()
        played = decision.played_seconds
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "clip.approved")
        ).one()
        served = json.loads(event.data)["served_sha256"]
        _link, token = sharing.create_link(
            db.session.get(Clip, clip.id), db.session.get(User, reviewer.id), allow_download=True
        )
        db.session.commit()
    assert (played or 0) > 0.4
    assert served == {"original": clip.sha256, "rendition": clip.rendition_sha256}

    public = site.new_page(chromium)
    public.goto(f"{site.url}/s/{token}")
    assert abs(_ready(public) - (clip.duration_seconds or 0)) < 0.1
    assert public.is_hidden("#player-error")
    site.shot(public, f"share-{kind}")
    assert site.problems == []


def test_a_changed_rendition_is_named_and_cannot_be_approved(
    site: Site, chromium: Any, make_video: MakeVideo
) -> None:
    path = make_video("clip.mp4", seconds=1.0, width=320, height=180, codec="libx265")
    tester = site.user(Role.TESTER, email="tess@example.com", name="Tess")
    reviewer = site.user(Role.REVIEWER, email="rey@example.com", name="Rey")
    clip = _verified_clip(site, tester, path)
    _claim(site, clip, reviewer)
    assert clip.rendition_key is not None
    with site.app.app_context():
        other = make_video("other.mp4", seconds=1.0, width=320, height=180)
        with other.open("rb") as body:
            app_storage().put_stream(clip.rendition_key, body, content_type="video/mp4")
    site.expected_statuses.add(410)

    page = site.new_page(chromium)
    site.sign_in(page, reviewer)
    page.goto(f"{site.url}/review/{clip.id}")
    page.wait_for_selector("#player-error:not([hidden])")
    assert "no longer matches" in page.inner_text("#player-error")
    assert page.is_disabled("#approve-button")
    site.shot(page, "review-changed-rendition")
