"""Comparing two versions of a clip side by side, and the frame-accurate timecode rule.

The compare page is for whoever sees the clip (its tester, reviewers, admins); both clips must be
versions in one chain and both visible, else it answers exactly as a clip that does not exist.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from fractions import Fraction

import pytest
from flask.testing import FlaskClient

from approval.extensions import db
from approval.formatting import frame_timecode
from approval.models import Clip, ClipStatus, Role, User, Verdict
from approval.ops import claims, sharing, workflow
from tests.plugins.snapshot import nothing_changed

MakeUser = Callable[..., User]
MakeClip = Callable[..., Clip]
SignIn = Callable[..., FlaskClient]


@pytest.fixture
def chain(make_user: MakeUser, make_clip: MakeClip) -> dict[str, Clip]:
    """Three versions of one clip by one tester (v1, v2 rejected; v3 waiting), and a stranger's."""
    tester = make_user(Role.TESTER, display_name="Tess Tester")
    reviewer = make_user(Role.REVIEWER, display_name="Rey Reviewer")
    first = make_clip(ClipStatus.REJECTED, tester=tester, reviewer=reviewer, title="Ball v1")
    second = make_clip(
        ClipStatus.REJECTED, tester=tester, reviewer=reviewer, title="Ball v2", previous=first
    )
    third = make_clip(ClipStatus.WAITING, tester=tester, title="Ball v3", previous=second)
    unrelated = make_clip(ClipStatus.WAITING, tester=tester, title="Another clip")
    strangers = make_clip(ClipStatus.WAITING, title="Someone else's")
    return {
        "first": first,
        "second": second,
        "third": third,
        "unrelated": unrelated,
        "strangers": strangers,
    }


def _compare(client: FlaskClient, clip: Clip, other: Clip | int | str) -> tuple[int, str]:
    other_id = other.id if isinstance(other, Clip) else other
    response = client.get(f"/clips/{clip.id}/compare?with={other_id}")
    return response.status_code, response.get_data(as_text=True)


# --- who may compare what ------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.REVIEWER, Role.ADMIN])
def test_staff_compare_two_versions_of_a_clip(
    signed_in: SignIn, chain: dict[str, Clip], role: Role
) -> None:
    client = signed_in(role)
    status, page = _compare(client, chain["third"], chain["first"])
    assert (status, page.count("<video")) == (200, 2)


def test_the_clips_tester_compares_their_own_versions(
    signed_in: SignIn, chain: dict[str, Clip]
) -> None:
    client = signed_in(chain["first"].tester)
    status, page = _compare(client, chain["second"], chain["first"])
    assert (status, "Ball v1" in page, "Ball v2" in page) == (200, True, True)


def test_the_earlier_version_plays_on_the_left_whichever_way_it_is_asked(
    signed_in: SignIn, chain: dict[str, Clip]
) -> None:
    client = signed_in(Role.REVIEWER)
    _, page = _compare(client, chain["first"], chain["third"])
    sources = re.findall(r'<video id="(compare-\w+)"[^>]*src="/clips/(\d+)/media"', page)
    first, third = str(chain["first"].id), str(chain["third"].id)
    assert sources == [("compare-lead", first), ("compare-follow", third)]


def test_the_compare_page_passes_each_clips_frame_rate_to_its_player(
    signed_in: SignIn, chain: dict[str, Clip]
) -> None:
    client = signed_in(Role.REVIEWER)
    _, page = _compare(client, chain["second"], chain["first"])
    assert re.findall(r'<video id="compare-\w+"[^>]*data-fps="([\d.]+)"', page) == ["24", "24"]


def test_another_tester_is_told_the_clip_does_not_exist(
    signed_in: SignIn, chain: dict[str, Clip], make_user: MakeUser
) -> None:
    client = signed_in(make_user(Role.TESTER))
    with nothing_changed():
        status, _ = _compare(client, chain["second"], chain["first"])
    assert status == 404


def test_a_clip_outside_the_chain_is_not_found(signed_in: SignIn, chain: dict[str, Clip]) -> None:
    client = signed_in(Role.REVIEWER)
    status, page = _compare(client, chain["third"], chain["unrelated"])
    assert (status, "not a version of" in page) == (404, True)


def test_a_tester_cannot_compare_with_a_clip_they_may_not_see(
    signed_in: SignIn, chain: dict[str, Clip]
) -> None:
    client = signed_in(chain["first"].tester)
    status, page = _compare(client, chain["first"], chain["strangers"])
    refusal = f"There is no clip {chain['strangers'].id} that you can see"
    assert (status, refusal in page) == (404, True)


def test_a_clip_compared_with_itself_is_not_found(
    signed_in: SignIn, chain: dict[str, Clip]
) -> None:
    client = signed_in(Role.REVIEWER)
    status, page = _compare(client, chain["second"], chain["second"])
    assert (status, "another version" in page) == (404, True)


@pytest.mark.parametrize("other", ["", "abc", "0", "-1", "99999999999999999999", "999999"])
def test_a_missing_or_impossible_other_id_is_not_found(
    signed_in: SignIn, chain: dict[str, Clip], other: str
) -> None:
    client = signed_in(Role.REVIEWER)
    status, _ = _compare(client, chain["second"], other)
    assert status == 404


def test_anonymous_callers_are_sent_to_sign_in(client: FlaskClient, chain: dict[str, Clip]) -> None:
    response = client.get(f"/clips/{chain['second'].id}/compare?with={chain['first'].id}")
    assert (response.status_code, "/login" in response.headers["Location"]) == (302, True)


def test_a_version_without_video_says_so_instead_of_a_player(
    signed_in: SignIn, make_clip: MakeClip, make_user: MakeUser
) -> None:
    tester = make_user(Role.TESTER)
    first = make_clip(ClipStatus.REJECTED, tester=tester, reviewer=make_user(Role.REVIEWER))
    second = make_clip(ClipStatus.VERIFYING, tester=tester, previous=first)
    status, page = _compare(signed_in(tester), second, first)
    assert (status, page.count("<video"), "no video to show" in page) == (200, 1, True)


# --- links to the compare page -------------------------------------------------------------------


def test_the_review_page_links_each_earlier_version_to_a_comparison(
    signed_in: SignIn, chain: dict[str, Clip]
) -> None:
    client = signed_in(Role.REVIEWER)
    page = client.get(f"/review/{chain['third'].id}").get_data(as_text=True)
    third, second, first = chain["third"].id, chain["second"].id, chain["first"].id
    assert f'href="/clips/{third}/compare?with={second}"' in page
    assert f'href="/clips/{third}/compare?with={first}"' in page


def test_the_testers_clip_page_links_earlier_versions_to_a_comparison(
    signed_in: SignIn, chain: dict[str, Clip]
) -> None:
    client = signed_in(chain["first"].tester)
    page = client.get(f"/clips/{chain['second'].id}").get_data(as_text=True)
    assert f'href="/clips/{chain["second"].id}/compare?with={chain["first"].id}"' in page


# --- the timecode rule ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "fps", "shown"),
    [
        (0, 24, "00:00:00:00"),
        (1 / 24, 24, "00:00:00:01"),
        (5 / 24, 24, "00:00:00:05"),  # exactly on frame 5, whatever binary floats make of it
        (0.99, 24, "00:00:00:23"),  # floor, not round: 23.76 is frame 23
        (1.0, 24, "00:00:01:00"),
        (1.5, 25, "00:00:01:12"),  # 37.5 frames: frame 37, 12 into the second
        (3 / 25, 25, "00:00:00:03"),
        (61.2, 30, "00:01:01:06"),
        (3723.5, 25, "01:02:03:12"),
        (1.0, Fraction(30000, 1001), "00:00:00:29"),  # 29.97: frame 29 starts before 1 s
        (1.01, Fraction(30000, 1001), "00:00:01:00"),  # frame 30 starts in second 1
    ],
)
def test_a_timecode_counts_whole_frames_from_the_frame_rate(
    seconds: float, fps: float | Fraction, shown: str
) -> None:
    assert frame_timecode(seconds, float(fps)) == shown


def test_a_timecode_never_goes_below_zero() -> None:
    assert frame_timecode(-0.5, 24) == "00:00:00:00"


def test_the_review_page_shows_a_rejections_moment_as_a_frame_timecode(
    signed_in: SignIn, make_clip: MakeClip, make_user: MakeUser
) -> None:
    reviewer = make_user(Role.REVIEWER)
    clip = make_clip(ClipStatus.WAITING)
    claims.claim(clip, reviewer)
    workflow.decide(clip, reviewer, Verdict.REJECT, category="quality", reason="Blur", timecode=1.5)
    db.session.commit()
    # The clip is 24 fps: 1.5 s is frame 36, 12 frames into second 1.
    page = signed_in(Role.REVIEWER).get(f"/review/{clip.id}").get_data(as_text=True)
    assert "at 00:00:01:12" in page


def test_the_testers_clip_page_gives_the_player_its_frame_rate_and_lists_its_keys(
    signed_in: SignIn, chain: dict[str, Clip]
) -> None:
    client = signed_in(chain["first"].tester)
    page = client.get(f"/clips/{chain['second'].id}").get_data(as_text=True)
    assert re.search(r'<video id="player"[^>]*data-fps="24"', page)
    assert all(f"<kbd>{key}</kbd>" in page for key in (",", ".", "J", "K", "L", "I", "O", "F"))


def test_the_share_page_player_has_controls_but_no_keys(
    client: FlaskClient, make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.APPROVED, content=b"\x00\x00\x00\x18ftypmp42")
    _link, token = sharing.create_link(clip, clip.tester)
    db.session.commit()
    page = client.get(f"/s/{token}").get_data(as_text=True)
    assert 'data-controls-for="player"' in page
    assert "data-keys" not in page
    assert "<kbd>" not in page
    assert 'data-action="loop"' not in page
    assert '<script src="/static/js/player.js" defer></script>' in page
