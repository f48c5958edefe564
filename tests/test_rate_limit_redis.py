"""Sign-in limits kept in Redis, as several workers on several hosts must share them."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable

import pytest
import redis
from flask import Flask

from approval.models import User
from tests.plugins.web import csrf_token

REDIS_URL = os.environ.get("GREENLIGHT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        if IN_CI:
            pytest.fail(f"Redis at {REDIS_URL} does not answer in CI: {exc}")
        pytest.skip(f"Redis at {REDIS_URL} does not answer: {exc}")
    return REDIS_URL


def test_two_app_instances_share_one_limit_through_redis(
    app_factory: Callable[..., Flask], make_user: Callable[..., User], redis_url: str
) -> None:
    """Two workers (two apps) count failures together: the sixth, on either, gets 429.

    Every sign-in limit (per account and address, per address, per account) lives in Redis.
    """
    email = f"target-{uuid.uuid4().hex[:8]}@example.com"
    address = f"2001:db8::{uuid.uuid4().hex[:4]}"  # fresh, so earlier runs' counts do not apply
    make_user(email=email)
    workers = [app_factory(RATELIMIT_STORAGE_URL=redis_url) for _ in range(2)]
    statuses = []
    for attempt in range(6):
        client = workers[attempt % 2].test_client()
        response = client.post(
            "/login",
            data={"email": email, "password": "wrong", "csrf_token": csrf_token(client)},
            environ_base={"REMOTE_ADDR": address},
        )
        statuses.append(response.status_code)
    assert statuses == [200] * 5 + [429]
    # The count lives in Redis, not in either worker's memory.
    stored = redis.Redis.from_url(redis_url).keys("*")
    assert any(email in key.decode() for key in stored)


def test_the_loose_per_account_limit_is_shared_too(
    app_factory: Callable[..., Flask], make_user: Callable[..., User], redis_url: str
) -> None:
    """Guesses at one account from many addresses, spread over two workers, count together."""
    email = f"target-{uuid.uuid4().hex[:8]}@example.com"
    make_user(email=email)
    workers = [
        app_factory(RATELIMIT_STORAGE_URL=redis_url, LOGIN_ACCOUNT_RATE_LIMIT="4 per hour")
        for _ in range(2)
    ]
    statuses = []
    for attempt in range(5):
        client = workers[attempt % 2].test_client()
        response = client.post(
            "/login",
            data={"email": email, "password": "wrong", "csrf_token": csrf_token(client)},
            environ_base={"REMOTE_ADDR": f"2001:db8::{uuid.uuid4().hex[:4]}"},
        )
        statuses.append(response.status_code)
    assert statuses == [200] * 4 + [429]
