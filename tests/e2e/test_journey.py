"""The whole life of a clip in a real browser, on each storage backend.

A tester uploads, a reviewer rejects with a timecode, the tester follows it and uploads a new
version, the reviewer approves, the tester shares it, a stranger watches, an admin takes it down
and the audit log tells the story. Every step saves a screenshot; every page passes axe-core.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from approval.extensions import db
from approval.models import ClipStatus, Notification, Role

from .conftest import Site, record_progress, throttle_uploads

MakeVideo = Callable[..., Path]

#: How long the throttled upload of the first clip should take, so its progress can be seen.
UPLOAD_SECONDS = 1.5
CLIP_PAGE = re.compile(r"/clips/\d+$")


def _upload(page: Any, video: Path, title: str, *, double_click: bool = False) -> None:
    page.set_input_files("#file", str(video))
    page.fill("#title", title)
    page.fill("#generator", "vidgen")
    page.fill("#prompt", "A red ball rolls across a table.")
    if double_click:
        page.dblclick("#upload-submit")
    else:
        page.click("#upload-submit")


def _wait_for_player(page: Any) -> float:
    page.wait_for_function(
        "() => { const v = document.getElementById('player'); return v && v.readyState >= 1; }"
    )
    return float(page.evaluate("() => document.getElementById('player').duration"))


def test_a_clip_from_upload_to_takedown(site: Site, chromium: Any, make_video: MakeVideo) -> None:
    tester = site.user(Role.TESTER, email="tess@example.com", name="Tess Tester")
    reviewer = site.user(Role.REVIEWER, email="rey@example.com", name="Rey Reviewer")
    admin = site.user(Role.ADMIN, email="ada@example.com", name="Ada Admin")
    first_video = make_video("ball.mp4", seconds=3.0, width=640, height=360)
    second_video = make_video("ball-v2.mp4", seconds=2.0, width=640, height=360)

    # --- a tester uploads; a double click makes one clip, and the bar moves ------------------
    tester_page = site.new_page(chromium)
    tester_page.goto(site.url + "/login")
    site.check_a11y(tester_page, "sign-in page")
    site.shot(tester_page, "sign-in")
    site.sign_in(tester_page, tester)
    site.check_a11y(tester_page, "my clips, empty")
    assert "You have no clips yet" in tester_page.inner_text("main")
    site.shot(tester_page, "tester-no-clips")

    tester_page.click("text=Upload a clip")
    tester_page.wait_for_selector("#upload-form")
    site.check_a11y(tester_page, "upload form")
    size = first_video.stat().st_size
    throttle_uploads(tester_page, max(16_384, int(size / UPLOAD_SECONDS)))
    record_progress(tester_page)
    _upload(tester_page, first_video, "Rolling ball", double_click=True)
    tester_page.wait_for_function("() => window.__progress.some(v => v > 0 && v < 100)")
    site.shot(tester_page, "upload-in-progress")
    tester_page.wait_for_url(CLIP_PAGE, timeout=30_000)
    first = site.clip(title="Rolling ball")
    assert tester_page.inner_text(".page-head .badge") == "waiting for review"
    assert (site.clip_count(), first.status) == (1, ClipStatus.WAITING)
    site.check_a11y(tester_page, "clip page, waiting")
    site.shot(tester_page, "uploaded-waiting")

    # --- a reviewer claims it with the keyboard, watches, rejects with a timecode ------------
    reviewer_page = site.new_page(chromium)
    site.sign_in(reviewer_page, reviewer)
    assert reviewer_page.url.endswith("/review/")
    reviewer_page.wait_for_selector("tr.queue-row")
    site.check_a11y(reviewer_page, "review queue")
    reviewer_page.keyboard.press("j")
    assert reviewer_page.evaluate("() => document.activeElement.textContent") == "Rolling ball"
    assert reviewer_page.locator("tr.queue-row.selected").count() == 1
    site.shot(reviewer_page, "queue-row-selected")
    with reviewer_page.expect_navigation():
        reviewer_page.keyboard.press("Enter")
    reviewer_page.get_by_role("button", name="Review this clip").focus()
    with reviewer_page.expect_navigation():
        reviewer_page.keyboard.press("Enter")
    assert "You are reviewing this clip" in reviewer_page.inner_text("#claim-state")
    duration = _wait_for_player(reviewer_page)
    assert abs(duration - (first.duration_seconds or 0)) < 0.1
    assert abs(duration - 3.0) < 0.1
    site.check_a11y(reviewer_page, "review page, claimed")

    reviewer_page.evaluate("() => document.activeElement.blur()")
    reviewer_page.keyboard.press("?")
    assert reviewer_page.locator("#shortcuts-dialog").is_visible()
    site.check_a11y(reviewer_page, "review page, shortcuts dialog")
    site.shot(reviewer_page, "review-shortcuts")
    reviewer_page.keyboard.press("Escape")

    reviewer_page.evaluate("() => document.activeElement.blur()")
    reviewer_page.keyboard.press("r")
    assert reviewer_page.evaluate("() => document.activeElement.id") == "category"
    reviewer_page.select_option("#category", "quality")
    reviewer_page.fill("#reason", "The ball melts into the table at the end.")
    reviewer_page.evaluate("() => { document.getElementById('player').currentTime = 1.5; }")
    reviewer_page.wait_for_function(
        "() => Math.abs(document.getElementById('player').currentTime - 1.5) < 0.01"
    )
    reviewer_page.click("#use-current-time")
    assert reviewer_page.input_value("#timecode") == "1.5"
    site.check_a11y(reviewer_page, "review page, reject form open")
    site.shot(reviewer_page, "reject-form")
    with reviewer_page.expect_navigation():
        reviewer_page.click("#reject-form button[type=submit]")
    assert reviewer_page.url.endswith("/review/")
    assert "No clips waiting — nice work" in reviewer_page.inner_text("main")
    site.check_a11y(reviewer_page, "review queue, empty")
    site.shot(reviewer_page, "queue-empty")

    # Back to the decided clip's page: review pages are sent `no-store`, so the browser asks
    # again instead of showing the stale form, and the page says how the clip stands now.
    # (Deciding a stale form from another tab is a 409, as tests/test_review.py shows.)
    reviewer_page.evaluate("() => history.back()")
    reviewer_page.wait_for_url(f"**/review/{first.id}", wait_until="load")
    assert reviewer_page.locator("#approve-form").count() == 0
    assert site.clip(id=first.id).status == ClipStatus.REJECTED

    # --- the tester reads the reason, follows the timecode, uploads a new version ------------
    tester_page.goto(f"{site.url}/clips/{first.id}")
    assert tester_page.inner_text("#unread-count").startswith("1")
    decision = tester_page.inner_text(".decision")
    assert "The ball melts into the table at the end." in decision
    _wait_for_player(tester_page)
    tester_page.click("a.seek")
    tester_page.wait_for_function(
        "() => Math.abs(document.getElementById('player').currentTime - 1.5) < 0.05"
    )
    assert tester_page.url.endswith("#t=1.5")
    site.check_a11y(tester_page, "clip page, rejected")
    site.shot(tester_page, "rejected-seeked")

    tester_page.click("a.inbox-link")
    assert "Rejected: Rolling ball" in tester_page.inner_text(".notifications")
    site.check_a11y(tester_page, "inbox")
    site.shot(tester_page, "inbox-rejected")

    tester_page.goto(f"{site.url}/clips/{first.id}")
    tester_page.click("text=Upload a new version")
    tester_page.wait_for_selector("#upload-form")
    _upload(tester_page, second_video, "Rolling ball")
    tester_page.wait_for_url(CLIP_PAGE, timeout=30_000)
    second = site.clip(previous_version_id=first.id)
    assert (second.version, second.status) == (2, ClipStatus.WAITING)
    site.shot(tester_page, "second-version-waiting")

    # --- the reviewer approves it -------------------------------------------------------------
    reviewer_page.goto(site.url + "/review/")
    reviewer_page.get_by_role("button", name="Review next").focus()
    with reviewer_page.expect_navigation():
        reviewer_page.keyboard.press("Enter")
    assert reviewer_page.url.endswith(f"/review/{second.id}")
    assert abs(_wait_for_player(reviewer_page) - 2.0) < 0.1
    assert "v1: Rolling ball" in reviewer_page.inner_text(".versions")
    site.check_a11y(reviewer_page, "review page, second version")
    site.shot(reviewer_page, "review-second-version")
    reviewer_page.evaluate("() => document.activeElement.blur()")
    with reviewer_page.expect_navigation():
        reviewer_page.keyboard.press("a")
    assert "approved" in reviewer_page.inner_text(".flashes")
    assert site.clip(id=second.id).status == ClipStatus.APPROVED

    # --- the tester makes a share link --------------------------------------------------------
    tester_page.goto(f"{site.url}/clips/{second.id}")
    assert tester_page.inner_text(".page-head .badge") == "approved"
    site.check_a11y(tester_page, "clip page, approved")
    tester_page.fill("#label", "Press kit")
    with tester_page.expect_navigation():
        tester_page.click("#share-links button[type=submit]")
    share_url = tester_page.input_value("#share-url")
    tester_page.click("text=Copy link")
    tester_page.wait_for_function(
        "() => document.querySelector('.copy-status').textContent === 'Copied.'"
    )
    assert share_url.startswith(site.url + "/s/")
    site.check_a11y(tester_page, "share link made")
    site.shot(tester_page, "share-link-made")

    # --- a stranger watches: plays, seeks with a Range request; the page has og: tags ---------
    stranger = site.new_page(chromium)
    ranges: list[tuple[str, str]] = []
    partial: list[str] = []
    stranger.on(
        "request",
        lambda request: (
            ranges.append((request.url, request.headers["range"]))
            if "range" in request.headers
            else None
        ),
    )
    stranger.on(
        "response",
        lambda response: partial.append(response.url) if response.status == 206 else None,
    )
    response = stranger.goto(share_url)
    assert response is not None
    assert response.status == 200
    og = {
        name: stranger.get_attribute(f'meta[property="og:{name}"]', "content")
        for name in ("title", "type", "url", "image", "video")
    }
    assert og["title"] == "Rolling ball"
    assert og["url"] == share_url
    assert og["video"] == share_url + "/media"
    assert og["image"] == share_url + "/poster"
    total = _wait_for_player(stranger)
    assert abs(total - 2.0) < 0.1
    stranger.evaluate("() => document.getElementById('player').play()")
    stranger.wait_for_function("() => document.getElementById('player').currentTime > 0.2")
    stranger.evaluate(
        """() => new Promise(done => {
            const v = document.getElementById('player');
            v.pause();
            v.addEventListener('seeked', done, {once: true});
            v.currentTime = 1.6;
        })"""
    )
    assert abs(stranger.evaluate("() => document.getElementById('player').currentTime") - 1.6) < 0.1
    # The player asks for byte ranges of the share link's media URL; the answer is partial
    # content, from the app (local disk) or from storage after a redirect (S3).
    assert any(url == share_url + "/media" for url, _ in ranges), ranges
    assert partial, "no 206 Partial Content answer for the video"
    if site.backend == "s3":
        assert any("/s/" not in url for url in partial), partial
    site.check_a11y(stranger, "public share page")
    site.shot(stranger, "shared-playing")

    # --- an admin takes it down; the public page is gone; the audit log tells the story -------
    admin_page = site.new_page(chromium)
    site.sign_in(admin_page, admin)
    admin_page.goto(f"{site.url}/clips/{second.id}")
    with admin_page.expect_navigation():  # to the confirmation that names the clip
        admin_page.click("text=Take clip down…")
    admin_page.fill("#reason", "Rights complaint from the table maker.")
    with admin_page.expect_navigation():
        admin_page.click("#take-down button[type=submit]")
    assert "taken down" in admin_page.inner_text(".flashes")
    site.shot(admin_page, "taken-down")

    site.expected_statuses.add(410)
    gone = stranger.reload()
    assert gone is not None
    assert gone.status == 410
    assert "no longer available" in stranger.inner_text("main")
    site.check_a11y(stranger, "410 page")
    site.shot(stranger, "shared-gone-410")
    site.expected_statuses.discard(410)

    admin_page.click("nav >> text=Audit log")
    admin_page.wait_for_selector("table")
    actions = admin_page.locator("tbody tr td:nth-child(3) code").all_inner_texts()
    story = [action for action in reversed(actions) if action.startswith(("clip.", "share_link."))]
    assert story == [
        "clip.created",
        "clip.upload_completed",
        "clip.verified",
        "clip.claimed",
        "clip.rejected",
        "clip.created",
        "clip.upload_completed",
        "clip.verified",
        "clip.superseded",
        "clip.claimed",
        "clip.approved",
        "share_link.created",
        "clip.taken_down",
    ], story
    with admin_page.expect_navigation():
        admin_page.click("text=Verify chain")
    assert "The chain holds" in admin_page.inner_text(".flashes")
    site.check_a11y(admin_page, "audit log")
    site.shot(admin_page, "audit-log-verified")

    tester_page.goto(site.url + "/inbox/")
    assert "Taken down: Rolling ball" in tester_page.inner_text(".notifications")
    with site.app.app_context():
        kinds = list(
            db.session.scalars(
                select(Notification.kind)
                .where(Notification.user_id == tester.id)
                .order_by(Notification.id)
            )
        )
    assert kinds == ["clip.rejected", "clip.approved", "clip.taken_down"]
    site.shot(tester_page, "inbox-all")

    assert site.violations == []
    assert site.problems == []
