"""The papercuts a first-time user hit (issue 13, point 7), each one fixed.

The new-version form starts from the previous version, form errors keep what was typed and sit
beside their field, titles say their limit, failed uploads can be dismissed, the dead share
page speaks to outsiders, and there is a favicon. What needs a browser (wrapping, the share
player's shape, several files at once) is in tests/e2e/test_papercuts.py.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from approval.extensions import db
from approval.models import AuditEvent, Clip, ClipStatus, Role, ShareLink, User
from approval.ops import sharing
from tests.plugins.api import bearer, problem
from tests.plugins.factories import FrozenClock
from tests.plugins.snapshot import nothing_changed
from tests.plugins.web import SignIn, csrf_token

MakeUser = Callable[..., User]
MakeClip = Callable[..., Clip]


@pytest.fixture
def tester_client(app: Flask, signed_in: SignIn, tester: User) -> FlaskClient:
    """The shared tester, signed in on a client of its own."""
    return signed_in(tester, client=app.test_client())


def input_value(page: str, name: str) -> str | None:
    """The value an <input name=...> is rendered with, or None if it has none."""
    tag = re.search(rf'<input[^>]*\bname="{name}"[^>]*>', page)
    assert tag, f"no input {name}"
    value = re.search(r'\bvalue="([^"]*)"', tag.group(0))
    return html.unescape(value.group(1)) if value else None


def textarea_value(page: str, name: str) -> str:
    match = re.search(rf'<textarea[^>]*\bname="{name}"[^>]*>(.*?)</textarea>', page, re.S)
    assert match, f"no textarea {name}"
    return html.unescape(match.group(1)).strip("\r\n")


def field_errors(page: str, field_id: str) -> str:
    """The text of the error list tied to a field (id FIELD-errors), '' if there is none."""
    match = re.search(rf'<ul class="errors" id="{field_id}-errors">(.*?)</ul>', page, re.S)
    return re.sub(r"<[^>]+>", " ", match.group(1)) if match else ""


# --- 1. a new version starts from the previous one ----------------------------------------------


def test_new_version_form_is_filled_in_from_the_previous_version(
    tester_client: FlaskClient, make_clip: MakeClip, tester: User
) -> None:
    previous = make_clip(ClipStatus.REJECTED, tester=tester, title="Rolling ball")
    previous.prompt = "A red ball rolls across a table."
    previous.generator, previous.generator_version = "vidgen", "2.1-beta"
    previous.notes = "Second take & <better> light."
    db.session.commit()
    page = tester_client.get(f"/clips/new?previous={previous.id}").get_data(as_text=True)
    assert input_value(page, "title") == "Rolling ball"
    assert textarea_value(page, "prompt") == "A red ball rolls across a table."
    assert input_value(page, "generator") == "vidgen"
    assert input_value(page, "generator_version") == "2.1-beta"
    assert textarea_value(page, "notes") == "Second take & <better> light."


def test_a_fresh_upload_form_starts_empty(tester_client: FlaskClient) -> None:
    page = tester_client.get("/clips/new").get_data(as_text=True)
    assert input_value(page, "title") in (None, "")
    assert input_value(page, "generator") in (None, "")


def test_what_was_typed_wins_over_the_previous_version_when_the_form_comes_back(
    tester_client: FlaskClient, make_clip: MakeClip, tester: User
) -> None:
    previous = make_clip(ClipStatus.REJECTED, tester=tester, title="Rolling ball")
    url = f"/clips/new?previous={previous.id}"
    data = {
        "title": "Ball, take two",
        "generator": "",
        "csrf_token": csrf_token(tester_client, url),
    }
    with nothing_changed():
        response = tester_client.post(url, data=data)  # no file: the form comes back
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert input_value(page, "title") == "Ball, take two"
    assert input_value(page, "generator") in (None, "")


# --- 2. a share link's bad options come back on the clip page ------------------------------------


@pytest.fixture
def approved(make_clip: MakeClip, tester: User) -> Clip:
    return make_clip(ClipStatus.APPROVED, tester=tester, title="Sunset over the bay")


def _share(tester_client: FlaskClient, clip: Clip, **data: str) -> tuple[int, str]:
    form = {"csrf_token": csrf_token(tester_client, f"/clips/{clip.id}"), **data}
    with nothing_changed():
        response = tester_client.post(f"/clips/{clip.id}/share-links", data=form)
    assert db.session.scalar(select(func.count()).select_from(ShareLink)) == 0
    return response.status_code, response.get_data(as_text=True)


def test_a_past_expiry_date_comes_back_on_the_clip_page_beside_the_field(
    tester_client: FlaskClient, approved: Clip
) -> None:
    status, page = _share(
        tester_client, approved, label="For the press", expiry="date", expires_on="2020-01-01",
        allow_download="y",
    )  # fmt: skip
    assert status == 422
    assert "<h1>Sunset over the bay" in page  # the clip page, not an error page
    assert "must be in the future" in field_errors(page, "expires_on")
    assert input_value(page, "label") == "For the press"
    assert input_value(page, "expires_on") == "2020-01-01"
    assert re.search(r'<option selected value="date">|<option value="date" selected>', page)
    assert re.search(r'<input[^>]*checked[^>]*name="allow_download"', page) or re.search(
        r'<input[^>]*name="allow_download"[^>]*checked', page
    )


@pytest.mark.parametrize(
    ("data", "field_id", "message"),
    [
        ({"expiry": "date"}, "expires_on", "Pick the expiry date"),
        ({"expiry": "7", "label": "l" * 101}, "label", "100"),
        ({"expiry": "7", "passphrase": "p" * 300}, "passphrase", "200"),
    ],
)
def test_other_bad_share_options_come_back_beside_their_field(
    tester_client: FlaskClient, approved: Clip, data: dict[str, str], field_id: str, message: str
) -> None:
    status, page = _share(tester_client, approved, **data)
    assert status == 422
    assert "<h1>Sunset over the bay" in page
    assert message in field_errors(page, field_id)


def test_a_share_form_error_focuses_the_field_at_fault(
    tester_client: FlaskClient, approved: Clip
) -> None:
    _, page = _share(tester_client, approved, expiry="date", expires_on="2020-01-01")
    tag = re.search(r'<input[^>]*name="expires_on"[^>]*>', page)
    assert tag
    assert "autofocus" in tag.group(0)


# --- 3. titles say their limit, and a long one comes back with the input -------------------------


def test_the_title_states_its_limit_before_the_browser_cuts(tester_client: FlaskClient) -> None:
    page = tester_client.get("/clips/new").get_data(as_text=True)
    tag = re.search(r'<input[^>]*name="title"[^>]*>', page)
    assert tag
    assert 'maxlength="200"' in tag.group(0)
    assert "up to 200 characters" in page.lower()
    assert 'aria-describedby="title-hint' in tag.group(0)


def test_a_title_over_the_limit_comes_back_with_the_input_and_the_count(
    tester_client: FlaskClient,
) -> None:
    title = "T" * 230
    data = {"title": title, "csrf_token": csrf_token(tester_client, "/clips/new")}
    with nothing_changed():
        response = tester_client.post("/clips/new", data=data)
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert input_value(page, "title") == title
    errors = field_errors(page, "title")
    assert "200 characters" in errors
    assert "230" in errors


# --- 5. failed uploads can be dismissed ----------------------------------------------------------


def _dismiss(client: FlaskClient, clip: Clip) -> tuple[int, str]:
    data = {"csrf_token": csrf_token(client, "/clips/")}
    response = client.post(f"/clips/{clip.id}/dismiss", data=data, follow_redirects=True)
    return response.status_code, response.get_data(as_text=True)


def test_a_failed_upload_can_be_dismissed_from_my_clips(
    tester_client: FlaskClient, make_clip: MakeClip, tester: User, clock: FrozenClock
) -> None:
    failed = make_clip(ClipStatus.FAILED, tester=tester, title="Broken file")
    make_clip(ClipStatus.WAITING, tester=tester, title="Good file")
    page = tester_client.get("/clips/").get_data(as_text=True)
    assert f'action="/clips/{failed.id}/dismiss"' in page
    status, page = _dismiss(tester_client, failed)
    assert status == 200
    assert "dismissed" in page.lower()
    assert "Broken file" not in page
    assert "Good file" in page
    assert failed.dismissed_at == clock.now
    event = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert event is not None
    assert (event.action, event.clip_id, event.actor_id) == ("clip.dismissed", failed.id, tester.id)


def test_my_clips_hides_dismissed_uploads_until_asked(
    tester_client: FlaskClient, make_clip: MakeClip, tester: User
) -> None:
    failed = make_clip(ClipStatus.FAILED, tester=tester, title="Broken file")
    _dismiss(tester_client, failed)
    hidden = tester_client.get("/clips/").get_data(as_text=True)
    assert "Broken file" not in hidden
    assert 'href="/clips/?dismissed=1"' in hidden
    assert "Show dismissed" in hidden
    shown = tester_client.get("/clips/?dismissed=1").get_data(as_text=True)
    assert "Broken file" in shown
    assert f'action="/clips/{failed.id}/dismiss"' not in shown


def test_show_dismissed_is_offered_only_when_some_are(tester_client: FlaskClient) -> None:
    assert "Show dismissed" not in tester_client.get("/clips/").get_data(as_text=True)


@pytest.mark.parametrize(
    "status",
    [s for s in ClipStatus if s not in (ClipStatus.FAILED,)],
    ids=lambda s: s.value,
)
def test_only_failed_uploads_can_be_dismissed(
    tester_client: FlaskClient, make_clip: MakeClip, tester: User, status: ClipStatus
) -> None:
    clip = make_clip(status, tester=tester)
    with nothing_changed():
        code, page = _dismiss(tester_client, clip)
    assert code == 409
    assert "Only an upload that failed can be dismissed" in page
    assert clip.dismissed_at is None


def test_dismissing_twice_is_refused_and_logs_once(
    tester_client: FlaskClient, make_clip: MakeClip, tester: User
) -> None:
    failed = make_clip(ClipStatus.FAILED, tester=tester)
    _dismiss(tester_client, failed)
    with nothing_changed():
        code, page = _dismiss(tester_client, failed)
    assert code == 409
    assert "already dismissed" in page


def test_someone_elses_failed_upload_is_not_found(
    tester_client: FlaskClient, make_clip: MakeClip
) -> None:
    theirs = make_clip(ClipStatus.FAILED)
    with nothing_changed():
        code, _ = _dismiss(tester_client, theirs)
    assert code == 404
    assert theirs.dismissed_at is None


def test_the_api_dismisses_a_failed_upload(
    client: FlaskClient, make_clip: MakeClip, tester: User, clock: FrozenClock
) -> None:
    failed = make_clip(ClipStatus.FAILED, tester=tester)
    response = client.post(f"/api/v1/clips/{failed.id}/dismiss", headers=bearer(tester))
    assert response.status_code == 200
    assert response.get_json()["dismissed_at"] is not None
    assert failed.dismissed_at == clock.now


def test_the_api_refuses_to_dismiss_a_clip_that_did_not_fail(
    client: FlaskClient, make_clip: MakeClip, tester: User
) -> None:
    waiting = make_clip(ClipStatus.WAITING, tester=tester)
    headers = bearer(tester)
    with nothing_changed():
        response = client.post(f"/api/v1/clips/{waiting.id}/dismiss", headers=headers)
    body = problem(response, 409)
    assert "failed" in body["detail"]


# --- 7. a dead share link speaks to outsiders ----------------------------------------------------


def _dead_link_page(client: FlaskClient, token: str, status: int) -> str:
    response = client.get(f"/s/{token}")
    assert response.status_code == status
    return response.get_data(as_text=True)


def _speaks_to_outsiders(page: str) -> None:
    assert "This link no longer works" in page or "This link does not work" in page
    assert "person who sent" in page
    for account_talk in ("/login", "Sign in", "sign in", "account", "start page"):
        assert account_talk not in page


@pytest.mark.parametrize("how", ["revoked", "expired", "taken down"])
def test_a_dead_share_link_tells_outsiders_what_to_do(
    app: Flask, approved: Clip, tester: User, make_user: MakeUser, clock: FrozenClock, how: str
) -> None:
    link, token = sharing.create_link(
        approved, tester, label="", expires_at=clock.now + timedelta(days=1), passphrase=None,
        allow_download=False,
    )  # fmt: skip
    db.session.commit()
    if how == "revoked":
        sharing.revoke_link(link.id, tester)
    elif how == "expired":
        clock.advance(days=2)
    else:
        from approval.ops import workflow

        workflow.take_down(approved, make_user(Role.ADMIN), "Rights complaint")
    db.session.commit()
    page = _dead_link_page(app.test_client(), token, 410)
    assert "This link no longer works" in page
    _speaks_to_outsiders(page)


def test_an_unknown_share_link_speaks_to_outsiders_too(app: Flask) -> None:
    page = _dead_link_page(app.test_client(), "x" * 43, 404)
    _speaks_to_outsiders(page)


def test_the_dead_link_page_is_the_public_page_even_when_signed_in(
    tester_client: FlaskClient,
) -> None:
    page = _dead_link_page(tester_client, "x" * 43, 404)
    assert 'class="public"' in page
    assert "Sign out" not in page


# --- 8. a favicon --------------------------------------------------------------------------------


def test_favicon_ico_answers_with_the_icon(client: FlaskClient) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
    assert b"<svg" in response.data


@pytest.mark.parametrize("path", ["/login", "/s/" + "x" * 43])
def test_pages_link_the_icon(client: FlaskClient, path: str) -> None:
    page = client.get(path).get_data(as_text=True)
    assert re.search(
        r'<link rel="icon" href="/static/favicon\.svg[^"]*" type="image/svg\+xml">', page
    )


# --- 9. the form takes several files, filtered to video ------------------------------------------


def test_the_file_picker_takes_several_videos(tester_client: FlaskClient) -> None:
    page = tester_client.get("/clips/new").get_data(as_text=True)
    tag = re.search(r'<input[^>]*type="file"[^>]*>', page) or re.search(
        r'<input[^>]*name="file"[^>]*>', page
    )
    assert tag
    assert "multiple" in tag.group(0)
    accept = re.search(r'accept="([^"]+)"', tag.group(0))
    assert accept
    assert set(accept.group(1).split(",")) >= {"video/*", ".mp4", ".mov", ".webm", ".mkv"}
    assert 'id="drop-zone"' in page


def test_without_javascript_the_form_takes_the_first_file_and_says_so(
    tester_client: FlaskClient, make_video: Callable[..., Path]
) -> None:
    first, second = make_video("one.mp4"), make_video("two.mp4", seconds=1.0)
    with first.open("rb") as one, second.open("rb") as two:
        response = tester_client.post(
            "/clips/new",
            data={
                "title": "Plain",
                "file": [(one, "one.mp4"), (two, "two.mp4")],
                "csrf_token": csrf_token(tester_client, "/clips/new"),
            },
            content_type="multipart/form-data",
            follow_redirects=True,
        )
    clip = db.session.scalars(select(Clip)).one()
    assert clip.original_filename == "one.mp4"
    assert "Only the first file, one.mp4, was uploaded" in response.get_data(as_text=True)


def test_bad_share_options_for_a_clip_that_cannot_be_shared_still_say_why(
    tester_client: FlaskClient, make_clip: MakeClip, tester: User
) -> None:
    taken_down = make_clip(ClipStatus.TAKEN_DOWN, tester=tester)
    status, page = _share(tester_client, taken_down, expiry="date")
    assert status == 422
    assert "The share link was not made. Expiry date: Pick the expiry date." in page
