"""The papercuts that need a browser (issue 13, point 7), at 1366x768 and on a 390x844 phone.

Long words wrap on every page instead of widening it; the share player keeps the clip's shape;
the upload form takes several files, from the picker or dropped, each with its own row; the
title counts its characters. Every page passes axe-core; screenshots go to test-artifacts/e2e/.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from approval.extensions import db
from approval.models import Clip, ClipStatus, Role, User, Verdict
from approval.ops import claims, sharing, uploads, workflow

from .conftest import Site

MakeVideo = Callable[..., Path]

SIZES = {"desktop": (1366, 768), "phone": (390, 844)}
#: A word no line can hold: a title, a prompt, a reason with no spaces in it.
LONG_WORD = "Supercalifragilistic" * 10  # 200 characters, the title's limit


def _page(site: Site, chromium: Any, size: str) -> Any:
    width, height = SIZES[size]
    context = chromium.new_context(viewport={"width": width, "height": height})
    site.contexts.append(context)
    page = context.new_page()
    page.set_default_timeout(20_000)
    site.watch(page)
    return page


def _uploaded(site: Site, tester: User, path: Path, **details: str) -> Clip:
    """A clip uploaded and verified as the app would do it (the job runs on commit)."""
    with site.app.app_context():
        person = db.session.get(User, tester.id)
        assert person is not None
        clip = uploads.create(person, filename=path.name, **details)  # type: ignore[arg-type]
        db.session.commit()
        with path.open("rb") as body:
            uploads.receive(clip, body)
        uploads.complete(clip, person)
        db.session.commit()
        return _detached(clip.id)


def _detached(clip_id: int) -> Clip:
    clip = db.session.get(Clip, clip_id, populate_existing=True)
    assert clip is not None
    db.session.expunge(clip)
    return clip


def _decide(site: Site, clip: Clip, reviewer: User, verdict: Verdict, reason: str = "") -> None:
    with site.app.app_context():
        live = db.session.get(Clip, clip.id)
        person = db.session.get(User, reviewer.id)
        assert live is not None
        assert person is not None
        claims.claim(live, person)
        if verdict == Verdict.APPROVE:
            workflow.decide(live, person, Verdict.APPROVE)
        else:
            workflow.decide(live, person, Verdict.REJECT, category="quality", reason=reason)
        db.session.commit()


def _share(site: Site, clip: Clip, tester: User) -> str:
    with site.app.app_context():
        live = db.session.get(Clip, clip.id)
        person = db.session.get(User, tester.id)
        assert live is not None
        assert person is not None
        _, token = sharing.create_link(
            live, person, label=LONG_WORD[:100], expires_at=None, passphrase=None,
            allow_download=True,
        )  # fmt: skip
        db.session.commit()
        return token


def _fits(page: Any) -> tuple[int, int]:
    return page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")


# --- 4. long words wrap everywhere ---------------------------------------------------------------


@pytest.mark.parametrize("site", ["local"], indirect=True)
def test_long_words_never_widen_a_page(site: Site, chromium: Any, make_video: MakeVideo) -> None:
    tester = site.user(Role.TESTER, email="tess@example.com", name="Tess " + LONG_WORD[:90])
    reviewer = site.user(Role.REVIEWER, email="rey@example.com", name="Rey Reviewer")
    second = site.user(Role.REVIEWER, email="ria@example.com", name="Ria Reviewer")
    admin = site.user(Role.ADMIN, email="ada@example.com", name="Ada Admin")
    # Three different files: the same bytes again would be refused as already rejected.
    videos = [
        make_video(f"ball-{n}.mp4", seconds=1.0 + n / 5, width=640, height=360) for n in range(3)
    ]
    words = {
        "title": LONG_WORD,
        "prompt": LONG_WORD * 10,
        "notes": LONG_WORD * 5,
        "generator": LONG_WORD,
        "generator_version": LONG_WORD[:100],
    }
    approved = _uploaded(site, tester, videos[0], **words)
    _decide(site, approved, reviewer, Verdict.APPROVE)
    token = _share(site, approved, tester)
    rejected = _uploaded(site, tester, videos[1], **words)
    _decide(site, rejected, reviewer, Verdict.REJECT, reason=LONG_WORD * 5)
    waiting = _uploaded(site, tester, videos[2], **words)
    assert waiting.status == ClipStatus.WAITING

    pages = {
        tester: ["/clips/", f"/clips/{approved.id}", f"/clips/{rejected.id}", "/inbox/"],
        second: ["/review/", f"/review/{waiting.id}"],
        admin: [
            "/admin/people",
            f"/admin/people/{tester.id}",
            "/admin/audit",
            f"/clips/{rejected.id}",
        ],
        None: [f"/s/{token}"],
    }
    too_wide = []
    for who, paths in pages.items():
        page = _page(site, chromium, "phone")
        if who is not None:
            site.sign_in(page, who)
        for path in paths:
            page.goto(site.url + path)
            scroll, inner = _fits(page)
            if scroll > inner:
                too_wide.append(
                    f"{path} as {who.email if who else 'a stranger'}: {scroll} > {inner}"
                )
            site.shot(page, "long-words-" + path.strip("/").replace("/", "-"))
            site.check_a11y(page, f"long words, {path}")
    assert too_wide == [], "\n".join(too_wide)
    assert site.violations == []
    assert site.problems == []


# --- 6. the share player keeps the clip's shape --------------------------------------------------


@pytest.mark.parametrize("site", ["local"], indirect=True)
@pytest.mark.parametrize(("width", "height"), [(1280, 720), (360, 640)], ids=["wide", "tall"])
def test_the_share_player_keeps_the_clips_aspect(
    site: Site, chromium: Any, make_video: MakeVideo, width: int, height: int
) -> None:
    tester = site.user(Role.TESTER, email="tess@example.com", name="Tess")
    reviewer = site.user(Role.REVIEWER, email="rey@example.com", name="Rey")
    clip = _uploaded(
        site,
        tester,
        make_video("shape.mp4", seconds=1.0, width=width, height=height),
        title="Shape",
    )
    _decide(site, clip, reviewer, Verdict.APPROVE)
    token = _share(site, clip, tester)
    for size in SIZES:
        page = _page(site, chromium, size)
        page.goto(f"{site.url}/s/{token}")
        page.wait_for_function("() => document.getElementById('player').readyState >= 1")
        box = page.evaluate(
            "() => { const r = document.getElementById('player').getBoundingClientRect();"
            " return [r.width, r.height]; }"
        )
        assert box[0] > 0
        assert box[1] > 0
        assert abs(box[0] / box[1] - width / height) <= 0.01 * (width / height), (size, box)
        assert box[0] <= SIZES[size][0], (size, box)
        assert box[1] <= 0.7 * SIZES[size][1] + 1, (size, box)
        site.shot(page, f"share-player-{size}")
        site.check_a11y(page, f"share page, {size}")
    assert site.violations == []
    assert site.problems == []


# --- 9. several files at once, chosen or dropped; 3. the title counts ---------------------------


def _drop(page: Any, selector: str, files: list[Path]) -> None:
    """Drop files onto an element as a person dragging them from their desktop would."""
    payload = [
        {"name": path.name, "data": base64.b64encode(path.read_bytes()).decode()} for path in files
    ]
    transfer = page.evaluate_handle(
        """(files) => {
          const dt = new DataTransfer();
          for (const f of files) {
            const bytes = Uint8Array.from(atob(f.data), c => c.charCodeAt(0));
            dt.items.add(new File([bytes], f.name, {type: "video/mp4"}));
          }
          return dt;
        }""",
        payload,
    )
    page.dispatch_event(selector, "dragenter", {"dataTransfer": transfer})
    page.dispatch_event(selector, "dragover", {"dataTransfer": transfer})
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def _both_waiting(page: Any) -> list[str]:
    page.wait_for_function(
        "() => document.querySelectorAll('#upload-files li[data-status=waiting]').length === 2",
        timeout=30_000,
    )
    bars = page.evaluate(
        "() => [...document.querySelectorAll('#upload-files li progress')].map(p => p.value)"
    )
    assert bars == [100, 100]
    return page.locator("#upload-files li").all_inner_texts()


@pytest.mark.parametrize("size", sorted(SIZES))
def test_several_files_become_several_clips_each_with_its_own_row(
    site: Site, chromium: Any, make_video: MakeVideo, size: str
) -> None:
    tester = site.user(Role.TESTER, email="tess@example.com", name="Tess")
    first = make_video("beach.mp4", seconds=1.0, width=320, height=180)
    second = make_video("forest-walk.mp4", seconds=1.5, width=320, height=180)
    page = _page(site, chromium, size)
    site.sign_in(page, tester)
    page.goto(site.url + "/clips/new")
    picker = page.locator("#file")
    assert picker.get_attribute("multiple") is not None
    assert "video/*" in (picker.get_attribute("accept") or "")

    # Chosen with the picker, no title typed: each clip is named after its file.
    page.set_input_files("#file", [str(first), str(second)])
    assert page.locator("#upload-files li").count() == 2
    assert page.is_visible("#title-many-hint")
    site.check_a11y(page, f"upload form, two files chosen, {size}")
    site.shot(page, f"two-files-chosen-{size}")
    page.click("#upload-submit")
    rows = _both_waiting(page)
    assert "beach.mp4" in rows[0]
    assert "forest-walk.mp4" in rows[1]
    assert page.url.endswith("/clips/new")  # several files: the page stays, with the results
    assert site.clip(title="beach").status == ClipStatus.WAITING
    assert site.clip(title="forest-walk").status == ClipStatus.WAITING
    site.check_a11y(page, f"upload form, two files uploaded, {size}")
    site.shot(page, f"two-files-uploaded-{size}")

    # Dropped onto the drop zone, with a title typed: the clips are numbered.
    page.goto(site.url + "/clips/new")
    page.fill("#title", "Holiday")
    _drop(page, "#drop-zone", [first, second])
    assert page.locator("#upload-files li").count() == 2
    page.click("#upload-submit")
    _both_waiting(page)
    assert site.clip(title="Holiday").status == ClipStatus.WAITING
    assert site.clip(title="Holiday (2)").status == ClipStatus.WAITING
    assert site.clip_count() == 4
    site.shot(page, f"two-files-dropped-{size}")
    assert site.violations == []
    assert site.problems == []


@pytest.mark.parametrize("site", ["local"], indirect=True)
def test_the_title_counts_toward_its_limit(site: Site, chromium: Any) -> None:
    tester = site.user(Role.TESTER, email="tess@example.com", name="Tess")
    page = _page(site, chromium, "phone")
    site.sign_in(page, tester)
    page.goto(site.url + "/clips/new")
    assert "Up to 200 characters" in page.inner_text("#title-hint")
    page.fill("#title", "Sunset")
    assert page.inner_text("#title-count") == "(6 of 200 used)"
    page.fill("#title", "x" * 250)  # the browser stops at the limit, and the page says so
    assert page.input_value("#title") == "x" * 200
    assert page.inner_text("#title-count") == "(200 of 200 used)"
    assert "at its limit" in page.inner_text("#title-count-live")
    site.check_a11y(page, "upload form, title at its limit")
    site.shot(page, "title-at-limit")
    assert site.violations == []
    assert site.problems == []
