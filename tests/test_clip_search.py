"""The admin clip browser: search, filters, keyset pages, and takedown with a confirmation.

Also the API's search on GET /api/v1/clips (q, tester, sha256), and every bad input.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from approval.extensions import db
from approval.models import Clip, ClipStatus, Role, User
from approval.ops import clip_search
from approval.ops.errors import InvalidInput
from tests.plugins.api import bearer, problem
from tests.plugins.snapshot import nothing_changed
from tests.plugins.web import SignIn, csrf_token

MakeUser = Callable[..., User]
MakeClip = Callable[..., Clip]


def with_prompt(clip: Clip, prompt: str) -> Clip:
    db.session.execute(update(Clip).where(Clip.id == clip.id).values(prompt=prompt))
    db.session.commit()
    db.session.refresh(clip)
    return clip


def found(**fields: str) -> list[int]:
    search = clip_search.parse(**fields)
    return [clip.id for clip in clip_search.page(search).items]


# --- the query ----------------------------------------------------------------------------------


def test_every_clip_is_listed_newest_first(make_clip: MakeClip) -> None:
    older = make_clip(ClipStatus.UPLOADING)
    newer = make_clip(ClipStatus.APPROVED)
    assert found() == [newer.id, older.id]


def test_search_finds_a_clip_by_words_of_its_prompt_in_any_order(make_clip: MakeClip) -> None:
    hit = with_prompt(make_clip(), "A red fox jumps over a sleeping dog at dawn")
    with_prompt(make_clip(), "A red car at dusk")
    assert found(q="dog FOX") == [hit.id]


def test_search_finds_a_clip_by_its_title(make_clip: MakeClip) -> None:
    hit = make_clip(title="Harbour at night")
    make_clip(title="Mountain")
    assert found(q="harbour") == [hit.id]


def test_search_treats_like_wildcards_literally(make_clip: MakeClip) -> None:
    make_clip(title="Plain")
    hit = make_clip(title="100% real")
    assert found(q="%") == [hit.id]


def test_search_finds_clips_by_the_testers_name_or_email(
    make_clip: MakeClip, make_user: MakeUser
) -> None:
    tess = make_user(Role.TESTER, email="tess@example.com", display_name="Tess Tester")
    mine = make_clip(tester=tess)
    make_clip()
    assert found(tester="tess tes") == [mine.id]
    assert found(tester="TESS@EXAMPLE") == [mine.id]


def test_search_filters_by_status(make_clip: MakeClip) -> None:
    make_clip(ClipStatus.WAITING)
    approved = make_clip(ClipStatus.APPROVED)
    assert found(status="approved") == [approved.id]


def test_search_finds_a_clip_by_a_sha256_prefix_in_either_case(make_clip: MakeClip) -> None:
    hit = make_clip(sha256="abcdef" + "0" * 58)
    make_clip(sha256="abcd00" + "1" * 58)
    assert found(sha256="ABCDE") == [hit.id]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"sha256": "abc"}, "sha256"),
        ({"sha256": "xyz123"}, "sha256"),
        ({"sha256": "a" * 65}, "sha256"),
        ({"status": "lost"}, "status"),
        ({"q": "x" * 201}, "q"),
        ({"tester": "x" * 255}, "tester"),
        ({"q": "nul\x00"}, "q"),
    ],
)
def test_bad_search_input_is_refused_naming_the_field(fields: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        clip_search.parse(**fields)
    assert field in refused.value.errors


def test_pages_follow_one_another_without_gaps_or_repeats(make_clip: MakeClip) -> None:
    clips = [make_clip() for _ in range(5)]
    search = clip_search.parse()
    first = clip_search.page(search, size=2)
    second = clip_search.page(search, cursor=first.next, size=2)
    third = clip_search.page(search, cursor=second.next, size=2)
    seen = [c.id for c in first.items + second.items + third.items]
    assert seen == [c.id for c in reversed(clips)]
    assert third.next is None


# --- the page -----------------------------------------------------------------------------------


@pytest.fixture
def admin_client(signed_in: SignIn, admin: User) -> FlaskClient:
    return signed_in(admin)


def test_the_browser_shows_each_clip_with_its_facts(
    admin_client: FlaskClient, make_clip: MakeClip
) -> None:
    clip = with_prompt(make_clip(ClipStatus.APPROVED, content=b"bytes"), "A fox at dawn")
    page = admin_client.get("/admin/clips").get_data(as_text=True)
    assert clip.title in page
    assert clip.tester.email in page
    assert "approved" in page
    assert f'src="/clips/{clip.id}/poster"' in page
    assert 'loading="lazy"' in page


def test_the_browser_searches_from_the_address(
    admin_client: FlaskClient, make_clip: MakeClip
) -> None:
    hit = with_prompt(make_clip(), "A fox at dawn")
    miss = make_clip()
    page = admin_client.get("/admin/clips?q=fox").get_data(as_text=True)
    assert f">{hit.title}<" in page
    assert f">{miss.title}<" not in page
    assert 'value="fox"' in page


def test_the_browser_keeps_the_search_in_its_next_page_link(
    admin_client: FlaskClient, make_clip: MakeClip, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(clip_search, "PAGE_SIZE", 1)
    for _ in range(2):
        with_prompt(make_clip(), "fox")
    page = admin_client.get("/admin/clips?q=fox").get_data(as_text=True)
    link = page.split('rel="next" href="')[1].split('"')[0]
    assert "q=fox" in link
    assert "cursor=" in link


def test_a_short_sha256_prefix_gets_a_clear_error_and_400(admin_client: FlaskClient) -> None:
    response = admin_client.get("/admin/clips?sha256=ab")
    assert response.status_code == 400
    assert "at least 4" in response.get_data(as_text=True)


def test_a_forged_cursor_gets_400(admin_client: FlaskClient) -> None:
    assert admin_client.get("/admin/clips?cursor=forged").status_code == 400


def test_the_browser_is_for_admins_only(signed_in: SignIn, reviewer: User) -> None:
    assert signed_in(reviewer).get("/admin/clips").status_code == 403


def test_admins_find_the_browser_in_the_nav(admin_client: FlaskClient) -> None:
    page = admin_client.get("/admin/people").get_data(as_text=True)
    assert '<a href="/admin/clips">Clips</a>' in page


def test_an_approved_row_links_to_the_takedown_confirmation(
    admin_client: FlaskClient, make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.APPROVED)
    page = admin_client.get("/admin/clips").get_data(as_text=True)
    assert f'href="/admin/clips/{clip.id}/take-down"' in page


def test_the_clip_page_links_to_the_takedown_confirmation(
    admin_client: FlaskClient, make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.APPROVED)
    page = admin_client.get(f"/clips/{clip.id}").get_data(as_text=True)
    assert f'href="/admin/clips/{clip.id}/take-down"' in page


def test_the_confirmation_names_the_clip_and_asks_for_the_reason(
    admin_client: FlaskClient, make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.APPROVED, title="Harbour at night")
    with nothing_changed():
        page = admin_client.get(f"/admin/clips/{clip.id}/take-down").get_data(as_text=True)
    assert "Take down “Harbour at night”?" in page
    assert 'name="reason"' in page


def test_confirming_takes_the_clip_down(admin_client: FlaskClient, make_clip: MakeClip) -> None:
    clip = make_clip(ClipStatus.APPROVED)
    url = f"/admin/clips/{clip.id}/take-down"
    response = admin_client.post(
        url, data={"reason": "Rights complaint", "csrf_token": csrf_token(admin_client, url)}
    )
    assert response.status_code == 302
    db.session.refresh(clip)
    assert clip.status == ClipStatus.TAKEN_DOWN
    assert clip.takedown_reason == "Rights complaint"


def test_confirming_without_a_reason_keeps_the_page_and_changes_nothing(
    admin_client: FlaskClient, make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.APPROVED)
    url = f"/admin/clips/{clip.id}/take-down"
    token = csrf_token(admin_client, url)
    with nothing_changed():
        response = admin_client.post(url, data={"reason": "  ", "csrf_token": token})
    assert response.status_code == 422
    assert "Give a reason" in response.get_data(as_text=True)


def test_a_clip_that_is_not_approved_cannot_be_taken_down(
    admin_client: FlaskClient, make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.WAITING)
    url = f"/admin/clips/{clip.id}/take-down"
    token = csrf_token(admin_client, "/admin/clips")
    with nothing_changed():
        response = admin_client.post(url, data={"reason": "Rights", "csrf_token": token})
    assert response.status_code == 409
    assert admin_client.get(url).status_code == 409


# --- the API ------------------------------------------------------------------------------------


def test_the_api_searches_by_prompt_words(
    app: Flask, client: FlaskClient, make_clip: MakeClip, reviewer: User
) -> None:
    hit = with_prompt(make_clip(), "A fox at dawn")
    make_clip()
    response = client.get("/api/v1/clips?q=fox%20dawn", headers=bearer(reviewer))
    assert [item["id"] for item in response.get_json()["items"]] == [hit.id]


def test_the_api_searches_by_sha256_prefix_and_tester(
    app: Flask, client: FlaskClient, make_clip: MakeClip, make_user: MakeUser, admin: User
) -> None:
    tess = make_user(Role.TESTER, display_name="Tess Tester")
    hit = make_clip(tester=tess, sha256="feed" + "0" * 60)
    make_clip(sha256="feed" + "1" * 60)
    response = client.get("/api/v1/clips?sha256=feed&tester_name=tess", headers=bearer(admin))
    assert [item["id"] for item in response.get_json()["items"]] == [hit.id]


def test_the_api_refuses_a_short_sha256_prefix_with_400(
    app: Flask, client: FlaskClient, reviewer: User
) -> None:
    body = problem(client.get("/api/v1/clips?sha256=ab", headers=bearer(reviewer)), 400)
    assert "sha256" in str(body)


def test_testers_search_only_their_own_clips(
    app: Flask, client: FlaskClient, make_clip: MakeClip, tester: User
) -> None:
    with_prompt(make_clip(), "A fox")
    mine = with_prompt(make_clip(tester=tester), "A fox too")
    response = client.get("/api/v1/clips?q=fox", headers=bearer(tester))
    assert [item["id"] for item in response.get_json()["items"]] == [mine.id]
