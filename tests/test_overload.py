"""Load beyond the limits, against the Procfile's gunicorn: 429 and 413 at once, never a hang.

Every client here is a raw socket or `http.client` with a timeout on every read, so a server
that waits instead of refusing fails the test instead of hanging it.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest
import redis
import requests
from flask import Flask
from sqlalchemy import func, select

from approval.extensions import db
from approval.models import Clip, ClipStatus, User
from approval.ops import sharing
from tests.plugins.api import bearer
from tests.plugins.database import IN_CI
from tests.plugins.factories import PASSWORD
from tests.plugins.snapshot import nothing_changed
from tests.plugins.web import SignIn, csrf_token
from tests.plugins.workers import Processes, WebServer

REDIS_URL = os.environ.get("GREENLIGHT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

#: A burst: this many requests, this many in flight at once.
BURST, AT_ONCE = 60, 12
#: How long any one reply may take before the test calls it a hang.
READ_TIMEOUT = 10.0
#: How long a refusal may take. A 429 does no database work and renders one small page; here
#: they take a few ms to ~0.3 s (queued behind a dozen others on 2 shared cores), so a refusal
#: slower than this is a server that made the client wait, not a busy machine.
REFUSAL_BOUND = 1.5
#: The Procfile's --workers: with `memory://` each counts on its own.
WEB_PROCESSES = 2

MakeUser = Callable[..., User]


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def send(
    port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> Reply:
    """One request on a connection of its own; the whole reply read, or a timeout raised."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=READ_TIMEOUT)
    try:
        connection.request(
            method, path, body=body, headers={"Connection": "close", **(headers or {})}
        )
        response = connection.getresponse()
        data = response.read()
        got = {name.lower(): value for name, value in response.getheaders()}
        return Reply(response.status, got, data, time.monotonic() - started)
    finally:
        connection.close()


def burst(request: Callable[[], Reply], total: int = BURST, at_once: int = AT_ONCE) -> list[Reply]:
    """`total` copies of one request, `at_once` in flight at a time; every reply, in order."""
    with ThreadPoolExecutor(max_workers=at_once) as pool:
        return list(pool.map(lambda _: request(), range(total)))


# --- the servers ---------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
def limits_store(request: pytest.FixtureRequest) -> str:
    """Where the server keeps its rate-limit counts: per process, or in Redis as in production."""
    if request.param == "memory":
        return "memory://"
    try:
        connection = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        connection.ping()
    except redis.RedisError as exc:
        if IN_CI:
            pytest.fail(f"Redis at {REDIS_URL} does not answer in CI: {exc}")
        pytest.skip(f"Redis at {REDIS_URL} does not answer: {exc}")
    # Every client here is 127.0.0.1: an earlier run's counts would be this run's.
    connection.flushdb()
    connection.close()
    return REDIS_URL


@pytest.fixture
def start_server(processes: Processes, app: Flask) -> Callable[..., WebServer]:
    """start_server(SETTING="value", ...): the Procfile's gunicorn with those settings."""

    def start(**settings: str) -> WebServer:
        return WebServer(processes, app, settings)

    return start


# --- rate limits ---------------------------------------------------------------------------------
#
# Each burst sends BURST requests, AT_ONCE at a time, at a limit of a few per minute. With the
# counts in Redis the whole deployment lets exactly the limit through; with `memory://` each of
# the Procfile's two worker processes counts apart, so between one and two limits' worth.


def accepted_within_the_limit(replies: list[Reply], ok: int, limit: int, store: str) -> None:
    accepted = [r for r in replies if r.status == ok]
    refused = [r for r in replies if r.status == 429]
    statuses = sorted({r.status for r in replies})
    assert len(accepted) + len(refused) == len(replies), f"other statuses: {statuses}"
    most = limit if store.startswith("redis") else limit * WEB_PROCESSES
    assert limit <= len(accepted) <= most, f"{len(accepted)} accepted, limit {limit} ({store})"


def refused_promptly(replies: list[Reply]) -> list[Reply]:
    """The 429s, each with Retry-After, each within REFUSAL_BOUND; returned for the body checks."""
    refused = [r for r in replies if r.status == 429]
    assert refused
    times = sorted(round(r.seconds, 3) for r in refused)
    assert times[-1] < REFUSAL_BOUND, f"refusals took {times} s"
    for reply in refused:
        assert 1 <= int(reply.headers["retry-after"]) <= 3600
    return refused


def sign_in_form(server: WebServer) -> tuple[dict[str, str], str]:
    """Headers carrying a session cookie, and the CSRF token of that session's sign-in form."""
    page = requests.get(f"{server.base}/login", timeout=READ_TIMEOUT)
    cookie = "; ".join(f"{name}={value}" for name, value in page.cookies.items())
    headers = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}
    return headers, form_token(page.text)


def form_token(page: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert match, "no CSRF token on the page"
    return match.group(1)


def test_a_burst_of_wrong_passwords_gets_exactly_the_limit_and_429s_at_once(
    start_server: Callable[..., WebServer], limits_store: str, make_user: MakeUser
) -> None:
    """Before the fix, 12 attempts in flight at once passed a limit of 5 (14 got through)."""
    user = make_user()
    server = start_server(RATELIMIT_STORAGE_URL=limits_store, LOGIN_RATE_LIMIT="5 per minute")
    headers, token = sign_in_form(server)
    form = urlencode({"email": user.email, "password": "wrong", "csrf_token": token}).encode()
    replies = burst(lambda: send(server.port, "POST", "/login", form, headers))
    accepted_within_the_limit(replies, 200, 5, limits_store)
    assert all("Wrong email or password." in r.text for r in replies if r.status == 200)
    for reply in refused_promptly(replies):
        assert reply.headers["content-type"].startswith("text/html")
        assert "<h1>Too many attempts</h1>" in reply.text
        assert "Please try again in" in reply.text


def test_a_burst_of_api_calls_with_a_token_gets_problem_429s_at_once(
    start_server: Callable[..., WebServer], limits_store: str, tester: User
) -> None:
    headers = bearer(tester)
    server = start_server(RATELIMIT_STORAGE_URL=limits_store, API_RATE_LIMIT="10 per minute")
    replies = burst(lambda: send(server.port, "GET", "/api/v1/clips", headers=headers))
    accepted_within_the_limit(replies, 200, 10, limits_store)
    assert all(json.loads(r.body)["items"] == [] for r in replies if r.status == 200)
    for reply in refused_promptly(replies):
        assert reply.headers["content-type"] == "application/problem+json"
        body = json.loads(reply.body)
        assert (body["status"], body["title"]) == (429, "Too many requests")
        assert body["detail"].startswith("Too many requests in a short time. Please try again in")


def test_a_burst_of_share_page_views_gets_the_share_pages_429_at_once(
    start_server: Callable[..., WebServer],
    limits_store: str,
    make_clip: Callable[..., Clip],
    reviewer: User,
) -> None:
    clip = make_clip(ClipStatus.APPROVED, reviewer=reviewer, content=b"approved bytes")
    _, token = sharing.create_link(clip, reviewer)
    db.session.commit()
    server = start_server(RATELIMIT_STORAGE_URL=limits_store, SHARE_RATE_LIMIT="10 per minute")
    replies = burst(lambda: send(server.port, "GET", f"/s/{token}"))
    accepted_within_the_limit(replies, 200, 10, limits_store)
    assert all(clip.title in r.text for r in replies if r.status == 200)
    for reply in refused_promptly(replies):
        # The outsiders' page: what happened and when to come back, no sign-in link.
        assert "<h1>Too many attempts</h1>" in reply.text
        assert "Please try again in" in reply.text
        assert "/login" not in reply.text


def test_a_burst_of_upload_starts_gets_429s_at_once_and_makes_only_the_accepted_clips(
    start_server: Callable[..., WebServer], limits_store: str, tester: User
) -> None:
    headers = {**bearer(tester), "Content-Type": "application/json"}
    body = json.dumps({"title": "Burst", "filename": "burst.mp4", "size": 1000}).encode()
    server = start_server(RATELIMIT_STORAGE_URL=limits_store, UPLOAD_RATE_LIMIT="5 per minute")
    replies = burst(lambda: send(server.port, "POST", "/api/v1/clips", body, headers))
    accepted_within_the_limit(replies, 201, 5, limits_store)
    for reply in refused_promptly(replies):
        assert json.loads(reply.body)["title"] == "Too many requests"
    made = db.session.scalar(select(func.count()).select_from(Clip))
    assert made == sum(r.status == 201 for r in replies)


def test_the_upload_pages_and_the_api_share_one_upload_limit(
    app: Flask, tester: User, signed_in: SignIn
) -> None:
    """In-process: the browser's ticket and the API's count against the same account."""
    app.config["UPLOAD_RATE_LIMIT"] = "2 per minute"
    browser = signed_in(tester)
    token = csrf_token(browser, "/clips/new")
    details = {"title": "Page", "filename": "page.mp4", "size": "1000", "csrf_token": token}
    page = browser.post("/clips/direct", data=details, headers={"Accept": "application/json"})
    api = app.test_client().post(
        "/api/v1/clips",
        json={"title": "Api", "filename": "api.mp4", "size": 1000},
        headers=bearer(tester),
    )
    with nothing_changed():
        third = browser.post("/clips/direct", data=details)
    assert (page.status_code, api.status_code, third.status_code) == (201, 201, 429)


def test_a_successful_sign_in_does_not_use_up_the_limit(app: Flask, make_user: MakeUser) -> None:
    """Failures only: five good sign-ins leave all five failures of the limit to the person."""
    user = make_user()

    def attempt(password: str) -> int:
        client = app.test_client()
        data = {"email": user.email, "password": password, "csrf_token": csrf_token(client)}
        return client.post("/login", data=data).status_code

    good = [attempt(PASSWORD) for _ in range(5)]
    wrong = [attempt("wrong") for _ in range(6)]
    assert (good, wrong) == ([302] * 5, [200] * 5 + [429])
