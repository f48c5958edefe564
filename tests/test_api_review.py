"""The API's review, share-link and audit endpoints: the review pages' rules, over JSON."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from approval import audit
from approval.extensions import db
from approval.models import AuditEvent, Clip, ClipStatus, Decision, Role, User
from tests.plugins.api import SITE, bearer, problem
from tests.plugins.factories import FrozenClock
from tests.plugins.snapshot import nothing_changed

MakeUser = Callable[..., User]
MakeClip = Callable[..., Clip]


def decide(client: FlaskClient, clip: Clip, headers: dict[str, str], **body: Any) -> Any:
    return client.post(
        f"/api/v1/clips/{clip.id}/decision", json={"decision": "approve", **body}, headers=headers
    )


# --- claims --------------------------------------------------------------------------------------


def test_claim_takes_the_oldest_waiting_clip(
    client: FlaskClient, reviewer: User, as_reviewer: dict[str, str], make_clip: MakeClip,
    clock: FrozenClock,
) -> None:  # fmt: skip
    oldest = make_clip(ClipStatus.WAITING)
    clock.advance(minutes=1)
    make_clip(ClipStatus.WAITING)
    claimed = client.post("/api/v1/review/claim", headers=as_reviewer).get_json()
    assert (claimed["id"], claimed["status"]) == (oldest.id, "in_review")
    assert claimed["claim"]["reviewer"]["id"] == reviewer.id


def test_claim_on_an_empty_queue_is_204(client: FlaskClient, as_reviewer: dict[str, str]) -> None:
    response = client.post("/api/v1/review/claim", headers=as_reviewer)
    assert (response.status_code, response.data) == (204, b"")


def test_release_puts_the_clip_back(
    client: FlaskClient, as_reviewer: dict[str, str], make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.WAITING)
    client.post("/api/v1/review/claim", headers=as_reviewer)
    released = client.post(f"/api/v1/review/{clip.id}/release", headers=as_reviewer)
    assert released.get_json()["status"] == "waiting"


def test_releasing_a_clip_one_does_not_hold_is_409(
    client: FlaskClient, as_reviewer: dict[str, str], make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW)
    with nothing_changed():
        response = client.post(f"/api/v1/review/{clip.id}/release", headers=as_reviewer)
    body = problem(response, 409)
    assert body["detail"].startswith("Cannot release this clip. This clip is in review")


def test_renew_extends_the_lease(
    app: Flask, client: FlaskClient, as_reviewer: dict[str, str], make_clip: MakeClip,
    clock: FrozenClock,
) -> None:  # fmt: skip
    clip = make_clip(ClipStatus.WAITING)
    client.post(f"/api/v1/review/{clip.id}/claim", headers=as_reviewer)
    clock.advance(minutes=5)
    renewed = client.post(f"/api/v1/review/{clip.id}/renew", headers=as_reviewer).get_json()
    lease = app.config["CLAIM_LEASE_SECONDS"]
    expected = clock.now + timedelta(seconds=lease)
    assert datetime.fromisoformat(renewed["expires_at"]) == expected


# --- decisions -----------------------------------------------------------------------------------


def test_approve_under_a_claim(
    client: FlaskClient, as_reviewer: dict[str, str], make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.WAITING)
    client.post("/api/v1/review/claim", headers=as_reviewer)
    result = decide(client, clip, as_reviewer).get_json()
    assert result["clip"]["status"] == "approved"
    assert result["decision"]["decision"] == "approve"
    assert result["next"] is None


def test_reject_with_claim_next_moves_on(
    client: FlaskClient, as_reviewer: dict[str, str], make_clip: MakeClip, clock: FrozenClock
) -> None:
    clip = make_clip(ClipStatus.WAITING)
    clock.advance(minutes=1)
    following = make_clip(ClipStatus.WAITING)
    client.post("/api/v1/review/claim", headers=as_reviewer)
    result = decide(
        client, clip, as_reviewer, decision="reject", category="quality",
        reason="Flicker at the end", timecode=1.5, claim_next=True,
    ).get_json()  # fmt: skip
    assert result["clip"]["decision"] == {
        **result["clip"]["decision"],
        "decision": "reject", "category": "quality", "reason": "Flicker at the end",
        "timecode": 1.5,
    }  # fmt: skip
    assert (result["next"]["id"], result["next"]["status"]) == (following.id, "in_review")


def test_a_decision_that_lost_the_race_is_409_naming_the_winner(
    app: Flask, client: FlaskClient, as_reviewer: dict[str, str], make_user: MakeUser,
    make_clip: MakeClip, clock: FrozenClock,
) -> None:  # fmt: skip
    clip = make_clip(ClipStatus.WAITING)
    client.post("/api/v1/review/claim", headers=as_reviewer)
    clock.advance(seconds=app.config["CLAIM_LEASE_SECONDS"] + 1)  # the lease lapses...
    other = bearer(make_user(Role.REVIEWER, email="olga@example.com"))
    client.post("/api/v1/review/claim", headers=other)  # ...and another reviewer takes it
    decide(client, clip, other, decision="reject", category="rights", reason="A logo")
    with nothing_changed():
        response = decide(client, clip, as_reviewer)
    late = problem(response, 409)
    assert late["current_status"] == "rejected"
    assert "already decided" in late["detail"]
    assert "rejected (by Person" in late["detail"]
    assert db.session.scalar(select(func.count()).select_from(Decision)) == 1


def test_deciding_without_a_claim_is_409(
    client: FlaskClient, as_reviewer: dict[str, str], make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.WAITING)
    with nothing_changed():
        response = decide(client, clip, as_reviewer)
    assert "Claim the clip before deciding" in problem(response, 409)["detail"]


REQUIRED = "required to reject"
CATEGORIES = "use one of likeness, sexual, violence, rights, quality, other"
WITHIN = "The timecode must lie within the clip (0 to 2 seconds)."


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"category": REQUIRED, "reason": f"{REQUIRED}; the tester reads it"}),
        ({"category": "mood", "reason": "x"}, {"category": CATEGORIES}),
        ({"category": "quality", "reason": "x", "timecode": 99.0}, {"timecode": WITHIN}),
        (
            {"category": "quality", "reason": "x", "timecode": -1},
            {"timecode": "input should be greater than or equal to 0"},
        ),
    ],
)
def test_an_incomplete_rejection_names_each_field(
    client: FlaskClient, as_reviewer: dict[str, str], make_clip: MakeClip,
    body: dict[str, Any], errors: dict[str, str],
) -> None:  # fmt: skip
    clip = make_clip(ClipStatus.WAITING)
    client.post("/api/v1/review/claim", headers=as_reviewer)
    with nothing_changed():
        response = decide(client, clip, as_reviewer, decision="reject", **body)
    assert {e["field"]: e["message"] for e in problem(response, 422)["errors"]} == errors
    db.session.refresh(clip)
    assert clip.status == ClipStatus.IN_REVIEW


def test_a_reviewer_cannot_decide_their_own_clip(
    client: FlaskClient, make_user: MakeUser, make_clip: MakeClip
) -> None:
    both = make_user(Role.TESTER, Role.REVIEWER)
    clip = make_clip(ClipStatus.WAITING, tester=both)
    headers = bearer(both)
    with nothing_changed():
        response = client.post(f"/api/v1/review/{clip.id}/claim", headers=headers)
    body = problem(response, 403)
    assert body["detail"] == "You cannot review a clip you uploaded."


# --- share links ---------------------------------------------------------------------------------


def test_a_share_link_shows_its_url_once_and_works(
    client: FlaskClient, make_user: MakeUser, make_clip: MakeClip
) -> None:
    tester = make_user(Role.TESTER)
    clip = make_clip(ClipStatus.APPROVED, tester=tester, content=b"\x00" * 4096)
    headers = bearer(tester)
    created = client.post(
        f"/api/v1/clips/{clip.id}/share-links", json={"expires_in": 86400, "label": "press"},
        headers=headers,
    )  # fmt: skip
    assert created.status_code == 201
    link = created.get_json()
    assert link["expires_at"] == "2026-12-01T12:00:00Z"
    assert client.get(link["url"].removeprefix(SITE)).status_code == 200
    token = link["url"].rsplit("/", 1)[-1]
    detail = client.get(f"/api/v1/clips/{clip.id}", headers=headers).get_data(as_text=True)
    assert token not in detail
    assert '"label":"press"' in detail


def test_only_approved_clips_can_be_shared(
    client: FlaskClient, make_user: MakeUser, make_clip: MakeClip
) -> None:
    tester = make_user(Role.TESTER)
    clip = make_clip(ClipStatus.WAITING, tester=tester)
    headers = bearer(tester)
    with nothing_changed():
        response = client.post(f"/api/v1/clips/{clip.id}/share-links", headers=headers)
    assert "Only approved clips can be shared" in problem(response, 409)["detail"]


def test_deleting_a_link_revokes_it(
    client: FlaskClient, make_user: MakeUser, make_clip: MakeClip
) -> None:
    tester = make_user(Role.TESTER)
    clip = make_clip(ClipStatus.APPROVED, tester=tester, content=b"\x00" * 4096)
    headers = bearer(tester)
    link = client.post(f"/api/v1/clips/{clip.id}/share-links", headers=headers).get_json()
    assert client.delete(f"/api/v1/share-links/{link['id']}", headers=headers).status_code == 204
    with nothing_changed():
        assert client.get(link["url"].removeprefix(SITE)).status_code == 410
    assert client.delete(f"/api/v1/share-links/{link['id']}", headers=headers).status_code == 204


def test_other_testers_cannot_see_or_delete_a_link(
    client: FlaskClient, make_user: MakeUser, make_clip: MakeClip
) -> None:
    tester = make_user(Role.TESTER)
    clip = make_clip(ClipStatus.APPROVED, tester=tester, content=b"\x00" * 4096)
    link = client.post(f"/api/v1/clips/{clip.id}/share-links", headers=bearer(tester)).get_json()
    stranger = bearer(make_user(Role.TESTER))
    with nothing_changed():
        problem(client.delete(f"/api/v1/share-links/{link['id']}", headers=stranger), 404)
        problem(client.post(f"/api/v1/clips/{clip.id}/share-links", headers=stranger), 404)
    assert client.get(link["url"].removeprefix(SITE)).status_code == 200


# --- audit ---------------------------------------------------------------------------------------


def test_admins_page_through_the_log_with_filters(
    client: FlaskClient, make_user: MakeUser, make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.APPROVED)
    make_clip(ClipStatus.WAITING)
    headers = bearer(make_user(Role.ADMIN))
    ids: list[int] = []
    url: str | None = f"/api/v1/audit?clip={clip.id}&limit=2"
    while url is not None:
        page = client.get(url.removeprefix(SITE), headers=headers).get_json()
        ids += [event["id"] for event in page["items"]]
        url = page["next"]
    expected = db.session.scalars(
        select(AuditEvent.id).where(AuditEvent.clip_id == clip.id).order_by(AuditEvent.id.desc())
    ).all()
    assert ids == expected
    assert len(ids) > 2


def test_audit_events_carry_what_their_hash_covers(
    client: FlaskClient, make_user: MakeUser, make_clip: MakeClip
) -> None:
    make_clip(ClipStatus.WAITING)
    page = client.get("/api/v1/audit?action=clip.verified", headers=bearer(make_user(Role.ADMIN)))
    event = page.get_json()["items"][0]
    row = db.session.get(AuditEvent, event["id"])
    assert row is not None
    assert audit.event_hash(row) == event["hash"]
    assert event == {**row.as_dict(), "hash": row.hash}


def test_since_must_carry_a_utc_offset(client: FlaskClient, make_user: MakeUser) -> None:
    headers = bearer(make_user(Role.ADMIN))
    with nothing_changed():
        response = client.get("/api/v1/audit?since=2026-11-30T12:00:00", headers=headers)
    body = problem(response, 400)
    assert body["errors"][0]["field"] == "since"
    ok = client.get("/api/v1/audit?since=2026-11-30T12:00:00%2B01:00", headers=headers)
    assert ok.status_code == 200


def test_verify_reports_the_chain(client: FlaskClient, make_user: MakeUser) -> None:
    headers = bearer(make_user(Role.ADMIN))
    result = client.get("/api/v1/audit/verify", headers=headers).get_json()
    assert result == {
        "ok": True,
        "events": audit.event_count(),
        "head": audit.head_hash(),
        "checkpoint": audit.verify().checkpoint().line(),
    }
