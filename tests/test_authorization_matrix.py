# ruff: noqa: E501  (ROUTES is a table: one row per route, one line per row, columns aligned)
"""Who may call what: every route of the app, as every kind of caller, in one table.

ROUTES is keyed by (endpoint, HTTP method): exactly the pairs in `app.url_map`, HEAD and OPTIONS
aside, so a new route fails `test_every_route_has_a_row` until it has its row. A row is one
request, its URL filled in from the world below, and what each caller gets for it:

    anonymous, tester A (owns every clip here), tester B (owns nothing of A's), reviewer, admin

Requests are the smallest that show the access decision: a form POST carries a valid CSRF token
and nothing else; an API call carries the caller's bearer token (none for anonymous) and `{}`.
An allowed caller gets whatever the view answers to that (200, 201, 204, 302, or 400/422 for an
empty form); a refused caller gets a real refusal, which must change nothing:

    SIGN_IN  anonymous on a page: redirected to the sign-in page
    401      anonymous on the API (problem+json with WWW-Authenticate)
    403      the wrong role (a page saying "Not allowed"; the API names the role needed)
    404      someone else's thing: what one may not see does not exist (approval/ops/access.py),
             so it answers exactly as an id that exists nowhere

Every cell starts from the same world: it is built once, saved, and put back before each cell.
That costs milliseconds; a fresh test database per cell (a copied file on SQLite, a truncation on
PostgreSQL) costs 0.2 to 0.5 s, times some 350 cells.

A new route is one line in ROUTES; a new kind of thing for its URL is one more entry in
`World.ids`.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from flask import Flask
from werkzeug.test import TestResponse

from approval.api.blueprint import api as api_registry
from approval.extensions import db, limiter
from approval.models import Clip, ClipStatus, Notification, Role, ShareLink, User
from approval.ops import comments, people, sharing, tokens, uploads
from approval.web import app_put_url
from tests.plugins.factories import PASSWORD
from tests.plugins.snapshot import nothing_changed, snapshot
from tests.plugins.web import csrf_token

MakeUser = Callable[..., User]
MakeClip = Callable[..., Clip]

#: The outcome "redirected to the sign-in page" (a 302 to /login).
SIGN_IN = "sign-in"
Outcome = int | str

CALLERS = ("anonymous", "tester", "other tester", "reviewer", "admin")
#: What a signed-in caller may be refused with (and anonymous, SIGN_IN too).
REFUSALS = frozenset({401, 403, 404})
#: An id no row of the world has, to compare a 404 for someone else's thing with.
UNKNOWN_ID = 999_999


@dataclass(frozen=True)
class Row:
    """A request (URL with `{placeholders}` from World.ids) and the outcome for each caller.

    `also` names more URLs of the same route that must answer the same.
    """

    url: str
    outcomes: tuple[Outcome, ...]
    also: tuple[str, ...] = ()

    @property
    def urls(self) -> tuple[str, ...]:
        return (self.url, *self.also)


def row(url: str, *outcomes: Outcome, also: tuple[str, ...] = ()) -> Row:
    """row(url, anonymous, tester A, tester B, reviewer, admin)."""
    assert len(outcomes) == len(CALLERS), f"{url}: one outcome for each of {CALLERS}"
    return Row(url, outcomes, also)


# fmt: off
ROUTES: dict[tuple[str, str], Row] = {
    # endpoint, method                        url                                       anon     A    B    reviewer admin
    ("home.index", "GET"):                    row("/",                                  SIGN_IN, 302, 302, 302, 302),
    ("home.healthz", "GET"):                  row("/healthz",                           200,     200, 200, 200, 200),
    ("home.favicon", "GET"):                  row("/favicon.ico",                       200,     200, 200, 200, 200),
    ("static", "GET"):                        row("/static/css/app.css",                200,     200, 200, 200, 200),
    # signing in and one's own account
    ("auth.login", "GET"):                    row("/login",                             200,     302, 302, 302, 302),
    ("auth.login", "POST"):                   row("/login",                             200,     302, 302, 302, 302),
    ("auth.logout", "POST"):                  row("/logout",                            SIGN_IN, SIGN_IN, SIGN_IN, SIGN_IN, SIGN_IN),
    # A set-password link's token is the credential: whoever holds it, signed in or not.
    ("auth.set_password", "GET"):             row("/set-password/{password_token}",     200,     200, 200, 200, 200),
    ("auth.set_password", "POST"):            row("/set-password/{password_token}",     200,     200, 200, 200, 200),
    ("auth.account", "GET"):                  row("/account",                           SIGN_IN, 200, 200, 200, 200),
    ("auth.account", "POST"):                 row("/account",                           SIGN_IN, 302, 302, 302, 302),
    ("auth.change_password", "POST"):         row("/account/password",                  SIGN_IN, 200, 200, 200, 200),
    ("auth.sign_out_everywhere", "POST"):     row("/account/sign-out-everywhere",       SIGN_IN, 302, 302, 302, 302),
    ("auth.tokens_page", "GET"):              row("/account/tokens",                    SIGN_IN, 200, 200, 200, 200),
    ("auth.create_token", "POST"):            row("/account/tokens",                    SIGN_IN, 400, 400, 400, 400),
    # One's own tokens only; admins revoke other people's with `flask tokens revoke`.
    ("auth.revoke_token", "POST"):            row("/account/tokens/{token}/revoke",     SIGN_IN, 302, 404, 404, 404),
    ("inbox.index", "GET"):                   row("/inbox/",                            SIGN_IN, 200, 200, 200, 200),
    ("inbox.mark_read", "POST"):              row("/inbox/{notification}/read",         SIGN_IN, 302, 404, 404, 404),
    ("inbox.mark_all_read", "POST"):          row("/inbox/read-all",                    SIGN_IN, 302, 302, 302, 302),
    ("inbox.preferences", "POST"):            row("/inbox/preferences",                 SIGN_IN, 302, 302, 302, 302),
    # testers' clips
    ("clips.mine", "GET"):                    row("/clips/",                            SIGN_IN, 200, 200, 403, 403),
    ("clips.upload", "GET"):                  row("/clips/new",                         SIGN_IN, 200, 200, 403, 403),
    ("clips.upload", "POST"):                 row("/clips/new",                         SIGN_IN, 400, 400, 403, 403),
    ("clips.start_direct", "POST"):           row("/clips/direct",                      SIGN_IN, 400, 400, 403, 403),
    ("clips.ticket", "POST"):                 row("/clips/{uploading}/ticket",          SIGN_IN, 200, 404, 403, 403),
    # The ticket in the URL is the credential, as with a presigned S3 URL: whoever holds it.
    ("clips.receive", "PUT"):                 row("{upload_url}",                       204,     204, 204, 204, 204),
    # Nothing was uploaded, so the check fails at once: the page says so (302), the API with 422.
    ("clips.complete", "POST"):               row("/clips/{uploading}/complete",        SIGN_IN, 302, 404, 403, 403),
    ("clips.status", "GET"):                  row("/clips/{waiting}/status",            SIGN_IN, 200, 404, 200, 200),
    ("clips.detail", "GET"):                  row("/clips/{waiting}",                   SIGN_IN, 200, 404, 200, 200),
    ("clips.withdraw_clip", "POST"):          row("/clips/{waiting}/withdraw",          SIGN_IN, 302, 404, 403, 403),
    # Comments: whoever sees a clip; an empty form shows the page again with the error (422).
    ("clips.add_comment", "POST"):            row("/clips/{waiting}/comments",          SIGN_IN, 422, 404, 422, 422),
    ("clips.reply_to_comment", "POST"):       row("/clips/{waiting}/comments/{comment}/replies", SIGN_IN, 422, 404, 422, 422),
    ("clips.dismiss", "POST"):                row("/clips/{failed}/dismiss",            SIGN_IN, 302, 404, 403, 403),
    ("clips.media", "GET"):                   row("/clips/{approved}/media",            SIGN_IN, 200, 404, 200, 200),
    ("clips.poster", "GET"):                  row("/clips/{approved}/poster",           SIGN_IN, 200, 404, 200, 200),
    ("clips.compare", "GET"):                 row("/clips/{second_version}/compare?with={first_version}", SIGN_IN, 200, 404, 200, 200),
    # share links: whoever sees a clip manages its links; the public pages need no account
    ("sharing.create", "POST"):               row("/clips/{approved}/share-links",      SIGN_IN, 200, 404, 200, 200),
    ("sharing.revoke", "POST"):               row("/share-links/{link}/revoke",         SIGN_IN, 302, 404, 302, 302),
    ("sharing.page", "GET"):                  row("/s/{share_token}",                   200,     200, 200, 200, 200),
    ("sharing.page", "POST"):                 row("/s/{share_token}",                   302,     302, 302, 302, 302),
    ("sharing.media", "GET"):                 row("/s/{share_token}/media",             200,     200, 200, 200, 200),
    ("sharing.poster", "GET"):                row("/s/{share_token}/poster",            200,     200, 200, 200, 200),
    # reviewing (the reviewer holds the claim on A's clip in review)
    ("review.queue", "GET"):                  row("/review/",                           SIGN_IN, 403, 403, 200, 403),
    ("review.counts", "GET"):                 row("/review/counts",                     SIGN_IN, 403, 403, 200, 403),
    ("review.clip", "GET"):                   row("/review/{waiting}",                  SIGN_IN, 403, 403, 200, 403),
    ("review.next", "POST"):                  row("/review/next",                       SIGN_IN, 403, 403, 302, 403),
    ("review.claim", "POST"):                 row("/review/{in_review}/claim",          SIGN_IN, 403, 403, 302, 403),
    ("review.renew", "POST"):                 row("/review/{in_review}/renew",          SIGN_IN, 403, 403, 200, 403),
    ("review.release", "POST"):               row("/review/{in_review}/release",        SIGN_IN, 403, 403, 302, 403),
    ("review.approve", "POST"):               row("/review/{in_review}/approve",        SIGN_IN, 403, 403, 302, 403),
    ("review.reject", "POST"):                row("/review/{in_review}/reject",         SIGN_IN, 403, 403, 422, 403),
    ("review.decisions", "GET"):              row("/review/decisions",                  SIGN_IN, 403, 403, 200, 403),
    # The reviewer gave no verdict on this clip: there is nothing of theirs to reopen.
    ("review.reopen_decision", "POST"):       row("/review/{in_review}/reopen",         SIGN_IN, 403, 403, 404, 403),
    # admin
    ("admin.people", "GET"):                  row("/admin/people",                      SIGN_IN, 403, 403, 403, 200),
    ("admin.invite", "POST"):                 row("/admin/people",                      SIGN_IN, 403, 403, 403, 400),
    ("admin.person", "GET"):                  row("/admin/people/{invitee}",            SIGN_IN, 403, 403, 403, 200),
    ("admin.change_roles", "POST"):           row("/admin/people/{invitee}/roles",      SIGN_IN, 403, 403, 403, 400),
    ("admin.toggle_active", "POST"):          row("/admin/people/{invitee}/active",     SIGN_IN, 403, 403, 403, 302),
    ("admin.new_password_link", "POST"):      row("/admin/people/{invitee}/password-link", SIGN_IN, 403, 403, 403, 200),
    ("sharing.approval_record", "GET"):       row("/.well-known/greenlight/approvals/0000000000000000000000000000000000000000000000000000000000000000", 404, 404, 404, 404, 404),
    ("admin.held_clips", "GET"):              row("/admin/held",                        SIGN_IN, 403, 403, 403, 200),
    ("admin.release_hold", "POST"):           row("/admin/clips/{waiting}/provenance-release", SIGN_IN, 403, 403, 403, 302),
    ("admin.clips", "GET"):                   row("/admin/clips",                       SIGN_IN, 403, 403, 403, 200),
    ("admin.confirm_take_down", "GET"):       row("/admin/clips/{approved}/take-down",  SIGN_IN, 403, 403, 403, 200),
    ("admin.take_down", "POST"):              row("/admin/clips/{approved}/take-down",  SIGN_IN, 403, 403, 403, 422),
    ("admin.audit_log", "GET"):               row("/admin/audit",                       SIGN_IN, 403, 403, 403, 200),
    ("admin.audit_export", "GET"):            row("/admin/audit/export.csv",            SIGN_IN, 403, 403, 403, 200, also=("/admin/audit/export.jsonl",)),
    ("admin.audit_verify", "POST"):           row("/admin/audit/verify",                SIGN_IN, 403, 403, 403, 302),
    # the API: bearer tokens; its documents are public
    ("api.docs", "GET"):                      row("/api/docs",                          200,     200, 200, 200, 200),
    ("api.openapi", "GET"):                   row("/api/openapi.json",                  200,     200, 200, 200, 200),
    ("api.me", "GET"):                        row("/api/v1/me",                         401,     200, 200, 200, 200),
    ("api.list_clips", "GET"):                row("/api/v1/clips",                      401,     200, 200, 200, 200),
    ("api.create_clip", "POST"):              row("/api/v1/clips",                      401,     422, 422, 403, 403),
    ("api.get_clip", "GET"):                  row("/api/v1/clips/{waiting}",            401,     200, 404, 200, 200),
    ("api.clip_ticket", "POST"):              row("/api/v1/clips/{uploading}/ticket",   401,     200, 404, 403, 403),
    ("api.complete_clip", "POST"):            row("/api/v1/clips/{uploading}/complete", 401,     422, 404, 403, 403),
    ("api.withdraw_clip", "POST"):            row("/api/v1/clips/{waiting}/withdraw",   401,     200, 404, 403, 403),
    ("api.list_comments", "GET"):             row("/api/v1/clips/{waiting}/comments",   401,     200, 404, 200, 200),
    # The body is read before the clip is looked up, so `{}` is a 422 for every signed-in
    # caller, an unseen clip and one that exists nowhere alike (test_comments.py has the 404s).
    ("api.add_comment", "POST"):              row("/api/v1/clips/{waiting}/comments",   401,     422, 422, 422, 422),
    ("api.reply_to_comment", "POST"):         row("/api/v1/clips/{waiting}/comments/{comment}/replies", 401, 422, 422, 422, 422),
    ("api.dismiss_clip", "POST"):             row("/api/v1/clips/{failed}/dismiss",     401,     200, 404, 403, 403),
    ("api.decide", "POST"):                   row("/api/v1/clips/{in_review}/decision", 401,     403, 403, 422, 403),
    ("api.create_share_link", "POST"):        row("/api/v1/clips/{approved}/share-links", 401,   201, 404, 201, 201),
    ("api.revoke_share_link", "DELETE"):      row("/api/v1/share-links/{link}",         401,     204, 404, 204, 204),
    ("api.claim_next", "POST"):               row("/api/v1/review/claim",               401,     403, 403, 200, 403),
    ("api.claim_clip", "POST"):               row("/api/v1/review/{in_review}/claim",   401,     403, 403, 200, 403),
    ("api.renew_claim", "POST"):              row("/api/v1/review/{in_review}/renew",   401,     403, 403, 200, 403),
    ("api.release_clip", "POST"):             row("/api/v1/review/{in_review}/release", 401,     403, 403, 200, 403),
    ("api.my_decisions", "GET"):              row("/api/v1/review/decisions",           401,     403, 403, 200, 403),
    ("api.reopen_decision", "POST"):          row("/api/v1/review/clips/{in_review}/reopen", 401, 403, 403, 404, 403),
    ("api.list_events", "GET"):               row("/api/v1/audit",                      401,     403, 403, 403, 200),
    ("api.verify_log", "GET"):                row("/api/v1/audit/verify",               401,     403, 403, 403, 200),
}
# fmt: on


# --- the world ----------------------------------------------------------------------------------


@dataclass
class World:
    """Tester A's clips in the states the routes need, the other people, and their credentials."""

    emails: dict[str, str]
    ids: dict[str, Any]
    bearer: dict[str, dict[str, str]]
    #: Per caller: the session cookie (signed in once) and the CSRF token that goes with it.
    sessions: dict[str, tuple[str | None, str]] = field(default_factory=dict)

    def url(self, template: str, *, unknown_ids: bool = False) -> str:
        """The URL with this world's ids; with unknown_ids, ids of nothing that exists."""
        ids = self.ids
        if unknown_ids:
            ids = {name: UNKNOWN_ID if isinstance(v, int) else v for name, v in ids.items()}
        return template.format(**ids)


@pytest.fixture
def world(app: Flask, make_user: MakeUser, make_clip: MakeClip) -> World:
    tester = make_user(Role.TESTER, email="tester-a@example.com")
    other = make_user(Role.TESTER, email="tester-b@example.com")
    reviewer = make_user(Role.REVIEWER, email="reviewer@example.com")
    admin = make_user(Role.ADMIN, email="admin@example.com")
    invitee = people.create_user("invitee@example.com", "Invitee", [Role.TESTER], actor=admin)
    password_token = people.issue_password_link(invitee, actor=admin)

    uploading = make_clip(ClipStatus.UPLOADING, tester=tester)
    ticket = uploads.ticket_for(uploading, app_put_url=app_put_url)
    waiting = make_clip(ClipStatus.WAITING, tester=tester)
    failed = make_clip(ClipStatus.FAILED, tester=tester)
    approved = make_clip(
        ClipStatus.APPROVED, tester=tester, reviewer=reviewer, content=b"\x00\x00\x00\x18ftypmp42"
    )
    link, share_token = sharing.create_link(
        approved, tester, label="", expires_at=None, passphrase=None, allow_download=False
    )
    # Claimed by the reviewer, who holds no other claim.
    in_review = make_clip(ClipStatus.IN_REVIEW, tester=tester, reviewer=reviewer)
    comment = comments.add_comment(waiting, reviewer, "Is the ending too dark?", at_seconds=1.0)
    script_token, _ = tokens.create(tester, name="script", actor=tester)
    # Two versions of one clip, for the compare page.
    first_version = make_clip(ClipStatus.REJECTED, tester=tester)
    second_version = make_clip(ClipStatus.WAITING, tester=tester, previous=first_version)
    db.session.commit()
    notification = db.session.scalar(sa.select(Notification.id).filter_by(user_id=tester.id))
    assert notification is not None, "the approval should have told tester A"

    signed_in = {"tester": tester, "other tester": other, "reviewer": reviewer, "admin": admin}
    bearer = {}
    for caller, user in signed_in.items():
        _, raw = tokens.create(user, name="matrix", actor=None)
        bearer[caller] = {"Authorization": f"Bearer {raw}"}
    db.session.commit()
    built = World(
        emails={caller: user.email for caller, user in signed_in.items()},
        ids={
            "uploading": uploading.id,
            "upload_url": urlsplit(ticket.url)._replace(scheme="", netloc="").geturl(),
            "waiting": waiting.id,
            "comment": comment.id,
            "failed": failed.id,
            "in_review": in_review.id,
            "approved": approved.id,
            "link": link.id,
            "share_token": share_token,
            "notification": notification,
            "token": script_token.id,
            "invitee": invitee.id,
            "password_token": password_token,
            "first_version": first_version.id,
            "second_version": second_version.id,
        },
        bearer=bearer,
    )
    for caller in CALLERS:
        built.sessions[caller] = _browser_session(app, built.emails.get(caller))
    return built


def _browser_session(app: Flask, email: str | None) -> tuple[str | None, str]:
    """A session cookie (signed in as email, unless None) and its CSRF token from a page."""
    browser = app.test_client()
    if email is not None:
        signed = browser.post(
            "/login",
            data={"email": email, "password": PASSWORD, "csrf_token": csrf_token(browser)},
        )
        assert signed.status_code == 302, f"{email} could not sign in"
    token = csrf_token(browser, "/account" if email else "/login")
    cookie = browser.get_cookie(app.config["SESSION_COOKIE_NAME"])
    return (cookie.value if cookie else None, token)


class SavedWorld:
    """The database and the stored objects as they were at `save`, put back by `restore`."""

    def __init__(self, app: Flask, tmp_path: Path) -> None:
        self.url = db.engine.url
        self.storage_root = Path(urlsplit(app.config["STORAGE_URL"]).path)
        self.saved_storage = tmp_path / "saved-storage"
        self.sqlite_copy: sqlite3.Connection | None = None
        self.pg: sa.Connection | None = None
        self.tables: list[str] = []
        self.sequences: list[tuple[str, int | None]] = []

    def save(self) -> None:
        db.session.commit()
        # Hard links: local storage never writes into a file, and its ETag is the inode's.
        shutil.copytree(self.storage_root, self.saved_storage, copy_function=os.link)
        if self.url.get_backend_name() == "sqlite":
            self.sqlite_copy = sqlite3.connect(":memory:")
            with sqlite3.connect(str(self.url.database)) as live:
                live.backup(self.sqlite_copy)
            return
        # A connection of our own keeps the copies, as temporary tables.
        self.pg = sa.create_engine(self.url, poolclass=sa.pool.NullPool).connect()
        names = sa.inspect(self.pg).get_table_names()
        self.tables = [name for name in names if name != "alembic_version"]
        for name in self.tables:
            # Names from the database's own catalogue.
            self.pg.execute(sa.text(f'CREATE TEMP TABLE "saved_{name}" AS TABLE "{name}"'))
        query = sa.text("SELECT sequencename, last_value FROM pg_sequences")
        self.sequences = [(name, value) for name, value in self.pg.execute(query)]
        self.pg.commit()

    def restore(self) -> None:
        db.session.remove()
        limiter.reset()
        shutil.rmtree(self.storage_root)
        shutil.copytree(self.saved_storage, self.storage_root, copy_function=os.link)
        if self.sqlite_copy is not None:
            db.engine.dispose()
            with sqlite3.connect(str(self.url.database)) as live:
                self.sqlite_copy.backup(live)
            return
        assert self.pg is not None
        # Replica mode lets the copy past the foreign keys and the audit log's guard triggers.
        self.pg.execute(sa.text("SET LOCAL session_replication_role = replica"))
        for name in self.tables:
            self.pg.execute(sa.text(f'DELETE FROM "{name}"'))  # noqa: S608  (catalogue names)
            self.pg.execute(sa.text(f'INSERT INTO "{name}" TABLE "saved_{name}"'))
        for name, value in self.sequences:
            self.pg.execute(
                sa.text("SELECT setval(:name, :value, :called)"),
                {"name": name, "value": value or 1, "called": value is not None},
            )
        self.pg.commit()

    def close(self) -> None:
        if self.sqlite_copy is not None:
            self.sqlite_copy.close()
        if self.pg is not None:
            self.pg.close()


@pytest.fixture
def saved_world(app: Flask, world: World, tmp_path: Path) -> Iterator[SavedWorld]:
    saved = SavedWorld(app, tmp_path)
    saved.save()
    yield saved
    saved.close()


# --- calling a route as someone -----------------------------------------------------------------


def call(app: Flask, world: World, key: tuple[str, str], caller: str, url: str) -> TestResponse:
    """The row's request as this caller, from a fresh browser, read to the end."""
    endpoint, method = key
    browser = app.test_client()
    if url.startswith("/api/v1/"):
        body = {"json": {}} if method != "GET" else {}
        response = browser.open(url, method=method, headers=world.bearer.get(caller, {}), **body)
    else:
        cookie, token = world.sessions[caller]
        if cookie is not None:
            browser.set_cookie(app.config["SESSION_COOKIE_NAME"], cookie)
        if endpoint == "clips.receive":  # the ticket is the credential; there is no form
            data: Any = b""
        else:
            data = {"csrf_token": token} if method != "GET" else None
        response = browser.open(url, method=method, data=data)
    response.get_data()  # a streamed body (the audit export) holds a database cursor till read
    response.close()
    return response


def outcome_of(response: TestResponse) -> Outcome:
    if response.status_code == 302 and urlsplit(response.headers["Location"]).path == "/login":
        return SIGN_IN
    return response.status_code


def is_refusal(caller: str, outcome: Outcome) -> bool:
    return outcome in REFUSALS or (caller == "anonymous" and outcome == SIGN_IN)


#: The roles each API operation needs, as its 403 names them.
NEEDED = {f"api.{op.endpoint}": " or ".join(op.roles) for op in api_registry.operations}
HELD = {"tester": "tester", "other tester": "tester", "reviewer": "reviewer", "admin": "admin"}


def refusal_problems(endpoint: str, caller: str, url: str, response: TestResponse) -> list[str]:
    """What is wrong with a refusal's answer, besides its status."""
    status = response.status_code
    if not url.startswith("/api/v1/"):
        if status == 403 and "Not allowed" not in response.get_data(as_text=True):
            return ["the 403 page does not say 'Not allowed'"]
        return []
    if response.mimetype != "application/problem+json":
        return [f"the refusal is {response.mimetype}, not problem+json"]
    detail = response.get_json()["detail"]
    says = f"needs the {NEEDED[endpoint]} role; your account has {HELD.get(caller)}."
    if status == 403 and says not in detail:
        return [f"the 403 does not say it {says!r}: {detail!r}"]
    if status == 401 and "WWW-Authenticate" not in response.headers:
        return ["the 401 has no WWW-Authenticate"]
    return []


# --- the tests ----------------------------------------------------------------------------------


def test_every_route_has_a_row(app: Flask) -> None:
    """A route added to the app fails here until ROUTES says who may call it."""
    routed = {
        (rule.endpoint, method)
        for rule in app.url_map.iter_rules()
        for method in rule.methods or ()
        if method not in {"HEAD", "OPTIONS"}
    }
    assert {
        "routes without a row in ROUTES": sorted(routed - ROUTES.keys()),
        "rows for routes the app does not have": sorted(ROUTES.keys() - routed),
    } == {"routes without a row in ROUTES": [], "rows for routes the app does not have": []}


def test_every_row_reaches_its_own_route(app: Flask, world: World) -> None:
    """A row's URL and method reach its endpoint, so no row quietly tests another route."""
    adapter = app.url_map.bind("greenlight.test")
    wrong = {
        (key, url): reached
        for key, entry in ROUTES.items()
        for url in entry.urls
        if (reached := adapter.match(urlsplit(world.url(url)).path, method=key[1])[0]) != key[0]
    }
    assert wrong == {}


def test_who_may_call_what(app: Flask, world: World, saved_world: SavedWorld) -> None:
    """Every row as every caller, each from the same world; every difference is listed."""
    differences = []
    for key, entry in ROUTES.items():
        for template in entry.urls:
            url = world.url(template)
            for caller, expected in zip(CALLERS, entry.outcomes, strict=True):
                saved_world.restore()
                problems = cell_problems(app, world, key, caller, expected, template)
                differences += [f"{key} {url} as {caller}: {problem}" for problem in problems]
    assert not differences, "\n".join(differences)


def cell_problems(
    app: Flask, world: World, key: tuple[str, str], caller: str, expected: Outcome, template: str
) -> list[str]:
    """How one cell differs from the table: its outcome, and for a refusal, what it left."""
    url = world.url(template)
    if not is_refusal(caller, expected):
        got = outcome_of(call(app, world, key, caller, url))
        return [] if got == expected else [f"expected {expected}, got {got}"]
    try:
        with nothing_changed():
            response = call(app, world, key, caller, url)
    except AssertionError as changed:
        return [str(changed).splitlines()[0]]
    got = outcome_of(response)
    if got != expected:
        return [f"expected {expected}, got {got}"]
    problems = refusal_problems(key[0], caller, url, response)
    if got == 404:
        # Someone else's thing answers as one that exists nowhere.
        unknown = world.url(template, unknown_ids=True)
        nowhere = outcome_of(call(app, world, key, caller, unknown))
        if nowhere != 404:
            problems.append(f"{unknown} answers {nowhere}: the 404 gives away that it exists")
    return problems


def test_each_cell_starts_from_the_saved_world(
    app: Flask, world: World, saved_world: SavedWorld
) -> None:
    """What an allowed call changes (a decision, a revoked link, a new object) is undone."""
    before = snapshot()
    approve = ("review.approve", "POST")
    revoke = ("api.revoke_share_link", "DELETE")
    receive = ("clips.receive", "PUT")
    for key, caller in ((approve, "reviewer"), (revoke, "tester"), (receive, "tester")):
        assert outcome_of(call(app, world, key, caller, world.url(ROUTES[key].url))) != 404
    assert snapshot() != before
    saved_world.restore()
    assert snapshot() == before
    link = db.session.get(ShareLink, world.ids["link"])
    assert link is not None
    assert link.revoked_at is None
    assert outcome_of(call(app, world, approve, "reviewer", world.url(ROUTES[approve].url))) == 302
