"""Finding things in Chromium: the admin clip browser, the queue with pictures, the undo window.

An admin searches by words of a prompt and takes the clip down through the confirmation that
names it; a reviewer sees posters in the queue, approves with one key, undoes it from the next
clip, and finds the Undo refused once the window has closed. At 1366x768 and 390x844, with axe.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from approval.extensions import db
from approval.models import Clip, ClipStatus, Role, User, Verdict
from approval.ops import claims, uploads, workflow

from .conftest import Site

MakeVideo = Callable[..., Path]
VIEWPORTS = {"desktop": (1366, 768), "phone": (390, 844)}


def _page(site: Site, chromium: Any, viewport: str) -> Any:
    width, height = VIEWPORTS[viewport]
    context = chromium.new_context(viewport={"width": width, "height": height})
    site.contexts.append(context)
    page = context.new_page()
    page.set_default_timeout(15_000)
    site.watch(page)
    return page


def _verified_clip(site: Site, tester: User, path: Path, title: str, prompt: str) -> Clip:
    """Upload through the staging key as the app does; the verify job runs on commit (tests)."""
    with site.app.app_context():
        person = db.session.get(User, tester.id)
        assert person is not None
        clip = uploads.create(person, title=title, filename=path.name, prompt=prompt)
        db.session.commit()
        with path.open("rb") as body:
            uploads.receive(clip, body)
        uploads.complete(clip, person)
        db.session.commit()
        found = db.session.get(Clip, clip.id, populate_existing=True)
        assert found is not None
        assert found.status == ClipStatus.WAITING, found.failure_reason
        db.session.expunge(found)
        return found


def _approve(site: Site, clip: Clip, reviewer: User) -> None:
    with site.app.app_context():
        found, person = db.session.get(Clip, clip.id), db.session.get(User, reviewer.id)
        assert found is not None
        assert person is not None
        claims.claim(found, person)
        workflow.decide(found, person, Verdict.APPROVE)
        db.session.commit()


def _fits_the_width(page: Any) -> bool:
    return bool(page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth"))


def _wait_for_player(page: Any) -> None:
    page.wait_for_function(
        "() => { const v = document.getElementById('player'); return v && v.readyState >= 1; }"
    )


def test_an_admin_finds_a_clip_by_prompt_words_and_takes_it_down(
    site: Site, chromium: Any, make_video: MakeVideo
) -> None:
    tester = site.user(Role.TESTER, email="tess@example.com", name="Tess")
    reviewer = site.user(Role.REVIEWER, email="rey@example.com", name="Rey")
    admin = site.user(Role.ADMIN, email="ada@example.com", name="Ada")
    video = make_video(seconds=1.0, width=320, height=180)
    harbour = _verified_clip(
        site, tester, video, "Harbour", "A lighthouse beam sweeps over a stormy harbour at night"
    )
    _verified_clip(site, tester, video, "Meadow", "Sheep graze in a sunny meadow")
    beacon = _verified_clip(site, tester, video, "Beacon", "A lighthouse on a calm morning")
    _approve(site, harbour, reviewer)
    _approve(site, beacon, reviewer)

    for viewport in VIEWPORTS:
        page = _page(site, chromium, viewport)
        site.sign_in(page, admin)
        assert page.url.endswith("/admin/clips"), "admins land on the clip browser"
        assert page.get_attribute("nav a[href='/admin/clips']", "aria-current") == "page"
        page.fill("#q", "stormy LIGHTHOUSE")
        with page.expect_navigation():
            page.click("form[role=search] button[type=submit]")
        assert "q=stormy+LIGHTHOUSE" in page.url
        results = page.inner_text("#clip-results")
        assert "Harbour" in results
        assert "Meadow" not in results
        assert _fits_the_width(page), f"the browser scrolls sideways at {viewport}"
        site.check_a11y(page, f"clip search ({viewport})")
        site.shot(page, f"clip-search-{viewport}")

        page.fill("#sha256", "ab")
        site.expected_statuses.add(400)
        with page.expect_navigation():
            page.click("form[role=search] button[type=submit]")
        site.expected_statuses.discard(400)
        assert "at least 4" in page.inner_text("form[role=search]")
        site.check_a11y(page, f"clip search with a bad prefix ({viewport})")

    # With JavaScript: the confirmation opens in a dialog naming the clip; Cancel changes nothing.
    page.goto(f"{site.url}/admin/clips?q=stormy+lighthouse")
    link = page.locator("#clip-results a[data-take-down][data-title='Harbour']")
    link.click()
    dialog = page.locator("#take-down-dialog")
    assert dialog.is_visible()
    assert dialog.locator("h2").inner_text() == "Take down “Harbour”?"
    page.wait_for_function("() => document.querySelector('#take-down-dialog img').naturalWidth > 0")
    site.check_a11y(page, "takedown dialog")
    site.shot(page, "takedown-dialog")
    dialog.locator("button[data-cancel]").click()
    assert not dialog.is_visible()
    assert site.clip(id=harbour.id).status == ClipStatus.APPROVED

    link.click()
    dialog.locator("button[type=submit]").click()  # no reason: the browser asks for one
    assert dialog.is_visible()
    page.fill("#dialog-reason", "Rights complaint from the harbour authority.")
    with page.expect_navigation():
        dialog.locator("button[type=submit]").click()
    assert "taken down" in page.inner_text(".flashes")
    taken = site.clip(id=harbour.id)
    assert (taken.status, taken.takedown_reason) == (
        ClipStatus.TAKEN_DOWN,
        "Rights complaint from the harbour authority.",
    )
    site.shot(page, "taken-down-from-dialog")

    # From the clip's page: the link opens the confirmation page (as every link does without
    # JavaScript), which names the clip and asks for the reason.
    plain = page
    plain.goto(f"{site.url}/clips/{beacon.id}")
    with plain.expect_navigation():
        plain.click("text=Take clip down…")
    assert plain.inner_text("h1") == "Take down “Beacon”?"
    site.check_a11y(plain, "takedown confirmation page")
    site.shot(plain, "takedown-confirmation")

    site.expected_statuses.add(422)
    with plain.expect_navigation():
        plain.click("#take-down button[type=submit]")
    site.expected_statuses.discard(422)
    assert "Give a reason" in plain.inner_text("#take-down")
    assert site.clip(id=beacon.id).status == ClipStatus.APPROVED

    plain.fill("#reason", "Trademark on the lighthouse.")
    with plain.expect_navigation():
        plain.click("#take-down button[type=submit]")
    assert "taken down" in plain.inner_text(".flashes")
    assert site.clip(id=beacon.id).status == ClipStatus.TAKEN_DOWN
    site.shot(plain, "taken-down-from-page")
    assert site.problems == []
    assert site.violations == []


def test_a_reviewer_sees_posters_undoes_an_approval_in_time_and_not_after(
    site: Site, chromium: Any, make_video: MakeVideo
) -> None:
    tester = site.user(Role.TESTER, email="tess@example.com", name="Tess")
    reviewer = site.user(Role.REVIEWER, email="rey@example.com", name="Rey")
    video = make_video(seconds=1.0, width=320, height=180)
    first = _verified_clip(site, tester, video, "Harbour", "A lighthouse over a stormy harbour")
    second = _verified_clip(site, tester, video, "Meadow", "Sheep graze in a sunny meadow")

    for viewport in VIEWPORTS:
        page = _page(site, chromium, viewport)
        site.sign_in(page, reviewer)
        page.goto(f"{site.url}/review/")
        page.wait_for_function(
            "() => [...document.querySelectorAll('.queue-poster img')]"
            ".every(img => img.complete && img.naturalWidth > 0)"
        )
        assert page.locator(".queue-poster img").count() == 2
        assert "A lighthouse over a stormy harbour" in page.inner_text("#queue-table")
        site.check_a11y(page, f"queue with posters ({viewport})")
        site.shot(page, f"queue-{viewport}")

    # One-key Approve, then the way back from the next clip's page.
    with page.expect_navigation():
        page.click("text=Review next")
    assert page.url.endswith(f"/review/{first.id}")
    _wait_for_player(page)
    with page.expect_navigation():
        page.click("#approve-button")
    assert page.url.endswith(f"/review/{second.id}")
    undo = page.locator("#undo-form button")
    assert undo.inner_text().startswith("Undo (until ")
    site.check_a11y(page, "review page with Undo")
    site.shot(page, "undo-offered")
    with page.expect_navigation():
        undo.click()
    assert page.url.endswith(f"/review/{first.id}")
    assert "undone" in page.inner_text(".flashes")
    assert site.clip(id=first.id).status == ClipStatus.IN_REVIEW
    assert site.clip(id=second.id).status == ClipStatus.WAITING
    site.shot(page, "undone")

    # Approve again; My decisions lists both verdicts, the first marked undone.
    _wait_for_player(page)
    with page.expect_navigation():
        page.click("#approve-button")
    page.goto(f"{site.url}/review/decisions")
    table = page.inner_text("#decisions-table")
    assert table.count("Harbour") == 2
    assert "undone" in table
    assert page.locator("#decisions-table button", has_text="Undo (until").count() == 1
    assert _fits_the_width(page), "My decisions scrolls sideways on a phone"
    site.check_a11y(page, "my decisions")
    site.shot(page, "my-decisions")

    # The window closes while the page is open: the Undo is refused, saying why.
    site.clock.advance(minutes=11)
    site.expected_statuses.add(409)
    with page.expect_navigation():
        page.click("#decisions-table button")
    site.expected_statuses.discard(409)
    assert "undo window closed" in page.inner_text("main")
    assert site.clip(id=first.id).status == ClipStatus.APPROVED
    site.shot(page, "undo-refused")
    page.goto(f"{site.url}/review/decisions")
    assert page.locator("#decisions-table button").count() == 0
    assert site.problems == []
    assert site.violations == []
