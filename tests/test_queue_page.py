"""The queue with pictures, and filters that follow the reviewer from clip to clip.

Each row shows the poster, duration, tester, a prompt preview and the age; the filters live in
the address, and the review page's previous/next links and claim-next after a verdict keep to
the clips the filters select.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from sqlalchemy import update

from approval.extensions import db
from approval.models import Clip, ClipStatus, Role, User
from approval.ops import claims
from approval.ops import queue as reads
from tests.plugins.factories import FrozenClock
from tests.plugins.snapshot import nothing_changed
from tests.plugins.web import SignIn, csrf_token

MakeUser = Callable[..., User]
MakeClip = Callable[..., Clip]


@pytest.fixture
def reviewer_client(signed_in: SignIn, reviewer: User) -> FlaskClient:
    return signed_in(reviewer)


def with_prompt(clip: Clip, prompt: str) -> Clip:
    db.session.execute(update(Clip).where(Clip.id == clip.id).values(prompt=prompt))
    db.session.commit()
    db.session.refresh(clip)
    return clip


def html(client: FlaskClient, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return str(response.get_data(as_text=True))


# --- the rows -----------------------------------------------------------------------------------


def test_each_row_shows_the_poster_lazily_with_its_size_and_alt_text(
    reviewer_client: FlaskClient, make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.WAITING, content=b"video", title="Harbour")
    page = html(reviewer_client, "/review/")
    img = re.search(rf'<img[^>]*src="/clips/{clip.id}/poster"[^>]*>', page)
    assert img is not None
    assert 'loading="lazy"' in img.group(0)
    assert 'width="' in img.group(0)
    assert 'height="' in img.group(0)
    assert 'alt="Poster frame of “Harbour”"' in img.group(0)


def test_a_row_without_a_poster_shows_a_placeholder(
    reviewer_client: FlaskClient, make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.WAITING)
    page = html(reviewer_client, "/review/")
    assert f"/clips/{clip.id}/poster" not in page
    assert "poster-placeholder" in page


def test_each_row_shows_the_duration_and_the_tester(
    reviewer_client: FlaskClient, make_clip: MakeClip, make_user: MakeUser
) -> None:
    tess = make_user(Role.TESTER, display_name="Tess Tester")
    make_clip(ClipStatus.WAITING, tester=tess)
    page = html(reviewer_client, "/review/")
    assert "0:02" in page  # FAKE_MEDIA lasts 2 seconds
    assert "Tess Tester" in page


def test_a_long_prompt_is_previewed_to_about_120_characters_with_an_ellipsis(
    reviewer_client: FlaskClient, make_clip: MakeClip
) -> None:
    prompt = " ".join(["lighthouse"] * 30)
    with_prompt(make_clip(ClipStatus.WAITING), prompt)
    page = html(reviewer_client, "/review/")
    preview = re.search(r'<p class="prompt-preview"[^>]*>([^<]*)</p>', page)
    assert preview is not None
    assert preview.group(1).endswith("…")
    assert len(preview.group(1)) <= 121


def test_a_short_prompt_is_shown_whole(reviewer_client: FlaskClient, make_clip: MakeClip) -> None:
    with_prompt(make_clip(ClipStatus.WAITING), "A fox at dawn")
    assert ">A fox at dawn</p>" in html(reviewer_client, "/review/")


def test_each_row_shows_the_age(
    reviewer_client: FlaskClient, make_clip: MakeClip, clock: FrozenClock
) -> None:
    make_clip(ClipStatus.WAITING)
    clock.advance(hours=3)
    assert "3 hours ago" in html(reviewer_client, "/review/")


def test_row_links_carry_the_filters(
    reviewer_client: FlaskClient, make_clip: MakeClip, make_user: MakeUser
) -> None:
    tess = make_user(Role.TESTER)
    clip = make_clip(ClipStatus.WAITING, tester=tess)
    page = html(reviewer_client, f"/review/?tester={tess.id}")
    assert f'href="/review/{clip.id}?tester={tess.id}"' in page


# --- filters carried through review -------------------------------------------------------------


@pytest.fixture
def two_testers(make_clip: MakeClip, make_user: MakeUser, clock: FrozenClock) -> dict[str, object]:
    """Clips of Ann and Bob interleaved in the queue: ann1, bob1, ann2, bob2, ann3."""
    ann = make_user(Role.TESTER, display_name="Ann")
    bob = make_user(Role.TESTER, display_name="Bob")
    made: dict[str, object] = {"ann": ann, "bob": bob}
    for name, who in (("ann1", ann), ("bob1", bob), ("ann2", ann), ("bob2", bob), ("ann3", ann)):
        made[name] = make_clip(ClipStatus.WAITING, tester=who, title=name)
        clock.advance(minutes=1)
    return made


def test_neighbours_keep_to_the_filters(two_testers: dict[str, object], clock: FrozenClock) -> None:
    ann = two_testers["ann"]
    assert isinstance(ann, User)
    middle = two_testers["ann2"]
    assert isinstance(middle, Clip)
    previous, following = reads.neighbours(middle, clock.now, reads.Filters(tester_id=ann.id))
    assert (previous, following) == (two_testers["ann1"], two_testers["ann3"])


def test_neighbours_without_filters_are_the_whole_queue(
    two_testers: dict[str, object], clock: FrozenClock
) -> None:
    middle = two_testers["ann2"]
    assert isinstance(middle, Clip)
    previous, following = reads.neighbours(middle, clock.now)
    assert (previous, following) == (two_testers["bob1"], two_testers["bob2"])


def test_the_review_pages_pager_keeps_the_filters(
    reviewer_client: FlaskClient, two_testers: dict[str, object]
) -> None:
    ann, middle = two_testers["ann"], two_testers["ann2"]
    assert isinstance(ann, User)
    assert isinstance(middle, Clip)
    first, last = two_testers["ann1"], two_testers["ann3"]
    assert isinstance(first, Clip)
    assert isinstance(last, Clip)
    page = html(reviewer_client, f"/review/{middle.id}?tester={ann.id}")
    assert f'href="/review/{first.id}?tester={ann.id}"' in page
    assert f'href="/review/{last.id}?tester={ann.id}"' in page
    assert f'data-next-url="/review/{last.id}?tester={ann.id}"' in page
    assert f'href="/review/?tester={ann.id}"' in page  # back to the filtered queue


def test_review_next_from_a_filtered_queue_claims_the_oldest_match(
    reviewer_client: FlaskClient, two_testers: dict[str, object], reviewer: User
) -> None:
    bob, bob1 = two_testers["bob"], two_testers["bob1"]
    assert isinstance(bob, User)
    assert isinstance(bob1, Clip)
    page = html(reviewer_client, f"/review/?tester={bob.id}")
    assert f'action="/review/next?tester={bob.id}"' in page
    token = csrf_token(reviewer_client, "/review/")
    response = reviewer_client.post(f"/review/next?tester={bob.id}", data={"csrf_token": token})
    assert response.headers["Location"] == f"/review/{bob1.id}?tester={bob.id}"
    held = claims.current_claim(reviewer)
    assert held is not None
    assert held.id == bob1.id


def test_claim_next_after_a_verdict_keeps_to_the_filters(
    reviewer_client: FlaskClient, two_testers: dict[str, object], reviewer: User
) -> None:
    ann, ann1, ann2 = two_testers["ann"], two_testers["ann1"], two_testers["ann2"]
    assert isinstance(ann, User)
    assert isinstance(ann1, Clip)
    assert isinstance(ann2, Clip)
    claims.claim(ann1, reviewer)
    db.session.commit()
    page = html(reviewer_client, f"/review/{ann1.id}?tester={ann.id}")
    assert f'action="/review/{ann1.id}/approve?tester={ann.id}"' in page
    token = csrf_token(reviewer_client, f"/review/{ann1.id}")
    response = reviewer_client.post(
        f"/review/{ann1.id}/approve?tester={ann.id}", data={"csrf_token": token}
    )
    assert response.headers["Location"] == f"/review/{ann2.id}?tester={ann.id}"


def test_a_filter_nothing_matches_ends_claim_next_on_the_filtered_queue(
    reviewer_client: FlaskClient, make_clip: MakeClip, make_user: MakeUser
) -> None:
    make_clip(ClipStatus.WAITING)
    token = csrf_token(reviewer_client, "/review/")
    with nothing_changed():
        response = reviewer_client.post(
            "/review/next?generator=nothing-like-this", data={"csrf_token": token}
        )
    assert response.headers["Location"] == "/review/?generator=nothing-like-this"


def test_bad_filters_on_the_review_page_are_ignored_not_a_500(
    reviewer_client: FlaskClient, make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.WAITING)
    for query in ("tester=abc", "tester=999999", "age=forever", "generator=" + "x" * 300):
        assert reviewer_client.get(f"/review/{clip.id}?{query}").status_code == 200
