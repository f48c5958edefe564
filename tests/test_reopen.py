"""The undo window: a reviewer reopens their own verdict within minutes, before any share link.

Reopening is a logged move back to `waiting` (or, for one of several approvals, a mark on the
decision); the verdict itself stays on record. Every refusal changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from approval.extensions import db
from approval.models import (
    AuditEvent,
    Clip,
    ClipStatus,
    Decision,
    Notification,
    Role,
    User,
    Verdict,
)
from approval.ops import claims, reopen, sharing, workflow
from approval.ops.errors import NotFound, StateConflict
from tests.plugins.api import bearer, problem
from tests.plugins.factories import FrozenClock
from tests.plugins.snapshot import nothing_changed
from tests.plugins.web import SignIn, csrf_token

MakeUser = Callable[..., User]
MakeClip = Callable[..., Clip]


def decided(make_clip: MakeClip, reviewer: User, verdict: Verdict = Verdict.APPROVE) -> Clip:
    """A waiting clip the reviewer claims and decides on now."""
    clip = make_clip(ClipStatus.WAITING)
    claims.claim(clip, reviewer)
    options: dict[str, Any] = {}
    if verdict == Verdict.REJECT:
        options = {"category": "quality", "reason": "Too dark", "timecode": 1.0}
    workflow.decide(clip, reviewer, verdict, **options)
    db.session.commit()
    return clip


def standing(clip: Clip, reviewer: User) -> Decision:
    found = db.session.scalar(
        select(Decision).where(Decision.clip_id == clip.id, Decision.reviewer_id == reviewer.id)
    )
    assert found is not None
    return found


def fresh(clip: Clip) -> Clip:
    db.session.expire_all()
    found = db.session.get(Clip, clip.id)
    assert found is not None
    return found


# --- the operation ------------------------------------------------------------------------------


def test_reopening_an_approval_puts_the_clip_back_in_the_queue(
    make_clip: MakeClip, reviewer: User
) -> None:
    clip = decided(make_clip, reviewer)
    reopen.reopen(clip, reviewer)
    db.session.commit()
    clip = fresh(clip)
    assert clip.status == ClipStatus.WAITING
    assert (clip.decided_at, clip.decided_by_id) == (None, None)


def test_reopening_a_rejection_clears_the_clips_current_decision(
    make_clip: MakeClip, reviewer: User
) -> None:
    clip = decided(make_clip, reviewer, Verdict.REJECT)
    reopen.reopen(clip, reviewer)
    db.session.commit()
    clip = fresh(clip)
    assert clip.status == ClipStatus.WAITING
    assert (clip.decision_category, clip.decision_reason, clip.decision_timecode) == (
        None,
        None,
        None,
    )


def test_reopening_keeps_the_verdict_on_record_and_marks_it(
    make_clip: MakeClip, reviewer: User, clock: FrozenClock
) -> None:
    clip = decided(make_clip, reviewer, Verdict.REJECT)
    clock.advance(minutes=3)
    reopen.reopen(clip, reviewer)
    db.session.commit()
    decision = standing(clip, reviewer)
    assert decision.verdict == Verdict.REJECT
    assert decision.reason == "Too dark"
    assert decision.reopened_at == clock.now


def test_reopening_is_logged_as_a_transition_back_to_waiting(
    make_clip: MakeClip, reviewer: User
) -> None:
    clip = decided(make_clip, reviewer)
    reopen.reopen(clip, reviewer)
    db.session.commit()
    event = db.session.scalar(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1))
    assert event is not None
    assert (event.action, event.state_before, event.state_after) == (
        "clip.reopened",
        "approved",
        "waiting",
    )
    assert event.actor_id == reviewer.id


def test_reopening_tells_the_tester_without_naming_the_reviewer(
    make_clip: MakeClip, reviewer: User
) -> None:
    clip = decided(make_clip, reviewer)
    reopen.reopen(clip, reviewer)
    db.session.commit()
    note = db.session.scalar(
        select(Notification).where(Notification.kind == "clip.reopened").limit(1)
    )
    assert note is not None
    assert note.user_id == clip.tester_id
    assert reviewer.display_name not in note.subject + note.body


def test_the_reviewer_may_decide_again_after_reopening(make_clip: MakeClip, reviewer: User) -> None:
    clip = decided(make_clip, reviewer)
    reopen.reopen(clip, reviewer)
    claims.claim(clip, reviewer)
    workflow.decide(clip, reviewer, Verdict.REJECT, category="quality", reason="On reflection")
    db.session.commit()
    assert fresh(clip).status == ClipStatus.REJECTED
    assert db.session.scalar(select(func.count()).select_from(Decision)) == 2


def test_a_reopened_approval_no_longer_counts_towards_approval(
    app: Flask, make_clip: MakeClip, make_user: MakeUser, reviewer: User
) -> None:
    app.config["APPROVALS_REQUIRED"] = 2
    clip = decided(make_clip, reviewer)  # one of two approvals: back to waiting
    assert fresh(clip).status == ClipStatus.WAITING
    reopen.reopen(clip, reviewer)
    db.session.commit()
    second = make_user(Role.REVIEWER)
    claims.claim(clip, second)
    workflow.decide(clip, second, Verdict.APPROVE)
    db.session.commit()
    assert fresh(clip).status == ClipStatus.WAITING  # one standing approval, not two


def test_reopening_one_of_several_approvals_marks_only_the_decision(
    app: Flask, make_clip: MakeClip, reviewer: User
) -> None:
    app.config["APPROVALS_REQUIRED"] = 2
    clip = decided(make_clip, reviewer)
    reopen.reopen(clip, reviewer)
    db.session.commit()
    assert fresh(clip).status == ClipStatus.WAITING
    assert standing(clip, reviewer).reopened_at is not None
    event = db.session.scalar(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1))
    assert event is not None
    assert event.action == "decision.reopened"


def test_undo_is_offered_until_the_window_closes(
    make_clip: MakeClip, reviewer: User, clock: FrozenClock
) -> None:
    clip = decided(make_clip, reviewer)
    decision = standing(clip, reviewer)
    assert reopen.undo_until(decision) == decision.created_at + reopen.window()
    assert reopen.undoable(decision, clock.now)
    clock.advance(seconds=601)
    assert not reopen.undoable(decision, clock.now)


# --- refusals -----------------------------------------------------------------------------------


def test_reopening_after_the_window_is_refused_and_says_why(
    make_clip: MakeClip, reviewer: User, clock: FrozenClock
) -> None:
    clip = decided(make_clip, reviewer)
    clock.advance(seconds=601)
    with nothing_changed(), pytest.raises(StateConflict, match="undo window closed"):
        reopen.reopen(clip, reviewer)
    db.session.rollback()


def test_the_window_is_a_setting(
    app: Flask, make_clip: MakeClip, reviewer: User, clock: FrozenClock
) -> None:
    app.config["REOPEN_WINDOW_SECONDS"] = 30
    clip = decided(make_clip, reviewer)
    clock.advance(seconds=31)
    with nothing_changed(), pytest.raises(StateConflict, match="undo window closed"):
        reopen.reopen(clip, reviewer)
    db.session.rollback()


def test_reopening_once_a_share_link_exists_is_refused_and_says_why(
    make_clip: MakeClip, reviewer: User
) -> None:
    clip = decided(make_clip, reviewer)
    sharing.create_link(
        clip, clip.tester, label="", expires_at=None, passphrase=None, allow_download=False
    )
    db.session.commit()
    with nothing_changed(), pytest.raises(StateConflict, match="share link"):
        reopen.reopen(clip, reviewer)
    db.session.rollback()


def test_reopening_someone_elses_decision_is_not_found(
    make_clip: MakeClip, make_user: MakeUser, reviewer: User
) -> None:
    clip = decided(make_clip, reviewer)
    other = make_user(Role.REVIEWER)
    with nothing_changed(), pytest.raises(NotFound):
        reopen.reopen(clip, other)
    db.session.rollback()


def test_reopening_twice_is_not_found_the_second_time(make_clip: MakeClip, reviewer: User) -> None:
    clip = decided(make_clip, reviewer)
    reopen.reopen(clip, reviewer)
    db.session.commit()
    with nothing_changed(), pytest.raises(NotFound):
        reopen.reopen(clip, reviewer)
    db.session.rollback()


def test_reopening_after_another_reviewer_decided_is_refused(
    app: Flask, make_clip: MakeClip, make_user: MakeUser, reviewer: User
) -> None:
    app.config["APPROVALS_REQUIRED"] = 2
    clip = decided(make_clip, reviewer)
    second = make_user(Role.REVIEWER)
    claims.claim(clip, second)
    workflow.decide(clip, second, Verdict.APPROVE)
    db.session.commit()
    assert fresh(clip).status == ClipStatus.APPROVED
    with nothing_changed(), pytest.raises(StateConflict, match=r"(?i)another reviewer"):
        reopen.reopen(clip, reviewer)
    db.session.rollback()


def test_reopening_a_taken_down_clip_is_refused(
    make_clip: MakeClip, reviewer: User, admin: User
) -> None:
    clip = decided(make_clip, reviewer)
    workflow.take_down(clip, admin, "Rights complaint")
    db.session.commit()
    with nothing_changed(), pytest.raises(StateConflict):
        reopen.reopen(clip, reviewer)
    db.session.rollback()


# --- pages --------------------------------------------------------------------------------------


@pytest.fixture
def reviewer_client(signed_in: SignIn, reviewer: User) -> FlaskClient:
    return signed_in(reviewer)


def test_the_review_page_offers_undo_after_deciding(
    reviewer_client: FlaskClient, make_clip: MakeClip, reviewer: User
) -> None:
    clip = decided(make_clip, reviewer)
    page = reviewer_client.get(f"/review/{clip.id}").get_data(as_text=True)
    assert f'action="/review/{clip.id}/reopen"' in page
    assert "Undo (until 12:10)" in page


def test_the_review_page_offers_no_undo_after_the_window(
    reviewer_client: FlaskClient, make_clip: MakeClip, reviewer: User, clock: FrozenClock
) -> None:
    clip = decided(make_clip, reviewer)
    clock.advance(minutes=11)
    page = reviewer_client.get(f"/review/{clip.id}").get_data(as_text=True)
    assert f"/review/{clip.id}/reopen" not in page


def test_posting_undo_reopens_and_redirects_to_the_clip(
    reviewer_client: FlaskClient, make_clip: MakeClip, reviewer: User
) -> None:
    clip = decided(make_clip, reviewer)
    token = csrf_token(reviewer_client, f"/review/{clip.id}")
    response = reviewer_client.post(f"/review/{clip.id}/reopen", data={"csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/review/{clip.id}")
    clip = fresh(clip)
    assert (clip.status, clip.claimed_by_id) == (ClipStatus.IN_REVIEW, reviewer.id)


def test_undo_from_the_next_clip_gives_that_clip_back_and_returns_to_the_first(
    reviewer_client: FlaskClient, make_clip: MakeClip, reviewer: User
) -> None:
    first = decided(make_clip, reviewer)
    following = make_clip(ClipStatus.WAITING)
    claims.claim(following, reviewer)  # as claim-next does after a decision
    db.session.commit()
    page = reviewer_client.get(f"/review/{following.id}").get_data(as_text=True)
    assert f'action="/review/{first.id}/reopen"' in page
    token = csrf_token(reviewer_client, f"/review/{following.id}")
    reviewer_client.post(f"/review/{first.id}/reopen", data={"csrf_token": token})
    assert fresh(following).status == ClipStatus.WAITING
    assert fresh(first).claimed_by_id == reviewer.id


def test_posting_undo_after_the_window_answers_409_with_the_reason(
    reviewer_client: FlaskClient, make_clip: MakeClip, reviewer: User, clock: FrozenClock
) -> None:
    clip = decided(make_clip, reviewer)
    token = csrf_token(reviewer_client, f"/review/{clip.id}")
    clock.advance(minutes=11)
    with nothing_changed():
        response = reviewer_client.post(f"/review/{clip.id}/reopen", data={"csrf_token": token})
    assert response.status_code == 409
    assert "undo window closed" in response.get_data(as_text=True)


def test_posting_undo_for_a_clip_that_does_not_exist_is_404(
    reviewer_client: FlaskClient,
) -> None:
    token = csrf_token(reviewer_client, "/review/")
    with nothing_changed():
        response = reviewer_client.post("/review/999999/reopen", data={"csrf_token": token})
    assert response.status_code == 404


def test_my_decisions_lists_own_verdicts_newest_first(
    reviewer_client: FlaskClient,
    make_clip: MakeClip,
    make_user: MakeUser,
    reviewer: User,
    clock: FrozenClock,
) -> None:
    first = decided(make_clip, reviewer)
    clock.advance(minutes=1)
    second = decided(make_clip, reviewer, Verdict.REJECT)
    someone = make_user(Role.REVIEWER)
    theirs = decided(make_clip, someone)
    page = reviewer_client.get("/review/decisions").get_data(as_text=True)
    assert page.index(second.title) < page.index(first.title)
    assert "Too dark" in page
    assert theirs.title not in page
    assert page.count("Undo (until") == 2


def test_my_decisions_pages_with_a_keyset_cursor(
    app: Flask,
    reviewer_client: FlaskClient,
    make_clip: MakeClip,
    reviewer: User,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from approval.ops import reopen as module

    monkeypatch.setattr(module, "PAGE_SIZE", 2)
    clips = []
    for _ in range(3):
        clips.append(decided(make_clip, reviewer))
        clock.advance(seconds=5)
    first = reviewer_client.get("/review/decisions").get_data(as_text=True)
    assert clips[0].title not in first
    cursor = first.split('rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
    second = reviewer_client.get(cursor).get_data(as_text=True)
    assert f">{clips[0].title}<" in second
    assert f">{clips[2].title}<" not in second


def test_my_decisions_refuses_a_made_up_cursor(reviewer_client: FlaskClient) -> None:
    response = reviewer_client.get("/review/decisions?cursor=forged")
    assert response.status_code == 400


# --- API ----------------------------------------------------------------------------------------


def test_the_api_lists_my_decisions(
    app: Flask, client: FlaskClient, make_clip: MakeClip, reviewer: User
) -> None:
    clip = decided(make_clip, reviewer)
    response = client.get("/api/v1/review/decisions", headers=bearer(reviewer))
    assert response.status_code == 200
    item = response.get_json()["items"][0]
    assert item["clip"]["id"] == clip.id
    assert item["decision"]["decision"] == "approve"
    assert item["undo_until"] is not None


def test_the_api_reopens_a_decision(
    app: Flask, client: FlaskClient, make_clip: MakeClip, reviewer: User
) -> None:
    clip = decided(make_clip, reviewer)
    response = client.post(f"/api/v1/review/clips/{clip.id}/reopen", headers=bearer(reviewer))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["clip"]["status"] == "waiting"


def test_the_api_refuses_reopening_after_the_window_with_409(
    app: Flask, client: FlaskClient, make_clip: MakeClip, reviewer: User, clock: FrozenClock
) -> None:
    clip = decided(make_clip, reviewer)
    headers = bearer(reviewer)
    clock.advance(minutes=11)
    with nothing_changed():
        response = client.post(f"/api/v1/review/clips/{clip.id}/reopen", headers=headers)
    assert "undo window closed" in problem(response, 409)["detail"]


def test_the_api_refuses_reopening_someone_elses_decision_with_404(
    app: Flask, client: FlaskClient, make_clip: MakeClip, make_user: MakeUser, reviewer: User
) -> None:
    clip = decided(make_clip, reviewer)
    headers = bearer(make_user(Role.REVIEWER))
    with nothing_changed():
        response = client.post(f"/api/v1/review/clips/{clip.id}/reopen", headers=headers)
    problem(response, 404)


def test_the_api_refuses_a_bad_decisions_cursor_with_400(
    app: Flask, client: FlaskClient, reviewer: User
) -> None:
    response = client.get("/api/v1/review/decisions?cursor=forged", headers=bearer(reviewer))
    problem(response, 400)


def test_the_review_page_marks_an_undone_verdict_and_keeps_it(
    reviewer_client: FlaskClient, make_clip: MakeClip, reviewer: User
) -> None:
    clip = decided(make_clip, reviewer, Verdict.REJECT)
    reopen.reopen(clip, reviewer)
    db.session.commit()
    page = reviewer_client.get(f"/review/{clip.id}").get_data(as_text=True)
    assert '<strong>Rejected</strong> <span class="badge badge-grey">undone</span>' in page
    assert "Too dark" in page


def test_the_api_marks_an_undone_verdict_in_the_clips_decisions(
    app: Flask, make_clip: MakeClip, reviewer: User, tester: User
) -> None:
    clip = decided(make_clip, reviewer, Verdict.REJECT)
    reopen.reopen(clip, reviewer)
    db.session.commit()
    for viewer in (reviewer, fresh(clip).tester):
        body = app.test_client().get(f"/api/v1/clips/{clip.id}", headers=bearer(viewer)).get_json()
        (verdict,) = body["decisions"]
        assert verdict["decision"] == "reject"
        assert verdict["reopened_at"] is not None


def test_the_review_room_migration_goes_down_with_undone_verdicts_in_it(
    app: Flask, database_url: str, make_clip: MakeClip, reviewer: User
) -> None:
    """Down to before 0006, where a reviewer had one verdict per clip: the undone one goes."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    clip = decided(make_clip, reviewer)
    reopen.reopen(clip, reviewer)
    db.session.commit()
    claims.claim(fresh(clip), reviewer)
    workflow.decide(fresh(clip), reviewer, Verdict.APPROVE)
    db.session.commit()
    db.session.remove()
    env = {**os.environ, "GREENLIGHT_DATABASE_URL": database_url, "GREENLIGHT_SECRET_KEY": "k" * 40}
    flask = [sys.executable, "-m", "flask", "--app", "app", "db"]
    # Down past 0006, then up again so the database is whole for the tests after this one.
    for step in (["downgrade", "0005_rendition_sha256_index"], ["upgrade"]):
        done = subprocess.run(
            flask + step,
            cwd=Path(__file__).resolve().parents[1],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
