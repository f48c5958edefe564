"""Pages meant for one person are never stored by a cache: Cache-Control: private, no-store.

Every answer to a signed-in caller, and every page that shows a secret to whoever holds its
link; media, static files and share pages keep the caching their views chose.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from approval.extensions import db
from approval.models import Clip, ClipStatus, Role, User
from approval.ops import people, sharing
from tests.plugins.api import bearer
from tests.plugins.web import SignIn, csrf_token

MakeUser = Callable[..., User]
MakeClip = Callable[..., Clip]

NO_STORE = "private, no-store"


def _not_stored(response: object) -> bool:
    value = response.headers.get("Cache-Control", "")  # type: ignore[attr-defined]
    return "no-store" in value


def _page_paths(app: Flask) -> list[str]:
    """Every GET page without a path parameter, but the static files and the API."""
    return sorted(
        rule.rule
        for rule in app.url_map.iter_rules()
        if "GET" in rule.methods  # type: ignore[operator]
        and not rule.arguments
        and rule.endpoint != "static"
        and not rule.rule.startswith("/api/")
    )


@pytest.mark.parametrize("role", [Role.TESTER, Role.REVIEWER, Role.ADMIN])
def test_every_page_to_a_signed_in_person_is_not_stored(
    app: Flask, client: FlaskClient, signed_in: SignIn, role: Role
) -> None:
    signed_in(role)
    unstored = {}
    for path in _page_paths(app):
        response = client.get(path)
        unstored[path] = (response.status_code, response.headers.get("Cache-Control"))
    assert {path: got for path, got in unstored.items() if "no-store" not in str(got[1])} == {}


@pytest.mark.parametrize(
    "path", ["/clips/{clip}", "/review/{clip}", "/clips/{clip}/status", "/review/counts"]
)
def test_clip_pages_to_staff_and_tester_are_not_stored(
    client: FlaskClient, signed_in: SignIn, make_clip: MakeClip, reviewer: User, path: str
) -> None:
    clip = make_clip(ClipStatus.WAITING)
    signed_in(reviewer if path.startswith("/review") else clip.tester)
    response = client.get(path.format(clip=clip.id))
    assert (response.status_code, _not_stored(response)) == (200, True)


def test_a_redirect_after_a_signed_in_post_is_not_stored(
    client: FlaskClient, signed_in: SignIn, tester: User
) -> None:
    signed_in(tester)
    response = client.post("/inbox/read-all", data={"csrf_token": csrf_token(client, "/inbox/")})
    assert (response.status_code, response.headers.get("Cache-Control")) == (302, NO_STORE)


def test_an_api_reply_to_a_token_is_not_stored(client: FlaskClient, tester: User) -> None:
    response = client.get("/api/v1/clips", headers=bearer(tester))
    assert (response.status_code, _not_stored(response)) == (200, True)


def test_the_invitation_with_its_set_password_link_is_not_stored(
    client: FlaskClient, signed_in: SignIn, admin: User
) -> None:
    signed_in(admin)
    data = {"email": "new@example.com", "display_name": "New Person", "roles": ["reviewer"]}
    response = client.post(
        "/admin/people", data={**data, "csrf_token": csrf_token(client, "/admin/people")}
    )
    assert "/set-password/" in response.get_data(as_text=True)
    assert _not_stored(response)


def test_a_new_set_password_link_for_someone_is_not_stored(
    client: FlaskClient, signed_in: SignIn, admin: User, tester: User
) -> None:
    signed_in(admin)
    page = f"/admin/people/{tester.id}"
    response = client.post(f"{page}/password-link", data={"csrf_token": csrf_token(client, page)})
    assert "/set-password/" in response.get_data(as_text=True)
    assert _not_stored(response)


def test_the_share_link_just_made_is_not_stored(
    client: FlaskClient, signed_in: SignIn, make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.APPROVED)
    signed_in(clip.tester)
    page = f"/clips/{clip.id}"
    response = client.post(
        f"/clips/{clip.id}/share-links",
        data={"label": "press", "expiry": "7", "csrf_token": csrf_token(client, page)},
    )
    assert re.search(r"/s/[A-Za-z0-9_-]{20,}", response.get_data(as_text=True))
    assert _not_stored(response)


def test_the_set_password_page_is_not_stored_for_an_anonymous_visitor(
    app: Flask, tester: User
) -> None:
    token = people.issue_password_link(tester, actor=None)
    db.session.commit()
    response = app.test_client().get(f"/set-password/{token}")
    assert (response.status_code, response.headers.get("Cache-Control")) == (200, NO_STORE)


def test_a_public_page_without_a_secret_keeps_default_caching(app: Flask) -> None:
    response = app.test_client().get("/login")
    assert response.status_code == 200
    assert "Cache-Control" not in response.headers


def test_clip_media_for_a_signed_in_tester_may_stay_only_in_their_browser(
    client: FlaskClient, signed_in: SignIn, make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.WAITING, content=b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
    signed_in(clip.tester)
    response = client.get(f"/clips/{clip.id}/media")
    assert response.status_code in (200, 302)
    assert response.headers["Cache-Control"].startswith("private")


def test_static_files_keep_their_own_caching_for_a_signed_in_person(
    client: FlaskClient, signed_in: SignIn, tester: User
) -> None:
    signed_in(tester)
    response = client.get("/static/js/player.js")
    response.close()
    assert (response.status_code, response.headers.get("Cache-Control")) == (200, "no-cache")


def test_approved_share_media_keeps_its_own_caching(
    app: Flask, make_clip: MakeClip, reviewer: User
) -> None:
    clip = make_clip(
        ClipStatus.APPROVED, reviewer=reviewer, content=b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64
    )
    _, token = sharing.create_link(clip, reviewer)
    db.session.commit()
    response = app.test_client().get(f"/s/{token}/media")
    assert response.status_code in (200, 302)
    assert response.headers["Cache-Control"] in (
        "private, max-age=0, must-revalidate",
        "private, no-store",
    )
