"""Share links: approved clips only, tokens, expiry, passphrase, ranged delivery, revocation."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from approval.extensions import db
from approval.extensions import storage as app_storage
from approval.models import AuditEvent, Clip, ClipStatus, Role, ShareLink, User
from approval.ops import sharing, workflow
from tests.plugins.factories import FrozenClock
from tests.plugins.snapshot import nothing_changed
from tests.plugins.web import SignIn, csrf_token

MakeUser = Callable[..., User]
MakeClip = Callable[..., Clip]
CONTENT = bytes(range(256)) * 40  # 10,240 bytes with a recognisable pattern


@pytest.fixture
def app(app_factory: Callable[..., Flask], storage_url: str) -> Iterator[Flask]:
    """Every test here runs on each backend: local, S3 in-process, S3 over real HTTP."""
    app = app_factory(STORAGE_URL=storage_url)
    with app.app_context():
        yield app


@pytest.fixture
def approved(make_clip: MakeClip, tester: User) -> Clip:
    return make_clip(ClipStatus.APPROVED, tester=tester, content=CONTENT)


@pytest.fixture
def owner(app: Flask, signed_in: SignIn, tester: User) -> FlaskClient:
    """A client of its own, signed in as the shared `tester`, who owns `approved`."""
    return signed_in(tester, client=app.test_client())


@pytest.fixture
def anonymous(app: Flask) -> FlaskClient:
    return app.test_client()


def make_link(clip: Clip, actor: User, **options: Any) -> str:
    _, token = sharing.create_link(clip, actor, **options)
    db.session.commit()
    return token


def fetch_media(client: FlaskClient, token: str, headers: dict[str, str] | None = None) -> Any:
    """GET the media as a browser would: follow a storage redirect over real HTTP."""
    response = client.get(f"/s/{token}/media", headers=headers or {})
    if response.status_code != 302:
        return response
    location = response.headers["Location"]
    return requests.get(location, headers=headers or {}, timeout=30)


def body_of(response: Any) -> bytes:
    return response.content if isinstance(response, requests.Response) else response.get_data()


# --- creation -----------------------------------------------------------------------------------


def test_owner_makes_a_link_and_sees_its_url_once(owner: FlaskClient, approved: Clip) -> None:
    page = f"/clips/{approved.id}"
    response = owner.post(
        f"/clips/{approved.id}/share-links",
        data={"label": "for the press", "expiry": "7", "csrf_token": csrf_token(owner, page)},
    )
    assert response.status_code == 200
    url = re.search(
        r'value="(http://greenlight\.test/s/[A-Za-z0-9_-]+)"', response.get_data(as_text=True)
    )
    assert url is not None
    token = url.group(1).rsplit("/", 1)[1]
    link = db.session.scalars(select(ShareLink)).one()
    assert link.token_hash == sharing.hash_token(token)
    assert token not in owner.get(page).get_data(as_text=True)
    assert len(token) >= 22  # at least 128 bits of URL-safe base64


@pytest.mark.parametrize("status", [s for s in ClipStatus if s != ClipStatus.APPROVED])
def test_a_crafted_post_for_an_unapproved_clip_gets_409_and_creates_nothing(
    owner: FlaskClient, make_clip: MakeClip, tester: User, status: ClipStatus
) -> None:
    clip = make_clip(status, tester=tester)
    data = {"expiry": "never", "csrf_token": csrf_token(owner, "/account")}
    with nothing_changed():
        response = owner.post(f"/clips/{clip.id}/share-links", data=data)
    assert response.status_code == 409
    assert db.session.scalar(select(func.count()).select_from(ShareLink)) == 0


def test_the_database_refuses_a_link_for_an_unapproved_clip(
    make_clip: MakeClip, tester: User
) -> None:
    clip = make_clip(ClipStatus.REJECTED, tester=tester)
    with nothing_changed():
        db.session.add(ShareLink(clip_id=clip.id, token_hash="x" * 64, created_by_id=tester.id))
        with pytest.raises(Exception, match="only for approved clips"):
            db.session.flush()
        db.session.rollback()


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        ({"expiry": "date", "expires_on": "2020-01-01"}, 422, "future"),
        ({"expiry": "date"}, 422, "Pick the expiry date"),
        ({"expiry": "forever"}, 422, "Not a valid choice"),
        ({"expiry": "7", "passphrase": "p" * 10_000}, 422, "200"),
        ({"expiry": "7", "label": "l" * 101}, 422, "100"),
    ],
)
def test_bad_link_options_are_refused(
    owner: FlaskClient, approved: Clip, data: dict[str, str], status: int, message: str
) -> None:
    form = {**data, "csrf_token": csrf_token(owner, "/account")}
    with nothing_changed():
        response = owner.post(f"/clips/{approved.id}/share-links", data=form)
    assert response.status_code == status
    assert message in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(ShareLink)) == 0


def test_testers_cannot_share_other_testers_clips(owner: FlaskClient, make_clip: MakeClip) -> None:
    clip = make_clip(ClipStatus.APPROVED)
    data = {"expiry": "7", "csrf_token": csrf_token(owner, "/account")}
    with nothing_changed():
        response = owner.post(f"/clips/{clip.id}/share-links", data=data)
    assert response.status_code == 404


@pytest.mark.parametrize("role", [Role.REVIEWER, Role.ADMIN])
def test_reviewers_and_admins_may_share(approved: Clip, make_user: MakeUser, role: Role) -> None:
    token = make_link(approved, make_user(role))
    assert sharing.find_link(token).clip_id == approved.id


def test_creation_and_revocation_are_audited(approved: Clip, tester: User) -> None:
    link, _ = sharing.create_link(approved, tester, label="x")
    sharing.revoke_link(link.id, tester)
    db.session.commit()
    actions = db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions[-2:] == ["share_link.created", "share_link.revoked"]


# --- the public page ----------------------------------------------------------------------------


def test_anyone_with_the_link_sees_the_page_with_og_tags(
    anonymous: FlaskClient, approved: Clip, tester: User
) -> None:
    token = make_link(approved, tester)
    response = anonymous.get(f"/s/{token}")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert f'<meta property="og:title" content="{approved.title}">' in html
    assert f'<meta property="og:image" content="http://greenlight.test/s/{token}/poster">' in html
    assert f'<meta property="og:video" content="http://greenlight.test/s/{token}/media">' in html
    assert "<video" in html
    assert "Download the clip" not in html
    assert tester.display_name not in html  # the tester did not choose to show their name


def test_public_page_headers(anonymous: FlaskClient, approved: Clip, tester: User) -> None:
    token = make_link(approved, tester)
    headers = anonymous.get(f"/s/{token}").headers
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "private, no-store"
    assert headers["X-Robots-Tag"].startswith("noindex")
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "media-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp


def test_indexing_can_be_allowed(
    app: Flask, anonymous: FlaskClient, approved: Clip, tester: User
) -> None:
    app.config["ALLOW_INDEXING"] = True
    token = make_link(approved, tester)
    assert "X-Robots-Tag" not in anonymous.get(f"/s/{token}").headers


def test_display_name_shown_when_chosen(
    anonymous: FlaskClient, approved: Clip, tester: User
) -> None:
    tester.show_name_publicly = True
    db.session.commit()
    token = make_link(approved, tester)
    assert f"by {tester.display_name}" in anonymous.get(f"/s/{token}").get_data(as_text=True)


def test_a_kept_page_follows_changes_to_what_it_shows(
    anonymous: FlaskClient, approved: Clip, tester: User
) -> None:
    """The page's HTML is kept per worker, under everything it shows: a change shows at once."""
    token = make_link(approved, tester)
    before = anonymous.get(f"/s/{token}").get_data(as_text=True)
    approved.title = "A new title"
    tester.show_name_publicly = True
    db.session.commit()
    after = anonymous.get(f"/s/{token}").get_data(as_text=True)
    assert (
        approved.title in before,
        "A new title" in after,
        f"by {tester.display_name}" in after,
    ) == (
        False,
        True,
        True,
    )


@pytest.mark.parametrize(
    "path",
    ["/s/", "/s/short", "/s/" + "a" * 200, "/s/caf%C3%A9-token-1234567890",
     "/s/abc%2Fdef-1234567890123", "/s/abc%00def-1234567890123",
     "/s/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"],
)  # fmt: skip
def test_unknown_or_malformed_tokens_are_404(anonymous: FlaskClient, path: str) -> None:
    with nothing_changed():
        assert anonymous.get(path).status_code == 404


def test_revoked_link_is_410_and_neutral(
    anonymous: FlaskClient, approved: Clip, tester: User
) -> None:
    link, token = sharing.create_link(approved, tester)
    db.session.commit()
    assert anonymous.get(f"/s/{token}").status_code == 200
    sharing.revoke_link(link.id, tester)
    db.session.commit()
    for path in (f"/s/{token}", f"/s/{token}/media", f"/s/{token}/poster"):
        with nothing_changed():
            response = anonymous.get(path)
        assert response.status_code == 410
        assert "no longer available" in response.get_data(as_text=True)
        assert approved.title not in response.get_data(as_text=True)


def test_expired_link_is_410(
    anonymous: FlaskClient, approved: Clip, tester: User, clock: FrozenClock
) -> None:
    token = make_link(approved, tester, expires_at=clock.now.replace(hour=13))
    assert anonymous.get(f"/s/{token}").status_code == 200
    clock.advance(hours=1)
    with nothing_changed():
        assert anonymous.get(f"/s/{token}").status_code == 410


def test_takedown_ends_every_link_at_once(
    anonymous: FlaskClient, approved: Clip, tester: User, make_user: MakeUser
) -> None:
    tokens = [make_link(approved, tester, label=str(n)) for n in range(3)]
    workflow.take_down(approved, make_user(Role.ADMIN), "rights complaint")
    db.session.commit()
    for token in tokens:
        with nothing_changed():
            assert anonymous.get(f"/s/{token}").status_code == 410
            assert anonymous.get(f"/s/{token}/media").status_code == 410


def test_a_repeat_view_and_play_read_the_link_outside_any_transaction(
    anonymous: FlaskClient, approved: Clip, tester: User
) -> None:
    """Once counted (and a version recorded), a view or a play only reads: no BEGIN, no COMMIT."""
    token = make_link(approved, tester)
    paths = (f"/s/{token}", f"/s/{token}/media")
    for path in paths:
        anonymous.get(path)
    began: list[object] = []

    def count(session: object, transaction: object, connection: object) -> None:
        began.append(connection)

    event.listen(Session, "after_begin", count)
    try:
        statuses = [anonymous.get(path).status_code for path in paths]
    finally:
        event.remove(Session, "after_begin", count)
    assert (statuses[0], statuses[1] in (200, 302), began) == (200, True, [])


def test_revoke_through_the_page_says_how_long_started_videos_last(
    owner: FlaskClient, approved: Clip, tester: User
) -> None:
    link, _ = sharing.create_link(approved, tester)
    db.session.commit()
    page = f"/clips/{approved.id}"
    response = owner.post(
        f"/share-links/{link.id}/revoke", data={"csrf_token": csrf_token(owner, page)},
        follow_redirects=True,
    )  # fmt: skip
    assert "up to 5 minutes" in response.get_data(as_text=True)
    db.session.refresh(link)
    assert link.revoked_at is not None


# --- passphrase ----------------------------------------------------------------------------------


def passphrase_post(client: FlaskClient, token: str, passphrase: str) -> Any:
    token_field = csrf_token(client, f"/s/{token}")
    return client.post(f"/s/{token}", data={"passphrase": passphrase, "csrf_token": token_field})


def test_passphrase_protects_page_and_media(
    anonymous: FlaskClient, approved: Clip, tester: User
) -> None:
    token = make_link(approved, tester, passphrase="open sesame")
    page = anonymous.get(f"/s/{token}").get_data(as_text=True)
    assert "This clip is protected" in page
    assert approved.title not in page
    with nothing_changed():
        assert anonymous.get(f"/s/{token}/media").status_code == 403
        wrong = passphrase_post(anonymous, token, "wrong")
    assert wrong.status_code == 403
    assert "not right" in wrong.get_data(as_text=True)
    assert passphrase_post(anonymous, token, "open sesame").status_code == 302
    assert approved.title in anonymous.get(f"/s/{token}").get_data(as_text=True)
    assert body_of(fetch_media(anonymous, token)) == CONTENT


def test_sixth_wrong_passphrase_in_a_minute_is_429(
    anonymous: FlaskClient, approved: Clip, tester: User
) -> None:
    token = make_link(approved, tester, passphrase="open sesame")
    with nothing_changed():
        statuses = [passphrase_post(anonymous, token, "wrong").status_code for _ in range(6)]
    assert statuses == [403] * 5 + [429]


def test_the_right_passphrase_gives_back_its_count_but_not_past_the_limit(
    anonymous: FlaskClient, approved: Clip, tester: User
) -> None:
    """Failures only: a right passphrase leaves the failures where they were; once the limit is
    reached the right one waits too, or guessing could go on by trying it now and then."""
    token = make_link(approved, tester, passphrase="open sesame")
    wrong = [passphrase_post(anonymous, token, "wrong").status_code for _ in range(4)]
    right = passphrase_post(anonymous, token, "open sesame").status_code
    later = anonymous.application.test_client()  # not yet unlocked, same address
    more = [passphrase_post(later, token, "wrong").status_code for _ in range(2)]
    last = passphrase_post(later, token, "open sesame").status_code
    assert (wrong, right, more, last) == ([403] * 4, 302, [403, 429], 429)


def test_passphrase_of_ten_thousand_characters_is_just_wrong(
    anonymous: FlaskClient, approved: Clip, tester: User
) -> None:
    token = make_link(approved, tester, passphrase="open sesame")
    with nothing_changed():
        assert passphrase_post(anonymous, token, "x" * 10_000).status_code == 403


# --- media ---------------------------------------------------------------------------------------


def test_media_plays_the_approved_bytes(
    anonymous: FlaskClient, approved: Clip, tester: User
) -> None:
    token = make_link(approved, tester)
    assert body_of(fetch_media(anonymous, token)) == CONTENT


def test_s3_media_is_a_short_presigned_redirect(
    anonymous: FlaskClient, approved: Clip, tester: User, storage_backend: str
) -> None:
    if storage_backend == "local":
        pytest.skip("local storage streams through the app")
    token = make_link(approved, tester)
    response = anonymous.get(f"/s/{token}/media")
    assert response.status_code == 302
    location = response.headers["Location"]
    assert "X-Amz-Expires=300" in location
    assert "response-content-disposition=inline" in location


@pytest.mark.parametrize(
    ("header", "status", "expected"),
    [
        ("bytes=0-99", 206, CONTENT[:100]),
        ("bytes=5000-5099", 206, CONTENT[5000:5100]),
        ("bytes=-500", 206, CONTENT[-500:]),
        ("bytes=10000-", 206, CONTENT[10000:]),
        ("bytes=20000-", 416, b""),
    ],
)
def test_range_requests(
    anonymous: FlaskClient, approved: Clip, tester: User, header: str, status: int, expected: bytes
) -> None:
    token = make_link(approved, tester)
    with nothing_changed():
        response = fetch_media(anonymous, token, {"Range": header})
    assert response.status_code == status
    if status == 206:
        assert body_of(response) == expected
        assert response.headers["Content-Range"].endswith(f"/{len(CONTENT)}")


@pytest.mark.parametrize("header", ["bytes=abc", "bytes=0-1,5-6", "pages=1-2"])
def test_odd_ranges_get_the_whole_clip(
    anonymous: FlaskClient, approved: Clip, tester: User, header: str, storage_backend: str
) -> None:
    if storage_backend != "local":
        pytest.skip("the storage server answers ranges itself after the redirect")
    token = make_link(approved, tester)
    response = anonymous.get(f"/s/{token}/media", headers={"Range": header})
    assert response.status_code == 200
    assert response.get_data() == CONTENT


def test_local_media_has_etag_and_honours_if_none_match(
    anonymous: FlaskClient, approved: Clip, tester: User, storage_backend: str
) -> None:
    if storage_backend != "local":
        pytest.skip("S3 answers conditional requests itself")
    token = make_link(approved, tester)
    first = anonymous.get(f"/s/{token}/media")
    assert first.headers["Accept-Ranges"] == "bytes"
    again = anonymous.get(f"/s/{token}/media", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304


def test_head_request_answers_headers_only(
    anonymous: FlaskClient, approved: Clip, tester: User
) -> None:
    link, token = sharing.create_link(approved, tester)
    db.session.commit()
    response = anonymous.head(f"/s/{token}")
    assert response.status_code == 200
    assert response.get_data() == b""
    db.session.refresh(link)
    assert link.page_views == 0  # a HEAD is not a view


def test_download_only_when_allowed(anonymous: FlaskClient, approved: Clip, tester: User) -> None:
    token = make_link(approved, tester)
    with nothing_changed():
        assert anonymous.get(f"/s/{token}/media?download=1").status_code == 403
    allowed = make_link(approved, tester, allow_download=True)
    assert "Download the clip" in anonymous.get(f"/s/{allowed}").get_data(as_text=True)
    response = anonymous.get(f"/s/{allowed}/media?download=1")
    disposition = (
        response.headers.get("Content-Disposition", "")
        if response.status_code == 200
        else requests.utils.unquote(response.headers["Location"])
    )
    assert "attachment" in disposition


def test_overwritten_object_is_refused_and_logged(
    anonymous: FlaskClient, approved: Clip, tester: User
) -> None:
    token = make_link(approved, tester)
    app_storage().put_stream(
        approved.storage_key, io.BytesIO(b"swapped bytes"), content_type="video/mp4"
    )
    assert anonymous.get(f"/s/{token}/media").status_code == 410
    assert anonymous.get(f"/s/{token}").status_code == 410
    events = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "clip.integrity_failed")
    ).all()
    assert len(events) == 1
    assert events[0].clip_id == approved.id


def test_poster_goes_through_the_same_check(
    anonymous: FlaskClient, approved: Clip, tester: User
) -> None:
    token = make_link(approved, tester)
    response = fetch_media(anonymous, token)
    assert response.status_code == 200
    poster = anonymous.get(f"/s/{token}/poster")
    assert poster.status_code in (200, 302)


# --- counting ------------------------------------------------------------------------------------


def test_views_and_media_starts_are_counted_once_per_session(
    anonymous: FlaskClient, approved: Clip, tester: User
) -> None:
    link, token = sharing.create_link(approved, tester)
    db.session.commit()
    anonymous.get(f"/s/{token}")
    anonymous.get(f"/s/{token}")
    anonymous.get(f"/s/{token}/media", headers={"Range": "bytes=0-"})
    anonymous.get(f"/s/{token}/media", headers={"Range": "bytes=100-"})
    anonymous.get(f"/s/{token}/media", headers={"Range": "bytes=0-"})
    db.session.refresh(link)
    assert (link.page_views, link.media_starts) == (1, 1)


def test_a_viewer_who_comes_back_after_half_an_hour_counts_again(
    anonymous: FlaskClient, approved: Clip, tester: User, clock: FrozenClock
) -> None:
    link, token = sharing.create_link(approved, tester)
    db.session.commit()
    anonymous.get(f"/s/{token}")
    clock.advance(minutes=29)
    anonymous.get(f"/s/{token}")
    clock.advance(minutes=2)
    anonymous.get(f"/s/{token}")
    db.session.refresh(link)
    assert link.page_views == 2


def test_every_viewer_and_every_cookieless_request_counts(
    app: Flask, approved: Clip, tester: User
) -> None:
    link, token = sharing.create_link(approved, tester)
    db.session.commit()
    for client in (app.test_client(), app.test_client()):
        client.get(f"/s/{token}")
    cookieless = app.test_client(use_cookies=False)
    cookieless.get(f"/s/{token}")
    cookieless.get(f"/s/{token}")
    db.session.refresh(link)
    assert link.page_views == 4


def test_counts_are_shown_to_the_owner(owner: FlaskClient, approved: Clip, tester: User) -> None:
    make_link(approved, tester, label="press kit")
    page = owner.get(f"/clips/{approved.id}").get_data(as_text=True)
    assert "press kit" in page
    assert "Plays" in page


def test_no_raw_addresses_are_stored_for_share_traffic(
    anonymous: FlaskClient, approved: Clip, tester: User
) -> None:
    token = make_link(approved, tester)
    anonymous.get(f"/s/{token}", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    dump = "".join(db.session.scalars(select(AuditEvent.data)).all())
    assert "203.0.113.9" not in dump


def test_share_urls_are_rate_limited_per_address(
    app: Flask, anonymous: FlaskClient, approved: Clip, tester: User
) -> None:
    app.config["SHARE_RATE_LIMIT"] = "5 per minute"
    with nothing_changed():
        statuses = [anonymous.get(f"/s/guess-{n:020d}").status_code for n in range(6)]
    assert statuses == [404] * 5 + [429]


def test_passphrase_guesses_from_many_addresses_count_against_the_link(
    app: Flask, anonymous: FlaskClient, approved: Clip, tester: User
) -> None:
    app.config["SHARE_PASSPHRASE_LINK_RATE_LIMIT"] = "7 per hour"
    token = make_link(approved, tester, passphrase="open sesame")
    other = make_link(approved, tester, passphrase="open sesame")
    statuses = []
    for n in range(8):
        field = csrf_token(anonymous, f"/s/{token}")
        response = anonymous.post(
            f"/s/{token}",
            data={"passphrase": "wrong", "csrf_token": field},
            environ_base={"REMOTE_ADDR": f"192.0.2.{n}"},
        )
        statuses.append(response.status_code)
    assert statuses == [403] * 7 + [429]
    # Another link is not affected.
    assert passphrase_post(anonymous, other, "open sesame").status_code == 302
