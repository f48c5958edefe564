"""Testers never learn who reviewed their clip: not on a page, in the API or in a refusal.

One rule (approval.ops.access.sees_who_reviewed) decides it for the HTML pages, the API's
serializers and the text and fields of a 409; staff still see every name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from approval.extensions import db
from approval.models import Clip, ClipStatus, Role, User
from approval.ops import sharing, workflow
from approval.ops.errors import StateConflict
from tests.plugins.api import bearer, problem
from tests.plugins.snapshot import nothing_changed
from tests.plugins.web import SignIn, csrf_token

MakeUser = Callable[..., User]
MakeClip = Callable[..., Clip]

REVIEWER_NAME = "Rita Reviewerson"


@pytest.fixture
def rita(make_user: MakeUser) -> User:
    """A reviewer whose name and address are easy to look for in a reply."""
    user = make_user(Role.REVIEWER, email="rita.reviewerson@example.com")
    user.display_name = REVIEWER_NAME
    db.session.commit()
    return user


def _mentions(text: str, person: User) -> bool:
    return person.display_name in text or person.email in text


def _people_in(body: Any) -> list[Any]:
    """Every {"id", "name"} person object anywhere in a JSON reply."""
    found: list[Any] = []
    if isinstance(body, dict):
        if set(body) == {"id", "name"}:
            found.append(body)
        for value in body.values():
            found.extend(_people_in(value))
    elif isinstance(body, list):
        for value in body:
            found.extend(_people_in(value))
    return found


# --- the API -------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [ClipStatus.IN_REVIEW, ClipStatus.REJECTED, ClipStatus.APPROVED])
def test_the_api_names_no_reviewer_to_the_clips_tester(
    client: FlaskClient, make_clip: MakeClip, rita: User, status: ClipStatus
) -> None:
    clip = make_clip(status, reviewer=rita)
    if status == ClipStatus.APPROVED:
        sharing.create_link(clip, rita, label="for the press")
        db.session.commit()
    response = client.get(f"/api/v1/clips/{clip.id}", headers=bearer(clip.tester))
    assert response.status_code == 200
    body = response.get_json()
    assert not _mentions(response.get_data(as_text=True), rita)
    assert rita.id not in [person["id"] for person in _people_in(body)]


def test_the_api_says_a_decision_was_made_without_saying_by_whom(
    client: FlaskClient, make_clip: MakeClip, rita: User
) -> None:
    clip = make_clip(ClipStatus.REJECTED, reviewer=rita)
    body = client.get(f"/api/v1/clips/{clip.id}", headers=bearer(clip.tester)).get_json()
    assert (body["decision"]["decided_by"], [d["reviewer"] for d in body["decisions"]]) == (
        None,
        [None],
    )
    assert (body["decision"]["reason"], body["decisions"][0]["reason"]) == ("Too blurry",) * 2


def test_the_api_names_the_reviewer_to_staff(
    client: FlaskClient, make_clip: MakeClip, rita: User, make_user: MakeUser
) -> None:
    clip = make_clip(ClipStatus.REJECTED, reviewer=rita)
    other_reviewer = make_user(Role.REVIEWER)
    body = client.get(f"/api/v1/clips/{clip.id}", headers=bearer(other_reviewer)).get_json()
    assert (body["decision"]["decided_by"], body["decisions"][0]["reviewer"]) == (
        {"id": rita.id, "name": REVIEWER_NAME},
    ) * 2


def test_an_api_conflict_does_not_name_the_reviewer_to_the_tester(
    client: FlaskClient, make_clip: MakeClip, rita: User
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=rita)
    headers = bearer(clip.tester)
    with nothing_changed():
        response = client.post(f"/api/v1/clips/{clip.id}/withdraw", headers=headers)
    body = problem(response, 409)
    assert not _mentions(body["detail"], rita)
    assert "in review (by a reviewer," in body["detail"]
    assert (body["current_status"], body["changed_by"]) == ("in_review", None)


def test_an_api_conflict_names_the_tester_their_own_step(
    client: FlaskClient, make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.WITHDRAWN)
    response = client.post(f"/api/v1/clips/{clip.id}/withdraw", headers=bearer(clip.tester))
    assert problem(response, 409)["changed_by"] == clip.tester.id


def test_an_api_conflict_names_the_reviewer_to_another_reviewer(
    client: FlaskClient, make_clip: MakeClip, rita: User, make_user: MakeUser
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=rita)
    other = make_user(Role.REVIEWER)
    response = client.post(
        f"/api/v1/clips/{clip.id}/decision",
        json={"decision": "approve"},
        headers=bearer(other),
    )
    body = problem(response, 409)
    assert (REVIEWER_NAME in body["detail"], body["changed_by"]) == (True, rita.id)


# --- the refusal's text, wherever it is shown ----------------------------------------------------


def test_a_refused_new_version_says_a_reviewer_has_the_clip(
    make_clip: MakeClip, rita: User
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=rita)
    with nothing_changed(), pytest.raises(StateConflict) as refused:
        workflow.start_upload(clip.tester, title="Again", previous=clip)
    assert "in review (by a reviewer," in refused.value.message
    assert REVIEWER_NAME not in refused.value.message


def test_the_withdraw_page_does_not_name_the_reviewer(
    client: FlaskClient, signed_in: SignIn, make_clip: MakeClip, rita: User
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=rita)
    signed_in(clip.tester)
    page = f"/clips/{clip.id}"
    # The button is gone once a reviewer has the clip; a page opened earlier still posts.
    token = csrf_token(client, page)
    with nothing_changed():
        response = client.post(
            f"/clips/{clip.id}/withdraw", data={"csrf_token": token}, follow_redirects=True
        )
    text = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "a reviewer" in text
    assert not _mentions(text, rita)


# --- the pages -----------------------------------------------------------------------------------


def test_the_clip_page_says_a_reviewer_made_the_share_link(
    client: FlaskClient, signed_in: SignIn, make_clip: MakeClip, rita: User
) -> None:
    clip = make_clip(ClipStatus.APPROVED, reviewer=rita)
    sharing.create_link(clip, rita, label="for the press")
    db.session.commit()
    signed_in(clip.tester)
    text = client.get(f"/clips/{clip.id}").get_data(as_text=True)
    assert "for the press" in text
    assert "by a reviewer" in text
    assert not _mentions(text, rita)


def test_the_clip_page_names_the_link_maker_to_staff(
    client: FlaskClient, signed_in: SignIn, make_clip: MakeClip, rita: User, admin: User
) -> None:
    clip = make_clip(ClipStatus.APPROVED, reviewer=rita)
    sharing.create_link(clip, rita, label="for the press")
    db.session.commit()
    signed_in(admin)
    assert f"by {REVIEWER_NAME}" in client.get(f"/clips/{clip.id}").get_data(as_text=True)


@pytest.mark.parametrize("status", [ClipStatus.REJECTED, ClipStatus.TAKEN_DOWN])
def test_the_clip_page_names_no_reviewer_to_the_tester(
    client: FlaskClient, signed_in: SignIn, make_clip: MakeClip, rita: User, status: ClipStatus
) -> None:
    clip = make_clip(status, reviewer=rita)
    signed_in(clip.tester)
    response = client.get(f"/clips/{clip.id}")
    assert response.status_code == 200
    assert not _mentions(response.get_data(as_text=True), rita)
