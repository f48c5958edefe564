"""What a rate limit says in headers: Retry-After on every 429, X-RateLimit-* on the API only.

Pages and share links answer people, who read the 429 page; only a program calling the API
can pace itself by the remaining count, and writing it costs two trips to the limit store.
"""

from __future__ import annotations

import math
import time

import pytest
from flask import Flask
from flask.testing import FlaskClient

from approval.models import User
from tests.plugins.api import bearer

RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")

#: Two limited URLs, each with the setting that limits it: a share link's page, an API list.
LIMITED = {
    "share page": ("SHARE_RATE_LIMIT", "/s/guess-00000000000000000000"),
    "api": ("API_RATE_LIMIT", "/api/v1/clips"),
}


class Clock:
    """time.time() for the rate limits, moved by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def limit_clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Stands in for time.time(), which Flask-Limiter and its memory store read directly."""
    clock = Clock(math.floor(time.time()) + 0.9)
    monkeypatch.setattr(time, "time", clock)
    return clock


def caller(app: Flask, tester: User, name: str) -> tuple[FlaskClient, dict[str, str]]:
    """A client and its headers: anonymous for share links, with a token for the API."""
    return app.test_client(), bearer(tester) if name == "api" else {}


@pytest.mark.parametrize("name", LIMITED)
def test_retry_after_is_at_least_a_second_in_the_last_moment_of_a_window(
    app: Flask, tester: User, limit_clock: Clock, name: str
) -> None:
    """Before the fix, Flask-Limiter rewrote it as the whole seconds left, which could be 0."""
    setting, path = LIMITED[name]
    app.config[setting] = "1 per minute"
    client, headers = caller(app, tester, name)
    client.get(path, headers=headers)
    limit_clock.now += 59.95  # the window ends 0.05 s from now
    refused = client.get(path, headers=headers)
    assert (refused.status_code, refused.headers["Retry-After"]) == (429, "1")


@pytest.mark.parametrize(
    "path", ["/s/guess-00000000000000000000", "/login", "/.well-known/greenlight/approvals/x"]
)
def test_pages_and_share_links_carry_no_rate_limit_headers(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert [h for h in RATE_HEADERS if h in response.headers] == []
    assert "Retry-After" not in response.headers


def test_a_refused_share_link_carries_retry_after_and_no_rate_limit_headers(
    app: Flask, client: FlaskClient
) -> None:
    app.config["SHARE_RATE_LIMIT"] = "1 per minute"
    client.get("/s/guess-00000000000000000000")
    refused = client.get("/s/guess-00000000000000000000")
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert [h for h in RATE_HEADERS if h in refused.headers] == []


def test_the_api_says_its_limit_what_remains_and_when_it_resets(
    app: Flask, client: FlaskClient, tester: User
) -> None:
    app.config["API_RATE_LIMIT"] = "3 per minute"
    headers = bearer(tester)
    started = time.time()
    replies = [client.get("/api/v1/clips", headers=headers) for _ in range(4)]
    assert [r.status_code for r in replies] == [200, 200, 200, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in replies] == ["2", "1", "0", "0"]
    assert {r.headers["X-RateLimit-Limit"] for r in replies} == {"3"}
    reset = int(replies[0].headers["X-RateLimit-Reset"])
    assert started < reset <= started + 62
    assert "Retry-After" not in replies[0].headers
    assert 1 <= int(replies[-1].headers["Retry-After"]) <= 60
