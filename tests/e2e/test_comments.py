"""Comments at timecodes in Chromium: add one at the player's current time, reply, seek.

A reviewer comments on a real clip at the moment the player shows, and its marker appears on
the timeline under the video; the tester answers in the thread; clicking the comment's time, or
its marker, moves the player there and leaves it paused. At a laptop's and a phone's size, with
axe on every page.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from approval.extensions import db
from approval.models import Clip, ClipStatus, Comment, Role, User
from approval.ops import claims, uploads

from .conftest import Site

MakeVideo = Callable[..., Path]

VIEWPORTS = {"laptop": (1366, 768), "phone": (390, 844)}


def _verified_clip(site: Site, tester: User, path: Path) -> Clip:
    """Upload as the app would, through the staging key; the job runs on commit (tests)."""
    with site.app.app_context():
        person = db.session.get_one(User, tester.id)
        clip = uploads.create(person, title="Rolling ball", filename=path.name)
        db.session.commit()
        with path.open("rb") as body:
            uploads.receive(clip, body)
        uploads.complete(clip, person)
        db.session.commit()
        clip = db.session.get_one(Clip, clip.id, populate_existing=True)
        db.session.expunge(clip)
        return clip


def _claim(site: Site, clip: Clip, reviewer: User) -> None:
    with site.app.app_context():
        claims.claim(db.session.get_one(Clip, clip.id), db.session.get_one(User, reviewer.id))
        db.session.commit()


def _page(site: Site, chromium: Any, size: tuple[int, int]) -> Any:
    context = chromium.new_context(viewport={"width": size[0], "height": size[1]})
    site.contexts.append(context)
    page = context.new_page()
    page.set_default_timeout(15_000)
    site.watch(page)
    return page


def _ready(page: Any) -> None:
    page.wait_for_function(
        "() => { const v = document.getElementById('player'); return v && v.readyState >= 1; }"
    )


def _paused_at(page: Any, seconds: float) -> None:
    page.evaluate(
        "(t) => { const v = document.getElementById('player'); v.pause(); v.currentTime = t; }",
        seconds,
    )
    page.wait_for_function(
        "(t) => Math.abs(document.getElementById('player').currentTime - t) < 0.01", arg=seconds
    )


def _seeked_to(page: Any, seconds: float) -> None:
    page.wait_for_function(
        "(t) => Math.abs(document.getElementById('player').currentTime - t) < 0.05", arg=seconds
    )
    assert page.evaluate("() => document.getElementById('player').paused")


@pytest.mark.parametrize("site", ["local"], indirect=True)
@pytest.mark.parametrize("screen", sorted(VIEWPORTS))
def test_comment_at_the_current_time_reply_and_seek(
    site: Site, chromium: Any, make_video: MakeVideo, screen: str
) -> None:
    size = VIEWPORTS[screen]
    tester = site.user(Role.TESTER, email="tess@example.com", name="Tess Tester")
    reviewer = site.user(Role.REVIEWER, email="rey@example.com", name="Rey Reviewer")
    clip = _verified_clip(site, tester, make_video("ball.mp4", seconds=3.0, width=640, height=360))
    assert clip.status == ClipStatus.WAITING
    _claim(site, clip, reviewer)

    # --- the reviewer comments at the moment the player shows --------------------------------
    page = _page(site, chromium, size)
    site.sign_in(page, reviewer)
    page.goto(f"{site.url}/review/{clip.id}")
    _ready(page)
    assert page.is_visible("#comments")
    _paused_at(page, 1.5)
    page.click("#new-comment button.use-current-time[data-fill='comment-at']")
    assert page.input_value("#comment-at") == "1.5"
    page.fill("#comment-body", "The ball melts into the table here.")
    with page.expect_navigation():
        page.click("#new-comment button[type=submit]")
    with site.app.app_context():
        comment = db.session.scalars(db.select(Comment)).one()
        assert (comment.at_seconds, comment.author_id) == (1.5, reviewer.id)
    assert page.url.endswith(f"/review/{clip.id}#comment-{comment.id}")
    thread = page.locator(f"#comment-{comment.id}")
    assert "The ball melts into the table here." in thread.inner_text()
    assert "Rey Reviewer" in thread.inner_text()
    _ready(page)
    tick = page.locator("#comment-timeline button[aria-label='Comment at 0:01.5']")
    tick.wait_for(state="visible")
    box = tick.bounding_box()
    player = page.locator("#player").bounding_box()
    assert box is not None
    assert player is not None
    assert player["y"] + player["height"] <= box["y"] + 1, "the markers sit under the video"
    assert player["x"] < box["x"] < player["x"] + player["width"]
    site.check_a11y(page, f"review page with a comment ({screen})")
    site.shot(page, f"review-comment-{screen}")

    # --- the tester sees "a reviewer", answers, and seeks by clicking --------------------------
    tester_page = _page(site, chromium, size)
    site.sign_in(tester_page, tester)
    tester_page.goto(f"{site.url}/clips/{clip.id}")
    _ready(tester_page)
    own_thread = tester_page.locator(f"#comment-{comment.id}")
    assert "a reviewer" in own_thread.inner_text()
    assert "Rey" not in tester_page.inner_text("main")
    own_thread.locator("summary").click()
    tester_page.fill(f"#reply-{comment.id}-body", "Fixed in the next version.")
    with tester_page.expect_navigation():
        own_thread.locator("button[type=submit]").click()
    assert (
        "Fixed in the next version." in tester_page.locator(f"#comment-{comment.id}").inner_text()
    )

    _ready(tester_page)
    _paused_at(tester_page, 0.0)
    tester_page.click(f"#comment-{comment.id} a.comment-time")
    _seeked_to(tester_page, 1.5)
    _paused_at(tester_page, 0.0)
    tester_page.click("#comment-timeline button[aria-label='Comment at 0:01.5']")
    _seeked_to(tester_page, 1.5)
    site.check_a11y(tester_page, f"clip page with a thread ({screen})")
    site.shot(tester_page, f"clip-thread-{screen}")

    # The reviewer hears of the reply in the inbox.
    page.goto(f"{site.url}/inbox/")
    assert "Tess Tester replied" in page.inner_text("main")
    assert site.problems == []
    assert site.violations == []
