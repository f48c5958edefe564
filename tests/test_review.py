"""The review pages: queue, review next, the review page, decisions, and every bad input."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, func, select
from werkzeug.serving import make_server

from approval.extensions import db
from approval.extensions import storage as app_storage
from approval.models import AuditEvent, Clip, ClipStatus, Decision, Role, User, Verdict
from approval.ops import claims, workflow
from approval.ops import queue as reads
from tests.plugins.factories import FAKE_MEDIA, PASSWORD, FrozenClock
from tests.plugins.snapshot import nothing_changed
from tests.plugins.web import SignIn, csrf_token

MakeUser = Callable[..., User]
MakeClip = Callable[..., Clip]
Login = Callable[..., Any]
PostForm = Callable[..., Any]


@pytest.fixture
def reviewer_signed_in(signed_in: SignIn, reviewer: User) -> FlaskClient:
    """The test's `client`, signed in as the shared `reviewer`."""
    return signed_in(reviewer)


def events() -> int:
    return db.session.scalar(select(func.count()).select_from(AuditEvent)) or 0


def status_of(clip: Clip) -> ClipStatus:
    db.session.expire_all()
    found = db.session.get(Clip, clip.id)
    assert found is not None
    return found.status


def text(response: Any) -> str:
    return str(response.get_data(as_text=True))


def reject_data(**fields: Any) -> dict[str, Any]:
    return {"category": "quality", "reason": "The hands melt at the end.", **fields}


@contextmanager
def statements() -> Iterator[list[tuple[str, Any]]]:
    """Every SQL statement the block sends, with its parameters."""
    seen: list[tuple[str, Any]] = []

    def listen(conn: Any, cursor: Any, sql: str, parameters: Any, *args: Any) -> None:
        seen.append((sql, parameters))

    event.listen(db.engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", listen)


# --- who may see what ----------------------------------------------------------------------------

POST_URLS = [
    "/review/next",
    "/review/{id}/claim",
    "/review/{id}/renew",
    "/review/{id}/release",
    "/review/{id}/approve",
    "/review/{id}/reject",
]


@pytest.mark.parametrize("url", POST_URLS)
def test_a_post_without_csrf_token_gets_400_and_changes_nothing(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_clip: MakeClip,
    url: str,
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    before = events()
    response = client.post(url.format(id=clip.id), data=reject_data())
    assert (response.status_code, status_of(clip), events()) == (
        400,
        ClipStatus.IN_REVIEW,
        before,
    )


def test_a_missing_clip_is_404(
    client: FlaskClient, reviewer: User, reviewer_signed_in: FlaskClient
) -> None:
    assert client.get("/review/999999").status_code == 404


# --- the queue -----------------------------------------------------------------------------------


def test_empty_queue_says_nice_work(
    client: FlaskClient, reviewer: User, reviewer_signed_in: FlaskClient
) -> None:
    assert "No clips waiting — nice work" in text(client.get("/review/"))


def test_queue_lists_waiting_clips_oldest_first(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_clip: MakeClip,
    clock: FrozenClock,
) -> None:
    for title in ("Oldest", "Middle", "Newest"):
        make_clip(ClipStatus.WAITING, title=title)
        clock.advance(minutes=1)
    page = text(client.get("/review/"))
    assert page.index("Oldest") < page.index("Middle") < page.index("Newest")


@pytest.mark.parametrize(
    "status", [s for s in ClipStatus if s not in (ClipStatus.WAITING, ClipStatus.IN_REVIEW)]
)
def test_queue_leaves_out_clips_that_are_not_waiting(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_clip: MakeClip,
    status: ClipStatus,
) -> None:
    make_clip(status, title="Not here")
    assert "Not here" not in text(client.get("/review/"))


def test_queue_shows_the_count_and_the_age_of_the_oldest(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_clip: MakeClip,
    clock: FrozenClock,
) -> None:
    make_clip(ClipStatus.WAITING)
    make_clip(ClipStatus.WAITING)
    clock.advance(hours=3)
    page = text(client.get("/review/"))
    assert re.search(r'data-count="waiting">2<', page)
    assert "3 hours ago" in page


def test_counts_endpoint_gives_live_numbers(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_clip: MakeClip,
    clock: FrozenClock,
) -> None:
    make_clip(ClipStatus.WAITING)
    make_clip(ClipStatus.IN_REVIEW)
    clock.advance(seconds=90)
    assert client.get("/review/counts").get_json() == {
        "waiting": 1,
        "waiting_precision": "exact",
        "waiting_label": "1",
        "in_review": 1,
        "oldest_submitted_at": "2026-11-30T12:00:00+00:00",
        "oldest_age_seconds": 90,
    }


def test_counts_treat_a_lapsed_lease_as_waiting(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_clip: MakeClip,
    clock: FrozenClock,
    app: Flask,
) -> None:
    make_clip(ClipStatus.IN_REVIEW)
    clock.advance(seconds=app.config["CLAIM_LEASE_SECONDS"])
    body = client.get("/review/counts").get_json()
    assert (body["waiting"], body["in_review"]) == (1, 0)


def test_a_lapsed_lease_shows_in_the_queue_in_its_place(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_clip: MakeClip,
    clock: FrozenClock,
    app: Flask,
) -> None:
    make_clip(ClipStatus.IN_REVIEW, title="Lapsed")
    clock.advance(seconds=1)
    make_clip(ClipStatus.WAITING, title="Later")
    clock.advance(seconds=app.config["CLAIM_LEASE_SECONDS"])
    page = text(client.get("/review/"))
    assert page.index("Lapsed") < page.index("lease lapsed") < page.index("Later")


def test_queue_filters_by_tester(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_user: MakeUser,
    make_clip: MakeClip,
) -> None:
    wanted = make_user(Role.TESTER)
    make_clip(ClipStatus.WAITING, tester=wanted, title="Wanted clip")
    make_clip(ClipStatus.WAITING, title="Other clip")
    page = text(client.get(f"/review/?tester={wanted.id}"))
    assert ("Wanted clip" in page, "Other clip" in page) == (True, False)


def test_queue_filters_by_generator(
    client: FlaskClient, reviewer: User, reviewer_signed_in: FlaskClient, make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.WAITING, title="From gen-2")
    clip.generator = "Gen-2 turbo"
    db.session.commit()
    make_clip(ClipStatus.WAITING, title="From gen-1")
    page = text(client.get("/review/?generator=gen-2"))
    assert ("From gen-2" in page, "From gen-1" in page) == (True, False)


def test_queue_filters_by_age(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_clip: MakeClip,
    clock: FrozenClock,
) -> None:
    make_clip(ClipStatus.WAITING, title="Old clip")
    clock.advance(hours=2)
    make_clip(ClipStatus.WAITING, title="Fresh clip")
    page = text(client.get("/review/?age=1h"))
    assert ("Old clip" in page, "Fresh clip" in page) == (True, False)


def test_queue_says_when_no_clip_matches_the_filters(
    client: FlaskClient, reviewer: User, reviewer_signed_in: FlaskClient, make_clip: MakeClip
) -> None:
    make_clip(ClipStatus.WAITING)
    assert "No waiting clips match" in text(client.get("/review/?generator=nothing-like-it"))


def test_queue_ignores_a_nonsense_filter(
    client: FlaskClient, reviewer: User, reviewer_signed_in: FlaskClient, make_clip: MakeClip
) -> None:
    make_clip(ClipStatus.WAITING, title="Still listed")
    assert "Still listed" in text(client.get("/review/?tester=abc&age=forever"))


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reads, "PAGE_SIZE", 2)


def five_clips(make_clip: MakeClip, clock: FrozenClock) -> list[Clip]:
    made = []
    for number in range(5):
        made.append(make_clip(ClipStatus.WAITING, title=f"Queue item {number}"))
        clock.advance(seconds=1)
    return made


def titles(page: str) -> list[str]:
    return re.findall(r"Queue item \d", page)


def follow(client: FlaskClient, page: str, rel: str) -> str:
    """The page that the queue page's `next` or `prev` link leads to."""
    link = re.search(rf'rel="{rel}" href="([^"]+)"', page)
    assert link is not None, f"no {rel} link"
    return text(client.get(link.group(1).replace("&amp;", "&")))


def test_queue_pages_forward_with_a_keyset(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_clip: MakeClip,
    clock: FrozenClock,
    small_pages: None,
) -> None:
    five_clips(make_clip, clock)
    first = text(client.get("/review/"))
    assert 'rel="next"' in first
    second = follow(client, first, "next")
    assert titles(second) == ["Queue item 2", "Queue item 3"]


def test_queue_pages_back_with_a_keyset(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_clip: MakeClip,
    clock: FrozenClock,
    small_pages: None,
) -> None:
    five_clips(make_clip, clock)
    last = follow(client, follow(client, text(client.get("/review/")), "next"), "next")
    page = follow(client, last, "prev")
    assert titles(page) == ["Queue item 2", "Queue item 3"]


def test_the_last_queue_page_has_no_next_link(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_clip: MakeClip,
    clock: FrozenClock,
    small_pages: None,
) -> None:
    five_clips(make_clip, clock)
    page = follow(client, follow(client, text(client.get("/review/")), "next"), "next")
    assert (titles(page), 'rel="next"' in page) == (["Queue item 4"], False)


def test_queue_pages_keep_the_filters(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_clip: MakeClip,
    clock: FrozenClock,
    small_pages: None,
) -> None:
    five_clips(make_clip, clock)
    page = text(client.get("/review/?generator=gen"))
    assert re.search(r'href="/review/\?cursor=[\w.-]+&amp;generator=gen"', page)


def test_queue_never_uses_offset(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_clip: MakeClip,
    clock: FrozenClock,
    small_pages: None,
) -> None:
    five_clips(make_clip, clock)
    first = text(client.get("/review/"))
    link = re.search(r'rel="next" href="([^"]+)"', first)
    assert link is not None
    with statements() as seen:
        client.get(link.group(1).replace("&amp;", "&"))
    # SQLite spells every LIMIT as "LIMIT ? OFFSET ?" with an offset of 0; that skips nothing.
    offsets = [params[-1] for sql, params in seen if "OFFSET" in sql.upper()]
    assert set(offsets) <= {0}


def test_queue_marks_a_reviewers_own_clip(
    client: FlaskClient, make_user: MakeUser, login: Login, make_clip: MakeClip
) -> None:
    both = make_user(Role.TESTER, Role.REVIEWER)
    login(both)
    make_clip(ClipStatus.WAITING, tester=both)
    assert "your clip" in text(client.get("/review/"))


# --- review next ---------------------------------------------------------------------------------


def test_review_next_opens_the_oldest_clip(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_clip: MakeClip,
    post_form: PostForm,
) -> None:
    oldest = make_clip(ClipStatus.WAITING)
    make_clip(ClipStatus.WAITING)
    response = post_form("/review/next", page="/review/")
    assert response.headers["Location"] == f"/review/{oldest.id}"


def test_review_next_claims_the_clip(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_clip: MakeClip,
    post_form: PostForm,
) -> None:
    clip = make_clip(ClipStatus.WAITING)
    post_form("/review/next", page="/review/")
    db.session.refresh(clip)
    assert (clip.status, clip.claimed_by_id) == (ClipStatus.IN_REVIEW, reviewer.id)


def test_review_next_on_an_empty_queue_goes_back_with_a_message(
    client: FlaskClient, reviewer: User, reviewer_signed_in: FlaskClient, post_form: PostForm
) -> None:
    response = post_form("/review/next", page="/review/", follow_redirects=True)
    assert (response.request.path, "No clips waiting — nice work" in text(response)) == (
        "/review/",
        True,
    )


def test_review_next_is_a_post_only(
    client: FlaskClient, reviewer: User, reviewer_signed_in: FlaskClient
) -> None:
    assert client.get("/review/next").status_code == 405


# --- the review page -----------------------------------------------------------------------------


def test_review_page_shows_what_the_reviewer_needs(
    client: FlaskClient, reviewer: User, reviewer_signed_in: FlaskClient, make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer, title="Sunset dog")
    clip.prompt = "a dog at sunset"
    db.session.commit()
    page = text(client.get(f"/review/{clip.id}"))
    for expected in (
        "Sunset dog",
        "a dog at sunset",
        "gen-1",
        clip.tester.display_name,
        "1920\N{MULTIPLICATION SIGN}1080",
        "0:02",
        "24 fps",
        "H264",
        "MP4",
        "1.2 KB",
        clip.sha256,
    ):
        assert expected in page, expected


def test_review_page_plays_the_clip_through_the_media_endpoint(
    client: FlaskClient, reviewer: User, reviewer_signed_in: FlaskClient, make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    page = text(client.get(f"/review/{clip.id}"))
    assert re.search(rf'<video id="player" controls[^>]*src="/clips/{clip.id}/media"', page)


def test_review_page_shows_the_poster_when_there_is_one(
    client: FlaskClient, reviewer: User, reviewer_signed_in: FlaskClient, make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    clip.poster_key = "posters/aa/poster.jpg"
    db.session.commit()
    assert f'poster="/clips/{clip.id}/poster"' in text(client.get(f"/review/{clip.id}"))


def test_review_page_preloads_the_next_clips_poster(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_clip: MakeClip,
    clock: FrozenClock,
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    clock.advance(seconds=1)
    following = make_clip(ClipStatus.WAITING)
    following.poster_key = "posters/bb/poster.jpg"
    db.session.commit()
    page = text(client.get(f"/review/{clip.id}"))
    assert f'<link rel="prefetch" as="image" href="/clips/{following.id}/poster">' in page


def test_review_page_lists_the_keyboard_shortcuts(
    client: FlaskClient, reviewer: User, reviewer_signed_in: FlaskClient, make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    page = text(client.get(f"/review/{clip.id}"))
    assert all(f"<kbd>{key}</kbd>" in page for key in ("J", "K", "A", "R", "Space", "?"))


def test_review_page_has_no_inline_script(
    client: FlaskClient, reviewer: User, reviewer_signed_in: FlaskClient, make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    page = text(client.get(f"/review/{clip.id}"))
    scripts = re.findall(r"<script[^>]*>", page)
    assert scripts == [
        '<script src="/static/js/player.js" defer>',
        '<script src="/static/js/comments.js" defer>',
        '<script src="/static/js/review.js" defer>',
    ]
    assert not re.search(r"\son[a-z]+=", page)  # no event-handler attributes either


def test_review_page_hands_its_script_the_renew_url(
    client: FlaskClient, reviewer: User, reviewer_signed_in: FlaskClient, make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    assert f'data-renew-url="/review/{clip.id}/renew"' in text(client.get(f"/review/{clip.id}"))


def test_review_page_links_the_neighbours_for_j_and_k(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_clip: MakeClip,
    clock: FrozenClock,
) -> None:
    before = make_clip(ClipStatus.WAITING)
    clock.advance(seconds=1)
    clip = make_clip(ClipStatus.WAITING)
    clock.advance(seconds=1)
    after = make_clip(ClipStatus.WAITING)
    page = text(client.get(f"/review/{clip.id}"))
    assert (
        f'data-prev-url="/review/{before.id}"' in page,
        f'data-next-url="/review/{after.id}"' in page,
    ) == (True, True)


def test_review_page_shows_earlier_versions_with_their_decisions(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_user: MakeUser,
    make_clip: MakeClip,
) -> None:
    first = make_clip(ClipStatus.REJECTED, title="Dog v1", reviewer=make_user(Role.REVIEWER))
    second = make_clip(ClipStatus.WAITING, tester=first.tester, previous=first, title="Dog v2")
    page = text(client.get(f"/review/{second.id}"))
    assert re.search(r"v1: Dog v1.*Rejected.*Quality.*Too blurry", page, re.DOTALL)


def test_review_page_without_a_claim_offers_to_claim(
    client: FlaskClient, reviewer: User, reviewer_signed_in: FlaskClient, make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.WAITING)
    page = text(client.get(f"/review/{clip.id}"))
    assert (f'action="/review/{clip.id}/claim"' in page, "approve-form" in page) == (True, False)


def test_review_page_says_who_holds_the_clip(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_user: MakeUser,
    make_clip: MakeClip,
) -> None:
    other = make_user(Role.REVIEWER)
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=other)
    assert f"{other.display_name} is reviewing this clip" in text(client.get(f"/review/{clip.id}"))


@pytest.mark.parametrize("status", list(ClipStatus))
def test_review_page_opens_in_every_state(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_clip: MakeClip,
    status: ClipStatus,
) -> None:
    clip = make_clip(status)
    assert client.get(f"/review/{clip.id}").status_code == 200


# --- claim, renew, release -----------------------------------------------------------------------


def test_claiming_a_particular_clip_opens_it(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_clip: MakeClip,
    post_form: PostForm,
) -> None:
    clip = make_clip(ClipStatus.WAITING)
    response = post_form(f"/review/{clip.id}/claim", page=f"/review/{clip.id}")
    assert (response.headers["Location"], status_of(clip)) == (
        f"/review/{clip.id}",
        ClipStatus.IN_REVIEW,
    )


def test_claiming_a_clip_someone_holds_is_409(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_user: MakeUser,
    make_clip: MakeClip,
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=make_user(Role.REVIEWER))
    token = csrf_token(client, "/review/")
    with nothing_changed():
        response = client.post(f"/review/{clip.id}/claim", data={"csrf_token": token})
    assert response.status_code == 409


def test_renew_extends_the_lease(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_clip: MakeClip,
    clock: FrozenClock,
    app: Flask,
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    token = csrf_token(client, f"/review/{clip.id}")
    clock.advance(seconds=60)
    response = client.post(f"/review/{clip.id}/renew", headers={"X-CSRFToken": token})
    expires = clock.now + timedelta(seconds=app.config["CLAIM_LEASE_SECONDS"])
    db.session.refresh(clip)
    assert (response.get_json(), clip.claim_expires_at) == (
        {"expires_at": expires.isoformat()},
        expires,
    )


def test_renew_after_the_lease_lapsed_is_409(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_clip: MakeClip,
    clock: FrozenClock,
    app: Flask,
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    token = csrf_token(client, f"/review/{clip.id}")
    clock.advance(seconds=app.config["CLAIM_LEASE_SECONDS"] + 1)
    with nothing_changed():
        response = client.post(f"/review/{clip.id}/renew", headers={"X-CSRFToken": token})
    assert response.status_code == 409


def test_release_puts_the_clip_back(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_clip: MakeClip,
    post_form: PostForm,
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    response = post_form(f"/review/{clip.id}/release", page=f"/review/{clip.id}")
    assert (response.headers["Location"], status_of(clip)) == ("/review/", ClipStatus.WAITING)


# --- decisions -----------------------------------------------------------------------------------


def test_approve_approves_and_opens_the_next_clip(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_clip: MakeClip,
    post_form: PostForm,
    clock: FrozenClock,
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    clock.advance(seconds=1)
    following = make_clip(ClipStatus.WAITING)
    response = post_form(f"/review/{clip.id}/approve", page=f"/review/{clip.id}")
    assert (status_of(clip), response.headers["Location"], status_of(following)) == (
        ClipStatus.APPROVED,
        f"/review/{following.id}",
        ClipStatus.IN_REVIEW,
    )


def test_approval_logs_what_the_player_played_and_the_served_hashes(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_clip: MakeClip,
    post_form: PostForm,
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    post_form(f"/review/{clip.id}/approve", {"played_seconds": "1.75"}, page=f"/review/{clip.id}")
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "clip.approved")).one()
    decision = db.session.scalars(select(Decision).where(Decision.clip_id == clip.id)).one()
    assert (decision.played_seconds, json.loads(event.data)["played_seconds"]) == (1.75, 1.75)


def test_approval_event_names_the_hash_of_every_served_file(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_clip: MakeClip,
    post_form: PostForm,
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    post_form(f"/review/{clip.id}/approve", page=f"/review/{clip.id}")
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "clip.approved")).one()
    assert json.loads(event.data)["served_sha256"] == {"original": clip.sha256, "rendition": None}


@pytest.mark.parametrize("played", ["soon", "nan", "-3", "inf"])
def test_a_bad_played_time_is_refused_and_changes_nothing(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_clip: MakeClip,
    post_form: PostForm,
    played: str,
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    events = db.session.scalar(select(func.count()).select_from(AuditEvent))
    response = post_form(
        f"/review/{clip.id}/approve", {"played_seconds": played}, page=f"/review/{clip.id}"
    )
    after = db.session.scalar(select(func.count()).select_from(AuditEvent))
    assert (response.status_code, status_of(clip), after) == (
        422,
        ClipStatus.IN_REVIEW,
        events,
    )
    assert "played time" in text(response)


def test_approve_waits_for_the_player_on_the_review_page(
    client: FlaskClient, reviewer: User, reviewer_signed_in: FlaskClient, make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    page = text(client.get(f"/review/{clip.id}"))
    assert 'id="approve-button"' in page
    assert 'name="played_seconds"' in page
    assert 'id="player-error"' in page


def test_the_last_decision_returns_to_the_queue_with_a_message(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_clip: MakeClip,
    post_form: PostForm,
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    response = post_form(
        f"/review/{clip.id}/approve", page=f"/review/{clip.id}", follow_redirects=True
    )
    assert (response.request.path, "No clips waiting — nice work" in text(response)) == (
        "/review/",
        True,
    )


def test_reject_records_category_reason_and_timecode(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_clip: MakeClip,
    post_form: PostForm,
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    post_form(
        f"/review/{clip.id}/reject",
        reject_data(category="likeness", timecode="1.5"),
        page=f"/review/{clip.id}",
    )
    db.session.refresh(clip)
    assert (
        clip.status,
        clip.decision_category,
        clip.decision_reason,
        clip.decision_timecode,
    ) == (ClipStatus.REJECTED, "likeness", "The hands melt at the end.", 1.5)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"reason": ""}, "Say what is wrong"),
        ({"reason": "   "}, "Say what is wrong"),
        ({"category": ""}, "Pick the category"),
        ({"category": "made-up"}, "Not a valid choice"),
        ({"timecode": "-1"}, "from 0"),
        ({"timecode": "2.5"}, "only 2 seconds long"),
        ({"timecode": "nan"}, "from 0"),
        ({"timecode": "soon"}, "Not a valid float"),
    ],
    ids=[
        "no-reason",
        "blank-reason",
        "no-category",
        "unknown-category",
        "negative-timecode",
        "timecode-past-the-end",
        "nan-timecode",
        "text-timecode",
    ],
)
def test_a_bad_rejection_is_a_form_error_and_changes_nothing(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_clip: MakeClip,
    post_form: PostForm,
    fields: dict[str, str],
    message: str,
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    before = events()
    response = post_form(
        f"/review/{clip.id}/reject", reject_data(**fields), page=f"/review/{clip.id}"
    )
    assert (response.status_code, message in text(response)) == (422, True)
    assert (status_of(clip), events()) == (ClipStatus.IN_REVIEW, before)


def test_a_bad_rejection_keeps_the_reason_form_open(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_clip: MakeClip,
    post_form: PostForm,
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    response = post_form(
        f"/review/{clip.id}/reject", reject_data(reason=""), page=f"/review/{clip.id}"
    )
    assert '<details id="reject-panel" open>' in text(response)


def test_deciding_ones_own_clip_is_403(
    client: FlaskClient, make_user: MakeUser, login: Login, make_clip: MakeClip, post_form: PostForm
) -> None:
    both = make_user(Role.TESTER, Role.REVIEWER)
    login(both)
    clip = make_clip(ClipStatus.IN_REVIEW, tester=both)
    response = post_form(f"/review/{clip.id}/approve", page=f"/review/{clip.id}")
    assert (response.status_code, status_of(clip)) == (403, ClipStatus.IN_REVIEW)


def test_deciding_without_a_claim_is_409(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_clip: MakeClip,
    post_form: PostForm,
) -> None:
    clip = make_clip(ClipStatus.WAITING)
    response = post_form(f"/review/{clip.id}/approve", page=f"/review/{clip.id}")
    assert (response.status_code, status_of(clip)) == (409, ClipStatus.WAITING)


def test_deciding_on_someone_elses_claim_is_409(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_user: MakeUser,
    make_clip: MakeClip,
    post_form: PostForm,
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=make_user(Role.REVIEWER))
    response = post_form(f"/review/{clip.id}/reject", reject_data(), page=f"/review/{clip.id}")
    assert (response.status_code, status_of(clip)) == (409, ClipStatus.IN_REVIEW)


@pytest.mark.parametrize("status", [ClipStatus.APPROVED, ClipStatus.REJECTED])
def test_deciding_a_decided_clip_is_409_naming_who_and_when(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_user: MakeUser,
    make_clip: MakeClip,
    post_form: PostForm,
    status: ClipStatus,
) -> None:
    earlier = make_user(Role.REVIEWER)
    clip = make_clip(status, reviewer=earlier)
    token = csrf_token(client, f"/review/{clip.id}")
    with nothing_changed():
        response = client.post(f"/review/{clip.id}/approve", data={"csrf_token": token})
    assert response.status_code == 409
    assert f"{status.label} (by {earlier.display_name}, 2026-11-30 12:00 UTC)" in text(response)


def test_going_back_and_deciding_again_is_a_friendly_409(
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_clip: MakeClip,
    post_form: PostForm,
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    page = f"/review/{clip.id}"
    token = csrf_token(client, page)  # the form as it was, before the decision
    post_form(f"/review/{clip.id}/approve", page=page)
    again = client.post(f"/review/{clip.id}/reject", data={**reject_data(), "csrf_token": token})
    assert (again.status_code, "This clip was already decided" in text(again)) == (409, True)
    assert (status_of(clip), len(clip.decisions)) == (ClipStatus.APPROVED, 1)


def test_with_two_approvals_required_the_first_says_so(
    app: Flask,
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_clip: MakeClip,
    post_form: PostForm,
) -> None:
    app.config["APPROVALS_REQUIRED"] = 2
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    response = post_form(
        f"/review/{clip.id}/approve", page=f"/review/{clip.id}", follow_redirects=True
    )
    assert ("needs 2 approvals" in text(response), status_of(clip)) == (True, ClipStatus.WAITING)


def test_with_two_approvals_required_a_second_reviewer_approves_through_the_pages(
    app: Flask,
    client: FlaskClient,
    reviewer: User,
    reviewer_signed_in: FlaskClient,
    make_user: MakeUser,
    make_clip: MakeClip,
    post_form: PostForm,
) -> None:
    app.config["APPROVALS_REQUIRED"] = 2
    first = make_user(Role.REVIEWER)
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=first)
    workflow.decide(clip, first, Verdict.APPROVE)
    db.session.commit()
    post_form("/review/next", page="/review/")
    post_form(f"/review/{clip.id}/approve", page=f"/review/{clip.id}")
    reviewers = set(db.session.scalars(select(Decision.reviewer_id)))
    assert (status_of(clip), reviewers) == (ClipStatus.APPROVED, {first.id, reviewer.id})


# --- in a real browser ---------------------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def live_site(app: Flask) -> Iterator[str]:
    """The app served on a free local port, for a real browser."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def test_review_keys_work_in_a_real_browser(
    app: Flask,
    live_site: str,
    make_user: MakeUser,
    make_video: Callable[..., Path],
    clock: FrozenClock,
) -> None:
    """J/K in the queue, live counts, ?, Space, R, "use current time", A: with the real CSP."""
    playwright = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip(f"no browser at {CHROMIUM}")
    reviewer = make_user(Role.REVIEWER)
    tester = make_user(Role.TESTER)
    video = make_video(seconds=4.0, width=320, height=240)
    ids = []
    for number in range(3):
        clip = workflow.start_upload(tester, title=f"Clip {number}", content_type="video/mp4")
        with video.open("rb") as stream:
            stored = app_storage().put_stream(
                clip.storage_key, stream, content_type="video/mp4", max_bytes=1 << 30
            )
        workflow.begin_verification(clip, tester)
        # Pinned to what is really stored: the player is served only verified bytes.
        media = replace(
            FAKE_MEDIA,
            sha256=f"{number:064x}",
            duration_seconds=4.0,
            size_bytes=stored.size,
            etag=stored.etag,
        )
        workflow.pass_verification(clip, media)
        ids.append(clip.id)
        clock.advance(seconds=1)
    db.session.commit()
    problems: list[str] = []
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=str(CHROMIUM), args=["--autoplay-policy=no-user-gesture-required"]
        )
        page = browser.new_page()
        page.on("pageerror", lambda error: problems.append(str(error)))
        # CSP refusals and script errors show in the console; failed requests as responses.
        page.on(
            "console",
            lambda message: (
                problems.append(message.text)
                if message.type == "error"
                and not message.text.startswith("Failed to load resource")
                else None
            ),
        )
        page.on(
            "response",
            lambda response: (
                problems.append(f"{response.status} {response.url}")
                if response.status >= 400 and not response.url.endswith("/favicon.ico")
                else None
            ),
        )
        page.goto(live_site + "/login")
        page.fill("#email", reviewer.email)
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.goto(live_site + "/review/")
        page.keyboard.press("j")
        page.keyboard.press("j")
        assert page.evaluate("document.activeElement.textContent") == "Clip 1"

        claims.claim(db.session.get(Clip, ids[2]), make_user(Role.REVIEWER))  # type: ignore[arg-type]
        db.session.commit()
        page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")  # poll now
        page.wait_for_function(
            "() => document.querySelector('[data-count=in_review]').textContent == '1'"
        )
        # The poll's label, which says "about" or "more than" when the number is not exact.
        assert page.evaluate("document.querySelector('[data-count=waiting]').textContent") == "2"

        page.click("text=Review next")
        page.wait_for_url(f"**/review/{ids[0]}")
        page.wait_for_load_state()
        page.keyboard.press("?")
        assert page.evaluate("document.getElementById('shortcuts-dialog').open")
        page.keyboard.press("Escape")

        page.wait_for_function("() => document.getElementById('player').readyState >= 1")
        page.evaluate("document.activeElement.blur()")
        page.keyboard.press(" ")
        page.wait_for_function("() => !document.getElementById('player').paused")
        page.keyboard.press(" ")
        assert page.evaluate("document.getElementById('player').paused")

        page.keyboard.press("r")
        assert page.evaluate("document.activeElement.id") == "category"
        page.evaluate("document.getElementById('player').currentTime = 1.5")
        page.wait_for_function("() => document.getElementById('player').currentTime === 1.5")
        page.click("#use-current-time")
        assert page.input_value("#timecode") == "1.5"

        page.evaluate("document.activeElement.blur()")
        page.keyboard.press("a")
        page.wait_for_url(f"**/review/{ids[1]}")
        browser.close()
    assert (status_of(db.session.get(Clip, ids[0])), problems) == (ClipStatus.APPROVED, [])  # type: ignore[arg-type]
