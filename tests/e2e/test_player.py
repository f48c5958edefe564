"""The player in a real browser: frame steps, J/K/L, speed, loop in/out, the shortcuts dialog,
queue keys, the share page's player and two versions compared in sync.

The clips are real 25 fps H.264 files through the real pipeline, so one frame is 0.04 s and the
timecode's FF field must move by exactly one per step. Only the local backend: storage is not
what is under test here (tests/e2e/test_journey.py walks both).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from approval.extensions import db
from approval.models import Clip, Role, User, Verdict
from approval.ops import claims, sharing, uploads, workflow

from .conftest import Site

MakeVideo = Callable[..., Path]

FPS = 25
FRAME = 1 / FPS
VIEWPORTS = {"desktop": (1366, 768), "phone": (390, 844)}
LOCAL_ONLY = pytest.mark.parametrize("site", ["local"], indirect=True)


def _verified_clip(
    site: Site, tester: User, path: Path, title: str, previous: int | None = None
) -> Clip:
    """Upload as the app would, through the staging key; the verify job runs on commit."""
    with site.app.app_context():
        person = db.session.get(User, tester.id)
        assert person is not None
        clip = uploads.create(person, title=title, filename=path.name, previous_id=previous)
        db.session.commit()
        with path.open("rb") as body:
            uploads.receive(clip, body)
        uploads.complete(clip, person)
        db.session.commit()
    return site.clip(title=title)


def _claim(site: Site, clip: Clip, reviewer: User) -> None:
    with site.app.app_context():
        claims.claim(db.session.get(Clip, clip.id), db.session.get(User, reviewer.id))
        db.session.commit()


def _reject(site: Site, clip: Clip, reviewer: User) -> None:
    with site.app.app_context():
        found, person = db.session.get(Clip, clip.id), db.session.get(User, reviewer.id)
        assert found is not None
        assert person is not None
        claims.claim(found, person)
        workflow.decide(found, person, Verdict.REJECT, category="quality", reason="Soft focus")
        db.session.commit()


def _page(site: Site, chromium: Any, viewport: str) -> Any:
    width, height = VIEWPORTS[viewport]
    context = chromium.new_context(viewport={"width": width, "height": height})
    site.contexts.append(context)
    page = context.new_page()
    page.set_default_timeout(15_000)
    site.watch(page)
    return page


def _loaded(page: Any, video: str = "player") -> None:
    page.wait_for_function(
        f"() => {{ const v = document.getElementById('{video}'); return v && v.readyState >= 2; }}"
    )


def _time(page: Any, video: str = "player") -> float:
    return float(page.evaluate(f"() => document.getElementById('{video}').currentTime"))


def _settled(page: Any, video: str = "player") -> None:
    """Wait until the video has no seek in flight and its readout (if any) shows where it is.

    `seeking` turns false before the `seeked` event that updates the readout is dispatched.
    """
    page.wait_for_function(
        f"""() => {{
          const v = document.getElementById('{video}');
          const slot = document.querySelector('[data-controls-for={video}] [data-timecode]');
          const shown = GreenlightPlayer.timecode(v.currentTime, GreenlightPlayer.fpsOf(v));
          return !v.seeking && (!slot || slot.textContent === shown);
        }}"""
    )


def _readout(page: Any) -> str:
    return str(page.inner_text("[data-controls-for=player] [data-timecode]"))


def _frames_field(timecode: str) -> int:
    return int(timecode.rsplit(":", 1)[1])


@pytest.fixture
def people(site: Site) -> dict[str, User]:
    return {
        "tester": site.user(Role.TESTER, email="tess@example.com", name="Tess Tester"),
        "reviewer": site.user(Role.REVIEWER, email="rey@example.com", name="Rey Reviewer"),
    }


@pytest.fixture
def video(make_video: MakeVideo) -> Path:
    return make_video("ball.mp4", seconds=3.0, width=640, height=360, fps=FPS)


# --- the review page's player --------------------------------------------------------------------


@LOCAL_ONLY
@pytest.mark.parametrize("viewport", sorted(VIEWPORTS))
def test_the_review_player_steps_frames_changes_speed_and_loops(
    site: Site, chromium: Any, people: dict[str, User], video: Path, viewport: str
) -> None:
    clip = _verified_clip(site, people["tester"], video, "Rolling ball")
    assert clip.fps == FPS
    _claim(site, clip, people["reviewer"])
    page = _page(site, chromium, viewport)
    site.sign_in(page, people["reviewer"])
    page.goto(f"{site.url}/review/{clip.id}")
    _loaded(page)
    assert page.is_visible("[data-controls-for=player]")
    assert page.get_attribute("#player", "data-fps") == "25"

    # The player fills the content column: at 1366 px, well over half the window.
    box = page.locator("#player").bounding_box()
    if viewport == "desktop":
        assert box["width"] >= 0.65 * 1366
    else:
        assert box["width"] >= 0.8 * 390
    site.shot(page, f"review-player-{viewport}")

    # --- frame steps: exactly one frame each way ----------------------------------------------
    page.evaluate("() => document.getElementById('player').currentTime = 1.0")
    _settled(page)
    page.evaluate("() => document.activeElement.blur()")
    before_time, before = _time(page), _readout(page)
    assert before == "00:00:01:00"
    page.keyboard.press(".")
    _settled(page)
    page.wait_for_function(
        "() => document.querySelector('[data-controls-for=player] [data-timecode]')"
        ".textContent === '00:00:01:01'"
    )
    after_time, after = _time(page), _readout(page)
    assert abs((after_time - before_time) - FRAME) < 0.002
    assert _frames_field(after) == _frames_field(before) + 1
    page.keyboard.press(".")
    _settled(page)
    assert abs(_time(page) - before_time - 2 * FRAME) < 0.002
    assert _readout(page) == "00:00:01:02"
    page.keyboard.press(",")
    _settled(page)
    assert abs(_time(page) - after_time) < 0.002
    assert _readout(page) == "00:00:01:01"
    # Stepping pauses first.
    page.evaluate("() => document.getElementById('player').play()")
    page.keyboard.press(".")
    assert page.evaluate("() => document.getElementById('player').paused")

    # --- J/K/L and the speed list -------------------------------------------------------------
    page.evaluate("() => document.getElementById('player').currentTime = 0")
    _settled(page)
    rates = []
    for key in ("l", "l", "l", "l", "j"):
        page.keyboard.press(key)
        rates.append(page.evaluate("() => document.getElementById('player').playbackRate"))
    assert rates == [1, 1.5, 2, 2, 1.5]
    assert not page.evaluate("() => document.getElementById('player').paused")
    # The list follows the rate on `ratechange`, which the browser fires a moment later.
    page.wait_for_function(
        "() => document.querySelector('[data-controls-for=player] [data-speed]').value === '1.5'"
    )
    page.keyboard.press("k")
    assert page.evaluate("() => document.getElementById('player').paused")
    page.select_option("[data-controls-for=player] [data-speed]", "0.5")
    assert page.evaluate("() => document.getElementById('player').playbackRate") == 0.5

    # J at 1x or paused goes back through the clip (browsers cannot play backwards).
    page.evaluate("() => document.getElementById('player').currentTime = 2.0")
    _settled(page)
    page.evaluate("() => document.activeElement.blur()")
    page.keyboard.press("j")
    page.wait_for_function("() => document.getElementById('player').currentTime < 1.6")
    assert "back" in page.inner_text("[data-transport-state]")
    page.keyboard.press("k")
    stopped = _time(page)
    page.wait_for_timeout(600)
    assert abs(_time(page) - stopped) < 0.01

    # --- loop in/out --------------------------------------------------------------------------
    page.evaluate("() => document.getElementById('player').currentTime = 0.5")
    _settled(page)
    page.keyboard.press("i")
    page.evaluate("() => document.getElementById('player').currentTime = 1.0")
    _settled(page)
    page.keyboard.press("o")
    page.click("[data-action=loop]")
    assert page.get_attribute("[data-action=loop]", "aria-pressed") == "true"
    assert page.inner_text("[data-loop-range]") == "00:00:00:12 \N{EN DASH} 00:00:01:00"
    page.evaluate(
        """() => {
          const v = document.getElementById('player');
          window.__seen = []; let last = v.currentTime;
          v.addEventListener('timeupdate', () => {
            window.__seen.push(v.currentTime);
            if (v.currentTime < last - 0.2) window.__wrapped = true;
            last = v.currentTime;
          });
        }"""
    )
    page.keyboard.press("l")
    page.wait_for_function("() => window.__wrapped === true", timeout=10_000)
    page.keyboard.press("k")
    seen = page.evaluate("() => window.__seen")
    assert all(0.45 <= t <= 1.0 + 0.1 for t in seen), seen

    # --- the shortcuts: listed on the page and in a dialog ------------------------------------
    page.evaluate("() => document.activeElement.blur()")
    page.keyboard.press("?")
    assert page.locator("#shortcuts-dialog").is_visible()
    dialog = page.inner_text("#shortcuts-dialog")
    assert all(words in dialog for words in ("frame back", "Shift", "approve", "loop"))
    site.check_a11y(page, f"review page, shortcuts dialog, {viewport}")
    site.shot(page, f"review-shortcuts-dialog-{viewport}")
    page.keyboard.press("Escape")
    assert not page.locator("#shortcuts-dialog").is_visible()

    # --- keys do nothing while typing ---------------------------------------------------------
    page.keyboard.press("r")
    page.click("#reason")
    held = _time(page)
    page.keyboard.type("l.j,k?")
    assert page.input_value("#reason") == "l.j,k?"
    assert page.evaluate("() => document.getElementById('player').paused")
    assert _time(page) == held
    assert not page.locator("#shortcuts-dialog").is_visible()

    site.check_a11y(page, f"review page with player controls, {viewport}")
    site.shot(page, f"review-player-used-{viewport}")
    assert site.problems == []
    assert site.violations == []


@LOCAL_ONLY
def test_queue_keys_move_to_the_next_and_previous_clip(
    site: Site, chromium: Any, people: dict[str, User], video: Path, make_video: MakeVideo
) -> None:
    first = _verified_clip(site, people["tester"], video, "First clip")
    other = make_video("other.mp4", seconds=1.0, width=320, height=180, fps=FPS)
    second = _verified_clip(site, people["tester"], other, "Second clip")
    page = _page(site, chromium, "desktop")
    site.sign_in(page, people["reviewer"])
    page.goto(f"{site.url}/review/{first.id}")
    assert "Shift+N" in page.inner_text(".pager")
    page.evaluate("() => document.activeElement.blur()")
    page.keyboard.press("j")  # transport now, not the queue
    page.wait_for_timeout(200)
    assert page.url.endswith(f"/review/{first.id}")
    with page.expect_navigation():
        page.keyboard.press("Shift+N")
    assert page.url.endswith(f"/review/{second.id}")
    assert "Shift+P" in page.inner_text(".pager")
    with page.expect_navigation():
        page.keyboard.press("Shift+P")
    assert page.url.endswith(f"/review/{first.id}")
    site.shot(page, "queue-keys")
    assert site.problems == []


# --- the share page ------------------------------------------------------------------------------


@LOCAL_ONLY
@pytest.mark.parametrize("viewport", sorted(VIEWPORTS))
def test_the_share_page_player_has_speed_frame_step_and_no_keys(
    site: Site, chromium: Any, people: dict[str, User], video: Path, viewport: str
) -> None:
    clip = _verified_clip(site, people["tester"], video, "Shared ball")
    with site.app.app_context():
        found, reviewer = db.session.get(Clip, clip.id), db.session.get(User, people["reviewer"].id)
        assert found is not None
        assert reviewer is not None
        claims.claim(found, reviewer)
        workflow.decide(found, reviewer, Verdict.APPROVE)
        _link, token = sharing.create_link(found, reviewer)
        db.session.commit()
    page = _page(site, chromium, viewport)
    page.goto(f"{site.url}/s/{token}")
    _loaded(page)
    assert page.is_visible("[data-controls-for=player]")
    assert page.locator("[data-action=loop]").count() == 0
    page.select_option("[data-speed]", "0.25")
    assert page.evaluate("() => document.getElementById('player').playbackRate") == 0.25
    page.click("[data-action=frame-forward]")
    _settled(page)
    assert abs(_time(page) - FRAME) < 0.002
    assert _readout(page) == "00:00:00:01"
    page.evaluate("() => document.activeElement.blur()")
    page.keyboard.press(".")
    page.keyboard.press("l")
    page.wait_for_timeout(200)
    assert abs(_time(page) - FRAME) < 0.002  # no keyboard shortcuts for the public
    assert page.evaluate("() => document.getElementById('player').paused")
    site.check_a11y(page, f"share page player, {viewport}")
    site.shot(page, f"share-player-{viewport}")
    assert site.problems == []
    assert site.violations == []


# --- compare ------------------------------------------------------------------------------------


def _in_step(page: Any) -> float:
    return float(
        page.evaluate(
            "() => Math.abs(document.getElementById('compare-lead').currentTime"
            " - document.getElementById('compare-follow').currentTime)"
        )
    )


@LOCAL_ONLY
@pytest.mark.parametrize("viewport", sorted(VIEWPORTS))
def test_two_versions_play_side_by_side_in_sync(
    site: Site,
    chromium: Any,
    people: dict[str, User],
    video: Path,
    make_video: MakeVideo,
    viewport: str,
) -> None:
    first = _verified_clip(site, people["tester"], video, "Ball v1")
    _reject(site, first, people["reviewer"])
    newer = make_video("ball-v2.mp4", seconds=3.0, width=480, height=270, fps=FPS)
    second = _verified_clip(site, people["tester"], newer, "Ball v2", previous=first.id)
    assert second.previous_version_id == first.id

    page = _page(site, chromium, viewport)
    site.sign_in(page, people["reviewer"])
    page.goto(f"{site.url}/review/{second.id}")
    with page.expect_navigation():
        page.click(".versions a.compare-link")
    assert page.url.endswith(f"/clips/{second.id}/compare?with={first.id}")
    _loaded(page, "compare-lead")
    _loaded(page, "compare-follow")
    assert page.is_visible("#compare-controls")

    page.click("#compare-controls [data-action=play]")
    page.wait_for_function("() => document.getElementById('compare-lead').currentTime > 0.6")
    assert not page.evaluate("() => document.getElementById('compare-follow').paused")
    assert _in_step(page) < 0.1

    # One seek bar moves both; playing on, they stay together.
    page.evaluate(
        """() => { const bar = document.getElementById('compare-seek');
                   bar.value = '2.0'; bar.dispatchEvent(new Event('input'));
                   bar.dispatchEvent(new Event('change')); }"""
    )
    page.wait_for_function(
        "() => { const v = document.getElementById('compare-lead');"
        " return v.currentTime >= 2.0 && v.currentTime < 2.9 && !v.seeking; }"
    )
    page.wait_for_timeout(300)
    assert _in_step(page) < 0.1
    site.shot(page, f"compare-playing-{viewport}")

    # Pause and a frame step drive both.
    page.click("#compare-controls [data-action=play]")
    page.evaluate("() => document.activeElement.blur()")
    page.wait_for_function("() => document.getElementById('compare-follow').paused")
    page.keyboard.press(".")
    page.wait_for_function(
        "() => !document.getElementById('compare-lead').seeking"
        " && !document.getElementById('compare-follow').seeking"
    )
    page.wait_for_timeout(100)
    assert _in_step(page) < FRAME
    times = page.evaluate(
        "() => ['compare-lead', 'compare-follow'].map(id => {"
        " const v = document.getElementById(id); return [v.currentTime, v.duration, v.paused]; })"
    )
    lead_code = page.inner_text("[data-timecode-for=compare-lead]")
    assert lead_code == page.inner_text("[data-timecode-for=compare-follow]"), times
    site.check_a11y(page, f"compare page, {viewport}")
    site.shot(page, f"compare-paused-{viewport}")

    # The tester reaches the same page from their clip's versions list.
    tester_page = _page(site, chromium, viewport)
    site.sign_in(tester_page, people["tester"])
    tester_page.goto(f"{site.url}/clips/{second.id}")
    with tester_page.expect_navigation():
        tester_page.click("a.compare-link")
    _loaded(tester_page, "compare-follow")
    assert "Ball v1" in tester_page.inner_text(".compare-grid")
    site.check_a11y(tester_page, f"compare page as the tester, {viewport}")
    assert site.problems == []
    assert site.violations == []
