"""What a person can do wrong in the browser, and what they get: on each storage backend.

(A double click on "Upload clip" and deciding again from a page brought back by the Back button
are part of the journey in test_journey.py.)
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from approval.models import ClipStatus, Role

from .conftest import Site, record_progress, throttle_uploads

MakeVideo = Callable[..., Path]


# moto's server parses the cut-off form upload into a temporary file that it never closes; the
# warning comes from moto's thread when that file is collected. Our own code is not involved
# (the local backend streams the body and passes without this).
@pytest.mark.filterwarnings("ignore:Unclosed file <tempfile.SpooledTemporaryFile:ResourceWarning")
def test_a_tab_closed_mid_upload_stays_uploading_until_cleanup(
    site: Site, chromium: Any, make_video: MakeVideo
) -> None:
    tester = site.user(Role.TESTER, email="tess@example.com", name="Tess Tester")
    reviewer = site.user(Role.REVIEWER, email="rey@example.com", name="Rey Reviewer")
    video = make_video("ball.mp4", seconds=3.0, width=640, height=360)

    page = site.new_page(chromium)
    site.sign_in(page, tester)
    page.goto(site.url + "/clips/new")
    # Slow enough that the upload is still going when the tab closes.
    throttle_uploads(page, max(4096, video.stat().st_size // 30))
    record_progress(page)
    page.set_input_files("#file", str(video))
    page.fill("#title", "Half a ball")
    page.click("#upload-submit")
    page.wait_for_function("() => window.__progress.some(v => v > 0 && v < 100)")
    site.shot(page, "upload-under-way")
    page.close()  # the tab, mid-transfer

    assert site.clip(title="Half a ball").status == ClipStatus.UPLOADING

    reviewer_page = site.new_page(chromium)
    site.sign_in(reviewer_page, reviewer)
    assert "No clips waiting — nice work" in reviewer_page.inner_text("main")
    counts = reviewer_page.evaluate(
        "() => fetch('/review/counts', {headers: {Accept: 'application/json'}}).then(r => r.json())"
    )
    assert (counts["waiting"], counts["in_review"]) == (0, 0)
    site.shot(reviewer_page, "queue-does-not-show-it")

    site.clock.advance(hours=25)
    result = site.app.test_cli_runner().invoke(args=["clips", "cleanup"])
    assert result.output.splitlines()[0] == "1 abandoned upload cleaned up"
    clip = site.clip(title="Half a ball")
    assert (clip.status, clip.failure_reason) == (
        ClipStatus.FAILED,
        "the upload was never finished",
    )

    tester_page = site.new_page(chromium)
    site.sign_in(tester_page, tester)
    assert "Not accepted: the upload was never finished" in tester_page.inner_text(".clip-list")
    site.check_a11y(tester_page, "my clips, a failed upload")
    site.shot(tester_page, "cleaned-up")
    gc.collect()  # while the warning filter above still applies
    assert site.violations == []
    assert site.problems == []


def test_a_file_that_only_claims_to_be_video_gets_the_servers_reason(
    site: Site, chromium: Any
) -> None:
    tester = site.user(Role.TESTER, email="tess@example.com", name="Tess Tester")
    page = site.new_page(chromium)
    site.sign_in(page, tester)
    page.goto(site.url + "/clips/new")
    # The browser goes by the name: to it, this is an MP4 video.
    fake = {
        "name": "holiday.mp4",
        "mimeType": "video/mp4",
        "buffer": b"Dear diary, today I did not make a video.\n" * 500,
    }
    page.set_input_files("#file", files=[fake])
    assert page.evaluate("() => document.getElementById('file').files[0].type") == "video/mp4"
    page.fill("#title", "Holiday")
    page.click("#upload-submit")
    error = page.locator("#upload-error")
    error.wait_for(state="visible")

    clip = site.clip(title="Holiday")
    assert clip.status == ClipStatus.FAILED
    assert error.inner_text() == f"The file was not accepted: {clip.failure_reason}."
    assert page.url.endswith("/clips/new")
    assert page.is_enabled("#upload-submit")
    site.check_a11y(page, "upload form with the server's reason")
    site.shot(page, "not-a-video")
    assert site.violations == []
    assert site.problems == []
