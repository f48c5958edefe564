"""The clip state machine: every transition from every state, leases, four-eyes, bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from approval import audit
from approval.extensions import db
from approval.models import AuditEvent, Clip, ClipStatus, Decision, Role, User, Verdict
from approval.ops import claims, workflow
from approval.ops.workflow import InvalidInput, NotAllowed, NotFound, StateConflict
from tests.plugins.factories import FAKE_MEDIA, FrozenClock
from tests.plugins.snapshot import nothing_changed

MakeUser = Callable[..., User]
MakeClip = Callable[..., Clip]

ALL = list(ClipStatus)


def events() -> int:
    return db.session.scalar(select(func.count()).select_from(AuditEvent)) or 0


def last_event() -> AuditEvent:
    """The newest event, once the operations' transaction commits (events are chained then)."""
    db.session.commit()
    event = db.session.scalar(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1))
    assert event is not None
    return event


@pytest.fixture
def people(make_user: MakeUser, reviewer: User, admin: User) -> People:
    return People(reviewer, make_user(Role.REVIEWER), admin)


# --- every operation from every state ------------------------------------------------------------


# operation name → (the states it accepts, the state it leads to, how to call it)
@dataclass(frozen=True)
class People:
    reviewer: User  # holds the claim on clips made in review or decided
    other: User  # another reviewer
    admin: User


Operation = Callable[[Clip, People], Any]
OPERATIONS: dict[str, tuple[set[ClipStatus], ClipStatus, Operation]] = {
    "begin_verification": (
        {ClipStatus.UPLOADING},
        ClipStatus.VERIFYING,
        lambda clip, people: workflow.begin_verification(clip, clip.tester),
    ),
    "pass_verification": (
        {ClipStatus.VERIFYING},
        ClipStatus.WAITING,
        lambda clip, people: workflow.pass_verification(clip, replace(FAKE_MEDIA, sha256="f" * 64)),
    ),
    "fail_verification": (
        {ClipStatus.UPLOADING, ClipStatus.VERIFYING},
        ClipStatus.FAILED,
        lambda clip, people: workflow.fail_verification(clip, "not a video"),
    ),
    "withdraw": (
        {ClipStatus.WAITING},
        ClipStatus.WITHDRAWN,
        lambda clip, people: workflow.withdraw(clip, clip.tester),
    ),
    "claim": (
        {ClipStatus.WAITING},
        ClipStatus.IN_REVIEW,
        lambda clip, people: claims.claim(clip, people.other),
    ),
    "release": (
        {ClipStatus.IN_REVIEW},
        ClipStatus.WAITING,
        lambda clip, people: claims.release(clip, people.reviewer),
    ),
    "approve": (
        {ClipStatus.IN_REVIEW},
        ClipStatus.APPROVED,
        lambda clip, people: workflow.decide(clip, people.reviewer, Verdict.APPROVE),
    ),
    "reject": (
        {ClipStatus.IN_REVIEW},
        ClipStatus.REJECTED,
        lambda clip, people: workflow.decide(
            clip, people.reviewer, Verdict.REJECT, category="quality", reason="Out of focus"
        ),
    ),
    "take_down": (
        {ClipStatus.APPROVED},
        ClipStatus.TAKEN_DOWN,
        lambda clip, people: workflow.take_down(clip, people.admin, "Rights complaint"),
    ),
}


@pytest.mark.parametrize("status", ALL)
@pytest.mark.parametrize("name", list(OPERATIONS))
def test_each_operation_moves_only_from_the_states_it_accepts(
    make_clip: MakeClip, people: People, name: str, status: ClipStatus
) -> None:
    accepted, target, operation = OPERATIONS[name]
    reviewer = people.reviewer
    clip = make_clip(status, reviewer=reviewer)
    before = events()
    if status in accepted:
        operation(clip, people)
        db.session.commit()
        assert (clip.status, events()) == (target, before + 1)
    else:
        with nothing_changed(), pytest.raises(StateConflict):
            operation(clip, people)
        assert events() == before  # the refused step wrote nothing, not even its event
        db.session.rollback()
        assert db.session.get(Clip, clip.id).status == status  # type: ignore[union-attr]


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_each_transition_logs_who_and_the_states(
    make_clip: MakeClip, people: People, name: str
) -> None:
    accepted, target, operation = OPERATIONS[name]
    reviewer = people.reviewer
    start = sorted(accepted)[0]
    clip = make_clip(start, reviewer=reviewer)
    operation(clip, people)
    db.session.commit()
    event = last_event()
    assert (event.clip_id, event.state_before, event.state_after) == (
        clip.id,
        start.value,
        target.value,
    )


def test_a_refused_verification_leaves_the_pinned_bytes_alone(make_clip: MakeClip) -> None:
    clip = make_clip(ClipStatus.APPROVED)
    pinned = clip.sha256
    with nothing_changed(), pytest.raises(StateConflict):
        workflow.pass_verification(clip, replace(FAKE_MEDIA, sha256="e" * 64))
    db.session.commit()  # even a caller that carries on must not have written new bytes
    db.session.expire_all()
    assert db.session.get(Clip, clip.id).sha256 == pinned  # type: ignore[union-attr]


def test_conflict_names_who_changed_the_clip_and_when(
    make_clip: MakeClip, reviewer: User, clock: FrozenClock
) -> None:
    clip = make_clip(ClipStatus.APPROVED, reviewer=reviewer)
    with nothing_changed(), pytest.raises(StateConflict) as refused:
        workflow.withdraw(clip, clip.tester)
    assert (refused.value.changed_by, refused.value.changed_at, refused.value.status) == (
        reviewer.id,
        clock.now,
        ClipStatus.APPROVED,
    )


def test_conflict_message_says_who_and_when(
    make_clip: MakeClip, make_user: MakeUser, reviewer: User
) -> None:
    clip = make_clip(ClipStatus.APPROVED, reviewer=reviewer)
    another_reviewer = make_user(Role.REVIEWER)
    with (
        nothing_changed(),
        pytest.raises(StateConflict, match=rf"approved \(by {reviewer.display_name}, 2026-11-30"),
    ):
        claims.claim(clip, another_reviewer)


def test_conflict_message_to_the_tester_says_a_reviewer(
    make_clip: MakeClip, reviewer: User
) -> None:
    clip = make_clip(ClipStatus.APPROVED, reviewer=reviewer)
    with (
        nothing_changed(),
        pytest.raises(StateConflict, match=r"approved \(by a reviewer, 2026-11-30"),
    ):
        workflow.withdraw(clip, clip.tester)


def test_whole_lifecycle_keeps_the_audit_chain_whole(
    make_clip: MakeClip, reviewer: User, admin: User
) -> None:
    clip = make_clip(ClipStatus.TAKEN_DOWN, reviewer=reviewer, admin=admin)
    assert clip.status == ClipStatus.TAKEN_DOWN
    assert audit.verify().ok


# --- separation of duties and roles --------------------------------------------------------------


def test_nobody_claims_a_clip_they_uploaded(make_user: MakeUser, make_clip: MakeClip) -> None:
    both = make_user(Role.TESTER, Role.REVIEWER)
    clip = make_clip(ClipStatus.WAITING, tester=both)
    with nothing_changed(), pytest.raises(NotAllowed):
        claims.claim(clip, both)


def test_nobody_decides_a_clip_they_uploaded(make_user: MakeUser, make_clip: MakeClip) -> None:
    both = make_user(Role.TESTER, Role.REVIEWER)
    clip = make_clip(ClipStatus.IN_REVIEW, tester=both)
    with nothing_changed(), pytest.raises(NotAllowed):
        workflow.decide(clip, both, Verdict.APPROVE)


def test_review_next_never_hands_out_ones_own_clip(
    make_user: MakeUser, make_clip: MakeClip
) -> None:
    both = make_user(Role.TESTER, Role.REVIEWER)
    make_clip(ClipStatus.WAITING, tester=both)
    assert claims.claim_next(both) is None


@pytest.mark.parametrize("role", [Role.TESTER, Role.ADMIN])
def test_only_reviewers_claim(make_user: MakeUser, make_clip: MakeClip, role: Role) -> None:
    clip = make_clip(ClipStatus.WAITING)
    someone = make_user(role)
    with nothing_changed(), pytest.raises(NotAllowed):
        claims.claim(clip, someone)


@pytest.mark.parametrize("role", [Role.TESTER, Role.ADMIN])
def test_only_reviewers_review_next(make_user: MakeUser, make_clip: MakeClip, role: Role) -> None:
    make_clip(ClipStatus.WAITING)
    someone = make_user(role)
    with nothing_changed(), pytest.raises(NotAllowed):
        claims.claim_next(someone)


@pytest.mark.parametrize("role", [Role.TESTER, Role.REVIEWER])
def test_only_admins_take_down(make_user: MakeUser, make_clip: MakeClip, role: Role) -> None:
    clip = make_clip(ClipStatus.APPROVED)
    someone = make_user(role)
    with nothing_changed(), pytest.raises(NotAllowed):
        workflow.take_down(clip, someone, "Rights complaint")


def test_only_its_tester_withdraws_a_clip(make_user: MakeUser, make_clip: MakeClip) -> None:
    clip = make_clip(ClipStatus.WAITING)
    stranger = make_user(Role.TESTER)
    with nothing_changed(), pytest.raises(NotFound):
        workflow.withdraw(clip, stranger)


# --- claims and leases ---------------------------------------------------------------------------


def test_deciding_without_a_claim_is_a_conflict(make_clip: MakeClip, reviewer: User) -> None:
    clip = make_clip(ClipStatus.WAITING)
    with nothing_changed(), pytest.raises(StateConflict, match="Claim the clip"):
        workflow.decide(clip, reviewer, Verdict.APPROVE)


def test_deciding_on_someone_elses_live_claim_is_a_conflict(
    make_user: MakeUser, make_clip: MakeClip, reviewer: User
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=make_user(Role.REVIEWER))
    with nothing_changed(), pytest.raises(StateConflict, match="Another reviewer"):
        workflow.decide(clip, reviewer, Verdict.APPROVE)


def test_deciding_a_decided_clip_names_the_earlier_decision(
    make_clip: MakeClip, make_user: MakeUser, reviewer: User
) -> None:
    clip = make_clip(ClipStatus.REJECTED, reviewer=reviewer)
    other = make_user(Role.REVIEWER)
    with (
        nothing_changed(),
        pytest.raises(StateConflict, match=f"already decided.*rejected.*{reviewer.display_name}"),
    ):
        workflow.decide(clip, other, Verdict.APPROVE)


def test_deciding_after_the_lease_lapsed_is_a_conflict(
    make_clip: MakeClip, reviewer: User, clock: FrozenClock, app: Flask
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    clock.advance(seconds=app.config["CLAIM_LEASE_SECONDS"] + 1)
    with nothing_changed(), pytest.raises(StateConflict, match="lapsed"):
        workflow.decide(clip, reviewer, Verdict.APPROVE)


def test_a_lapsed_lease_puts_the_clip_back_for_others(
    make_user: MakeUser, make_clip: MakeClip, reviewer: User, clock: FrozenClock, app: Flask
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    clock.advance(seconds=app.config["CLAIM_LEASE_SECONDS"])
    other = make_user(Role.REVIEWER)
    assert claims.claim_next(other) == clip


def test_taking_over_a_lapsed_lease_is_logged_with_its_old_holder(
    make_user: MakeUser, make_clip: MakeClip, reviewer: User, clock: FrozenClock, app: Flask
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    clock.advance(seconds=app.config["CLAIM_LEASE_SECONDS"] + 1)
    claims.claim(clip, make_user(Role.REVIEWER))
    event = last_event()
    assert (event.state_before, json.loads(event.data)) == (
        "in_review",
        {"lapsed_claim_of": reviewer.id},
    )


def test_a_live_lease_is_not_handed_to_anyone_else(
    make_user: MakeUser, make_clip: MakeClip, reviewer: User, clock: FrozenClock, app: Flask
) -> None:
    make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    clock.advance(seconds=app.config["CLAIM_LEASE_SECONDS"] - 1)
    assert claims.claim_next(make_user(Role.REVIEWER)) is None


def test_renewing_extends_the_lease(
    make_clip: MakeClip, reviewer: User, clock: FrozenClock, app: Flask
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    clock.advance(seconds=500)
    expires = claims.renew_claim(clip, reviewer)
    lease = timedelta(seconds=app.config["CLAIM_LEASE_SECONDS"])
    assert clip.claim_expires_at == expires == clock.now + lease


def test_a_renewed_lease_outlives_the_first_one(
    make_user: MakeUser, make_clip: MakeClip, reviewer: User, clock: FrozenClock, app: Flask
) -> None:
    lease = app.config["CLAIM_LEASE_SECONDS"]
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    clock.advance(seconds=lease - 60)
    claims.renew_claim(clip, reviewer)
    db.session.commit()
    clock.advance(seconds=120)  # past the first lease, within the renewed one
    assert claims.claim_next(make_user(Role.REVIEWER)) is None


def test_a_lapsed_lease_cannot_be_renewed(
    make_clip: MakeClip, reviewer: User, clock: FrozenClock, app: Flask
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    clock.advance(seconds=app.config["CLAIM_LEASE_SECONDS"])
    with nothing_changed(), pytest.raises(StateConflict):
        claims.renew_claim(clip, reviewer)


def test_nobody_renews_someone_elses_lease(
    make_user: MakeUser, make_clip: MakeClip, reviewer: User
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    other = make_user(Role.REVIEWER)
    with nothing_changed(), pytest.raises(StateConflict):
        claims.renew_claim(clip, other)


def test_nobody_releases_someone_elses_claim(
    make_user: MakeUser, make_clip: MakeClip, reviewer: User
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    other = make_user(Role.REVIEWER)
    with nothing_changed(), pytest.raises(StateConflict):
        claims.release(clip, other)


def test_a_released_clip_keeps_its_place_in_the_queue(
    make_clip: MakeClip, make_user: MakeUser, reviewer: User, clock: FrozenClock
) -> None:
    first = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    clock.advance(seconds=10)
    make_clip(ClipStatus.WAITING)
    claims.release(first, reviewer)
    db.session.commit()
    assert claims.claim_next(make_user(Role.REVIEWER)) == first


def test_review_next_takes_the_oldest_clip(
    make_clip: MakeClip, reviewer: User, clock: FrozenClock
) -> None:
    oldest = make_clip(ClipStatus.WAITING)
    clock.advance(seconds=5)
    make_clip(ClipStatus.WAITING)
    assert claims.claim_next(reviewer) == oldest


def test_review_next_gives_back_the_clip_already_held(
    make_clip: MakeClip, reviewer: User, clock: FrozenClock
) -> None:
    held = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    clock.advance(seconds=5)
    make_clip(ClipStatus.WAITING)
    assert claims.claim_next(reviewer) == held


def test_review_next_on_an_empty_queue_is_none(reviewer: User) -> None:
    assert claims.claim_next(reviewer) is None


def test_two_reviewers_get_different_clips(
    make_user: MakeUser, make_clip: MakeClip, reviewer: User
) -> None:
    make_clip(ClipStatus.WAITING)
    make_clip(ClipStatus.WAITING)
    first = claims.claim_next(reviewer)
    second = claims.claim_next(make_user(Role.REVIEWER))
    assert first is not None
    assert second not in (None, first)


def test_one_claim_at_a_time(make_clip: MakeClip, reviewer: User) -> None:
    make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    other = make_clip(ClipStatus.WAITING)
    with nothing_changed(), pytest.raises(StateConflict, match="already reviewing"):
        claims.claim(other, reviewer)


def test_claiming_the_held_clip_again_changes_nothing(make_clip: MakeClip, reviewer: User) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    before = events()
    claims.claim(clip, reviewer)
    assert (clip.status, events()) == (ClipStatus.IN_REVIEW, before)


def test_deciding_then_claiming_next_opens_the_next_clip(
    make_clip: MakeClip, reviewer: User, clock: FrozenClock
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    clock.advance(seconds=1)
    following = make_clip(ClipStatus.WAITING)
    _, upcoming = workflow.decide_and_claim_next(clip, reviewer, Verdict.APPROVE)
    assert (upcoming, following.status) == (following, ClipStatus.IN_REVIEW)


# --- verdicts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "reason"),
    [("quality", ""), ("quality", "   "), (None, "Blurry"), ("nonsense", "Blurry")],
)
def test_a_rejection_needs_a_known_category_and_a_reason(
    make_clip: MakeClip, reviewer: User, category: str | None, reason: str
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    with nothing_changed(), pytest.raises(InvalidInput):
        workflow.decide(clip, reviewer, Verdict.REJECT, category=category, reason=reason)
    db.session.rollback()
    assert db.session.get(Clip, clip.id).status == ClipStatus.IN_REVIEW  # type: ignore[union-attr]


@pytest.mark.parametrize("timecode", [-0.5, 2.01, float("nan"), float("inf"), float("-inf")])
def test_a_timecode_outside_the_clip_is_refused(
    make_clip: MakeClip, reviewer: User, timecode: float
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)  # FAKE_MEDIA lasts 2 seconds
    with nothing_changed(), pytest.raises(InvalidInput):
        workflow.decide(
            clip, reviewer, Verdict.REJECT, category="quality", reason="Blur", timecode=timecode
        )


@pytest.mark.parametrize("timecode", [0.0, 1.25, 2.0])
def test_a_timecode_within_the_clip_is_kept(
    make_clip: MakeClip, reviewer: User, timecode: float
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    workflow.decide(
        clip, reviewer, Verdict.REJECT, category="quality", reason="Blur", timecode=timecode
    )
    assert clip.decision_timecode == timecode


def test_a_rejection_records_what_the_tester_reads(make_clip: MakeClip, reviewer: User) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    workflow.decide(
        clip, reviewer, Verdict.REJECT, category="likeness", reason=" Looks like X ", timecode=1.0
    )
    assert (clip.decision_category, clip.decision_reason, clip.decided_by_id) == (
        "likeness",
        "Looks like X",
        reviewer.id,
    )


def test_an_approval_carries_no_category_or_timecode(make_clip: MakeClip, reviewer: User) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    decision = workflow.decide(
        clip, reviewer, Verdict.APPROVE, category="quality", reason="Fine", timecode=1.0
    )
    assert (decision.category, decision.timecode) == (None, None)


def test_a_decision_releases_the_claim(make_clip: MakeClip, reviewer: User) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    workflow.decide(clip, reviewer, Verdict.APPROVE)
    assert (clip.claimed_by_id, clip.claim_expires_at) == (None, None)


# --- four eyes ----------------------------------------------------------------------------------


@pytest.fixture
def four_eyes(app: Flask) -> None:
    app.config["APPROVALS_REQUIRED"] = 2


def test_with_two_required_one_approval_sends_the_clip_back_to_the_queue(
    four_eyes: None, make_clip: MakeClip, reviewer: User
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    workflow.decide(clip, reviewer, Verdict.APPROVE)
    assert (clip.status, clip.decided_at) == (ClipStatus.WAITING, None)


def test_with_two_required_a_second_reviewer_approves_it(
    four_eyes: None, make_user: MakeUser, make_clip: MakeClip, reviewer: User
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    workflow.decide(clip, reviewer, Verdict.APPROVE)
    db.session.commit()
    second = make_user(Role.REVIEWER)
    assert claims.claim_next(second) == clip
    workflow.decide(clip, second, Verdict.APPROVE)
    assert (clip.status, clip.decided_by_id) == (ClipStatus.APPROVED, second.id)


def test_with_two_required_the_same_reviewer_cannot_approve_twice(
    four_eyes: None, make_clip: MakeClip, reviewer: User
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    workflow.decide(clip, reviewer, Verdict.APPROVE)
    db.session.commit()
    with nothing_changed(), pytest.raises(StateConflict, match="already gave your verdict"):
        claims.claim(clip, reviewer)


def test_with_two_required_review_next_skips_a_clip_one_already_approved(
    four_eyes: None, make_clip: MakeClip, reviewer: User
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    workflow.decide(clip, reviewer, Verdict.APPROVE)
    db.session.commit()
    assert claims.claim_next(reviewer) is None


def test_with_two_required_a_deciding_again_after_approving_is_a_conflict(
    four_eyes: None, make_clip: MakeClip, reviewer: User
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    workflow.decide(clip, reviewer, Verdict.APPROVE)
    db.session.commit()
    with nothing_changed(), pytest.raises(StateConflict, match="already gave your verdict"):
        workflow.decide(clip, reviewer, Verdict.APPROVE)


def test_with_two_required_any_rejection_ends_it(
    four_eyes: None, make_user: MakeUser, make_clip: MakeClip, reviewer: User
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    workflow.decide(clip, reviewer, Verdict.APPROVE)
    db.session.commit()
    second = make_user(Role.REVIEWER)
    claims.claim(clip, second)
    workflow.decide(clip, second, Verdict.REJECT, category="violence", reason="Gore at 0:01")
    db.session.commit()
    verdicts = db.session.scalars(select(Decision.verdict).order_by(Decision.id)).all()
    assert (clip.status, verdicts) == (ClipStatus.REJECTED, [Verdict.APPROVE, Verdict.REJECT])


# --- takedown -----------------------------------------------------------------------------------


def test_takedown_records_who_why_and_when(
    make_clip: MakeClip, admin: User, clock: FrozenClock
) -> None:
    clip = make_clip(ClipStatus.APPROVED)
    workflow.take_down(clip, admin, "  Rights complaint  ")
    assert (clip.taken_down_by_id, clip.takedown_reason, clip.taken_down_at) == (
        admin.id,
        "Rights complaint",
        clock.now,
    )


def test_takedown_needs_a_reason(make_clip: MakeClip, admin: User) -> None:
    clip = make_clip(ClipStatus.APPROVED)
    with nothing_changed(), pytest.raises(InvalidInput):
        workflow.take_down(clip, admin, "   ")


def test_takedown_keeps_the_approval_on_record(
    make_clip: MakeClip, reviewer: User, admin: User
) -> None:
    clip = make_clip(ClipStatus.TAKEN_DOWN, reviewer=reviewer, admin=admin)
    assert (clip.decided_by_id, clip.decided_at is not None) == (reviewer.id, True)


# --- versions -----------------------------------------------------------------------------------


def test_a_rejected_clip_takes_one_new_version(make_clip: MakeClip) -> None:
    rejected = make_clip(ClipStatus.REJECTED)
    make_clip(ClipStatus.UPLOADING, tester=rejected.tester, previous=rejected)
    with nothing_changed(), pytest.raises(StateConflict, match="newer version"):
        workflow.start_upload(rejected.tester, title="again", previous=rejected)


def test_a_new_version_that_failed_verification_frees_the_rejected_clip(
    make_clip: MakeClip,
) -> None:
    rejected = make_clip(ClipStatus.REJECTED)
    make_clip(ClipStatus.FAILED, tester=rejected.tester, previous=rejected)
    retry = workflow.start_upload(rejected.tester, title="again", previous=rejected)
    assert (retry.previous_version_id, retry.version) == (rejected.id, 2)


def test_only_its_tester_makes_a_new_version(make_user: MakeUser, make_clip: MakeClip) -> None:
    rejected = make_clip(ClipStatus.REJECTED)
    stranger = make_user(Role.TESTER)
    with nothing_changed(), pytest.raises(NotFound):
        workflow.start_upload(stranger, title="mine now", previous=rejected)


@pytest.mark.parametrize("role", [Role.REVIEWER, Role.ADMIN])
def test_only_testers_upload(make_user: MakeUser, role: Role) -> None:
    someone = make_user(role)
    with nothing_changed(), pytest.raises(NotAllowed):
        workflow.start_upload(someone, title="x")


def test_a_verified_new_version_logs_that_it_supersedes_the_old(make_clip: MakeClip) -> None:
    rejected = make_clip(ClipStatus.REJECTED)
    make_clip(ClipStatus.WAITING, tester=rejected.tester, previous=rejected)
    superseded = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "clip.superseded"))
    assert superseded is not None
    assert superseded.subject_id == rejected.id
