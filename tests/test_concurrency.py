"""Races between reviewers, with real threads and one database session each.

The big race (8 reviewers, 300 clips) is marked postgres: conftest skips it on SQLite, and it
runs where FOR UPDATE SKIP LOCKED does the work. A smaller race and every single-clip race run on
both databases (on SQLite the single writer lock and the 30 s busy timeout settle them).

Nothing here sleeps: threads start together at a barrier and every join has a deadline, so a
deadlock fails the test instead of hanging it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from approval import audit
from approval.extensions import db
from approval.models import AuditEvent, Clip, ClipStatus, Decision, Role, User, Verdict
from approval.ops import claims, workflow
from approval.ops.workflow import StateConflict
from tests.plugins.factories import FAKE_MEDIA

MakeUser = Callable[..., User]
MakeClip = Callable[..., Clip]

DEADLINE_SECONDS = 120


def waiting_clips(count: int, tester: User) -> list[int]:
    """`count` clips in the queue, made by the workflow in one transaction (fast, and logged)."""
    ids = []
    for number in range(count):
        clip = workflow.start_upload(tester, title=f"Race clip {number}", generator="gen-1")
        workflow.begin_verification(clip, tester)
        workflow.pass_verification(clip, replace(FAKE_MEDIA, sha256=f"{number:064x}"))
        ids.append(clip.id)
    db.session.commit()
    return ids


@dataclass
class Outcome:
    """What one reviewer thread did."""

    claimed: list[int] = field(default_factory=list)
    decided: list[int] = field(default_factory=list)
    conflicts: int = 0
    errors: list[BaseException] = field(default_factory=list)


def run_together(app: Flask, workers: list[Callable[[], None]]) -> None:
    """Start every worker at the same moment, each in its own thread and app context."""
    db.session.close()  # the test's own session must hold no transaction open meanwhile
    barrier = threading.Barrier(len(workers))

    def run(work: Callable[[], None]) -> None:
        with app.app_context():
            barrier.wait(timeout=DEADLINE_SECONDS)
            try:
                work()
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(work,), daemon=True) for work in workers]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + DEADLINE_SECONDS
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    stuck = [thread.name for thread in threads if thread.is_alive()]
    assert not stuck, f"threads still running after {DEADLINE_SECONDS}s (deadlock?): {stuck}"


def reviewer_loop(reviewer_id: int, outcome: Outcome) -> Callable[[], None]:
    """What the review page does: review next, then decide-and-open-the-next until empty."""

    def work() -> None:
        try:
            reviewer = db.session.get(User, reviewer_id)
            assert reviewer is not None
            clip = claims.claim_next(reviewer)
            db.session.commit()
            while clip is not None:
                outcome.claimed.append(clip.id)
                verdict = Verdict.APPROVE if clip.id % 2 else Verdict.REJECT
                extra = {} if verdict == Verdict.APPROVE else {"category": "quality"}
                _, clip_after = workflow.decide_and_claim_next(
                    clip, reviewer, verdict, reason="Checked in a race", **extra
                )
                db.session.commit()
                outcome.decided.append(clip.id)
                clip = clip_after
        except BaseException as exc:  # report everything, including deadlock errors
            db.session.rollback()
            outcome.errors.append(exc)

    return work


def race_through_the_queue(
    app: Flask, make_user: MakeUser, clips: int, reviewers: int
) -> tuple[list[int], list[Outcome], float]:
    ids = waiting_clips(clips, make_user(Role.TESTER))
    people = [make_user(Role.REVIEWER).id for _ in range(reviewers)]
    outcomes = [Outcome() for _ in people]
    started = time.perf_counter()
    run_together(app, [reviewer_loop(rid, out) for rid, out in zip(people, outcomes, strict=True)])
    return ids, outcomes, time.perf_counter() - started


def check_every_clip_decided_once(ids: list[int], outcomes: list[Outcome]) -> None:
    assert [error for out in outcomes for error in out.errors] == []
    claimed = Counter(clip_id for out in outcomes for clip_id in out.claimed)
    assert sorted(claimed) == sorted(ids)
    assert max(claimed.values()) == 1  # no clip was handed to two reviewers
    per_clip = Counter(db.session.scalars(select(Decision.clip_id)))
    assert (sorted(per_clip), set(per_clip.values())) == (sorted(ids), {1})
    statuses = set(db.session.scalars(select(Clip.status).where(Clip.id.in_(ids))))
    assert statuses == {ClipStatus.APPROVED, ClipStatus.REJECTED}
    claims = Counter(
        db.session.scalars(select(AuditEvent.clip_id).where(AuditEvent.action == "clip.claimed"))
    )
    assert set(claims.values()) == {1}
    assert audit.verify().ok


@pytest.mark.postgres
def test_eight_reviewers_empty_a_queue_of_300_without_overlap(
    app: Flask, make_user: MakeUser, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.perf_counter()
    ids, outcomes, raced = race_through_the_queue(app, make_user, clips=300, reviewers=8)
    check_every_clip_decided_once(ids, outcomes)
    with capsys.disabled():
        shares = sorted(len(out.decided) for out in outcomes)
        print(
            f"\n300 clips, 8 reviewers: race {raced:.2f}s "
            f"(setup+race {time.perf_counter() - started:.2f}s), decisions per reviewer {shares}"
        )


def test_four_reviewers_empty_a_small_queue_without_overlap(
    app: Flask, make_user: MakeUser
) -> None:
    ids, outcomes, _ = race_through_the_queue(app, make_user, clips=40, reviewers=4)
    check_every_clip_decided_once(ids, outcomes)


# --- one clip, many hands ------------------------------------------------------------------------


def attempt(action: Callable[[], Any], successes: list[int], conflicts: list[int]) -> None:
    """Run one racing step and commit it; count it as a success or a 409."""
    try:
        action()
        db.session.commit()
        successes.append(1)
    except StateConflict:
        db.session.rollback()
        conflicts.append(1)


def race(app: Flask, steps: list[Callable[[], Any]]) -> tuple[int, int, list[BaseException]]:
    successes: list[int] = []
    conflicts: list[int] = []
    errors: list[BaseException] = []

    def worker(step: Callable[[], Any]) -> Callable[[], None]:
        def work() -> None:
            try:
                attempt(step, successes, conflicts)
            except BaseException as exc:
                db.session.rollback()
                errors.append(exc)

        return work

    run_together(app, [worker(step) for step in steps])
    return len(successes), len(conflicts), errors


def test_eight_reviewers_claiming_one_clip_one_wins_the_rest_get_409(
    app: Flask, make_user: MakeUser, make_clip: MakeClip
) -> None:
    clip_id = make_clip(ClipStatus.WAITING).id
    people = [make_user(Role.REVIEWER).id for _ in range(8)]

    def claim(reviewer_id: int) -> Callable[[], None]:
        def step() -> None:
            clip = db.session.get(Clip, clip_id)
            reviewer = db.session.get(User, reviewer_id)
            assert clip is not None
            assert reviewer is not None
            claims.claim(clip, reviewer)

        return step

    assert race(app, [claim(rid) for rid in people]) == (1, 7, [])
    assert audit.verify().ok


def test_eight_presses_of_review_next_on_one_clip_hand_it_out_once(
    app: Flask, make_user: MakeUser, make_clip: MakeClip
) -> None:
    clip_id = make_clip(ClipStatus.WAITING).id
    people = [make_user(Role.REVIEWER).id for _ in range(8)]
    got: list[int | None] = []

    def press(reviewer_id: int) -> Callable[[], None]:
        def step() -> None:
            reviewer = db.session.get(User, reviewer_id)
            assert reviewer is not None
            clip = claims.claim_next(reviewer)
            got.append(clip.id if clip else None)

        return step

    assert race(app, [press(rid) for rid in people]) == (8, 0, [])
    assert sorted(got, key=str) == sorted([clip_id] + [None] * 7, key=str)


@pytest.mark.parametrize("verdict", list(Verdict))
def test_eight_submits_of_one_decision_record_it_once_the_rest_get_409(
    app: Flask, make_user: MakeUser, make_clip: MakeClip, verdict: Verdict
) -> None:
    reviewer = make_user(Role.REVIEWER)
    clip = make_clip(ClipStatus.WAITING)
    claims.claim(clip, reviewer)
    db.session.commit()
    clip_id, reviewer_id = clip.id, reviewer.id

    def submit() -> None:
        found = db.session.get(Clip, clip_id)
        who = db.session.get(User, reviewer_id)
        assert found is not None
        assert who is not None
        workflow.decide(found, who, verdict, category="quality", reason="Double click")

    assert race(app, [submit] * 8) == (1, 7, [])
    assert db.session.scalar(select(func.count()).select_from(Decision)) == 1


def test_a_decision_racing_a_release_settles_one_way(
    app: Flask, make_user: MakeUser, make_clip: MakeClip
) -> None:
    reviewer = make_user(Role.REVIEWER)
    clip = make_clip(ClipStatus.WAITING)
    claims.claim(clip, reviewer)
    db.session.commit()
    clip_id, reviewer_id = clip.id, reviewer.id

    def load() -> tuple[Clip, User]:
        found, who = db.session.get(Clip, clip_id), db.session.get(User, reviewer_id)
        assert found is not None
        assert who is not None
        return found, who

    def approve() -> None:
        workflow.decide(*load(), Verdict.APPROVE)

    def release() -> None:
        claims.release(*load())

    assert race(app, [approve, release, approve, release]) == (1, 3, [])
    assert audit.verify().ok


def test_four_new_versions_of_one_rejected_clip_only_one_is_made(
    app: Flask, make_clip: MakeClip
) -> None:
    rejected = make_clip(ClipStatus.REJECTED)
    rejected_id, tester_id = rejected.id, rejected.tester_id

    def upload() -> None:
        previous = db.session.get(Clip, rejected_id)
        tester = db.session.get(User, tester_id)
        assert previous is not None
        assert tester is not None
        workflow.start_upload(tester, title="Fixed", previous=previous)

    assert race(app, [upload] * 4) == (1, 3, [])
    made = select(func.count()).where(Clip.previous_version_id == rejected_id)
    assert db.session.scalar(made) == 1
