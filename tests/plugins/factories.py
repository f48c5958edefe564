"""Factories and the people in most tests: make_user, make_clip, a frozen clock, and
`tester`, `reviewer`, `admin` — plain users who are NOT signed in (see tests/plugins/web.py).

Loaded from tests/conftest.py's ``pytest_plugins``; test modules import the constants
(PASSWORD, FAKE_MEDIA) and FrozenClock from here, never from conftest or each other.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask

from approval.extensions import db
from approval.extensions import storage as app_storage
from approval.models import Clip, ClipStatus, Role, User, Verdict
from approval.ops import claims, workflow
from approval.ops.people import create_user
from approval.ops.workflow import VerifiedMedia

PASSWORD = "correct horse battery staple"


class FrozenClock:
    """A clock tests move by hand instead of sleeping."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def make_user(app: Flask) -> Callable[..., User]:
    """Factory: make_user(Role.REVIEWER, email=..., display_name=..., active=...), PASSWORD."""
    counter = iter(range(1, 10_000))

    def make(
        *roles: Role,
        email: str | None = None,
        display_name: str | None = None,
        active: bool = True,
        password: str = PASSWORD,
    ) -> User:
        number = next(counter)
        user = create_user(
            email or f"person{number}@example.com",
            display_name or f"Person {number}",
            roles or (Role.TESTER,),
            actor=None,
            password=password,
        )
        user.active = active
        db.session.commit()
        return user

    return make


@pytest.fixture
def tester(make_user: Callable[..., User]) -> User:
    """A tester, not signed in anywhere: tess@example.com."""
    return make_user(Role.TESTER, email="tess@example.com")


@pytest.fixture
def reviewer(make_user: Callable[..., User]) -> User:
    """A reviewer, not signed in anywhere: rita@example.com."""
    return make_user(Role.REVIEWER, email="rita@example.com")


@pytest.fixture
def admin(make_user: Callable[..., User]) -> User:
    """An admin, not signed in anywhere: admin@example.com."""
    return make_user(Role.ADMIN, email="admin@example.com")


FAKE_MEDIA = VerifiedMedia(
    size_bytes=1234,
    sha256="ab" * 32,
    etag="etag-1",
    container="mp4",
    codec="h264",
    width=1920,
    height=1080,
    duration_seconds=2.0,
    fps=24.0,
    has_audio=False,
    poster_key=None,
)


@pytest.fixture
def make_clip(app: Flask, make_user: Callable[..., User]) -> Callable[..., Clip]:
    """Factory: make_clip(ClipStatus.APPROVED, tester=..., reviewer=...) through the workflow.

    The bytes are not real (tests that need real media upload them); every state is reached by
    the same workflow calls the app makes, so the audit chain stays whole.
    """
    counter = iter(range(1, 100_000))

    def make(
        status: ClipStatus = ClipStatus.WAITING,
        *,
        tester: User | None = None,
        reviewer: User | None = None,
        admin: User | None = None,
        title: str | None = None,
        previous: Clip | None = None,
        sha256: str | None = None,
        content: bytes | None = None,
    ) -> Clip:
        number = next(counter)
        tester = tester or make_user(Role.TESTER)
        clip = workflow.start_upload(
            tester, title=title or f"Clip {number}", generator="gen-1", previous=previous
        )
        if status == ClipStatus.UPLOADING:
            db.session.commit()
            return clip
        workflow.begin_verification(clip, tester)
        if status == ClipStatus.VERIFYING:
            db.session.commit()
            return clip
        if status == ClipStatus.FAILED:
            workflow.fail_verification(clip, "no video stream found")
            db.session.commit()
            return clip
        media = replace(FAKE_MEDIA, sha256=sha256 or f"{number:064x}")
        if content is not None:
            # Real bytes in storage, so delivery and the approved-bytes check have an object.
            store = app_storage()
            info = store.put_stream(clip.storage_key, io.BytesIO(content), content_type="video/mp4")
            poster_key = clip.storage_key.replace("clips/", "posters/", 1) + ".jpg"
            store.put_stream(poster_key, io.BytesIO(b"\xff\xd8poster"), content_type="image/jpeg")
            media = replace(
                media,
                size_bytes=info.size,
                etag=info.etag,
                sha256=hashlib.sha256(content).hexdigest(),
                poster_key=poster_key,
            )
        workflow.pass_verification(clip, media)
        if status == ClipStatus.WITHDRAWN:
            workflow.withdraw(clip, tester)
        if status in (
            ClipStatus.IN_REVIEW,
            ClipStatus.APPROVED,
            ClipStatus.REJECTED,
            ClipStatus.TAKEN_DOWN,
        ):
            reviewer = reviewer or make_user(Role.REVIEWER)
            claims.claim(clip, reviewer)
            if status in (ClipStatus.APPROVED, ClipStatus.TAKEN_DOWN):
                with _approvals_required(app, 1):
                    workflow.decide(clip, reviewer, Verdict.APPROVE)
            if status == ClipStatus.REJECTED:
                workflow.decide(
                    clip, reviewer, Verdict.REJECT, category="quality", reason="Too blurry"
                )
            if status == ClipStatus.TAKEN_DOWN:
                workflow.take_down(clip, admin or make_user(Role.ADMIN), "Rights complaint")
        db.session.commit()
        return clip

    return make


@contextmanager
def _approvals_required(app: Flask, count: int) -> Iterator[None]:
    saved = app.config["APPROVALS_REQUIRED"]
    app.config["APPROVALS_REQUIRED"] = count
    try:
        yield
    finally:
        app.config["APPROVALS_REQUIRED"] = saved
