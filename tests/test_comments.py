"""Comments at timecodes: threads on a clip, rejections that cite them, pages and the API.

A comment sits at a moment (or a range, at to until) of a verified clip; replies join the
thread's first comment and have no time of their own. The clip's tester and the staff may
comment; a tester reads reviewers as "a reviewer". Every comment is logged and notified.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from approval.extensions import db
from approval.models import (
    COMMENT_MAX_CHARS,
    AuditEvent,
    Clip,
    ClipStatus,
    Comment,
    Decision,
    Notification,
    Role,
    User,
    Verdict,
)
from approval.ops import comments, workflow
from approval.ops.errors import InvalidInput, NotFound, StateConflict
from tests.plugins.api import bearer, problem
from tests.plugins.snapshot import nothing_changed
from tests.plugins.web import SignIn, csrf_token

MakeUser = Callable[..., User]
MakeClip = Callable[..., Clip]

#: The fake clips of the factories last 2.0 seconds.
DURATION = 2.0


def comment_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Comment)) or 0


@contextmanager
def no_comment_stored() -> Iterator[None]:
    """Nothing changed at all: no comment, and none of the tables the snapshot counts."""
    before = comment_count()
    with nothing_changed():
        yield
    assert comment_count() == before


def events(action: str) -> list[dict[str, Any]]:
    found = db.session.scalars(select(AuditEvent).where(AuditEvent.action == action))
    return [{**json.loads(e.data), "actor": e.actor_id, "clip": e.clip_id} for e in found]


def notes_for(user: User) -> list[Notification]:
    return list(
        db.session.scalars(
            select(Notification)
            .where(Notification.user_id == user.id, Notification.kind.like("comment.%"))
            .order_by(Notification.id)
        )
    )


# --- the operations -------------------------------------------------------------------------------


def test_a_reviewer_comments_at_a_moment(app: Flask, make_clip: MakeClip, reviewer: User) -> None:
    clip = make_clip(ClipStatus.WAITING)
    comment = comments.add_comment(clip, reviewer, "  The hand has six fingers.  ", at_seconds=1.25)
    db.session.commit()
    assert (comment.clip_id, comment.author_id, comment.thread_id) == (clip.id, reviewer.id, None)
    assert (comment.at_seconds, comment.until_seconds) == (1.25, None)
    assert comment.body == "The hand has six fingers."


def test_a_comment_can_span_a_range(app: Flask, make_clip: MakeClip, reviewer: User) -> None:
    clip = make_clip(ClipStatus.WAITING)
    comment = comments.add_comment(clip, reviewer, "Flicker", at_seconds=0.5, until_seconds=2.0)
    assert (comment.at_seconds, comment.until_seconds) == (0.5, 2.0)


def test_a_comment_without_a_time_is_about_the_whole_clip(
    app: Flask, make_clip: MakeClip, reviewer: User
) -> None:
    clip = make_clip(ClipStatus.WAITING)
    comment = comments.add_comment(clip, reviewer, "Lovely light overall")
    assert (comment.at_seconds, comment.until_seconds) == (None, None)


def test_the_clips_tester_may_comment_on_it(app: Flask, make_clip: MakeClip, tester: User) -> None:
    clip = make_clip(ClipStatus.REJECTED, tester=tester)
    comment = comments.add_comment(clip, tester, "Fixed in the next version", at_seconds=0)
    assert comment.author_id == tester.id


def test_an_admin_may_comment(app: Flask, make_clip: MakeClip, admin: User) -> None:
    clip = make_clip(ClipStatus.APPROVED)
    assert comments.add_comment(clip, admin, "Rights checked").author_id == admin.id


def test_another_tester_cannot_comment_and_learns_nothing(
    app: Flask, make_clip: MakeClip, make_user: MakeUser
) -> None:
    clip = make_clip(ClipStatus.WAITING)
    stranger = make_user(Role.TESTER)
    with no_comment_stored(), pytest.raises(NotFound):
        comments.add_comment(clip, stranger, "Mine is better")


@pytest.mark.parametrize("status", [ClipStatus.UPLOADING, ClipStatus.VERIFYING, ClipStatus.FAILED])
def test_only_verified_clips_take_comments(
    app: Flask, make_clip: MakeClip, reviewer: User, status: ClipStatus
) -> None:
    clip = make_clip(status)
    with no_comment_stored(), pytest.raises(StateConflict, match="checked"):
        comments.add_comment(clip, reviewer, "Too early")


@pytest.mark.parametrize(
    ("at", "until", "field"),
    [
        (-0.1, None, "at"),
        (2.01, None, "at"),
        (float("nan"), None, "at"),
        (float("inf"), None, "at"),
        (1.0, 1.0, "until"),
        (1.5, 1.0, "until"),
        (1.0, 2.5, "until"),
        (None, 1.0, "until"),
        (1.0, float("nan"), "until"),
    ],
)
def test_a_time_outside_the_clip_is_refused_naming_the_field(
    app: Flask, make_clip: MakeClip, reviewer: User, at: float, until: float, field: str
) -> None:
    clip = make_clip(ClipStatus.WAITING)
    with no_comment_stored(), pytest.raises(InvalidInput) as refused:
        comments.add_comment(clip, reviewer, "Here", at_seconds=at, until_seconds=until)
    assert refused.value.field == field
    assert refused.value.status_code == 422


def test_the_very_end_of_the_clip_is_a_moment_in_it(
    app: Flask, make_clip: MakeClip, reviewer: User
) -> None:
    clip = make_clip(ClipStatus.WAITING)
    assert comments.add_comment(clip, reviewer, "Last frame", at_seconds=DURATION).at_seconds == 2.0


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("", "empty"),
        ("   \n\t ", "empty"),
        ("x" * 10_000, "2,000"),
        ("x" * (COMMENT_MAX_CHARS + 1), "2,000"),
        ("before\x00after", "NUL"),
    ],
)
def test_an_unusable_body_is_refused_and_nothing_stored(
    app: Flask, make_clip: MakeClip, reviewer: User, body: str, says: str
) -> None:
    clip = make_clip(ClipStatus.WAITING)
    with no_comment_stored(), pytest.raises(InvalidInput, match=says) as refused:
        comments.add_comment(clip, reviewer, body, at_seconds=1.0)
    assert refused.value.field == "body"


def test_a_body_of_exactly_the_limit_is_kept(
    app: Flask, make_clip: MakeClip, reviewer: User
) -> None:
    clip = make_clip(ClipStatus.WAITING)
    assert len(comments.add_comment(clip, reviewer, "y" * COMMENT_MAX_CHARS).body) == 2000


def test_a_reply_joins_the_thread_and_has_no_time(
    app: Flask, make_clip: MakeClip, reviewer: User, tester: User
) -> None:
    clip = make_clip(ClipStatus.WAITING, tester=tester)
    first = comments.add_comment(clip, reviewer, "Why the blur?", at_seconds=1.0)
    answer = comments.reply(first, tester, "Motion blur setting; will lower it")
    db.session.commit()
    assert (answer.thread_id, answer.clip_id, answer.at_seconds) == (first.id, clip.id, None)
    assert [r.id for r in first.replies] == [answer.id]


def test_a_reply_to_a_reply_attaches_to_the_threads_first_comment(
    app: Flask, make_clip: MakeClip, reviewer: User, tester: User
) -> None:
    clip = make_clip(ClipStatus.WAITING, tester=tester)
    first = comments.add_comment(clip, reviewer, "Why the blur?", at_seconds=1.0)
    answer = comments.reply(first, tester, "Motion blur")
    again = comments.reply(answer, reviewer, "Thanks")
    assert again.thread_id == first.id


def test_a_reply_to_a_comment_on_a_clip_one_may_not_see_is_not_found(
    app: Flask, make_clip: MakeClip, reviewer: User, make_user: MakeUser
) -> None:
    clip = make_clip(ClipStatus.WAITING)
    first = comments.add_comment(clip, reviewer, "Hm", at_seconds=1.0)
    stranger = make_user(Role.TESTER)
    with no_comment_stored(), pytest.raises(NotFound):
        comments.reply(first, stranger, "Me too")


def test_an_empty_reply_is_refused(app: Flask, make_clip: MakeClip, reviewer: User) -> None:
    clip = make_clip(ClipStatus.WAITING)
    first = comments.add_comment(clip, reviewer, "Hm", at_seconds=1.0)
    db.session.commit()
    with no_comment_stored(), pytest.raises(InvalidInput) as refused:
        comments.reply(first, reviewer, " ")
    assert refused.value.field == "body"


def test_each_comment_is_logged_with_its_place_and_words(
    app: Flask, make_clip: MakeClip, reviewer: User, tester: User
) -> None:
    clip = make_clip(ClipStatus.WAITING, tester=tester)
    first = comments.add_comment(clip, reviewer, "Six fingers", at_seconds=0.5, until_seconds=1)
    answer = comments.reply(first, tester, "Will fix")
    db.session.commit()
    assert events("comment.added") == [
        {"comment": first.id, "thread": None, "at": 0.5, "until": 1.0, "body": "Six fingers",
         "actor": reviewer.id, "clip": clip.id},
        {"comment": answer.id, "thread": first.id, "at": None, "until": None, "body": "Will fix",
         "actor": tester.id, "clip": clip.id},
    ]  # fmt: skip


def test_threads_come_oldest_first_with_their_replies(
    app: Flask, make_clip: MakeClip, reviewer: User, tester: User
) -> None:
    clip = make_clip(ClipStatus.WAITING, tester=tester)
    late = comments.add_comment(clip, reviewer, "Later moment", at_seconds=1.5)
    early = comments.add_comment(clip, reviewer, "Earlier moment", at_seconds=0.2)
    answer = comments.reply(late, tester, "ok")
    db.session.commit()
    threads = comments.threads(clip)
    assert [t.id for t in threads] == [late.id, early.id]
    assert [r.id for r in threads[0].replies] == [answer.id]


# --- notifications --------------------------------------------------------------------------------


def test_a_reviewers_comment_tells_the_tester_without_naming_the_reviewer(
    app: Flask, make_clip: MakeClip, make_user: MakeUser, tester: User
) -> None:
    reviewer = make_user(Role.REVIEWER, display_name="Rita Secret")
    clip = make_clip(ClipStatus.WAITING, tester=tester, title="Ball")
    comments.add_comment(clip, reviewer, "Six fingers", at_seconds=1.5)
    db.session.commit()
    [note] = notes_for(tester)
    assert note.clip_id == clip.id
    assert "A reviewer commented" in note.subject + note.body
    assert "0:01.5" in note.body
    assert "Six fingers" in note.body
    assert "Rita" not in note.subject + note.body


def test_a_reviewers_reply_tells_the_tester(
    app: Flask, make_clip: MakeClip, reviewer: User, tester: User
) -> None:
    clip = make_clip(ClipStatus.WAITING, tester=tester)
    first = comments.add_comment(clip, tester, "Is the ending too fast?", at_seconds=1.0)
    comments.reply(first, reviewer, "A little")
    db.session.commit()
    [note] = notes_for(tester)
    assert "A little" in note.body


def test_a_testers_reply_tells_the_reviewers_in_that_thread(
    app: Flask, make_clip: MakeClip, make_user: MakeUser, tester: User
) -> None:
    first_reviewer, second_reviewer, bystander = (make_user(Role.REVIEWER) for _ in range(3))
    clip = make_clip(ClipStatus.WAITING, tester=tester)
    first = comments.add_comment(clip, first_reviewer, "Blur", at_seconds=1.0)
    comments.reply(first, second_reviewer, "Agreed")
    comments.add_comment(clip, bystander, "Elsewhere", at_seconds=0.1)
    comments.reply(first, tester, "Will fix the blur")
    db.session.commit()
    told = {n.user_id for n in db.session.scalars(select(Notification)) if "fix the blur" in n.body}
    assert told == {first_reviewer.id, second_reviewer.id}


def test_nobody_is_told_of_their_own_comment(app: Flask, make_clip: MakeClip, tester: User) -> None:
    clip = make_clip(ClipStatus.WAITING, tester=tester)
    comments.add_comment(clip, tester, "Note to self", at_seconds=1.0)
    db.session.commit()
    assert notes_for(tester) == []


# --- rejections that cite comments ----------------------------------------------------------------


def test_a_rejection_can_cite_comments_of_its_clip(
    app: Flask, make_clip: MakeClip, reviewer: User
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    blur = comments.add_comment(clip, reviewer, "Blur", at_seconds=1.0)
    hand = comments.add_comment(clip, reviewer, "Hand", at_seconds=0.3)
    decision = workflow.decide(
        clip, reviewer, Verdict.REJECT, category="quality", reason="See comments",
        comment_ids=[hand.id, blur.id],
    )  # fmt: skip
    db.session.commit()
    assert [c.id for c in db.session.get(Decision, decision.id).comments] == [blur.id, hand.id]
    assert events("clip.rejected")[-1]["comments"] == [blur.id, hand.id]


def test_a_rejection_citing_another_clips_comment_is_refused(
    app: Flask, make_clip: MakeClip, reviewer: User
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    elsewhere = comments.add_comment(make_clip(ClipStatus.WAITING), reviewer, "x", at_seconds=1)
    db.session.commit()
    with no_comment_stored(), pytest.raises(InvalidInput, match="this clip") as refused:
        workflow.decide(
            clip, reviewer, Verdict.REJECT, category="quality", reason="r",
            comment_ids=[elsewhere.id],
        )  # fmt: skip
    assert refused.value.field == "comment_ids"
    assert db.session.get(Clip, clip.id).status == ClipStatus.IN_REVIEW


# --- pages ----------------------------------------------------------------------------------------


def page_text(response: Any) -> str:
    return response.get_data(as_text=True)


def post_comment(
    client: FlaskClient, clip: Clip, page: str, back: str = "clip", **fields: str
) -> Any:
    data = {f"comment-{name}": value for name, value in fields.items()}
    return client.post(
        f"/clips/{clip.id}/comments",
        data={**data, "back": back, "csrf_token": csrf_token(client, page)},
    )


def post_reply(client: FlaskClient, clip: Clip, first: Comment, page: str, body: str) -> Any:
    return client.post(
        f"/clips/{clip.id}/comments/{first.id}/replies",
        data={f"reply-{first.id}-body": body, "csrf_token": csrf_token(client, page)},
    )


def test_the_clip_page_shows_threads_with_times_markers_and_forms(
    client: FlaskClient, signed_in: SignIn, make_clip: MakeClip, make_user: MakeUser, tester: User
) -> None:
    reviewer = make_user(Role.REVIEWER, display_name="Rita Secret")
    clip = make_clip(ClipStatus.WAITING, tester=tester)
    first = comments.add_comment(clip, reviewer, "Six fingers", at_seconds=1.5, until_seconds=2)
    comments.reply(first, tester, "Will fix <b>that</b>")
    db.session.commit()
    signed_in(tester)
    html = page_text(client.get(f"/clips/{clip.id}"))
    assert 'id="comment-markers"' in html
    assert f'id="comment-{first.id}"' in html
    assert 'data-marker-at="1.5" data-marker-until="2.0"' in html
    assert 'data-seek="1.5"' in html
    assert ">0:01.5" in html
    assert "Six fingers" in html
    assert "Will fix &lt;b&gt;that&lt;/b&gt;" in html
    assert "a reviewer" in html
    assert "Rita" not in html
    assert 'name="comment-at"' in html
    assert f'name="reply-{first.id}-body"' in html
    assert "js/comments.js" in html


def test_the_review_page_shows_the_panel_with_the_testers_name(
    client: FlaskClient, signed_in: SignIn, make_clip: MakeClip, reviewer: User, make_user: MakeUser
) -> None:
    tester = make_user(Role.TESTER, display_name="Tess Tester")
    clip = make_clip(ClipStatus.WAITING, tester=tester)
    comments.add_comment(clip, tester, "Look at the ending", at_seconds=1.9)
    db.session.commit()
    signed_in(reviewer)
    html = page_text(client.get(f"/review/{clip.id}"))
    assert 'id="comment-markers"' in html
    assert "Look at the ending" in html
    assert "Tess Tester" in html
    assert 'name="back" value="review"' in html


def test_a_tester_comments_from_the_clip_page_without_javascript(
    client: FlaskClient, signed_in: SignIn, make_clip: MakeClip, tester: User
) -> None:
    clip = make_clip(ClipStatus.WAITING, tester=tester)
    signed_in(tester)
    response = post_comment(client, clip, f"/clips/{clip.id}", body="Is 0:01 too dark?", at="1")
    [comment] = db.session.scalars(select(Comment)).all()
    assert response.status_code == 302
    assert response.headers["Location"] == f"/clips/{clip.id}#comment-{comment.id}"
    assert (comment.body, comment.at_seconds, comment.author_id) == (
        "Is 0:01 too dark?",
        1.0,
        tester.id,
    )


def test_a_reviewer_comments_from_the_review_page_and_returns_there(
    client: FlaskClient, signed_in: SignIn, make_clip: MakeClip, reviewer: User
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    signed_in(reviewer)
    response = post_comment(
        client, clip, f"/review/{clip.id}", back="review", body="Flicker", at="0.5", until="1.25"
    )
    comment = db.session.scalars(select(Comment)).one()
    assert response.headers["Location"] == f"/review/{clip.id}#comment-{comment.id}"
    assert (comment.at_seconds, comment.until_seconds) == (0.5, 1.25)


def test_a_reply_from_the_page_returns_to_it(
    client: FlaskClient, signed_in: SignIn, make_clip: MakeClip, reviewer: User, tester: User
) -> None:
    clip = make_clip(ClipStatus.WAITING, tester=tester)
    first = comments.add_comment(clip, reviewer, "Blur?", at_seconds=1.0)
    db.session.commit()
    signed_in(tester)
    response = post_reply(client, clip, first, f"/clips/{clip.id}", "Yes, on purpose")
    answer = db.session.scalars(select(Comment).where(Comment.thread_id == first.id)).one()
    assert response.headers["Location"] == f"/clips/{clip.id}#comment-{answer.id}"
    assert answer.body == "Yes, on purpose"


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"body": "Late", "at": "5"}, "within the clip: 0 to 2 seconds"),
        ({"body": "Backwards", "at": "1.5", "until": "1"}, "after the start"),
        ({"body": "Word", "at": "soon"}, "number"),
        ({"body": "", "at": "1"}, "empty"),
        ({"body": "x" * 10_000, "at": "1"}, "at most 2,000 characters"),
    ],
)
def test_a_bad_comment_is_shown_on_the_form_keeping_the_input(
    client: FlaskClient, signed_in: SignIn, make_clip: MakeClip, tester: User,
    fields: dict[str, str], says: str,
) -> None:  # fmt: skip
    clip = make_clip(ClipStatus.WAITING, tester=tester)
    signed_in(tester)
    page = f"/clips/{clip.id}"
    token = csrf_token(client, page)
    data = {f"comment-{name}": value for name, value in fields.items()}
    with no_comment_stored():
        response = client.post(f"{page}/comments", data={**data, "csrf_token": token})
    html = page_text(response)
    assert response.status_code == 422
    assert says in html
    assert 'aria-invalid="true"' in html
    assert fields["body"][:50] in html
    assert f'value="{fields["at"]}"' in html


def test_a_bad_reply_is_shown_beside_its_thread(
    client: FlaskClient, signed_in: SignIn, make_clip: MakeClip, reviewer: User
) -> None:
    clip = make_clip(ClipStatus.WAITING)
    first = comments.add_comment(clip, reviewer, "Blur?", at_seconds=1.0)
    db.session.commit()
    signed_in(reviewer)
    with no_comment_stored():
        response = post_reply(client, clip, first, f"/review/{clip.id}", "y" * 10_000)
    assert response.status_code == 422
    assert f'id="reply-{first.id}-body-errors"' in page_text(response)


def test_a_reply_on_a_clip_one_may_not_see_is_404_and_stores_nothing(
    client: FlaskClient, signed_in: SignIn, make_clip: MakeClip, reviewer: User, make_user: MakeUser
) -> None:
    clip = make_clip(ClipStatus.WAITING)
    first = comments.add_comment(clip, reviewer, "Blur?", at_seconds=1.0)
    db.session.commit()
    signed_in(make_user(Role.TESTER))
    with no_comment_stored():
        response = post_reply(client, clip, first, "/clips/", "Mine")
    assert response.status_code == 404


def test_a_reply_naming_a_comment_of_another_clip_is_404(
    client: FlaskClient, signed_in: SignIn, make_clip: MakeClip, reviewer: User
) -> None:
    clip, other = make_clip(ClipStatus.WAITING), make_clip(ClipStatus.WAITING)
    elsewhere = comments.add_comment(other, reviewer, "There", at_seconds=1.0)
    db.session.commit()
    signed_in(reviewer)
    token = csrf_token(client, "/review/")
    with no_comment_stored():
        response = client.post(
            f"/clips/{clip.id}/comments/{elsewhere.id}/replies",
            data={f"reply-{elsewhere.id}-body": "Here", "csrf_token": token},
        )
    assert response.status_code == 404


def test_a_comment_on_a_clip_still_being_checked_is_refused(
    client: FlaskClient, signed_in: SignIn, make_clip: MakeClip, tester: User
) -> None:
    clip = make_clip(ClipStatus.VERIFYING, tester=tester)
    signed_in(tester)
    with no_comment_stored():
        response = post_comment(client, clip, f"/clips/{clip.id}", body="Hello")
    assert response.status_code == 409


def test_the_reject_form_offers_the_clips_comments_to_cite(
    client: FlaskClient, signed_in: SignIn, make_clip: MakeClip, reviewer: User
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    blur = comments.add_comment(clip, reviewer, "Blur here", at_seconds=1.0)
    db.session.commit()
    signed_in(reviewer)
    html = page_text(client.get(f"/review/{clip.id}"))
    assert f'name="comment_ids" type="checkbox" value="{blur.id}"' in html


def test_a_rejection_citing_comments_shows_them_to_the_tester(
    client: FlaskClient, signed_in: SignIn, make_clip: MakeClip, reviewer: User, tester: User,
    app: Flask,
) -> None:  # fmt: skip
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer, tester=tester)
    blur = comments.add_comment(clip, reviewer, "Blur here", at_seconds=1.0)
    comments.add_comment(clip, reviewer, "Not cited", at_seconds=0.2)
    db.session.commit()
    signed_in(reviewer)
    response = client.post(
        f"/review/{clip.id}/reject",
        data={
            "category": "quality", "reason": "See the comment", "comment_ids": [str(blur.id)],
            "csrf_token": csrf_token(client, f"/review/{clip.id}"),
        },
    )  # fmt: skip
    assert response.status_code == 302
    decision = db.session.scalars(select(Decision).where(Decision.clip_id == clip.id)).one()
    assert [c.id for c in decision.comments] == [blur.id]
    client.post("/logout", data={"csrf_token": csrf_token(client, "/account")})
    signed_in(tester)
    html = page_text(client.get(f"/clips/{clip.id}"))
    cited = html.split('class="cited-comments"')[1].split("</ul>")[0]
    assert "Blur here" in cited
    assert f'href="#comment-{blur.id}"' in cited
    assert "Not cited" not in cited


def test_a_rejection_citing_a_comment_of_another_clip_is_refused_on_the_form(
    client: FlaskClient, signed_in: SignIn, make_clip: MakeClip, reviewer: User
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    elsewhere = comments.add_comment(make_clip(ClipStatus.WAITING), reviewer, "x", at_seconds=1)
    db.session.commit()
    signed_in(reviewer)
    token = csrf_token(client, f"/review/{clip.id}")
    with no_comment_stored():
        response = client.post(
            f"/review/{clip.id}/reject",
            data={"category": "quality", "reason": "r", "comment_ids": [str(elsewhere.id)],
                  "csrf_token": token},
        )  # fmt: skip
    assert response.status_code == 422
    assert "only at comments on this clip" in page_text(response)


# --- the API --------------------------------------------------------------------------------------


def test_the_api_adds_a_comment_and_lists_the_threads(
    client: FlaskClient, make_clip: MakeClip, reviewer: User, tester: User
) -> None:
    clip = make_clip(ClipStatus.WAITING, tester=tester)
    made = client.post(
        f"/api/v1/clips/{clip.id}/comments",
        json={"body": " Six fingers ", "at": 1.5, "until": 2},
        headers=bearer(reviewer),
    )
    assert made.status_code == 201, made.get_json()
    thread = made.get_json()
    assert (thread["body"], thread["at"], thread["until"], thread["thread"]) == (
        "Six fingers", 1.5, 2.0, None,
    )  # fmt: skip
    answered = client.post(
        f"/api/v1/clips/{clip.id}/comments/{thread['id']}/replies",
        json={"body": "Will fix"},
        headers=bearer(tester),
    )
    assert answered.status_code == 201
    assert answered.get_json()["thread"] == thread["id"]
    listed = client.get(f"/api/v1/clips/{clip.id}/comments", headers=bearer(tester)).get_json()
    [only] = listed["items"]
    assert only["author"] is None
    assert only["author_name"] == "a reviewer"
    assert [(r["body"], r["by_tester"], r["author"]["id"]) for r in only["replies"]] == [
        ("Will fix", True, tester.id)
    ]


def test_the_api_names_reviewers_to_the_staff(
    client: FlaskClient, make_clip: MakeClip, reviewer: User, admin: User
) -> None:
    clip = make_clip(ClipStatus.WAITING)
    comments.add_comment(clip, reviewer, "Blur", at_seconds=1.0)
    db.session.commit()
    listed = client.get(f"/api/v1/clips/{clip.id}/comments", headers=bearer(admin)).get_json()
    assert listed["items"][0]["author"] == {"id": reviewer.id, "name": reviewer.display_name}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"body": "Late", "at": 2.5}, "at"),
        ({"body": "Early", "at": -1}, "at"),
        ({"body": "Backwards", "at": 1.5, "until": 1.0}, "until"),
        ({"body": "Past the end", "at": 1.5, "until": 9}, "until"),
        ({"body": "No start", "until": 1.0}, "until"),
        ({"body": "", "at": 1}, "body"),
        ({"body": "   ", "at": 1}, "body"),
        ({"body": "x" * 10_000, "at": 1}, "body"),
        ({"body": "a\x00b", "at": 1}, "body"),
        ({"at": 1}, "body"),
    ],
)
def test_the_api_refuses_a_bad_comment_with_422_naming_the_field(
    client: FlaskClient, make_clip: MakeClip, reviewer: User, body: dict[str, Any], field: str
) -> None:
    clip = make_clip(ClipStatus.WAITING)
    headers = bearer(reviewer)
    with no_comment_stored():
        response = client.post(f"/api/v1/clips/{clip.id}/comments", json=body, headers=headers)
    refusal = problem(response, 422)
    assert [error["field"] for error in refusal["errors"]] == [field]
    assert refusal["detail"].startswith(f"{field}:") or field in refusal["detail"]


def test_the_api_refuses_a_bad_reply_body_with_422(
    client: FlaskClient, make_clip: MakeClip, reviewer: User
) -> None:
    clip = make_clip(ClipStatus.WAITING)
    first = comments.add_comment(clip, reviewer, "Blur", at_seconds=1.0)
    headers = bearer(reviewer)
    with no_comment_stored():
        response = client.post(
            f"/api/v1/clips/{clip.id}/comments/{first.id}/replies",
            json={"body": "x" * 10_000},
            headers=headers,
        )
    assert problem(response, 422)["errors"][0]["field"] == "body"


def test_the_api_answers_404_for_a_reply_on_a_clip_one_may_not_see(
    client: FlaskClient, make_clip: MakeClip, reviewer: User, make_user: MakeUser
) -> None:
    clip = make_clip(ClipStatus.WAITING)
    first = comments.add_comment(clip, reviewer, "Blur", at_seconds=1.0)
    headers = bearer(make_user(Role.TESTER))
    with no_comment_stored():
        reply = client.post(
            f"/api/v1/clips/{clip.id}/comments/{first.id}/replies",
            json={"body": "Mine"},
            headers=headers,
        )
        listing = client.get(f"/api/v1/clips/{clip.id}/comments", headers=headers)
        new = client.post(
            f"/api/v1/clips/{clip.id}/comments", json={"body": "Mine"}, headers=headers
        )
    problem(reply, 404)
    problem(listing, 404)
    problem(new, 404)


def test_the_api_answers_404_for_a_comment_of_another_clip(
    client: FlaskClient, make_clip: MakeClip, reviewer: User
) -> None:
    clip, other = make_clip(ClipStatus.WAITING), make_clip(ClipStatus.WAITING)
    elsewhere = comments.add_comment(other, reviewer, "There", at_seconds=1.0)
    headers = bearer(reviewer)
    with no_comment_stored():
        response = client.post(
            f"/api/v1/clips/{clip.id}/comments/{elsewhere.id}/replies",
            json={"body": "Here"},
            headers=headers,
        )
    problem(response, 404)


def test_the_api_answers_409_on_a_clip_not_checked_yet(
    client: FlaskClient, make_clip: MakeClip, tester: User
) -> None:
    clip = make_clip(ClipStatus.UPLOADING, tester=tester)
    headers = bearer(tester)
    with no_comment_stored():
        response = client.post(
            f"/api/v1/clips/{clip.id}/comments", json={"body": "Hello"}, headers=headers
        )
    problem(response, 409)


def test_the_api_decision_can_cite_comments(
    client: FlaskClient, make_clip: MakeClip, reviewer: User
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    blur = comments.add_comment(clip, reviewer, "Blur", at_seconds=1.0)
    db.session.commit()
    response = client.post(
        f"/api/v1/clips/{clip.id}/decision",
        json={
            "decision": "reject",
            "category": "quality",
            "reason": "See",
            "comment_ids": [blur.id],
        },
        headers=bearer(reviewer),
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["decision"]["comment_ids"] == [blur.id]


def test_the_api_decision_citing_another_clips_comment_is_422(
    client: FlaskClient, make_clip: MakeClip, reviewer: User
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    elsewhere = comments.add_comment(make_clip(ClipStatus.WAITING), reviewer, "x", at_seconds=1)
    headers = bearer(reviewer)
    with no_comment_stored():
        response = client.post(
            f"/api/v1/clips/{clip.id}/decision",
            json={"decision": "reject", "category": "quality", "reason": "r",
                  "comment_ids": [elsewhere.id]},
            headers=headers,
        )  # fmt: skip
    refusal = problem(response, 422)
    assert refusal["errors"] == [
        {"field": "comment_ids", "message": refusal["errors"][0]["message"]}
    ]
    assert "only at comments on this clip" in refusal["detail"]


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_clip_id_no_row_can_have_is_404_for_both_methods_of_the_comments_path(
    client: FlaskClient, as_reviewer: dict[str, str], method: str
) -> None:
    response = client.open(
        "/api/v1/clips/2147483648/comments", method=method, json={"body": "x"}, headers=as_reviewer
    )
    problem(response, 404)


def test_the_rejection_notice_names_the_moments_of_the_cited_comments(
    app: Flask, make_clip: MakeClip, reviewer: User, tester: User
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer, tester=tester)
    blur = comments.add_comment(clip, reviewer, "Blur", at_seconds=1.0)
    hand = comments.add_comment(clip, reviewer, "Hand", at_seconds=0.3)
    workflow.decide(
        clip, reviewer, Verdict.REJECT, category="quality", reason="See comments",
        comment_ids=[blur.id, hand.id],
    )  # fmt: skip
    db.session.commit()
    notice = db.session.scalars(
        select(Notification).where(Notification.kind == "clip.rejected")
    ).one()
    assert "See the comments at 0:00.3 and 0:01." in notice.body
