"""The JSON API: who may call it, and the clip endpoints' rules (bad input: test_api_errors).

Every refusal is application/problem+json with a detail a person can act on, and changes
nothing: the refusal tests check, with tests/plugins/snapshot.py, that no row, audit event or
stored object appeared or went.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from approval.extensions import db
from approval.models import Clip, ClipStatus, Role, User
from approval.ops import tokens
from approval.ops.people import set_active
from tests.plugins.api import CLIP, SITE, bearer, problem
from tests.plugins.factories import FrozenClock
from tests.plugins.snapshot import nothing_changed
from tests.plugins.web import csrf_token

MakeUser = Callable[..., User]
MakeClip = Callable[..., Clip]


# --- authentication ------------------------------------------------------------------------------


def test_no_credentials_is_401_saying_how_to_authenticate(client: FlaskClient) -> None:
    with nothing_changed():
        response = client.get("/api/v1/clips")
    body = problem(response, 401)
    assert "Authorization: Bearer <token>" in body["detail"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("expired", "expired on"),
        ("revoked", "was revoked on"),
        ("deactivated", "account this API token belongs to is deactivated"),
        ("basic", "must be 'Bearer <token>'"),
        ("empty", "must be 'Bearer <token>'"),
    ],
)
def test_refused_credentials_are_401_with_the_reason(
    client: FlaskClient, tester: User, clock: FrozenClock, how: str, message: str
) -> None:
    token, raw = tokens.create(tester, name="t", expires_in_days=1, actor=None)
    headers = {"Authorization": f"Bearer {raw}"}
    if how == "expired":
        clock.advance(days=2)
    elif how == "revoked":
        tokens.revoke(token, actor=tester)
    elif how == "deactivated":
        set_active(tester, False, actor=None)
    elif how == "basic":
        headers = {"Authorization": "Basic dGVzczpwdw=="}
    else:
        headers = {"Authorization": "Bearer "}
    db.session.commit()
    with nothing_changed():
        response = client.post("/api/v1/clips", json=CLIP, headers=headers)
    assert message in problem(response, 401)["detail"]
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_a_bearer_request_gets_no_cookie(client: FlaskClient, as_tester: dict[str, str]) -> None:
    assert client.get("/api/v1/me", headers=as_tester).headers.get("Set-Cookie") is None
    created = client.post("/api/v1/clips", json=CLIP, headers=as_tester)
    assert created.status_code == 201
    assert created.headers.get("Set-Cookie") is None


def test_bearer_wins_over_a_session_cookie(
    client: FlaskClient, login: Callable[..., Any], make_user: MakeUser, as_tester: dict[str, str]
) -> None:
    login(make_user(Role.ADMIN))
    assert client.get("/api/v1/me", headers=as_tester).get_json()["email"] == "tess@example.com"


def test_session_reads_need_no_csrf_but_writes_do(
    client: FlaskClient, login: Callable[..., Any], tester: User
) -> None:
    login(tester)
    assert client.get("/api/v1/me").get_json()["id"] == tester.id
    with nothing_changed():
        refused = client.post("/api/v1/clips", json=CLIP)
    assert "X-CSRFToken" in problem(refused, 400)["detail"]
    token = csrf_token(client, "/clips/new")
    assert (
        client.post("/api/v1/clips", json=CLIP, headers={"X-CSRFToken": token}).status_code == 201
    )


# --- clips -------------------------------------------------------------------------------------


def test_an_upload_from_ticket_to_queue(
    client: FlaskClient, as_tester: dict[str, str], make_video: Callable[..., Path]
) -> None:
    body = make_video(seconds=2.0, width=640, height=360).read_bytes()
    created = client.post("/api/v1/clips", json={**CLIP, "size": len(body)}, headers=as_tester)
    assert created.status_code == 201
    ticket = created.get_json()["upload"]
    assert ticket["method"] == "PUT"
    assert ticket["headers"] == {"Content-Type": "video/mp4"}
    put = client.put(ticket["url"].removeprefix(SITE), data=body, headers=ticket["headers"])
    assert put.status_code == 204
    done = client.post(created.get_json()["complete_url"].removeprefix(SITE), headers=as_tester)
    assert done.status_code == 202
    clip = done.get_json()
    assert clip["status"] == "waiting"
    media = clip["media"]
    assert (media["width"], media["height"], media["size"]) == (640, 360, len(body))
    assert media["duration"] == pytest.approx(2.0, abs=0.1)
    assert isinstance(media["fps"], float)


def test_a_refused_file_is_422_with_the_reason_every_time(
    client: FlaskClient, as_tester: dict[str, str]
) -> None:
    created = client.post("/api/v1/clips", json=CLIP, headers=as_tester).get_json()
    client.put(created["upload"]["url"].removeprefix(SITE), data=b"not a video at all",
               headers=created["upload"]["headers"])  # fmt: skip
    path = f"/api/v1/clips/{created['id']}/complete"
    first = problem(client.post(path, headers=as_tester), 422)  # the clip fails, once
    with nothing_changed():
        again = problem(client.post(path, headers=as_tester), 422)
    assert first["failure_reason"] == again["failure_reason"]
    assert "not a video container we accept" in first["detail"]
    assert first["current_status"] == "failed"


def test_ticket_with_a_digest_on_s3_is_a_put_that_pins_it(
    app_factory: Callable[..., Flask], moto_s3_url: str, make_user: MakeUser
) -> None:
    app = app_factory(STORAGE_URL=moto_s3_url)
    with app.app_context():
        headers = bearer(make_user(Role.TESTER))
        digest = "ab" * 32
        body = {**CLIP, "sha256": digest}
        pinned = app.test_client().post("/api/v1/clips", json=body, headers=headers)
        unpinned = app.test_client().post("/api/v1/clips", json=CLIP, headers=headers)
    ticket = pinned.get_json()["upload"]
    assert ticket["method"] == "PUT"
    checksum = base64.b64encode(bytes.fromhex(digest)).decode()
    assert ticket["headers"]["x-amz-checksum-sha256"] == checksum
    assert ticket["headers"]["Content-Length"] == "1000"
    signed = parse_qs(urlsplit(ticket["url"]).query)["X-Amz-SignedHeaders"][0].split(";")
    assert {"content-length", "content-type", "x-amz-checksum-sha256"} <= set(signed)
    assert unpinned.get_json()["upload"]["method"] == "POST"


def test_testers_list_their_own_clips_page_by_page(
    client: FlaskClient, tester: User, as_tester: dict[str, str], make_clip: MakeClip
) -> None:
    mine = [make_clip(ClipStatus.WAITING, tester=tester).id for _ in range(5)]
    make_clip(ClipStatus.WAITING)
    seen: list[int] = []
    url: str | None = "/api/v1/clips?limit=2"
    while url is not None:
        page = client.get(url.removeprefix(SITE), headers=as_tester).get_json()
        seen += [clip["id"] for clip in page["items"]]
        url = page["next"]
        assert url is None or "limit=2" in url
    assert seen == sorted(mine, reverse=True)


def test_reviewers_list_every_clip_with_filters(
    client: FlaskClient, make_user: MakeUser, tester: User, make_clip: MakeClip
) -> None:
    approved = make_clip(ClipStatus.APPROVED, tester=tester)
    make_clip(ClipStatus.WAITING, tester=tester)
    other = make_clip(ClipStatus.APPROVED)
    headers = bearer(make_user(Role.REVIEWER))
    everything = client.get("/api/v1/clips", headers=headers).get_json()
    assert len(everything["items"]) == 3
    assert everything["next"] is None
    filtered = client.get(f"/api/v1/clips?status=approved&tester={tester.id}", headers=headers)
    assert [clip["id"] for clip in filtered.get_json()["items"]] == [approved.id]
    assert other.id not in [clip["id"] for clip in filtered.get_json()["items"]]


def test_a_clip_shows_its_decision_and_the_links_its_tester_manages(
    client: FlaskClient, tester: User, as_tester: dict[str, str], make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.REJECTED, tester=tester)
    body = client.get(f"/api/v1/clips/{clip.id}", headers=as_tester).get_json()
    assert body["status"] == "rejected"
    assert body["decision"]["decision"] == "reject"
    assert body["decision"]["reason"] == "Too blurry"
    assert [d["category"] for d in body["decisions"]] == ["quality"]
    assert body["claim"] is None
    assert body["share_links"] == []


def test_withdraw_over_the_api(
    client: FlaskClient, tester: User, as_tester: dict[str, str], make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.WAITING, tester=tester)
    response = client.post(f"/api/v1/clips/{clip.id}/withdraw", headers=as_tester)
    assert response.get_json()["status"] == "withdrawn"
    with nothing_changed():
        again = client.post(f"/api/v1/clips/{clip.id}/withdraw", headers=as_tester)
    conflict = problem(again, 409)
    assert conflict["current_status"] == "withdrawn"
