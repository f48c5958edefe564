"""Load beyond the limits, against the Procfile's gunicorn: 429 and 413 at once, never a hang.

Bursts past each rate limit (with the counts in memory and in Redis), bodies past each size
limit (declared, or chunked and never ended), and bodies that stop arriving (408).
Every client here is a raw socket or `http.client` with a timeout on every read, so a server
that waits instead of refusing fails the test instead of hanging it.
"""

from __future__ import annotations

import http.client
import io
import itertools
import json
import os
import re
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from flask import Flask
from sqlalchemy import func, select

from approval.extensions import db
from approval.models import Clip, ClipStatus, User
from approval.ops import sharing
from tests.plugins.api import bearer
from tests.plugins.factories import PASSWORD
from tests.plugins.snapshot import nothing_changed
from tests.plugins.web import SignIn, csrf_token
from tests.plugins.workers import Processes, WebServer, fresh_redis

REDIS_URL = os.environ.get("GREENLIGHT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

#: A burst: this many requests, this many in flight at once.
BURST, AT_ONCE = 60, 12
#: How long any one reply may take before the test calls it a hang.
READ_TIMEOUT = 10.0
#: How long a refusal may take. A 429 or 413 does no work but a count or a length check and
#: one small page: a few ms each on a quiet machine, up to 0.8 s queued behind a dozen others,
#: and 1.7 s once with the load average at 15 on 2 shared cores. What this rules out is a
#: server that waits for the client: gunicorn's 5 s data wait and drain, its 30 s timeout.
REFUSAL_BOUND = 2.5
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
    # Every client here is 127.0.0.1: an earlier run's counts would be this run's.
    return fresh_redis(REDIS_URL)


@pytest.fixture
def start_server(processes: Processes, app: Flask) -> Callable[..., WebServer]:
    """start_server(SETTING="value", ...): the Procfile's gunicorn with those settings."""

    def start(*, worker_processes: int | None = None, **settings: str) -> WebServer:
        env = {f"GREENLIGHT_{k}": v for k, v in settings.items()}
        return WebServer(processes, app, worker_processes=worker_processes, **env)

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


@pytest.fixture
def exact_server(
    limits_store: str, start_server: Callable[..., WebServer]
) -> Callable[..., WebServer]:
    """A server that keeps one count: the Procfile's two workers on Redis, or one on `memory://`.

    So a burst may get exactly the limit through with either store.
    """
    one_count = 1 if limits_store == "memory://" else None
    return lambda **settings: start_server(
        worker_processes=one_count, RATELIMIT_STORAGE_URL=limits_store, **settings
    )


def passphrase_form(
    server: WebServer, token: str, address: Callable[[], str] | None = None
) -> Callable[[], Reply]:
    """A request sending one wrong passphrase to the link in one session's form, each from
    `address()` if given (as a proxy in front would say), else from this host."""
    page = requests.get(f"{server.base}/s/{token}", timeout=READ_TIMEOUT)
    cookie = "; ".join(f"{name}={value}" for name, value in page.cookies.items())
    form = urlencode({"passphrase": "wrong", "csrf_token": form_token(page.text)}).encode()
    headers = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}

    def post() -> Reply:
        sent = {**headers, "X-Forwarded-For": address()} if address else headers
        return send(server.port, "POST", f"/s/{token}", form, sent)

    return post


def exactly_the_limit(replies: list[Reply], limit: int) -> None:
    """`limit` wrong passphrases answered 403, every other attempt refused at once."""
    statuses = [r.status for r in replies]
    assert (statuses.count(403), statuses.count(429)) == (limit, len(replies) - limit)
    assert all("That passphrase is not right." in r.text for r in replies if r.status == 403)
    refused_promptly(replies)


@pytest.fixture
def locked_link(make_clip: Callable[..., Clip], reviewer: User) -> str:
    """The token of a share link with a passphrase, to an approved clip."""
    clip = make_clip(ClipStatus.APPROVED, reviewer=reviewer)
    _, token = sharing.create_link(clip, reviewer, passphrase="open sesame")
    db.session.commit()
    return token


def test_a_burst_of_wrong_passphrases_gets_exactly_the_limit_per_link_and_address(
    exact_server: Callable[..., WebServer], locked_link: str
) -> None:
    """Before the fix, 12 guesses in flight at once passed a limit of 5: 6 to 13 got through."""
    server = exact_server(SHARE_PASSPHRASE_RATE_LIMIT="5 per minute")
    with nothing_changed():
        replies = burst(passphrase_form(server, locked_link))
    exactly_the_limit(replies, 5)


def test_a_burst_of_wrong_passphrases_from_many_addresses_gets_exactly_the_link_limit(
    exact_server: Callable[..., WebServer], locked_link: str
) -> None:
    server = exact_server(
        PROXY_HOPS="1",
        SHARE_PASSPHRASE_RATE_LIMIT="1000 per minute",
        SHARE_PASSPHRASE_LINK_RATE_LIMIT="5 per hour",
    )
    addresses = itertools.count(1)
    with nothing_changed():
        replies = burst(
            passphrase_form(server, locked_link, lambda: f"198.51.100.{next(addresses)}")
        )
    exactly_the_limit(replies, 5)


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


# --- bodies over the limit -----------------------------------------------------------------------
#
# Each body is refused by its declared length before a byte of it is sent, and a chunked body
# (no length) as soon as it passes the limit while the client is still sending: both clients
# here then stop, so only a server that answers without waiting for the rest passes.

#: The server's clip limit here: small, so a body past it is quick to send.
MAX_CLIP = 2 << 20
#: Bytes a chunked body goes past its limit by before the client stops and waits.
OVER = 256 << 10


def raw(port: int, head: str, body: bytes = b"") -> Reply:
    """Send the request head (and body bytes, if any) on a socket; read the reply."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT) as sock:
        sock.sendall(head.encode() + body)
        response = http.client.HTTPResponse(sock)
        response.begin()
        data = response.read()
        got = {name.lower(): value for name, value in response.getheaders()}
    return Reply(response.status, got, data, time.monotonic() - started)


def head(method: str, path: str, length: int | None, **headers: str) -> str:
    """A request head declaring `length` bytes of body, or a chunked body when None."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    lines.append("Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}")
    return "\r\n".join(lines) + "\r\n\r\n"


def chunked(*parts: bytes, filler: int = 0) -> bytes:
    """Chunks of `parts`, then `filler` bytes in 64 KiB chunks; never the closing empty chunk."""
    pieces = [*parts, *(b"x" * min(64 << 10, filler - n) for n in range(0, filler, 64 << 10))]
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces if piece)


def refused_as_too_large(reply: Reply) -> Reply:
    assert reply.status == 413, reply.text[-500:]
    assert reply.seconds < REFUSAL_BOUND, f"the 413 took {reply.seconds:.3f} s"
    return reply


def nothing_left_on_disk(app: Flask) -> None:
    """No partial upload either (stored_objects leaves out storage's own .tmp folder)."""
    root = Path(app.config["STORAGE_URL"].removeprefix("file://"))
    assert [p.name for p in (root / ".tmp").glob("*")] == []


def signed_in_browser(server: WebServer, user: User, page: str) -> tuple[str, str]:
    """A signed-in session's Cookie header and the CSRF token of `page`."""
    browser = requests.Session()
    login = browser.get(f"{server.base}/login", timeout=READ_TIMEOUT)
    form = {"email": user.email, "password": PASSWORD, "csrf_token": form_token(login.text)}
    answer = browser.post(
        f"{server.base}/login", data=form, allow_redirects=False, timeout=READ_TIMEOUT
    )
    assert answer.status_code == 302, "sign-in failed"
    token = form_token(browser.get(f"{server.base}{page}", timeout=READ_TIMEOUT).text)
    return "; ".join(f"{k}={v}" for k, v in browser.cookies.items()), token


@pytest.fixture
def upload_server(start_server: Callable[..., WebServer]) -> WebServer:
    return start_server(MAX_CLIP_BYTES=str(MAX_CLIP))


def test_the_put_ticket_refuses_more_than_a_clip_may_be_at_once(
    app: Flask, upload_server: WebServer, tester: User
) -> None:
    created = requests.post(
        f"{upload_server.base}/api/v1/clips",
        json={"title": "Big", "filename": "big.mp4", "size": 1000},
        headers=bearer(tester),
        timeout=READ_TIMEOUT,
    )
    ticket = created.json()["upload"]
    assert ticket["method"] == "PUT"
    path = ticket["url"].removeprefix(app.config["SITE_URL"])
    with nothing_changed():
        declared = raw(upload_server.port, head("PUT", path, 10 * MAX_CLIP, **ticket["headers"]))
        endless = raw(
            upload_server.port,
            head("PUT", path, None, **ticket["headers"]),
            chunked(filler=MAX_CLIP + OVER),
        )
    # By its length, before the view; past the limit while streaming, by storage itself.
    assert "clips: at most 2 MB" in refused_as_too_large(declared).text
    assert "file is larger than the 2 MB limit" in refused_as_too_large(endless).text
    nothing_left_on_disk(app)


def test_the_upload_form_refuses_more_than_a_clip_may_be_at_once(
    app: Flask, upload_server: WebServer, tester: User
) -> None:
    cookie, token = signed_in_browser(upload_server, tester, "/clips/new")
    kind = {"Cookie": cookie, "Content_Type": "multipart/form-data; boundary=b"}
    fields = (
        f'--b\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{token}\r\n'
        '--b\r\nContent-Disposition: form-data; name="title"\r\n\r\nBig\r\n'
        '--b\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()
    # The form may be a clip and 1 MB of fields; past that, nothing of it is read.
    limit = MAX_CLIP + (1 << 20)
    with nothing_changed():
        declared = raw(upload_server.port, head("POST", "/clips/new", 2 * limit, **kind))
        endless = raw(
            upload_server.port,
            head("POST", "/clips/new", None, **kind),
            chunked(fields, filler=limit + OVER),
        )
    for reply in (declared, endless):
        assert "clips: at most 2 MB" in refused_as_too_large(reply).text
    nothing_left_on_disk(app)


def test_an_ordinary_form_refuses_more_than_a_form_may_be_at_once(
    upload_server: WebServer, make_user: MakeUser
) -> None:
    """Before the fix, the sign-in form's 413 spoke of the clip limit, not its own 1 MB."""
    make_user()
    kind = {"Content_Type": "application/x-www-form-urlencoded"}
    with nothing_changed():
        declared = raw(upload_server.port, head("POST", "/login", 10 << 20, **kind))
        endless = raw(
            upload_server.port,
            head("POST", "/login", None, **kind),
            chunked(b"email=a&password=", filler=(1 << 20) + OVER),
        )
    for reply in (declared, endless):
        text = refused_as_too_large(reply).text
        assert "forms: at most 1 MB" in text
        assert "clips" not in text


def test_the_api_refuses_a_json_body_over_its_limit_at_once(
    upload_server: WebServer, tester: User
) -> None:
    kind = {**bearer(tester), "Content_Type": "application/json"}
    with nothing_changed():
        declared = raw(upload_server.port, head("POST", "/api/v1/clips", 100_000, **kind))
        endless = raw(
            upload_server.port,
            head("POST", "/api/v1/clips", None, **kind),
            chunked(b'{"title": "', filler=(64 << 10) + OVER),
        )
    for reply in (declared, endless):
        assert refused_as_too_large(reply).headers["content-type"] == "application/problem+json"
        body = json.loads(reply.body)
        assert body["detail"].startswith("The request body is larger than 64 KB")


def test_a_chunked_form_within_the_limit_is_read_whole(app: Flask, make_user: MakeUser) -> None:
    """In-process: measuring a chunked form keeps its bytes for the form parser."""
    user = make_user()
    client = app.test_client()
    form = urlencode(
        {"email": user.email, "password": PASSWORD, "csrf_token": csrf_token(client)}
    ).encode()
    response = client.post(
        "/login",
        input_stream=io.BytesIO(form),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Transfer-Encoding": "chunked",
        },
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 302


# --- slow clients --------------------------------------------------------------------------------
#
# A client that sends its headers and part of a body, then nothing, used to hold one of the
# server's 16 threads until the connection died (a blocking read with no timeout). Headers
# trickled byte by byte, or a body trickled just fast enough, are gunicorn's to bound before
# the app sees the request: see README, Production, "Behind a reverse proxy".

#: The server's patience with a body that stops arriving, here.
BODY_TIMEOUT = 1


def stall(port: int, request_head: str, sent: bytes) -> socket.socket:
    """Send a request head and part of its body, then nothing more; the open socket."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT)
    sock.sendall(request_head.encode() + sent)
    return sock


def reply_on(sock: socket.socket) -> Reply:
    started = time.monotonic()
    response = http.client.HTTPResponse(sock)
    response.begin()
    data = response.read()
    got = {name.lower(): value for name, value in response.getheaders()}
    return Reply(response.status, got, data, time.monotonic() - started)


@pytest.fixture
def patient_server(start_server: Callable[..., WebServer]) -> WebServer:
    return start_server(MAX_CLIP_BYTES=str(MAX_CLIP), BODY_TIMEOUT=str(BODY_TIMEOUT))


def test_stalled_uploads_get_408_at_once_leave_nothing_and_hold_no_thread(
    app: Flask, patient_server: WebServer, tester: User
) -> None:
    """20 uploads that stop half way, more than the Procfile's 16 threads: each is let go."""
    created = requests.post(
        f"{patient_server.base}/api/v1/clips",
        json={"title": "Stalled", "filename": "stalled.mp4", "size": 1000},
        headers=bearer(tester),
        timeout=READ_TIMEOUT,
    )
    ticket = created.json()["upload"]
    request_head = head(
        "PUT", ticket["url"].removeprefix(app.config["SITE_URL"]), 1 << 20, **ticket["headers"]
    )
    with nothing_changed():
        started = time.monotonic()
        stalled = [stall(patient_server.port, request_head, b"x" * 100_000) for _ in range(20)]
        try:
            replies = [reply_on(sock) for sock in stalled]
        finally:
            for sock in stalled:
                sock.close()
        elapsed = time.monotonic() - started
    assert [r.status for r in replies] == [408] * 20
    assert "stopped arriving for 1 second," in replies[0].text
    # The first 16 wait out the timeout together; the other 4 get a thread right after.
    assert elapsed < 2 * BODY_TIMEOUT + REFUSAL_BOUND
    nothing_left_on_disk(app)
    # Every thread is free at once: gunicorn does not wait for the unread rest either.
    healthz = send(patient_server.port, "GET", "/healthz")
    assert (healthz.status, healthz.seconds < REFUSAL_BOUND) == (200, True)
