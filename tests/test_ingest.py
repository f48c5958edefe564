"""Issue 11 §1: the server owns every byte anyone is shown, proved with real clips and storage.

Each test reproduces one finding of the issue or one line of its "Bad input" list, on the
backends where it applies: local disk, moto in-process, and moto's server over real HTTP.
Refusals also check that nothing changed: rows, audit events and stored objects.
(Serving checks against the pinned facts are in test_served_integrity.py.)
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from approval.extensions import db
from approval.extensions import storage as app_storage
from approval.jobqueue import huey
from approval.models import AuditEvent, Clip, ClipStatus, User
from approval.ops import sharing, tokens
from approval.storage import LocalStorage, ObjectNotFound
from tests.plugins.factories import FrozenClock
from tests.plugins.snapshot import collect_garbage, stored_objects
from tests.plugins.uploads import SITE, complete
from tests.plugins.web import csrf_token
from tests.plugins.workers import signed_in

MakeUser = Callable[..., User]
MakeVideo = Callable[..., Path]
SMALL = {"seconds": 1.0, "width": 320, "height": 180}


@pytest.fixture
def app(
    app_factory: Callable[..., Flask], storage_url: str, request: pytest.FixtureRequest
) -> Iterator[Flask]:
    """An app on the backend under test; parametrize("app", [{...}], indirect) overrides."""
    overrides: dict[str, Any] = getattr(request, "param", {})
    app = app_factory(STORAGE_URL=storage_url, **overrides)
    with app.app_context():
        yield app
    # A queued (non-immediate) app bound the shared Huey to its SQLite file; unbind it.
    huey.immediate = True


@pytest.fixture
def uploader(app: Flask, tester: User) -> FlaskClient:
    """The tester, signed in."""
    return signed_in(app, tester)


@pytest.fixture
def player(app: Flask, reviewer: User) -> FlaskClient:
    """The reviewer's browser: what its player fetches is what the reviewer watches."""
    return signed_in(app, reviewer)


@pytest.fixture
def clip_a(make_video: MakeVideo) -> bytes:
    return make_video("a.mp4", **SMALL).read_bytes()


@pytest.fixture
def clip_b(make_video: MakeVideo) -> bytes:
    """Another valid clip, of other bytes: what an attacker swaps in."""
    return make_video("b.mp4", fps=30, **SMALL).read_bytes()


# --- helpers: the tester's side of an upload, and what a player receives -----------------------


def sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def start(client: FlaskClient, name: str, size: int, title: str = "A clip") -> dict[str, Any]:
    """Step 1 of the JavaScript path: the clip's details in, a ticket out."""
    data = {"title": title, "filename": name, "size": str(size)}
    response = client.post(
        "/clips/direct",
        data={**data, "csrf_token": csrf_token(client, "/clips/new")},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()  # type: ignore[no-any-return]


def send(client: FlaskClient, ticket: dict[str, Any], body: bytes, name: str = "clip.mp4") -> int:
    """Send the bytes where the ticket says, how it says: what any holder of it can do."""
    upload = ticket["upload"]
    if upload["method"] == "PUT":
        url = upload["url"].removeprefix(SITE)
        return client.put(url, data=body, headers=upload["headers"]).status_code
    content_type = upload["fields"]["Content-Type"]
    files = {"file": (name, body, content_type)}
    return requests.post(upload["url"], data=upload["fields"], files=files, timeout=30).status_code


def upload(client: FlaskClient, body: bytes, name: str = "clip.mp4", title: str = "A clip") -> Clip:
    """The whole JavaScript path; returns the clip as the job left it."""
    ticket = start(client, name, len(body), title)
    assert send(client, ticket, body, name) in (200, 201, 204)
    assert complete(client, ticket["clip"]).status_code == 202
    clip = db.session.get(Clip, ticket["clip"])
    assert clip is not None
    return clip


def fetch(client: FlaskClient, path: str) -> tuple[int, str, bytes]:
    """GET as a player does, following a storage redirect over real HTTP: status, type, body."""
    response = client.get(path)
    if response.status_code != 302:
        return response.status_code, response.mimetype, response.get_data()
    followed = requests.get(response.headers["Location"], timeout=30)
    return followed.status_code, followed.headers["Content-Type"], followed.content


def watched(client: FlaskClient, path: str) -> str:
    """The SHA-256 of what a 200 answer to path delivers."""
    status, _, body = fetch(client, path)
    assert status == 200, body[:300]
    return sha(body)


def approve(player: FlaskClient, clip_id: int) -> None:
    """Claim and approve through the review pages, as the reviewer does."""
    headers = {"X-CSRFToken": csrf_token(player, "/account")}
    assert player.post(f"/review/{clip_id}/claim", headers=headers).status_code == 302
    assert player.post(f"/review/{clip_id}/approve", headers=headers).status_code == 302
    clip = db.session.get(Clip, clip_id)
    assert clip is not None
    assert clip.status == ClipStatus.APPROVED


def stored_bytes(key: str) -> bytes | None:
    """What storage holds at key, or None."""
    try:
        return b"".join(app_storage().read(key))
    except ObjectNotFound:
        return None


def audit_count(action: str | None = None) -> int:
    query = select(func.count()).select_from(AuditEvent)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    return db.session.scalar(query) or 0


def clip_row(clip_id: int) -> dict[str, Any]:
    """Every column of the clip, to compare before and after a refusal."""
    clip = db.session.get(Clip, clip_id, populate_existing=True)
    assert clip is not None
    return {column.key: getattr(clip, column.key) for column in Clip.__table__.columns}


def past_ticket_life(app: Flask, clock: FrozenClock) -> None:
    """Move the app's clock beyond a ticket's life after the objects' own (real) timestamps.

    Storage stamps objects with the real time, not the app's injected clock.
    """
    ttl = app.config["UPLOAD_TICKET_TTL"]
    clock.now = max(clock.now, datetime.now(UTC)) + timedelta(seconds=ttl + 60)


# --- a used ticket: the bytes sent with it are never shown to anyone ----------------------------


def reuse_ticket_after_approval(
    uploader: FlaskClient, player: FlaskClient, clip_a: bytes, clip_b: bytes
) -> tuple[Clip, str, list[str]]:
    """The attack of the issue: A, done, B with the same ticket, approval, A again, B again.

    Returns the clip, its former staging key, and the SHA-256 of everything a viewer was served.
    """
    ticket = start(uploader, "clip.mp4", len(clip_a))
    clip_id = ticket["clip"]
    clip = db.session.get(Clip, clip_id)
    assert clip is not None
    staging_key = clip.staging_key
    assert staging_key is not None
    assert send(uploader, ticket, clip_a) == 204
    assert complete(uploader, clip_id).status_code == 202
    resent = send(uploader, ticket, clip_b)
    # S3 cannot tell a used presigned POST from a fresh one and stores B (204) at the staging
    # key; the app's own PUT refuses once the upload is done.
    assert resent == (409 if isinstance(app_storage(), LocalStorage) else 204)
    served = [watched(player, f"/clips/{clip_id}/media")]
    approve(player, clip_id)
    for body in (clip_a, clip_b):
        send(uploader, ticket, body)
    _link, token = sharing.create_link(clip, player_user(clip_id), allow_download=True)
    db.session.commit()
    served += [
        watched(player, f"/clips/{clip_id}/media"),
        watched(player, f"/clips/{clip_id}/media?original=1"),
        watched(player.application.test_client(), f"/s/{token}/media"),
        watched(player.application.test_client(), f"/s/{token}/media?download=1"),
    ]
    db.session.refresh(clip)
    return clip, staging_key, served


def player_user(clip_id: int) -> User:
    """The reviewer who decided the clip (the share link's maker)."""
    clip = db.session.get(Clip, clip_id)
    assert clip is not None
    assert clip.decided_by is not None
    return clip.decided_by


def test_a_used_ticket_never_gets_its_bytes_shown(
    uploader: FlaskClient, player: FlaskClient, clip_a: bytes, clip_b: bytes
) -> None:
    _, _, served = reuse_ticket_after_approval(uploader, player, clip_a, clip_b)
    assert served == [sha(clip_a)] * 5


def test_bytes_sent_with_a_used_ticket_are_deleted_by_cleanup(
    app: Flask,
    uploader: FlaskClient,
    player: FlaskClient,
    clip_a: bytes,
    clip_b: bytes,
    clock: FrozenClock,
) -> None:
    clip, staging_key, _ = reuse_ticket_after_approval(uploader, player, clip_a, clip_b)
    kept = sorted([clip.storage_key, clip.poster_key])
    past_ticket_life(app, clock)
    collect_garbage()
    assert stored_objects() == kept
    assert staging_key not in stored_objects()


def test_cleanup_spares_a_staged_upload_still_in_its_ticket_life(
    app: Flask, uploader: FlaskClient, clip_a: bytes
) -> None:
    ticket = start(uploader, "clip.mp4", len(clip_a))
    assert send(uploader, ticket, clip_a) in (200, 201, 204)
    before = stored_objects()
    assert collect_garbage() == []
    assert stored_objects() == before


# --- no fresh ticket after completion ------------------------------------------------------------


@pytest.mark.parametrize("storage_backend", ["local", "s3-server"], indirect=True)
def test_a_fresh_ticket_after_completion_is_refused_on_the_pages(
    uploader: FlaskClient, clip_a: bytes
) -> None:
    clip = upload(uploader, clip_a)
    before = (clip_row(clip.id), audit_count(), stored_objects())
    response = uploader.post(
        f"/clips/{clip.id}/ticket", headers={"X-CSRFToken": csrf_token(uploader, "/clips/new")}
    )
    assert response.status_code == 409
    assert "upload is finished" in response.get_data(as_text=True)
    assert (clip_row(clip.id), audit_count(), stored_objects()) == before


@pytest.mark.parametrize("storage_backend", ["local", "s3-server"], indirect=True)
def test_a_fresh_ticket_after_completion_is_refused_by_the_api(
    uploader: FlaskClient, tester: User, clip_a: bytes
) -> None:
    clip = upload(uploader, clip_a)
    _, raw = tokens.create(tester, name="cli", actor=None)
    db.session.commit()
    before = (clip_row(clip.id), audit_count(), stored_objects())
    response = uploader.application.test_client().post(
        f"/api/v1/clips/{clip.id}/ticket",
        json={"size": len(clip_a), "sha256": sha(clip_a)},
        headers={"Authorization": f"Bearer {raw}"},
    )
    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["current_status"] == "waiting"
    assert (clip_row(clip.id), audit_count(), stored_objects()) == before


# --- local disk: the app's PUT after completion, and one overtaken by it --------------------------


LOCAL = pytest.mark.parametrize("storage_backend", ["local"], indirect=True)


@LOCAL
@pytest.mark.parametrize(
    "app", [{}, {"QUEUE_IMMEDIATE": False}], ids=["verified", "verifying"], indirect=True
)
def test_a_put_after_completion_is_409_and_stores_nothing(
    uploader: FlaskClient, clip_a: bytes, clip_b: bytes
) -> None:
    ticket = start(uploader, "clip.mp4", len(clip_a))
    clip_id = ticket["clip"]
    staging_key = clip_row(clip_id)["staging_key"]
    assert send(uploader, ticket, clip_a) == 204
    complete(uploader, clip_id)
    before = (clip_row(clip_id), audit_count(), stored_objects())
    assert send(uploader, ticket, clip_b) == 409
    assert (clip_row(clip_id), audit_count(), stored_objects()) == before
    # Taken already (verified), or still A's waiting to be taken (verifying): never B.
    assert stored_bytes(staging_key) in (None, clip_a)


class CompletingStream(io.BytesIO):
    """A request body that reports the upload done (through the tester's browser) mid-way.

    A BytesIO, because Werkzeug's test client measures its input by seeking.
    """

    def __init__(self, body: bytes, on_half: Callable[[], None]) -> None:
        super().__init__(body)
        self._half = len(body) // 2
        self._on_half: Callable[[], None] | None = on_half

    def read(self, size: int | None = -1) -> bytes:
        if self.tell() >= self._half and self._on_half is not None:
            on_half, self._on_half = self._on_half, None
            on_half()
        limit = self._half - self.tell()
        if limit > 0 and (size is None or size < 0 or size > limit):
            size = limit
        return super().read(size)

    def readinto(self, buffer: Any) -> int:  # Werkzeug's LimitedStream reads this way
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


@LOCAL
def test_a_put_overtaken_by_completion_is_refused_and_installs_nothing(
    app: Flask, uploader: FlaskClient, player: FlaskClient, clip_a: bytes, clip_b: bytes
) -> None:
    ticket = start(uploader, "clip.mp4", len(clip_a))
    clip_id = ticket["clip"]
    staging_key = clip_row(clip_id)["staging_key"]
    assert send(uploader, ticket, clip_a) == 204
    slow_b = CompletingStream(clip_b, lambda: complete(uploader, clip_id))
    response = app.test_client().put(
        ticket["upload"]["url"].removeprefix(SITE),
        input_stream=slow_b,
        content_length=len(clip_b),
        headers=ticket["upload"]["headers"],
    )
    assert response.status_code == 409
    assert stored_bytes(staging_key) is None
    assert watched(player, f"/clips/{clip_id}/media") == sha(clip_a)
